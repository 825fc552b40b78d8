"""Arabic proclitics (the article, و, and the article after ف/ب/ك/ل) never stop a search.

How the rules were chosen: the pairs below (a word as a listing writes it, a word as someone
searches it, whether the search should find it) were scored with each approach, a pair counting
as matched when the two words share a form (documents index every form, a query word matches
by any of its forms):

| approach                                          | pairs right (of 47) |
|---------------------------------------------------|---------------------|
| no stripping (before)                             | 20                  |
| the rules of skillswap.skills.text                | 41                  |
| the rules plus a lone ب/ل                         | 41 (finds لطلاب and بلغة, but also بطاقة for طاقة, لياقة for ياقة) |
| the rules plus a lone ب/ل/ف/ك                     | 36                  |
| snowballstemmer 3.1.1, stemmer("arabic")          | 30                  |
| tashaphyne 0.3.6, ArabicLightStemmer.light_stem   | 27                  |

Both libraries lose on the article forms (`الألوان`/`ألوان`, `والتصميم`/`تصميم`, `للغة`/`لغة`)
and over-strip short everyday words (`بطاقة`/`طاقة`, `فريق`/`ريق`); they win only the suffix pairs
(`مصممة`/`مصمم`), which this change leaves alone. So no library: the hand-written rules.
The six pairs the rules get wrong are listed in KNOWN_MISSES, literally, so a change of rules
shows here.
"""

from __future__ import annotations

import pytest

from skillswap.skills.search import SearchDocument, search_match
from skillswap.skills.text import (
    arabic_word_forms,
    index_text,
    normalise_search_text,
    search_terms,
)

SHOULD_MATCH = [
    ("المقلوبة", "مقلوبة"),
    ("وأسرار", "اسرار"),
    ("والمقلوبة", "مقلوبة"),
    ("بالعربية", "العربية"),
    ("بالعربية", "عربية"),
    ("للمبتدئين", "مبتدئين"),
    ("للمبتدئين", "المبتدئين"),
    ("الفن", "فن"),
    ("فالطبخ", "طبخ"),
    ("كالمحترفين", "محترفين"),
    ("وبالعربية", "عربية"),
    ("الألوان", "ألوان"),
    ("الألوان", "الوان"),
    ("للغة", "لغة"),
    ("اللغة", "للغة"),
    ("الوالدين", "والدين"),
    ("والتصميم", "تصميم"),
    ("فالرسم", "الرسم"),
    ("الإنجليزية", "انجليزية"),
    ("وورشة", "ورشة"),
    ("الطبخ", "طبخ"),
    ("واليوغا", "يوغا"),
    ("ورشة", "ورشة"),
    ("ورد", "ورد"),
    ("بيانو", "بيانو"),
    ("فيزياء", "فيزياء"),
    ("برمجة", "برمجة"),
    ("المصممة", "مصممة"),
]
SHOULD_NOT_MATCH = [
    ("بطاقة", "طاقة"),  # card / energy
    ("فكرة", "كرة"),  # idea / ball
    ("لياقة", "ياقة"),  # fitness / collar
    ("ورد", "رد"),  # rose / reply
    ("فريق", "ريق"),  # team / saliva
    ("كلام", "لام"),  # speech / the letter lam
    ("بحر", "حر"),  # sea / free
    ("ولد", "لد"),
    ("فنون", "نون"),  # arts / the letter nun
    ("كتاب", "تاب"),  # book / repented
    ("مكتبة", "مكتب"),  # library / office
    ("كاتب", "كتب"),  # writer / books
    ("معلم", "علم"),  # teacher / science
]
# (document, query, what the rules do, what they should do): lone ب/ل and suffixes are not
# stripped; a conjunction و before a word is indistinguishable from a word beginning with و.
KNOWN_MISSES = [
    ("لطلاب", "طلاب", False, True),
    ("بلغة", "لغة", False, True),
    ("مصممة", "مصمم", False, True),
    ("مبرمجين", "مبرمج", False, True),
    ("وصفات", "صفات", True, False),  # recipes / qualities
    ("والدة", "دة", True, False),  # mother / (none)
]


def matches(document_word: str, query_word: str) -> bool:
    document = set(arabic_word_forms(normalise_search_text(document_word)))
    return bool(document & set(arabic_word_forms(normalise_search_text(query_word))))


@pytest.mark.parametrize(("document", "query"), SHOULD_MATCH)
def test_a_word_is_found_with_or_without_its_proclitics(document: str, query: str) -> None:
    assert matches(document, query) is True


@pytest.mark.parametrize(("document", "query"), SHOULD_NOT_MATCH)
def test_letters_that_begin_a_word_are_not_taken_for_proclitics(document: str, query: str) -> None:
    assert matches(document, query) is False


@pytest.mark.parametrize(("document", "query", "found", "wanted"), KNOWN_MISSES)
def test_the_recorded_misses_of_the_rules(
    document: str, query: str, found: bool, wanted: bool
) -> None:
    assert found is not wanted
    assert matches(document, query) is found


def test_the_score_in_the_docstring() -> None:
    right = sum(matches(d, q) for d, q in SHOULD_MATCH)
    right += sum(not matches(d, q) for d, q in SHOULD_NOT_MATCH)
    right += sum(matches(d, q) is wanted for d, q, _, wanted in KNOWN_MISSES)
    total = len(SHOULD_MATCH) + len(SHOULD_NOT_MATCH) + len(KNOWN_MISSES)
    assert (right, total) == (41, 47)


@pytest.mark.parametrize(
    ("word", "forms"),
    [
        ("المقلوبه", ("المقلوبه", "مقلوبه")),
        ("واسرار", ("واسرار", "اسرار")),
        ("والمقلوبه", ("والمقلوبه", "مقلوبه", "المقلوبه")),
        ("بالعربيه", ("بالعربيه", "عربيه")),
        ("وبالعربيه", ("وبالعربيه", "عربيه", "بالعربيه")),
        ("كالمحترفين", ("كالمحترفين", "محترفين")),
        ("فالطبخ", ("فالطبخ", "طبخ")),
        ("للمبتدئين", ("للمبتدئين", "مبتدئين", "لمبتدئين")),
        ("وللمبتدئين", ("وللمبتدئين", "مبتدئين", "لمبتدئين", "للمبتدئين")),
        ("الالوان", ("الالوان", "الوان", "وان")),
        ("وورشه", ("وورشه", "ورشه", "رشه")),
        # at least 2 letters stay after an article, 3 after و
        ("الفن", ("الفن", "فن")),
        ("الم", ("الم",)),
        ("ال", ("ال",)),
        ("ورد", ("ورد",)),
        ("وقت", ("وقت",)),
        ("و", ("و",)),
        # a lone ب، ل، ك، ف stays
        ("بطاقه", ("بطاقه",)),
        ("لياقه", ("لياقه",)),
        ("كلام", ("كلام",)),
        ("فكره", ("فكره",)),
        # not an Arabic word: untouched
        ("teaching", ("teaching",)),
        ("ال2024", ("ال2024",)),
    ],
)
def test_forms_of_a_word(word: str, forms: tuple[str, ...]) -> None:
    assert arabic_word_forms(word) == forms


def test_indexed_text_adds_the_forms_and_leaves_english_alone() -> None:
    assert index_text("أسرار المقلوبة وأسرار الطبخ، for Beginners: e-mail") == (
        "اسرار المقلوبه مقلوبه واسرار اسرار الطبخ طبخ، for beginners: e-mail"
    )


def test_query_terms_carry_their_forms_and_drop_lone_proclitics() -> None:
    assert search_terms("مقلوبة") == [("مقلوبه",)]
    assert search_terms("و المقلوبة ال") == [("المقلوبه", "مقلوبه")]
    assert search_terms("و ال ف ب ل ك") == []
    assert search_terms("the teaching of guitars") == [("teaching",), ("guitars",)]


def test_the_fts5_query_joins_the_forms_with_or() -> None:
    match = search_match('المقلوبة "x" piano', "sqlite")
    assert match.fts_query() == '("المقلوبه" OR "مقلوبه") AND "x" AND "piano"'


def test_documents_index_every_form() -> None:
    document = SearchDocument.of(
        title_en="Maqluba",
        title_ar="المقلوبة",
        tags=["طبخ"],
        description_en="",
        description_ar="وأسرار المطبخ",
    )
    assert document.title_ar == "المقلوبه مقلوبه"
    assert document.body_ar == "واسرار اسرار المطبخ مطبخ"
