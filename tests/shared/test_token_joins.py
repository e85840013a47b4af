"""Counting by pieces (``count_joined``, ``count_prefix``, ``count_split``) gives exactly what counting the
whole text gives: on real sentences of SciFact and LoCoMo, and on generated text made of
the characters where a tokenizer's pre-tokenizer is most likely to join pieces (spaces,
punctuation, digits, apostrophes, newlines, accents, CJK, emoji)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_support import scaled_examples

from ctxengine._tiktoken import _PROBES, fast_counter
from ctxengine.text import split_sentences
from ctxengine.tokens import (
    CharRatioFallbackCounter,
    TiktokenCounter,
    count_joined,
    count_prefix,
    count_split,
    inner_spaces,
    joins_add_up,
    load_tiktoken_encoding,
    piece_counts,
    token_bounds,
)

SCALE = float(os.environ.get("CTXENGINE_FUZZ_SCALE", "1"))
ENCODINGS = ("cl100k_base", "o200k_base")
ALPHABET = st.sampled_from(
    list("aZ é'’s.,;:!?-()[]\"09 \n\t/<>_#@")
    + ["ll", "ve", "'s", "…", "東京", "🙂", "\u0301", "\xa0"]
)
PIECE = st.lists(ALPHABET, min_size=1, max_size=12).map("".join).map(str.strip).filter(bool)


@pytest.fixture(scope="module", params=ENCODINGS)
def counter(request):
    return TiktokenCounter(request.param)


@given(pieces=st.lists(PIECE, min_size=1, max_size=6))
@scaled_examples(400, SCALE)
def test_joined_pieces_count_as_the_joined_text(pieces):
    for name in ENCODINGS:
        counter = TiktokenCounter(name)
        assert count_joined(counter, pieces) == counter.count(" ".join(pieces)), pieces


@given(text=st.lists(ALPHABET, min_size=1, max_size=40).map("".join), cut=st.integers(1, 40))
@scaled_examples(400, SCALE)
def test_a_prefix_counts_as_counting_it(text, cut):
    end = min(cut, len(text))
    for name in ENCODINGS:
        counter = TiktokenCounter(name)
        total = counter.count(text)
        assert count_prefix(counter, text, end, total) == counter.count(text[:end]), (text, end)


@given(
    text=st.lists(ALPHABET, min_size=1, max_size=40).map("".join),
    spaces=st.lists(st.integers(-2, 42), max_size=8).map(sorted),
)
@scaled_examples(400, SCALE)
def test_a_text_split_at_given_spaces_counts_as_counting_it(text, spaces):
    for name in ENCODINGS:
        counter = TiktokenCounter(name)
        assert count_split(counter, text, spaces) == counter.count(text), (text, spaces)


def test_real_sentences_join_and_cut_as_whole_texts(counter, shared_data):
    from benchmarks.data import load_locomo, load_scifact_sentences

    abstracts = load_scifact_sentences(shared_data / "scifact")
    texts = [" ".join(sentences) for _, sentences in list(abstracts.values())[:150]]
    texts += [
        t.document_text for t in load_locomo(shared_data / "locomo" / "locomo_dev5.json")[0].turns
    ]
    checked = 0
    for text in texts:
        sentences = [text[a:b] for a, b in split_sentences(text)]
        for start in range(0, len(sentences), 3):  # every third subset start, any length
            chosen = sentences[start::2]
            assert count_joined(counter, chosen) == counter.count(" ".join(chosen))
            checked += 1
        every_space = [i for i, ch in enumerate(text) if ch == " "]
        assert count_split(counter, text, every_space) == counter.count(text)
        for end in (len(text) // 3, len(text) // 2, len(text) - 1):
            if end > 0:
                total = counter.count(text)
                assert count_prefix(counter, text, end, total) == counter.count(text[:end])
    assert checked > 500


def test_other_counters_count_the_joined_text():
    counter = CharRatioFallbackCounter(warn=False)  # ceil(len / 4): does not add up
    assert not joins_add_up(counter)
    pieces = ["abc", "de", "f"]
    assert count_joined(counter, pieces) == counter.count("abc de f") == 2
    assert count_prefix(counter, "abc de fgh", 6, counter.count("abc de fgh")) == 2


def test_pieces_with_spaces_at_their_ends_are_counted_joined():
    counter = TiktokenCounter()
    pieces = ["hello ", " world", "\n\nagain"]
    assert count_joined(counter, pieces) == counter.count(" ".join(pieces))


@given(piece=PIECE)
@scaled_examples(400, SCALE)
def test_a_piece_counts_alone_and_after_a_space_as_counting_them(counter, piece):
    """piece_counts sums a piece's first word, middle and last word: the counts of the
    piece and of " " + piece, exactly."""
    assert piece_counts(counter, piece) == (counter.count(piece), counter.count(" " + piece))


@given(
    text=st.lists(
        st.sampled_from(["a", "é", " ", "  ", "\n", "\t", "\xa0", "\u3000", "."]), max_size=20
    ).map("".join)
)
@scaled_examples(400, SCALE)
def test_the_word_bound_is_the_whitespace_split(text):
    """A tiktoken count's lower bound is the text's words (``str.split``), also where it is
    read from the count of single spaces."""
    assert token_bounds(TiktokenCounter(), text)[0] == len(text.split())


def test_inner_spaces_are_single_spaces_between_words():
    assert inner_spaces("one two  three four") == (3, 14)
    assert inner_spaces("one two") == (3, 3)
    assert inner_spaces("one  two") is None  # a double space is not a join
    assert inner_spaces("word") is None
    assert inner_spaces(" lead trail ") == (5, 5)


def test_pieces_with_spaces_at_their_ends_have_no_piece_counts(counter):
    assert piece_counts(counter, " lead") is None
    assert piece_counts(counter, "trail\n") is None
    assert piece_counts(CharRatioFallbackCounter(warn=False), "two words") is None


@given(text=st.lists(ALPHABET, max_size=30).map("".join))
@scaled_examples(300, SCALE)
def test_the_fast_counter_counts_as_tiktoken(counter, text):
    """Counts come from bpe-openai's Rust tokenizer where it agrees with tiktoken on a
    probe: on any text they are tiktoken's."""
    reference = load_tiktoken_encoding(counter.name)
    assert counter.count(text) == len(reference.encode(text, disallowed_special=()))


def test_the_fast_counter_is_used_and_one_that_disagrees_is_not(counter, monkeypatch):
    import bpe_openai

    assert fast_counter(counter.name) is not None  # installed with ctxengine: in use

    class OffByOne:
        def __init__(self, inner):
            self.inner = inner

        def encode_ordinary(self, text):
            tokens = self.inner.encode_ordinary(text)
            return tokens + [0] if text == _PROBES[-1] else tokens

    real = bpe_openai.get_encoding
    monkeypatch.setattr(bpe_openai, "get_encoding", lambda name: OffByOne(real(name)))
    fast_counter.cache_clear()
    try:
        assert fast_counter(counter.name) is None
        assert TiktokenCounter(counter.name)._fast is None  # counts by tiktoken instead
    finally:
        fast_counter.cache_clear()


def test_texts_the_fast_counter_refuses_are_counted_by_tiktoken(counter):
    """bpe-openai refuses a text of a million characters, one of more tokens than its
    chunk limit (combining marks: a token per character) and a lone surrogate (refused by
    ``count`` itself): tiktoken counts them."""
    reference = load_tiktoken_encoding(counter.name)
    fast = fast_counter(counter.name)
    for text in ("word " * 200_000, "a" + "\u0301\u0300" * 150_000):
        assert fast.count(text) is None
        assert counter.count(text) == len(reference.encode_ordinary(text))
    assert fast.count("broken \ud800 surrogate") is None
