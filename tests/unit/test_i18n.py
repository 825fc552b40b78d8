"""Translations: every user-facing string has Arabic, plural forms and negotiation work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from skillswap.i18n import Catalogs, lazy_plural, negotiate_locale

ROOT = Path(__file__).resolve().parents[2]


def test_every_extracted_string_has_an_arabic_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    keywords = []
    for keyword in ["lazy", "lazy_plural:1,2", "N_", "gettext", "ngettext:1,2", "_"]:
        keywords += ["-k", keyword]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-o",
            str(pot),
            *keywords,
            ".",
        ],
        # babel.cfg's patterns are relative to the repository root, as in update_catalogs.py.
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    with pot.open("rb") as fh:
        template = read_po(fh)
    # The extraction itself must have found the catalog's strings, or this test proves nothing.
    assert len([m for m in template if m.id]) > 200
    with (ROOT / "locales/ar/LC_MESSAGES/skillswap.po").open("rb") as fh:
        arabic = read_po(fh, locale="ar")
    missing = []
    for message in template:
        if not message.id:
            continue
        translated = arabic.get(message.id)
        strings = (
            []
            if translated is None
            else (
                [translated.string]
                if isinstance(translated.string, str)
                else list(translated.string)
            )
        )
        if not strings or not all(strings):
            missing.append(message.id)
    assert missing == [], f"run tools/update_catalogs.py and translate: {missing}"


def test_arabic_plural_forms_pick_the_right_category():
    ar = Catalogs().get("ar")
    texts = {
        n: lazy_plural("Use at least {n} character.", "Use at least {n} characters.", n).render(ar)
        for n in (1, 2, 3, 11, 100)
    }
    assert texts[1] == "استخدم حرفًا واحدًا على الأقل."
    assert texts[2] == "استخدم حرفين على الأقل."
    assert texts[3] == "استخدم 3 أحرف على الأقل."
    assert texts[11] == "استخدم 11 حرفًا على الأقل."
    assert texts[100] == "استخدم 100 حرف على الأقل."
    assert ar.direction == "rtl"


def test_locale_negotiation_prefers_saved_then_header_then_default():
    assert negotiate_locale(user_locale="ar", accept_language="en") == "ar"
    assert negotiate_locale(user_locale=None, accept_language="fr, ar-EG;q=0.8, en;q=0.5") == "ar"
    assert negotiate_locale(user_locale=None, accept_language="en;q=0.4, ar;q=0.9") == "ar"
    assert negotiate_locale(user_locale=None, accept_language="fr, de") == "en"
    assert negotiate_locale(user_locale=None, accept_language=None) == "en"
    assert negotiate_locale(user_locale=None, accept_language="ar;q=0") == "en"


def test_bilingual_text_falls_back_to_the_other_language():
    from skillswap.i18n import in_language

    assert in_language("Guitar", "غيتار", "ar") == ("غيتار", "ar")
    assert in_language("Guitar", "", "ar") == ("Guitar", "en")
    assert in_language("", "غيتار", "en") == ("غيتار", "ar")
    assert in_language("", "", "en") == ("", "ar")
