"""Translations: gettext catalogs under `locales/`, locale negotiation, lazy messages."""

from __future__ import annotations

import gettext
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SUPPORTED_LOCALES = ("en", "ar")
DEFAULT_LOCALE = "en"
RTL_LOCALES = frozenset({"ar"})
DOMAIN = "skillswap"


def locales_dir() -> Path:
    """The catalogs shipped beside the package (SKILLSWAP_LOCALES_DIR may name others)."""
    return Path(__file__).resolve().parent.parent / "locales"


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
        if not self.params:
            return text
        return text.format(
            **{name: _param(value, translator) for name, value in self.params.items()}
        )


@dataclass(frozen=True)
class ListOf:
    """Items joined as the reader's language joins a list: "a, b or c" / "a، b أو c".

    `style` is a CLDR list style: "standard" (and) or "or". Items that are `Message`s (labels)
    are translated first; others (codes, numbers) are written as they are.
    """

    items: tuple[Any, ...]
    style: Literal["standard", "or"] = "standard"


def _param(value: Any, translator: Translator) -> Any:
    """A message parameter as the reader sees it: labels translated, lists joined."""
    if isinstance(value, Message):
        return value.render(translator)
    if isinstance(value, ListOf):
        return translator.format_list(
            [str(_param(item, translator)) for item in value.items], value.style
        )
    return value


def one_of(items: Any) -> ListOf:
    """The choices of a "must be one of" message, joined with "or" in the reader's language."""
    return ListOf(tuple(items), "or")


def one_of_english(joined: str) -> ListOf:
    """`one_of` for a list a library already joined in English ("'a', 'b' or 'c'", as pydantic
    writes the choices of a literal or an enum)."""
    return one_of(item for item in re.split(r", (?:or )?| or ", joined) if item)


def all_of(items: Any) -> ListOf:
    """Items joined with "and" in the reader's language."""
    return ListOf(tuple(items), "standard")


def lazy(msgid: str, **params: Any) -> Message:
    """A message translated when written; a parameter may itself be a `Message` (a label,
    translated too) or a `ListOf` (joined in the reader's language)."""
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

    def format_list(self, items: list[str], style: Literal["standard", "or"] = "standard") -> str:
        """`items` joined by this locale's list pattern (CLDR, through Babel)."""
        return format_list(items, style=style, locale=self.locale) if items else ""

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
