"""Compressors: never over budget, honest provenance, original order, query-awareness."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxengine.compress import (
    STRATEGIES,
    ExtractiveCompressor,
    SemanticCompressor,
    SentenceCompressor,
    TruncateCompressor,
    get_compressor,
    lexical_recall,
)
from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import (
    ConfigurationError,
    InvalidInputError,
    InvalidTypeError,
    UnknownStrategyError,
)
from ctxengine.text import split_sentences
from ctxengine.tokens import CharRatioFallbackCounter
from ctxengine.types import Document, ScoredDocument

FILLER = [
    "The committee met on Tuesday to review the annual budget.",
    "Several members raised concerns about travel expenses.",
    "Dr. Smith presented figures showing a 3.5% rise in costs, e.g. for printing.",
    "The meeting ended later than planned.",
    "Minutes will be circulated to everyone next week.",
]
NEEDLE = "Photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen."
QUERY = "How does photosynthesis turn sunlight into glucose?"


def scored(texts: list[str]) -> list[ScoredDocument]:
    return [
        ScoredDocument(Document(text, id=f"d{i}"), score=1.0 - i / 100)
        for i, text in enumerate(texts)
    ]


def make(name: str, counter, embedder=None):
    if name == "semantic":
        return SemanticCompressor(counter, embedder=embedder or HashingEmbedder())
    return get_compressor(name, token_counter=counter)


def check_contract(result, documents, max_tokens, counter) -> None:
    """Everything every strategy promises, checked on one result."""
    assert sum(counter.count(doc.text) for doc in result) <= max_tokens
    positions = {doc.id: i for i, doc in enumerate(documents)}
    order = [positions[doc.id] for doc in result]
    assert order == sorted(order)  # the input's relative order
    for doc in result:
        assert doc.tokens == counter.count(doc.text)
        assert doc.text.strip()  # documents that got nothing are dropped
        if doc.kept is None:
            continue
        sentence_spans = split_sentences(doc.document.text)
        previous_end = -1
        for span in doc.kept:
            assert doc.document.text[span.start : span.end] == span.text
            assert span.start >= previous_end  # sorted by position, no overlap
            previous_end = span.end
            if span.sentence_index >= 0:
                assert sentence_spans[span.sentence_index] == (span.start, span.end)


# --- the budget, on awkward text ---------------------------------------------------------

AWKWARD = {
    "cjk": ["我喜欢猫。猫很可爱！你呢？" * 5, "東京は日本の首都です。人口は多い。" * 4],
    "emoji": ["Party time 🎉🎉! We love 👩‍👩‍👧‍👦 families. Great 👍🏽 job.", "🔥" * 40 + ". Done."],
    "giant sentence": ["word " * 400 + "end.", "A short one. Another short one."],
    "empty documents": ["", "   \n\n ", "Real text here. More of it."],
    "many tiny documents": [f"Tiny {i}." for i in range(120)],
    "no punctuation": ["lorem ipsum dolor sit amet " * 30],
    "paragraphs": ["Heading\n\nFirst para. Still first.\n\nSecond para!\nNext line."],
}


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("case", sorted(AWKWARD))
@pytest.mark.parametrize("max_tokens", [1, 3, 7, 20, 60, 150])
def test_never_over_budget_on_awkward_text(name, case, max_tokens, token_counter) -> None:
    documents = scored(AWKWARD[case])
    before = copy.deepcopy(documents)
    result = make(name, token_counter).compress("cats families word para", documents, max_tokens)
    check_contract(result, documents, max_tokens, token_counter)
    assert documents == before  # inputs never mutated
    assert all(doc is not orig for doc in result for orig in documents)


SENTENCE = st.sampled_from(
    FILLER
    + [
        NEEDLE,
        "猫很可爱。",
        "Emoji 🎉 here!",
        "e.g. this",
        "v1.2 and 3.5%.",
        "\n\n",
        "Wait...",
        " ",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.lists(SENTENCE, max_size=8).map(" ".join), min_size=1, max_size=6),
    max_tokens=st.integers(min_value=0, max_value=120),
    name=st.sampled_from(STRATEGIES),
    chars=st.booleans(),
)
def test_never_over_budget_property(texts, max_tokens, name, chars, token_counter) -> None:
    # the chars/4 counter is not BPE: joins cost differently, the guarantee must still hold
    counter = CharRatioFallbackCounter(warn=False) if chars else token_counter
    documents = scored(texts)
    result = make(name, counter).compress(QUERY, documents, max_tokens)
    check_contract(result, documents, max_tokens, counter)
    if max_tokens == 0:
        assert result == []


def test_giant_sentence_is_cut_rather_than_dropped(token_counter) -> None:
    documents = scored(["alpha beta gamma " * 200 + "end."])
    for name in ("sentence", "extractive"):
        result = get_compressor(name, token_counter=token_counter).compress("alpha", documents, 10)
        assert len(result) == 1 and result[0].kept[0].sentence_index == -1
        assert 0 < result[0].tokens <= 10
        assert result[0].text.startswith("alpha beta gamma")


# --- what each strategy keeps ------------------------------------------------------------


def test_everything_fits_returns_whole_documents(token_counter) -> None:
    documents = scored(["Short one. Two.", "", "Another doc."])
    for name in STRATEGIES:
        result = make(name, token_counter).compress(QUERY, documents, 1000)
        assert [doc.id for doc in result] == ["d0", "d2"]  # the blank one is dropped
        assert all(doc.kept is None and not doc.compressed for doc in result)
        assert [doc.tokens for doc in result] == [token_counter.count(d.text) for d in result]


def test_truncate_fills_in_rank_order_and_cuts_at_a_boundary(token_counter) -> None:
    first, second = " ".join(FILLER), " ".join(reversed(FILLER))
    documents = scored([first, second, "Never reached."])
    budget = token_counter.count(first) + 15
    result = TruncateCompressor(token_counter).compress("anything", documents, budget)
    assert [doc.id for doc in result] == ["d0", "d1"]
    assert result[0].kept is None and result[0].text == first
    (span,) = result[1].kept
    assert span.sentence_index == -1 and span.start == 0
    assert second.startswith(span.text)
    assert span.end == len(second) or second[span.end].isspace()  # not inside a word


def test_sentence_fill_skips_a_long_sentence_but_strict_mode_stops(token_counter) -> None:
    long = "This sentence is deliberately made rather long " * 4 + "indeed."
    documents = scored([f"Short start here. {long} Short end here."])
    budget = token_counter.count("Short start here. Short end here.")
    filled = SentenceCompressor(token_counter).compress("x", documents, budget)
    assert filled[0].text == "Short start here. Short end here."
    strict = SentenceCompressor(token_counter, fill=False).compress("x", documents, budget)
    assert strict[0].text == "Short start here."


@pytest.fixture(scope="module")
def needle_documents() -> list[ScoredDocument]:
    return scored([" ".join(FILLER), " ".join(FILLER[:2] + [NEEDLE] + FILLER[2:])])


@pytest.mark.parametrize("name", ["extractive", "semantic"])
def test_query_aware_strategies_keep_the_relevant_sentence(
    name, needle_documents, token_counter, embedder
) -> None:
    budget = token_counter.count(NEEDLE) + 5
    result = make(name, token_counter, embedder).compress(QUERY, needle_documents, budget)
    assert NEEDLE in [span.text for doc in result for span in doc.kept]
    blind = TruncateCompressor(token_counter).compress(QUERY, needle_documents, budget)
    assert NEEDLE not in " ".join(doc.text for doc in blind)


def test_kept_sentences_come_back_in_document_order(needle_documents, token_counter) -> None:
    query = "committee minutes photosynthesis glucose"
    result = ExtractiveCompressor(token_counter).compress(query, needle_documents, 60)
    for doc in result:
        starts = [span.start for span in doc.kept]
        assert starts == sorted(starts) and len(starts) > 1


def test_semantic_finds_a_paraphrase_that_shares_no_word(token_counter, embedder) -> None:
    answer = "Cats purr and knead with their paws when they are content."
    documents = scored([" ".join(FILLER[:3] + [answer] + FILLER[3:])])
    query = "How do felines show happiness?"
    budget = token_counter.count(answer) + 2
    result = SemanticCompressor(token_counter, embedder=embedder).compress(query, documents, budget)
    assert result[0].text == answer
    # lexical scoring has nothing to go on and falls back to the first sentence
    lexical = ExtractiveCompressor(token_counter).compress(query, documents, budget)
    assert lexical[0].text != answer


def test_results_are_deterministic(needle_documents, token_counter) -> None:
    for name in STRATEGIES:
        compressor = make(name, token_counter)
        first = compressor.compress(QUERY, needle_documents, 40)
        assert compressor.compress(QUERY, needle_documents, 40) == first
        assert make(name, token_counter).compress(QUERY, needle_documents, 40) == first


def test_lexical_recall_weights_rare_terms_higher() -> None:
    scores = lexical_recall(
        "budget photosynthesis", ["the budget rose", "budget cuts", "photosynthesis here"]
    )
    assert scores[2] > scores[0] == scores[1] > 0
    assert lexical_recall("the of and", ["anything"]).tolist() == [0.0]


# --- construction and bad input ----------------------------------------------------------


def test_get_compressor_resolves_names_and_instances(token_counter) -> None:
    for name, cls in zip(
        STRATEGIES,
        (TruncateCompressor, SentenceCompressor, ExtractiveCompressor, SemanticCompressor),
    ):
        assert type(get_compressor(name)) is cls
    instance = ExtractiveCompressor(token_counter)
    assert get_compressor(instance) is instance
    assert get_compressor("extractive", selection="density").selection == "density"
    with pytest.raises(UnknownStrategyError):
        get_compressor("magic")
    with pytest.raises(ConfigurationError):
        get_compressor("truncate", lexical_weight=0.5)  # an option it does not take
    with pytest.raises(ConfigurationError):
        get_compressor(instance, rank_weight=0.2)
    with pytest.raises(ConfigurationError):
        get_compressor(42)


def test_constructors_validate_their_parameters() -> None:
    with pytest.raises(InvalidInputError):
        ExtractiveCompressor(rank_weight=1.5)
    with pytest.raises(UnknownStrategyError):
        ExtractiveCompressor(selection="best")
    with pytest.raises(InvalidInputError):
        SemanticCompressor(lexical_weight=float("nan"))
    with pytest.raises(InvalidTypeError):
        SentenceCompressor(fill="yes")
    with pytest.raises(InvalidTypeError):
        SemanticCompressor(embedder=3.14)
    assert SemanticCompressor()._embedder is None  # the model loads on first use only


@pytest.mark.parametrize("name", STRATEGIES)
def test_compress_rejects_bad_input(name, token_counter) -> None:
    compressor = make(name, token_counter)
    documents = scored(["Some text."])
    with pytest.raises(InvalidInputError):
        compressor.compress("q", documents, -1)
    with pytest.raises(InvalidTypeError):
        compressor.compress("q", documents, 1.5)
    with pytest.raises(InvalidTypeError):
        compressor.compress(None, documents, 10)
    with pytest.raises(InvalidTypeError):
        compressor.compress("q", ["plain string"], 10)
    with pytest.raises(InvalidTypeError):
        compressor.compress("q", "not a list", 10)
    assert compressor.compress("q", documents, 0) == []
    assert compressor.compress("q", [], 10) == []


@pytest.mark.slow  # imports LlamaIndex and LangChain and loads the model
def test_benchmark_smoke(shared_data) -> None:
    from benchmarks.compression_quality import main

    rows = main(["--limit", "3", "--quick"])
    names = {row["strategy"] for row in rows}
    assert set(STRATEGIES) < names and any("llamaindex" in n for n in names)
    assert any("langchain" in n for n in names)
    assert all(row["over"] == 0 and 0.0 <= row["kept"] <= 1.0 for row in rows)


@pytest.mark.parametrize("name", ["extractive", "semantic"])
def test_short_documents_are_kept_or_dropped_whole(name, token_counter, embedder) -> None:
    """A chat turn split into sentences loses its sense ("It was so powerful."): under
    ``whole_below`` tokens the query-aware strategies keep it whole, spans still exact."""
    turns = [
        "Melanie: I finally painted the lake at sunrise. It took three weekends.",
        "Caroline: I went to the LGBTQ support group yesterday. It was so powerful.",
        "Melanie: The kids loved the camping trip. We roasted marshmallows all night.",
        "Caroline: I'm researching adoption agencies. I want to give a kid a loving home.",
    ]
    documents = scored(turns)
    query = "When did Caroline go to the LGBTQ support group?"
    budget = token_counter.count(turns[1]) + 4
    options = {"embedder": embedder} if name == "semantic" else {}
    compressor_class = ExtractiveCompressor if name == "extractive" else SemanticCompressor
    kept = compressor_class(token_counter, **options).compress(query, documents, budget)
    assert [doc.text for doc in kept] == [turns[1]]
    assert [span.text for span in kept[0].kept] == [
        "Caroline: I went to the LGBTQ support group yesterday.",
        "It was so powerful.",
    ]
    for span in kept[0].kept:
        assert turns[1][span.start : span.end] == span.text
    # whole_below=0 splits every document: the matching sentence alone, then filler
    split = compressor_class(token_counter, whole_below=0, **options).compress(
        query, documents, budget
    )
    assert turns[1] not in [doc.text for doc in split]
    assert "Caroline: I went to the LGBTQ support group yesterday." in [
        s.text for d in split for s in d.kept or []
    ]
    # a short document that does not fit the budget at all still gives its best sentence
    tight = token_counter.count("Caroline: I went to the LGBTQ support group yesterday.") + 1
    assert "LGBTQ" in " ".join(
        d.text for d in compressor_class(token_counter, **options).compress(query, documents, tight)
    )


def test_whole_below_is_validated() -> None:
    with pytest.raises(InvalidInputError):
        ExtractiveCompressor(whole_below=-1)
