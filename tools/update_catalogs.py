"""Extract every translatable string and merge it into locales/{en,ar}/LC_MESSAGES/skillswap.po.

Run `python tools/update_catalogs.py`, then translate the empty `msgstr` entries of ar.po
(tests/unit/test_i18n.py fails while any Arabic translation is missing).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = ["lazy", "lazy_plural:1,2", "N_", "gettext", "ngettext:1,2", "_"]


def extract() -> Catalog:
    pot = ROOT / "locales" / "skillswap.pot"
    args = [
        sys.executable,
        "-m",
        "babel.messages.frontend",
        "extract",
        "-F",
        str(ROOT / "babel.cfg"),
        "--no-location",
        "--sort-output",
        "--omit-header",
        "-o",
        str(pot),
    ]
    for keyword in KEYWORDS:
        args += ["-k", keyword]
    subprocess.run([*args, str(ROOT)], check=True, cwd=ROOT, capture_output=True)
    with pot.open("rb") as fh:
        return read_po(fh)


def main() -> int:
    template = extract()
    for locale in ("en", "ar"):
        path = ROOT / "locales" / locale / "LC_MESSAGES" / "skillswap.po"
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
        catalog.update(template, no_fuzzy_matching=True)
        buffer = io.BytesIO()
        write_po(buffer, catalog, no_location=True, sort_output=True, ignore_obsolete=True)
        path.write_bytes(buffer.getvalue())
        untranslated = [
            m.id
            for m in catalog
            if m.id and not (m.string if isinstance(m.string, str) else all(m.string))
        ]
        if locale == "ar":
            print(f"ar: {len(untranslated)} untranslated")
            for msgid in untranslated:
                print(f"  {msgid!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
