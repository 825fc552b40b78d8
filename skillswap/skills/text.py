"""Text rules of the marketplace: Arabic normalisation, tags, and the words a search looks for.

Search matches what people mean, not how they happened to type it: Arabic is written with or
without diacritics and tatweel, and the hamza-carrying alef forms, taa marbuta and alef maqsura
are used interchangeably in everyday writing. Both the indexed documents and the queries go
through `normalise_search_text`, so those variations never stop a match.
"""

from __future__ import annotations

import re
import unicodedata

# Alef with hamza above/below, alef with madda and alef wasla are all searched as bare alef;
# taa marbuta as haa; alef maqsura as yaa.
_LETTER_MAP = str.maketrans(
    {
        "\u0623": "\u0627",  # أ
        "\u0625": "\u0627",  # إ
        "\u0622": "\u0627",  # آ
        "\u0671": "\u0627",  # ٱ
        "\u0629": "\u0647",  # ة -> ه
        "\u0649": "\u064a",  # ى -> ي
    }
)
# Harakat (fathatan .. sukun), the superscript alef, and tatweel carry no meaning for search.
_STRIP_RE = re.compile("[\u064b-\u0652\u0670\u0640]")
_WORD_RE = re.compile(r"\w+")
_SPACE_RE = re.compile(r"[\s_]+")

# PostgreSQL's `english` configuration drops these (its english.stop list); the SQLite query
# drops them too, so a search means the same on both backends.
ENGLISH_STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which
    who whom this that these those am is are was were be been being have has had having do
    does did doing a an the and but if or because as until while of at by for with about
    against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very s t can will
    just don should now
    """.split()  # noqa: SIM905 - the list reads as PostgreSQL ships it
)

MAX_TAGS = 10
MAX_TAG_LENGTH = 30


def strip_arabic_marks(text: str) -> str:
    """Remove Arabic diacritics and tatweel (they never change what a word is)."""
    return _STRIP_RE.sub("", text)


def normalise_arabic(text: str) -> str:
    """Fold the Arabic spelling variants search must not distinguish (see the module docstring)."""
    # NFKC first: it turns Arabic presentation forms (ﻻ, ﺔ, ...) back into the base letters.
    return strip_arabic_marks(unicodedata.normalize("NFKC", text)).translate(_LETTER_MAP)


def normalise_search_text(text: str) -> str:
    """The form in which documents are indexed and queries are matched (lower-cased)."""
    return normalise_arabic(text).lower()


def search_terms(query: str) -> list[str]:
    """The words a search must all match, normalised, without English stop words or repeats."""
    terms: list[str] = []
    for word in _WORD_RE.findall(normalise_search_text(query)):
        if word not in ENGLISH_STOP_WORDS and word not in terms:
            terms.append(word)
    return terms


def normalise_tag(tag: str) -> str:
    """A tag as stored and filtered: trimmed, lower-cased, no leading '#', words joined by '-'."""
    text = strip_arabic_marks(unicodedata.normalize("NFKC", tag)).strip().lstrip("#").strip()
    return _SPACE_RE.sub("-", text.lower())


def normalise_tags(tags: list[str]) -> list[str]:
    """Normalised tags, empty ones dropped, duplicates removed, in the order given."""
    result: list[str] = []
    for tag in tags:
        normalised = normalise_tag(tag)
        if normalised and normalised not in result:
            result.append(normalised)
    return result
