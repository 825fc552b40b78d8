"""Translations: gettext catalogs under `locales/`, locale negotiation, lazy messages."""

from __future__ import annotations

import gettext
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SUPPORTED_LOCALES = ("en", "ar")
DEFAULT_LOCALE = "en"
RTL_LOCALES = frozenset({"ar"})
DOMAIN = "skillswap"


def locales_dir() -> Path:
    """The catalogs folder: $SKILLSWAP_LOCALES_DIR or `locales/` beside the package."""
    configured = os.environ.get("SKILLSWAP_LOCALES_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "locales"


def in_language(english: str, arabic: str, locale: str) -> tuple[str, str]:
    """A bilingual record's text in `locale`, else in the other language; and which it is."""
    if locale == "ar":
        return (arabic, "ar") if arabic else (english, "en")
    return (english, "en") if english else (arabic, "ar")


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


@dataclass(frozen=True)
class Message:
    """A user-facing text translated when the response is written, in the reader's language."""

    msgid: str
    params: dict[str, Any] = field(default_factory=dict)
    plural: str | None = None
    n: int | None = None

    def render(self, translator: Translator) -> str:
        if self.plural is not None and self.n is not None:
            text = translator.ngettext(self.msgid, self.plural, self.n)
        else:
            text = translator.gettext(self.msgid)
        return text.format(**self.params) if self.params else text


def lazy(msgid: str, **params: Any) -> Message:
    return Message(msgid, params)


def lazy_plural(singular: str, plural: str, n: int, **params: Any) -> Message:
    return Message(singular, {"n": n, **params}, plural, n)


class Translator:
    """gettext for one locale."""

    def __init__(self, locale: str, translations: gettext.NullTranslations) -> None:
        self.locale = locale
        self._t = translations

    @property
    def direction(self) -> str:
        return "rtl" if self.locale in RTL_LOCALES else "ltr"

    def gettext(self, message: str) -> str:
        return self._t.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    def text(self, value: str | Message) -> str:
        return value.render(self) if isinstance(value, Message) else self.gettext(value)


class Catalogs:
    """All loaded catalogs; compiled from the .po sources at start-up (no build step needed)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._translators: dict[str, Translator] = {}
        root = directory or locales_dir()
        for locale in SUPPORTED_LOCALES:
            po_path = root / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
            translations: gettext.NullTranslations
            if po_path.exists():
                with po_path.open("rb") as fh:
                    catalog = read_po(fh, locale=locale, domain=DOMAIN)
                buffer = io.BytesIO()
                write_mo(buffer, catalog, use_fuzzy=False)
                buffer.seek(0)
                translations = gettext.GNUTranslations(buffer)
            else:
                translations = gettext.NullTranslations()
            self._translators[locale] = Translator(locale, translations)

    def get(self, locale: str) -> Translator:
        return self._translators.get(locale) or self._translators[DEFAULT_LOCALE]


def negotiate_locale(
    *, user_locale: str | None, accept_language: str | None, default: str = DEFAULT_LOCALE
) -> str:
    """The user's saved locale, then the best `Accept-Language` match, then the default."""
    if user_locale in SUPPORTED_LOCALES:
        return str(user_locale)
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for position, part in enumerate(accept_language.split(",")):
            pieces = part.strip().split(";")
            tag = pieces[0].strip().lower()
            quality = 1.0
            for param in pieces[1:]:
                name, _, value = param.strip().partition("=")
                if name == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            if tag and quality > 0:
                ranked.append((-quality, position, tag))
        for _q, _pos, tag in sorted(ranked):
            primary = tag.split("-")[0]
            if primary in SUPPORTED_LOCALES:
                return primary
    return default if default in SUPPORTED_LOCALES else DEFAULT_LOCALE
