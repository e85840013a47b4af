"""The lexical analyzer and the sentence splitter every component relies on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxengine.text import analyze, sentences, span_term_sets, split_sentences, term_set, words

# --- analyzer ----------------------------------------------------------------------------


def test_analyze_drops_stop_words_and_stems() -> None:
    assert analyze("The running dogs are running") == ["run", "dog", "run"]


def test_analyze_folds_case_accents_and_width() -> None:
    assert analyze("Café CAFÉ ｃａｆｅ") == ["cafe", "cafe", "cafe"]


def test_analyze_splits_cjk_per_character_and_keeps_digits() -> None:
    assert analyze("我喜欢猫") == ["我", "喜", "欢", "猫"]
    assert analyze("version 5 of x") == ["version", "5"]  # lone ASCII letters carry nothing


def test_words_keep_stop_words_and_term_set_is_a_set() -> None:
    assert words("The Cat") == ["the", "cat"]
    assert term_set("cats and a cat") == frozenset({"cat"})


# --- sentence splitter -------------------------------------------------------------------

SPLIT_CASES = [
    ("We use e.g. apples here. Then i.e. pears.", ["We use e.g. apples here.", "Then i.e. pears."]),
    ("Dr. Smith arrived. He was late.", ["Dr. Smith arrived.", "He was late."]),
    ("Growth was 3.5%. Next year 4.2% more.", ["Growth was 3.5%.", "Next year 4.2% more."]),
    ("Install v1.2. It works.", ["Install v1.2.", "It works."]),
    ("See https://example.com/a.b?x=1. Then go.", ["See https://example.com/a.b?x=1.", "Then go."]),
    ("Wait... What happened? Nothing!", ["Wait...", "What happened?", "Nothing!"]),
    ("Wait… what? OK.", ["Wait… what?", "OK."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ('He asked "why?" and left.', ['He asked "why?" and left.']),
    ("我喜欢猫。你呢？好的！", ["我喜欢猫。", "你呢？", "好的！"]),
    ("他说：「好。」然后走了。", ["他说：「好。」", "然后走了。"]),
    ("J. K. Rowling wrote it. She is British.", ["J. K. Rowling wrote it.", "She is British."]),
    ("The U.S. Army won. It was big.", ["The U.S. Army won.", "It was big."]),
    ("He left at 5 p.m. Then she came.", ["He left at 5 p.m.", "Then she came."]),
    ("Apples, pears, etc. Then more.", ["Apples, pears, etc.", "Then more."]),
    ("I said no. Then he left.", ["I said no.", "Then he left."]),
    ("See No. 5 here. Fine.", ["See No. 5 here.", "Fine."]),
    ("Mice were injected i.p. 24 h later. Done.", ["Mice were injected i.p. 24 h later.", "Done."]),
    ("See Fig. 3 for details. Also Table 2.", ["See Fig. 3 for details.", "Also Table 2."]),
    # scientific sentences may start in lowercase: gene names are not a continuation
    ("Levels rose. p53 was high. mTORC2 too.", ["Levels rose.", "p53 was high.", "mTORC2 too."]),
    ("It was 5. Then 6.", ["It was 5.", "Then 6."]),
]


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_split_sentences_cases(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_paragraph_breaks_end_sentences_and_single_newlines_are_whitespace() -> None:
    text = "Title without a stop\n\nFirst line. Second\nline continues.\nThird."
    assert sentences(text) == [
        "Title without a stop",
        "First line.",
        "Second\nline continues.",
        "Third.",
    ]


def test_spans_are_stripped_offsets_into_the_text() -> None:
    text = "  One.   Two!\n\n  Three?  "
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["One.", "Two!", "Three?"]
    assert spans == sorted(spans)


def test_blank_text_has_no_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\n \t") == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .?!…。\n\"')3e.g")), max_size=80))
def test_spans_never_overlap_and_cover_every_non_space_character(text: str) -> None:
    spans = split_sentences(text)
    covered = set()
    previous_end = -1
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        covered.update(range(start, end))
        previous_end = end
    assert {i for i, ch in enumerate(text) if not ch.isspace()} <= covered


# --- the fast paths give what the rules give -----------------------------------------------

ASCII = st.text(alphabet=st.characters(max_codepoint=127), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ASCII)
def test_ascii_words_are_the_runs_of_letters_and_digits(text: str) -> None:
    """ASCII text skips the regex (a byte table and a split): the same words."""
    import re

    assert words(text) == re.findall(r"[a-z0-9]+", text.lower())


# Characters where the one-pass analysis could part from the per-sentence one: accents
# (precomposed and combining), a non-breaking space and a CJK full stop (sentence ends
# inside a space-delimited run), compatibility forms NFKC expands ("ﬁ", "¨" -> space +
# mark), case folds that grow ("ß"), a literal "?" beside non-ASCII ones.
_MIXED = list("Ab .?!\n3é猫_-") + ["\u00a0", "\u0301", "。", "ﬁ", "\u00a8", "ß", "β", "Σ"]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(_MIXED), max_size=80))
def test_span_term_sets_are_each_spans_term_set(text: str) -> None:
    """One pass over a document gives every sentence the terms it has on its own."""
    spans = split_sentences(text)
    assert span_term_sets(text, spans) == [term_set(text[s:e]) for s, e in spans]


def test_a_cjk_full_stop_ends_a_sentence_without_a_space() -> None:
    assert sentences("今天下雨。我们在家。Then we left. ok") == [
        "今天下雨。",
        "我们在家。",
        "Then we left. ok",
    ]
