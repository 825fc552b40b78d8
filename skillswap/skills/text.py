"""Text rules of the marketplace: Arabic normalisation, tags, and the words a search looks for.

Search matches what people mean, not how they happened to type it: Arabic is written with or
without diacritics and tatweel, and the hamza-carrying alef forms, taa marbuta and alef maqsura
are used interchangeably in everyday writing. Both the indexed documents and the queries go
through `normalise_search_text`, so those variations never stop a match.

Arabic also writes the article and some particles as part of the word: `المقلوبة` is "the
maqluba", `وأسرار` "and secrets", `للمبتدئين` "for the beginners". `arabic_word_forms` gives each
Arabic word its forms without those proclitics; a document indexes every form of its words and
a query word matches when one of its forms is one of a document's (so `مقلوبة` finds `المقلوبة`
and `اسرار` finds `وأسرار`, and `المقلوبة` finds `مقلوبة` too). The rules:

- an article form, alone or after a conjunction and/or a preposition (ال، وال، فال، بال، كال،
  وبال، فبال، وكال، فكال، لل، ولل، فلل) comes off when at least 2 letters remain (`الفن` -> `فن`,
  but `الم` stays). After `لل` the stem may itself begin with lam (ل + اللغة is written `للغة`),
  so both `غه` and `لغه` are forms of `للغة`. An alef-lam left after the article is the
  hamza-less spelling of a word that begins with أل (`الألوان` -> `الوان` -> `وان`, as `ألوان`).
- the conjunction و comes off when at least 3 letters remain (`وأسرار` -> `اسرار`; `ورد`, `وقت`
  keep theirs), then the rules apply again to what is left (`وورشة`, `والمقلوبة`).
- a lone ب، ل، ك or ف (without the article) stays: it begins too many everyday words
  (`بطاقة` "card" is not `طاقة` "energy", `فكرة` "idea" is not `كرة` "ball"). Nor are suffixes
  touched. The word list in tests/unit/test_arabic_proclitics.py records why: these rules got
  41 of its 47 pairs right, against 30 for snowballstemmer's Arabic stemmer and 27 for
  tashaphyne's light stemmer (both over-strip short words and miss the article forms).
- a proclitic standing alone as a query word (`و`, `ال`) is no search term, as English stop
  words are not.
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
# A whole word of Arabic letters (after normalisation; not part of a word mixing scripts).
_ARABIC_WORD_RE = re.compile(r"(?<!\w)[\u0621-\u063a\u0641-\u064a]+(?!\w)")
# The article with an optional conjunction (و، ف) and preposition (ب، ك) before it; `لل` is
# ل + ال (the article's alef is not written after ل).
_ARTICLE_RE = re.compile(
    "^(?:[\u0648\u0641]?[\u0628\u0643]?\u0627\u0644|[\u0648\u0641]?\u0644\u0644)"
)
_ALEF_LAM = "\u0627\u0644"  # ال
_LAM = "\u0644"
_WAW = "\u0648"
MIN_STEM_AFTER_ARTICLE = 2
MIN_STEM_AFTER_WAW = 3
# Proclitics written apart (or typed alone) carry no meaning of their own in a query.
ARABIC_PROCLITIC_WORDS = frozenset({"\u0648", "\u0641", "\u0628", "\u0644", "\u0643", _ALEF_LAM})
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


def _add_forms(word: str, forms: dict[str, None]) -> None:
    forms[word] = None
    article = _ARTICLE_RE.match(word)
    if article and len(word) - article.end() >= MIN_STEM_AFTER_ARTICLE:
        rest = word[article.end() :]
        forms[rest] = None
        if article.group().endswith(_LAM + _LAM):
            forms[_LAM + rest] = None  # ل + ال + a stem that begins with lam
        if rest.startswith(_ALEF_LAM) and len(rest) - 2 >= MIN_STEM_AFTER_ARTICLE:
            forms[rest[2:]] = None  # ال + أل... written without the hamza
    if word.startswith(_WAW) and len(word) - 1 >= MIN_STEM_AFTER_WAW:
        _add_forms(word[1:], forms)


def arabic_word_forms(word: str) -> tuple[str, ...]:
    """A normalised Arabic word and its forms without proclitics, the word itself first.

    Rules in the module docstring. Anything that is not a whole Arabic word is its only form.
    """
    if not _ARABIC_WORD_RE.fullmatch(word):
        return (word,)
    forms: dict[str, None] = {}
    _add_forms(word, forms)
    return tuple(forms)


def index_text(text: str) -> str:
    """The text a search document indexes: normalised, each Arabic word followed by its other
    forms (English and other words are left to the search engine's own stemming)."""
    return _ARABIC_WORD_RE.sub(
        lambda found: " ".join(arabic_word_forms(found.group())), normalise_search_text(text)
    )


def search_terms(query: str) -> list[tuple[str, ...]]:
    """What a search must all match: per query word, the forms any one of which matches.

    Normalised, without English stop words, lone Arabic proclitics or repeats.
    """
    terms: list[tuple[str, ...]] = []
    for word in _WORD_RE.findall(normalise_search_text(query)):
        if word in ENGLISH_STOP_WORDS or word in ARABIC_PROCLITIC_WORDS:
            continue
        forms = arabic_word_forms(word)
        if forms not in terms:
            terms.append(forms)
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
