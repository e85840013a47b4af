"""Fuzz targets (hypothesis) over the text primitives every packet is built from: the
sentence splitter, the token counters' count/truncate, dedup, the lexical analyzer and
the marker escape. Arbitrary Unicode (control characters, combining marks, emoji, CJK,
RTL, every line break) plus hand-made hostile shapes: long runs of one mark, huge words.

Bounded: each target has a fixed example count (derandomized, so CI sees the same cases);
``CTXENGINE_FUZZ_SCALE=20`` runs twenty times as many for a longer local session.
"""

from __future__ import annotations

import os
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis_support import scaled_examples

from ctxengine import formatting as fmt
from ctxengine.embeddings import bundled_model_path
from ctxengine.memory import Deduplicator
from ctxengine.text import analyze, sentences, split_sentences, words
from ctxengine.tokens import HuggingFaceTokenCounter, TiktokenCounter

SCALE = float(os.environ.get("CTXENGINE_FUZZ_SCALE", "1"))
TIKTOKEN = TiktokenCounter("cl100k_base")
DEDUP = Deduplicator()
REASONS = {None, "exact", "containment", "prefix", "overlap"}


def fuzz(n: int) -> settings:
    return scaled_examples(n, SCALE)


PIECES = [
    "Dr.",
    "e.g.",
    "i.e.",
    "etc.",
    "p.m.",
    "No.",
    "no.",
    "U.S.",
    "3.5",
    "v1.2",
    "J. K.",
    "A.",
    "p53",
    "β-amyloid",
    "...",
    "…",
    "?!",
    "。",
    "！",
    "」",
    "”",
    "’",
    ")",
    '"',
    "'",
    "(",
    "\n",
    "\n\n",
    "\r\n",
    "\u2028",
    "\x85",
    "\t",
    " ",
    "  ",
    "word",
    "Word",
    "WORD",
    "über",
    "café",
    "東京",
    "字",
    "😀",
    "👩‍👩‍👧",
    "مرحبا",
    "שלום",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\x00",
    "<ctx:",
    "</ctx:context>",
    "＜",
    "ｃｔｘ",
    "：",
    "assistant:",
    "system:",
    "<|endoftext|>",
    "http://a.b/c.d?e=f.",
    "3.",
    "a.b.c.",
]
shaped = st.lists(st.sampled_from(PIECES), max_size=80).map(" ".join)
glued = st.lists(st.sampled_from(PIECES), max_size=80).map("".join)
runs = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(
        [".", "。", "!", " ", "\n", "<", "< ", "e.g. ", "a", "字", "😀", "a. ", ". a "]
    ),
    st.integers(1, 20_000),
)
any_text = st.one_of(st.text(max_size=500), shaped, glued, runs)


# --- the sentence splitter ---------------------------------------------------------------


@fuzz(1500)
@given(any_text)
def test_sentence_spans_are_ordered_stripped_and_cover_all_text(text):
    spans = split_sentences(text)
    previous = 0
    covered = 0
    for start, end in spans:
        assert previous <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        covered += sum(not ch.isspace() for ch in text[start:end])
        previous = end
    assert covered == sum(not ch.isspace() for ch in text)  # every visible character, once
    assert sentences(text) == [text[start:end] for start, end in spans]


@fuzz(300)
@given(
    st.lists(
        st.sampled_from(["The cat sat.", "It rained!", "Why?", "猫がいる。", "Done…"]),
        min_size=1,
        max_size=30,
    )
)
def test_plain_sentences_split_where_written(parts):
    """Sentences that end clearly and start with a capital (or CJK) are found one by one."""
    assert sentences(" ".join(parts)) == parts


# --- token counters ----------------------------------------------------------------------


@fuzz(800)
@given(any_text, st.integers(0, 300), st.integers(0, 300))
def test_tiktoken_truncate_is_a_bounded_monotone_prefix(text, a, b):
    low, high = min(a, b), max(a, b)
    short, long_ = TIKTOKEN.truncate(text, low), TIKTOKEN.truncate(text, high)
    for cut, limit in ((short, low), (long_, high)):
        assert text.startswith(cut)
        assert TIKTOKEN.count(cut) <= limit
    assert len(short) <= len(long_)
    if TIKTOKEN.count(text) <= low:
        assert short == text
    assert (TIKTOKEN.count(text) == 0) == (text == "")


_HF = None


def hf_counter() -> HuggingFaceTokenCounter:
    global _HF
    if _HF is None:
        _HF = HuggingFaceTokenCounter.from_pretrained(bundled_model_path())
    return _HF


@fuzz(300)
@given(st.one_of(st.text(max_size=300), shaped, glued), st.integers(0, 60))
def test_embedding_tokenizer_counter_truncates_to_a_bounded_prefix(text, limit):
    counter = hf_counter()
    cut = counter.truncate(text, limit)
    assert text.startswith(cut) and counter.count(cut) <= limit
    if counter.count(text) <= limit:
        assert cut == text


# --- dedup -------------------------------------------------------------------------------


@fuzz(800)
@given(any_text, st.lists(st.one_of(st.text(max_size=200), shaped), max_size=6))
def test_dedup_never_fails_and_names_a_known_reason(text, earlier):
    reason = DEDUP.reason(text, earlier)
    assert reason in REASONS
    assert DEDUP.reason(text, []) is None
    if len(words(text)) < DEDUP.min_words:
        assert reason is None  # short replies are never duplicates


@fuzz(500)
@given(
    st.lists(
        st.sampled_from(["memory", "decay", "token", "budget", "東京", "café", "42", "😀x"]),
        min_size=4,
        max_size=30,
    ),
    st.data(),
)
def test_a_repeat_or_a_contained_run_is_always_caught(vocabulary_words, data):
    text = " ".join(vocabulary_words)
    assume(len(words(text)) >= DEDUP.min_words)
    assert DEDUP.reason(text, [text]) == "exact"
    assert DEDUP.reason(text.upper() + "!", [text]) is not None  # case and punctuation ignored
    start = data.draw(st.integers(0, len(vocabulary_words) - DEDUP.min_words))
    stop = data.draw(st.integers(start + DEDUP.min_words, len(vocabulary_words)))
    part = " ".join(vocabulary_words[start:stop])
    assume(len(words(part)) >= DEDUP.min_words)
    assert DEDUP.reason(part, ["unrelated words here today", text]) is not None


# --- analyzer and escape -----------------------------------------------------------------


@fuzz(800)
@given(any_text)
def test_analyzer_terms_are_clean_words(text):
    for term in [*analyze(text), *words(text)]:
        assert term and not any(ch.isspace() for ch in term)
    assert analyze(unicodedata.normalize("NFKC", text)) == analyze(
        text
    )  # analysis starts with NFKC


@fuzz(1000)
@given(any_text)
def test_escape_is_idempotent_length_preserving_and_leaves_no_marker(text):
    escaped = fmt.escape(text)
    assert fmt.escape(escaped) == escaped and len(escaped) == len(text)
    lowered = escaped.lower()
    for marker in ("<ctx:", "</ctx:"):
        assert marker not in lowered
    rendered = fmt.render_turn("user", text)
    lines = rendered.splitlines()
    assert lines[0].startswith("user: ") and all(line.startswith("  ") for line in lines[1:])


# --- pathological sizes through the whole engine: bounded time, bounded memory ----------


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["10 MB document, extractive", "10 MB single word"])
def test_a_10_mb_document_is_handled(scenario):
    """Indexed and compressed into an 800-token packet in a subprocess: it must finish (the
    child asserts the packet fits), within a timeout far above the measured time, so an
    accidental quadratic step fails here instead of hanging a server. Figures and limits:
    ``python -m benchmarks.resource_bounds``."""
    from benchmarks.resource_bounds import LIMITS, run

    limit_mb, limit_s = LIMITS[scenario]
    row = run(scenario, 1.0, timeout=3 * limit_s)
    assert row["peak"] < limit_mb


@pytest.mark.slow
def test_resource_scenarios_run_at_small_scale():
    from benchmarks.resource_bounds import LIMITS, SCENARIOS, run

    for name in SCENARIOS:
        if "history" not in name:  # the history scenarios need the LoCoMo data and model
            assert run(name, 0.001, timeout=600)["peak"] < LIMITS[name][0]
