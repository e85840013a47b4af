"""Re-rankers: the tag heuristic, passage scoring, MMR with duplicate removal, a real (tiny)
cross-encoder, chaining and resolution by name."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import (
    ConfigurationError,
    InvalidInputError,
    InvalidTypeError,
    ModelNotFoundError,
    UnknownStrategyError,
)
from ctxengine.rerank import (
    DEFAULT_RERANKER,
    CrossEncoderReranker,
    MMRReranker,
    PassageReranker,
    Reranker,
    RerankPipeline,
    TagReranker,
    get_reranker,
    passage_windows,
)
from ctxengine.rerank.pipeline import NAMES as RERANKER_NAMES
from ctxengine.types import Document, ScoredDocument


def scored(
    text: str, score: float, *, tags: list[str] | None = None, doc_id: str = ""
) -> ScoredDocument:
    metadata = {"tags": tags} if tags is not None else {}
    return ScoredDocument(Document(text, id=doc_id, metadata=metadata), score, {"hybrid": score})


CANDIDATES = [
    scored("TF-IDF weighs words by how rare they are.", 0.90, doc_id="tfidf"),
    scored("Embeddings map text to dense vectors.", 0.80, tags=["Embeddings"], doc_id="emb"),
    scored("Memory decay forgets old turns.", 0.50, tags=["memory"], doc_id="mem"),
    scored("A token budget caps the prompt size.", 0.10, doc_id="budget"),
]


@pytest.fixture(scope="module")
def hashing() -> HashingEmbedder:
    return HashingEmbedder(512)


@pytest.fixture(params=[name for name in RERANKER_NAMES if name != "cross-encoder"])
def any_reranker(request, hashing) -> Reranker:
    return get_reranker(request.param, embedder=hashing)


# --- the contract every strategy keeps ---------------------------------------------------


def test_contract_new_objects_sorted_cut_to_k(any_reranker):
    before = copy.deepcopy(CANDIDATES)
    out = any_reranker.rerank("how do embedding models work?", CANDIDATES, k=3)
    assert len(out) == 3
    assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)
    assert all(c is not original for c in out for original in CANDIDATES)
    assert CANDIDATES == before  # inputs untouched, stage_scores included
    assert {c.id for c in out} <= {c.id for c in CANDIDATES}
    assert all(
        c.stage_scores["hybrid"] == next(o.score for o in CANDIDATES if o.id == c.id) for c in out
    )
    everything = any_reranker.rerank("how do embedding models work?", CANDIDATES)
    assert len(everything) == len(CANDIDATES)


def test_contract_bad_arguments(any_reranker):
    assert any_reranker.rerank("query", []) == []
    for bad_k in (0, -1):
        with pytest.raises(InvalidInputError):
            any_reranker.rerank("query", CANDIDATES, k=bad_k)
    with pytest.raises(InvalidInputError):
        any_reranker.rerank("   ", CANDIDATES)
    with pytest.raises(InvalidTypeError):
        any_reranker.rerank(None, CANDIDATES)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError):
        any_reranker.rerank("query", ["a plain string"])  # type: ignore[list-item]
    assert isinstance(any_reranker, Reranker)


# --- tags --------------------------------------------------------------------------------


def test_tags_formula_and_stem_matching():
    out = TagReranker().rerank("how do embedding models work?", CANDIDATES)
    by_id = {c.id: c for c in out}
    # "Embeddings" (tag) matches "embedding" (query) through the shared stemmer.
    assert by_id["emb"].stage_scores["tag_importance"] == 1.0
    assert by_id["mem"].stage_scores["tag_importance"] == 0.0
    base_emb = (0.80 - 0.10) / (0.90 - 0.10)
    assert by_id["emb"].score == pytest.approx(0.68 * base_emb + 0.32)
    assert by_id["tfidf"].score == pytest.approx(0.68)
    assert by_id["emb"].stage_scores["tags"] == by_id["emb"].score
    assert [c.id for c in out] == ["emb", "tfidf", "mem", "budget"]


def test_tags_without_tags_keep_retrieval_order():
    plain = [scored(f"document {i}", s) for i, s in enumerate([0.3, 0.9, 0.1, 0.5])]
    out = TagReranker().rerank("memory", plain)
    assert [c.document.text for c in out] == [
        "document 1",
        "document 3",
        "document 0",
        "document 2",
    ]


def test_tags_multiword_partial_match_and_priorities():
    docs = [
        scored("a", 0.5, tags=["context window"], doc_id="window"),
        scored("b", 0.5, tags=["context-windows", "billing"], doc_id="both"),
        scored("c", 0.5, tags=["memory"], doc_id="memory"),
    ]
    out = {c.id: c for c in TagReranker().rerank("what fits in the context?", docs)}
    assert out["window"].stage_scores["tag_importance"] == pytest.approx(0.5)
    assert out["both"].stage_scores["tag_importance"] == pytest.approx(0.5)
    prioritised = TagReranker({"Memory": 0.9, "context window": 0.2})
    out = {c.id: c for c in prioritised.rerank("memory and context windows", docs)}
    assert out["memory"].stage_scores["tag_importance"] == pytest.approx(0.9)
    assert out["window"].stage_scores["tag_importance"] == pytest.approx(0.2)
    unlisted = TagReranker({"memory": 1.0}).rerank("billing", docs)
    assert all(c.stage_scores["tag_importance"] == 0.0 for c in unlisted)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_weight": math.nan},
        {"tag_weight": math.inf},
        {"base_weight": 1.2},
        {"tag_weight": -0.1},
        {"tag_weights": {"memory": math.nan}},
        {"tag_weights": {"memory": 2.0}},
    ],
)
def test_tags_rejects_bad_weights(kwargs):
    with pytest.raises(InvalidInputError):
        TagReranker(**kwargs)


def test_tags_rejects_unusable_configuration():
    with pytest.raises(ConfigurationError):
        TagReranker(base_weight=0.0, tag_weight=0.0)
    with pytest.raises(ConfigurationError):
        TagReranker({"the": 1.0})  # nothing left after stop-word removal
    with pytest.raises(InvalidTypeError):
        TagReranker(["memory"])  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12),
    k=st.one_of(st.none(), st.integers(1, 15)),
)
def test_tags_output_is_a_sorted_prefix_of_the_candidates(scores, k):
    docs = [
        scored(f"doc {i}", s, tags=["memory"] if i % 3 == 0 else [], doc_id=f"d{i}")
        for i, s in enumerate(scores)
    ]
    out = TagReranker().rerank("memory decay", docs, k=k)
    assert len(out) == (len(docs) if k is None else min(k, len(docs)))
    assert len({c.id for c in out}) == len(out)
    finals = [c.score for c in out]
    assert finals == sorted(finals, reverse=True)
    assert all(0.0 <= f <= 1.0 + 1e-9 for f in finals)


# --- passages ----------------------------------------------------------------------------

FILLER = " ".join(
    f"Note {i} is about gardening, soil quality and how tomatoes need summer sunlight."
    for i in range(25)
)
LONG_ANSWER = FILLER + " The Eiffel Tower was completed in 1889 for the World's Fair."
SHORT_OFF_TOPIC = "Paris is the capital of France and a popular tourist city."


def test_passage_windows():
    assert passage_windows("One. Two. Three.", 2) == ["One. Two.", "Two. Three."]
    assert passage_windows("One. Two.", 3) == ["One. Two."]
    assert passage_windows("   ", 2) == []


def test_passage_finds_the_answer_past_the_model_truncation(embedder):
    query = "When was the Eiffel Tower completed?"
    whole = embedder.embed([query, LONG_ANSWER, SHORT_OFF_TOPIC])
    # Judged as a whole (truncated at 256 word pieces) the long document looks worse...
    assert whole[1] @ whole[0] < whole[2] @ whole[0]
    candidates = [
        scored(SHORT_OFF_TOPIC, 0.6, doc_id="short"),
        scored(LONG_ANSWER, 0.5, doc_id="long"),
    ]
    out = PassageReranker(embedder, weight=1.0).rerank(query, candidates)
    # ...its best window holds the answer.
    assert [c.id for c in out] == ["long", "short"]
    assert out[0].stage_scores["passage_cos"] > 0.4
    blended = PassageReranker(embedder, weight=0.5).rerank(query, candidates)
    short = next(c for c in blended if c.id == "short")
    assert short.score == pytest.approx(
        0.5 * 1.0 + 0.5 * short.stage_scores["passage_cos"], abs=1e-6
    )
    assert short.stage_scores["passage"] == short.score


def test_passage_gain_moves_long_documents_and_leaves_short_ones(embedder):
    query = "When was the Eiffel Tower completed?"
    short = [
        scored(f"Short note {i} about Paris.", s, doc_id=f"s{i}")
        for i, s in enumerate([0.6, 0.5, 0.45])
    ]
    candidates = [*short, scored(LONG_ANSWER, 0.55, doc_id="long")]
    out = PassageReranker(embedder, mode="gain", weight=1.0).rerank(query, candidates)
    assert out[0].id == "long"  # its best window beats its truncated whole-document vector
    assert out[0].stage_scores["passage_gain"] > 0.3
    # One-sentence documents: the window is the document, no gain, retrieval order kept.
    assert [c.id for c in out[1:]] == ["s0", "s1", "s2"]
    assert all(c.stage_scores["passage_gain"] == pytest.approx(0.0, abs=1e-6) for c in out[1:])
    assert out[1].score == pytest.approx(1.0)  # base_norm + 0
    assert isinstance(get_reranker("passage-gain", embedder=embedder), PassageReranker)
    with pytest.raises(UnknownStrategyError):
        PassageReranker(embedder, mode="sum")


def test_passage_prepare_fills_the_cache_ahead_of_queries():
    counting = CountingEmbedder()
    reranker = PassageReranker(counting, mode="gain")
    assert reranker.prepare(c.document.text for c in CANDIDATES) == 2 * len(CANDIDATES)
    sent = counting.texts
    reranker.rerank("embedding models", CANDIDATES)
    assert counting.texts == sent + 1  # only the query was new


class CountingEmbedder:
    """A real embedder that counts how many texts reach it."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(256)
        self.name, self.dimension = self.inner.name, self.inner.dimension
        self.texts = 0

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)


def test_passage_and_mmr_do_not_embed_the_same_documents_twice():
    counting = CountingEmbedder()
    reranker = PassageReranker(counting)
    reranker.rerank("embedding models", CANDIDATES)
    first = counting.texts
    assert first > 0
    reranker.rerank("embedding models", CANDIDATES)
    assert counting.texts == first
    mmr = MMRReranker(counting, similarity="embedding")
    mmr.rerank("embedding models", CANDIDATES)
    seen = counting.texts
    mmr.rerank("another query", CANDIDATES)
    assert counting.texts == seen


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"window": 0}, InvalidInputError),
        ({"window": 1.5}, InvalidTypeError),
        ({"weight": 1.5}, InvalidInputError),
        ({"weight": math.nan}, InvalidInputError),
    ],
)
def test_passage_rejects_bad_parameters(kwargs, error, hashing):
    with pytest.raises(error):
        PassageReranker(hashing, **kwargs)
    with pytest.raises(ModelNotFoundError):  # a string is a local model path
        PassageReranker(embedder="not an embedder")
    with pytest.raises(InvalidTypeError):
        PassageReranker(embedder=3)  # type: ignore[arg-type]


# --- MMR ---------------------------------------------------------------------------------

DUPLICATES = [
    scored("The Eiffel Tower is in Paris and was finished in 1889.", 0.90, doc_id="dup1"),
    scored("The Eiffel Tower, in Paris, was finished in 1889.", 0.88, doc_id="dup2"),
    scored("The Eiffel Tower is in Paris and was completed in 1889.", 0.87, doc_id="dup3"),
    scored(
        "Tickets for the tower's summit can be bought online, and the queue is shorter in the morning.",
        0.50,
        doc_id="useful",
    ),
]


def test_mmr_near_duplicates_do_not_crowd_out_the_useful_document(embedder):
    out = MMRReranker(embedder, similarity="embedding").rerank(
        "Visiting the Eiffel Tower", DUPLICATES, k=2
    )
    assert [c.id for c in out] == ["dup1", "useful"]
    # Without k, the near-duplicates are removed, not merely pushed down.
    dedup = MMRReranker(embedder, similarity="embedding")
    assert [c.id for c in dedup.rerank("Eiffel Tower", DUPLICATES)] == ["dup1", "useful"]


def test_mmr_threshold_one_keeps_everything_with_falling_scores(embedder):
    out = MMRReranker(embedder, duplicate_threshold=1.0, similarity="embedding").rerank(
        "Eiffel Tower", DUPLICATES
    )
    assert len(out) == 4 and out[0].id == "dup1"
    marginal = [c.stage_scores["mmr"] for c in out]
    assert marginal == sorted(marginal, reverse=True)
    # lambda_=1 is pure relevance: the incoming order comes back.
    pure = MMRReranker(
        embedder, lambda_=1.0, duplicate_threshold=1.0, similarity="embedding"
    ).rerank("Eiffel Tower", DUPLICATES)
    assert [c.id for c in pure] == ["dup1", "dup2", "dup3", "useful"]


def test_mmr_drops_exact_copies_even_with_lexical_vectors(hashing):
    docs = [
        scored("same text here", 0.9, doc_id="a"),
        scored("same text here", 0.8, doc_id="b"),
        scored("something else entirely", 0.1, doc_id="c"),
    ]
    assert [c.id for c in MMRReranker(hashing, similarity="embedding").rerank("text", docs)] == [
        "a",
        "c",
    ]


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(
        st.lists(
            st.sampled_from(["tower", "paris", "river", "bridge", "ticket", "queue"]),
            min_size=1,
            max_size=4,
        ),
        min_size=1,
        max_size=10,
    ),
    threshold=st.floats(0.3, 1.0),
    k=st.one_of(st.none(), st.integers(1, 12)),
)
def test_mmr_properties(texts, threshold, k):
    embedder = HashingEmbedder(256)
    docs = [scored(" ".join(words), 1.0 / (i + 1), doc_id=f"d{i}") for i, words in enumerate(texts)]
    out = MMRReranker(embedder, duplicate_threshold=threshold, similarity="embedding").rerank(
        "paris", docs, k=k
    )
    assert 1 <= len(out) <= (len(docs) if k is None else min(k, len(docs)))
    assert len({c.id for c in out}) == len(out)
    marginal = [c.score for c in out]
    assert marginal == sorted(marginal, reverse=True)
    vectors = embedder.embed([c.document.text for c in out])
    similarity = vectors @ vectors.T
    assert np.all(similarity[np.triu_indices(len(out), 1)] <= threshold + 1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lambda_": 1.5},
        {"lambda_": math.nan},
        {"duplicate_threshold": 0.0},
        {"duplicate_threshold": 1.1},
    ],
)
def test_mmr_rejects_bad_parameters(kwargs, hashing):
    with pytest.raises(InvalidInputError):
        MMRReranker(hashing, **kwargs)


# --- cross-encoder -----------------------------------------------------------------------

VOCAB = [
    "the",
    "a",
    "of",
    "in",
    "is",
    "was",
    "tower",
    "eiffel",
    "paris",
    "built",
    "1889",
    "tickets",
    "online",
    "cat",
    "sat",
    "mat",
    "memory",
    "decay",
    "tokens",
]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A 1-layer BERT sequence classifier with a WordPiece vocab, built and saved here: the
    same files a real cross-encoder directory holds, small enough to load in a second."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    (path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *VOCAB]) + "\n"
    )
    tokenizer = transformers.BertTokenizerFast(
        vocab_file=str(path / "vocab.txt"), do_lower_case=True
    )
    torch.manual_seed(7)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
        initializer_range=0.3,
    )
    transformers.BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_cross_encoder_orders_by_the_model_scores(tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    texts = [
        "the eiffel tower was built in 1889",
        "tickets online",
        "the cat sat on a mat",
        "memory decay of tokens",
        "paris",
    ]
    query = "eiffel tower paris"
    expected = CrossEncoder(str(tiny_cross_encoder), local_files_only=True).predict(
        [(query, t) for t in texts]
    )
    assert np.diff(np.sort(expected)).min() > 1e-4  # the test needs distinct scores
    # Retrieval scores in the opposite order, so a pass-through would fail.
    ranks = np.argsort(np.argsort(expected))
    candidates = [
        scored(t, -float(r), doc_id=f"d{i}") for i, (t, r) in enumerate(zip(texts, ranks))
    ]
    reranker = CrossEncoderReranker(tiny_cross_encoder, max_length=512)  # capped to 64 positions
    out = reranker.rerank(query, candidates, k=4)
    assert [c.id for c in out] == [f"d{i}" for i in np.argsort(-expected)[:4]]
    for c in out:
        index = int(c.id[1:])
        assert c.stage_scores["cross-encoder"] == pytest.approx(float(expected[index]), abs=1e-5)
        assert c.score == c.stage_scores["cross-encoder"]
    # blend=0 ignores the model; the raw model score is still recorded.
    kept = CrossEncoderReranker(tiny_cross_encoder, blend=0.0).rerank(query, candidates)
    assert [c.id for c in kept] == [c.id for c in sorted(candidates, key=lambda c: -c.score)]
    assert all("cross_encoder_model" in c.stage_scores for c in kept)
    via_name = get_reranker(f"cross-encoder:{tiny_cross_encoder}")
    assert [c.id for c in via_name.rerank(query, candidates, k=4)] == [c.id for c in out]


def test_cross_encoder_needs_a_local_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="local"):
        CrossEncoderReranker(None)
    with pytest.raises(ModelNotFoundError):
        CrossEncoderReranker(tmp_path / "absent")
    with pytest.raises(ModelNotFoundError):
        CrossEncoderReranker(tmp_path)  # a directory without a model
    with pytest.raises(ModelNotFoundError):
        get_reranker("cross-encoder")
    with pytest.raises(InvalidInputError):
        CrossEncoderReranker(tmp_path, blend=2.0)


# --- chaining and names ------------------------------------------------------------------


def test_get_reranker_names_and_lists(hashing):
    assert isinstance(get_reranker("tags"), TagReranker)
    assert isinstance(get_reranker("passage", embedder=hashing), PassageReranker)
    assert isinstance(get_reranker("mmr", embedder=hashing), MMRReranker)
    default = get_reranker(None, embedder=hashing)
    assert isinstance(default, RerankPipeline)
    assert [type(stage) for stage in default.stages] == [
        type(get_reranker(name, embedder=hashing)) for name in DEFAULT_RERANKER
    ]
    dedup = get_reranker("dedup", embedder=hashing)
    assert isinstance(dedup, MMRReranker) and dedup.lambda_ == 1.0
    custom = TagReranker({"memory": 1.0})
    assert get_reranker(custom) is custom
    chained = get_reranker(["tags", custom, "mmr"], embedder=hashing)
    assert isinstance(chained, RerankPipeline) and len(chained.stages) == 3
    with pytest.raises(UnknownStrategyError):
        get_reranker("colbert")
    with pytest.raises(InvalidTypeError):
        get_reranker(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        get_reranker("tags:extra")
    with pytest.raises(InvalidTypeError):
        RerankPipeline([object()])  # type: ignore[list-item]


def test_pipeline_records_every_stage_and_cuts_only_at_the_end(embedder):
    pipeline = RerankPipeline([TagReranker(), MMRReranker(embedder, similarity="embedding")])
    docs = [
        *DUPLICATES[:3],
        scored(DUPLICATES[3].document.text, 0.5, tags=["tickets"], doc_id="useful"),
    ]
    out = pipeline.rerank("Eiffel Tower tickets", docs, k=2)
    assert [c.id for c in out] == ["dup1", "useful"]
    assert {"hybrid", "tag_importance", "tags", "mmr"} <= set(out[1].stage_scores)
    assert out[1].score == out[1].stage_scores["mmr"]


def test_none_keeps_the_incoming_order_and_scores():
    out = get_reranker("none").rerank("q", CANDIDATES[::-1], k=2)
    assert [c.id for c in out] == ["tfidf", "emb"]
    assert [c.score for c in out] == [0.90, 0.80]


@pytest.mark.parametrize(
    "name", [name for name in RERANKER_NAMES if name not in ("none", "cross-encoder")]
)
def test_each_registry_name_is_the_stage_it_records(name, hashing):
    docs = [
        ScoredDocument(Document(f"text {i} about tags and memory", id=f"d{i}"), 1.0 - i / 10)
        for i in range(4)
    ]
    out = get_reranker(name, embedder=hashing).rerank("memory", docs, k=3)
    assert out and all(name in doc.stage_scores for doc in out)
