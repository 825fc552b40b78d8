"""Arabic spelling variants and English inflections must not stop a search from matching."""

from __future__ import annotations

import pytest

from skillswap.skills.search import SearchDocument
from skillswap.skills.text import (
    normalise_arabic,
    normalise_search_text,
    normalise_tag,
    normalise_tags,
    search_terms,
)


@pytest.mark.parametrize(
    ("written", "searched"),
    [
        ("أحمد", "احمد"),  # alef with hamza above
        ("إسلام", "اسلام"),  # alef with hamza below
        ("آلة", "اله"),  # alef with madda, and taa marbuta
        ("ٱلعربية", "العربيه"),  # alef wasla
        ("مدرسة", "مدرسه"),  # taa marbuta -> haa
        ("مستشفى", "مستشفي"),  # alef maqsura -> yaa
        ("عَرَبِيّ", "عربي"),  # fatha, kasra, shadda
        ("كِتَابٌ", "كتاب"),  # kasra, fatha, dammatan
        ("رَحْمٰن", "رحمن"),  # sukun and superscript alef
        ("تعلـــيم", "تعليم"),  # tatweel
        ("ﻻ", "لا"),  # presentation form of lam-alef
    ],
)
def test_arabic_variants_fold_to_one_form(written: str, searched: str) -> None:
    assert normalise_arabic(written) == normalise_arabic(searched) == searched


def test_english_text_is_only_lower_cased() -> None:
    assert normalise_search_text("Teaching GUITAR, Café") == "teaching guitar, café"


def test_search_terms_drop_english_stop_words_punctuation_and_repeats() -> None:
    assert search_terms("The guitar, THE Guitar & the piano!") == [("guitar",), ("piano",)]
    assert search_terms("... !!! the of") == []


def test_search_terms_normalise_arabic_query_words() -> None:
    assert search_terms("تَعْلِيم البَرمجة") == [("تعليم",), ("البرمجه", "برمجه")]
    assert search_terms("إدارة أعمال") == [("اداره",), ("اعمال",)]


def test_tags_are_trimmed_lowercased_hyphenated_and_deduplicated() -> None:
    assert normalise_tag("  #Machine Learning ") == "machine-learning"
    assert normalise_tag("web_dev") == "web-dev"
    assert normalise_tag("بَرْمَجَة") == "برمجة"  # marks go, letters stay as written
    assert normalise_tags(["Python", "python", " ", "#PYTHON", "Go"]) == ["python", "go"]


def test_search_document_folds_both_languages_and_joins_tags() -> None:
    document = SearchDocument.of(
        title_en="Teaching Guitar",
        title_ar="تَعليم الغيتار للمبتدئين",
        tags=["guitar", "موسيقى"],
        description_en="Chords",
        description_ar="أوتار",
    )
    assert document.title_en == "teaching guitar"
    # Each Arabic word is followed by its forms without proclitics (test_arabic_proclitics.py).
    assert document.title_ar == "تعليم الغيتار غيتار للمبتدئين مبتدئين لمبتدئين"
    assert document.tags == "guitar موسيقي"
    assert document.body_ar == "اوتار"
    row = document.fts_row(7)
    assert row["rowid"] == 7
    assert row["title"] == "teaching guitar تعليم الغيتار غيتار للمبتدئين مبتدئين لمبتدئين"
