"""HybridRetriever: every mode, the document table, bad input, unicode, concurrency, and
hybrid beating both of its parts on a real LoCoMo conversation."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import (
    DocumentNotFoundError,
    DuplicateDocumentError,
    InvalidInputError,
    InvalidTypeError,
    UnknownStrategyError,
)
from ctxengine.metrics import mean, ndcg_at_k
from ctxengine.retrieval import MODES, HybridRetriever, Retriever
from ctxengine.types import Document

CORPUS = [
    Document(
        id="bm25", text="BM25 ranks documents by term frequency and inverse document frequency."
    ),
    Document(
        id="emb",
        text="Dense embeddings map sentences to vectors so that paraphrases land close together.",
    ),
    Document(
        id="decay", text="Memory decay lowers the weight of old conversation turns over time."
    ),
    Document(
        id="budget",
        text="A token budget reserves room for the system prompt before history and documents.",
    ),
    Document(id="cafe", text="Le café crème du matin à Zürich coûte cher."),
    Document(id="cjk", text="東京の猫はとても可愛いです。"),
    Document(id="emoji", text="Launch day 🚀 the rocket flew to orbit 🎉"),
]


@pytest.fixture(scope="module")
def retriever(embedder) -> HybridRetriever:
    return HybridRetriever(CORPUS, embedder=embedder)


def ids(results) -> list[str]:
    return [r.id for r in results]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_ranks_the_obvious_document_first(retriever, mode):
    results = retriever.retrieve(
        "how does inverse document frequency rank documents in BM25", 3, mode=mode
    )
    assert results[0].id == "bm25"
    assert len(results) <= 3
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)


def test_stage_scores_explain_each_mode(retriever):
    top = retriever.retrieve("token budget for the system prompt", 1, mode="hybrid")[0]
    assert set(top.stage_scores) == {"bm25", "dense", "hybrid", "alpha"}
    assert top.stage_scores["alpha"] == pytest.approx(0.65)
    assert top.score == top.stage_scores["hybrid"]
    assert set(retriever.retrieve("token budget", 1, mode="keyword")[0].stage_scores) == {"bm25"}
    assert set(retriever.retrieve("token budget", 1, mode="tfidf")[0].stage_scores) == {"tfidf"}
    assert set(retriever.retrieve("token budget", 1, mode="dense")[0].stage_scores) == {"dense"}


def test_dense_finds_a_paraphrase_that_shares_no_word(retriever):
    query = "forgetting older chat messages as they age"
    assert retriever.retrieve(query, mode="keyword") == []
    assert retriever.retrieve(query, 1, mode="dense")[0].id == "decay"


@pytest.mark.parametrize("mode", ["keyword", "tfidf"])
def test_lexical_modes_return_nothing_without_a_shared_term(retriever, mode):
    assert retriever.retrieve("xylophone quartet", 5, mode=mode) == []
    # stop words alone analyze to nothing, so nothing can match either
    assert retriever.retrieve("the and of", 5, mode=mode) == []


@pytest.mark.parametrize("mode", ["keyword", "tfidf"])
def test_lexical_modes_return_only_matching_documents(retriever, mode):
    results = retriever.retrieve("rocket orbit", 10, mode=mode)
    assert ids(results) == ["emoji"]


@pytest.mark.parametrize("mode", ["dense", "hybrid", "adaptive"])
def test_k_larger_than_corpus_returns_every_document_once(retriever, mode):
    results = retriever.retrieve("conversation memory", 100, mode=mode)
    assert sorted(ids(results)) == sorted(doc.id for doc in CORPUS)


@pytest.mark.parametrize("mode", ["keyword", "tfidf"])
def test_unicode_accents_and_cjk_survive_analysis(retriever, mode):
    # accents folded both ways, CJK indexed per character instead of vanishing
    assert ids(retriever.retrieve("cafe creme Zurich", 1, mode=mode)) == ["cafe"]
    assert ids(retriever.retrieve("Café", 1, mode=mode)) == ["cafe"]
    assert ids(retriever.retrieve("猫", 1, mode=mode)) == ["cjk"]


def test_emoji_only_query_matches_nothing_lexically_but_still_ranks_densely(retriever):
    assert retriever.retrieve("🚀", mode="keyword") == []
    assert len(retriever.retrieve("🚀", 3, mode="dense")) == 3


def test_empty_corpus_returns_nothing_in_every_mode():
    empty = HybridRetriever(embedder=HashingEmbedder())
    assert len(empty) == 0 and empty.documents == []
    for mode in MODES:
        assert empty.retrieve("anything", 5, mode=mode) == []
    assert {key: len(v) for key, v in empty.score_all("anything").items()} == {
        "bm25": 0,
        "tfidf": 0,
        "dense": 0,
    }


def test_documents_of_only_stop_words_do_not_break_indexing():
    retriever = HybridRetriever(["the of and", "", "a"], mode="keyword")
    assert retriever.retrieve("anything", 5) == []
    retriever.add([Document(id="x", text="zebra crossing")])
    assert ids(retriever.retrieve("zebra", 5)) == ["x"]


@pytest.mark.parametrize("bad_query", ["", "   ", "\n\t"])
def test_blank_query_is_rejected(retriever, bad_query):
    with pytest.raises(InvalidInputError):
        retriever.retrieve(bad_query)


@pytest.mark.parametrize("bad_query", [None, 42, b"bytes", ["a"]])
def test_non_string_query_is_rejected(retriever, bad_query):
    with pytest.raises(InvalidTypeError):
        retriever.retrieve(bad_query)


@pytest.mark.parametrize("bad_k", [0, -3])
def test_non_positive_k_is_rejected(retriever, bad_k):
    with pytest.raises(InvalidInputError):
        retriever.retrieve("memory", bad_k)


def test_unknown_mode_is_rejected(retriever):
    with pytest.raises(UnknownStrategyError):
        retriever.retrieve("memory", mode="semantic-magic")
    with pytest.raises(UnknownStrategyError):
        HybridRetriever(mode="bm42")
    with pytest.raises(UnknownStrategyError):
        HybridRetriever(fusion="max")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": math.nan},
        {"alpha": 1.5},
        {"alpha": -0.1},
        {"fusion_depth": 0},
        {"rrf_k": 0},
        {"b": 2.0},
    ],
)
def test_bad_constructor_values_are_rejected(kwargs):
    with pytest.raises(InvalidInputError):
        HybridRetriever(**kwargs)


def test_constructor_parameters_are_kept_as_attributes():
    retriever = HybridRetriever(
        mode="keyword", alpha=0.3, fusion="rrf", rrf_k=10, k1=1.2, b=0.5, fusion_depth=7
    )
    assert (retriever.mode, retriever.alpha, retriever.fusion, retriever.rrf_k) == (
        "keyword",
        0.3,
        "rrf",
        10,
    )
    assert (retriever.k1, retriever.b, retriever.fusion_depth, retriever.embedder) == (
        1.2,
        0.5,
        7,
        None,
    )
    assert isinstance(retriever, Retriever)


def test_duplicate_ids_are_rejected_without_partial_writes():
    retriever = HybridRetriever([Document(id="a", text="apples")], mode="keyword")
    with pytest.raises(DuplicateDocumentError):
        retriever.add([Document(id="b", text="bananas"), Document(id="a", text="again")])
    with pytest.raises(DuplicateDocumentError):
        retriever.add([Document(id="c", text="x"), Document(id="c", text="y")])
    assert len(retriever) == 1 and "b" not in retriever and "c" not in retriever


def test_add_upsert_remove_then_retrieve():
    retriever = HybridRetriever(mode="keyword")
    retriever.add([{"id": "1", "text": "solar panels on the roof"}, "wind turbines offshore"])
    assert ids(retriever.retrieve("solar roof")) == ["1"]
    retriever.upsert(
        [{"id": "1", "text": "geothermal heat pumps"}, {"id": "2", "text": "solar farms"}]
    )
    assert ids(retriever.retrieve("solar")) == ["2"]
    assert ids(retriever.retrieve("geothermal")) == ["1"]
    assert retriever.documents[0].id == "1"  # upsert keeps the index position
    retriever.remove(["2"])
    assert retriever.retrieve("solar") == [] and "2" not in retriever and len(retriever) == 2
    with pytest.raises(DocumentNotFoundError):
        retriever.remove(["1", "missing"])
    assert "1" in retriever  # nothing removed when one id is unknown
    with pytest.raises(DocumentNotFoundError):
        retriever.get("missing")
    assert retriever.get("1").text == "geothermal heat pumps"


def test_adding_a_document_embeds_and_analyzes_only_that_document(monkeypatch):
    import ctxengine.retrieval.querying as querying_module
    import ctxengine.retrieval.table as table_module

    calls: list[int] = []
    analyzed: list[str] = []
    real_analyze = querying_module.analyze
    for module in (querying_module, table_module):  # queries, documents
        monkeypatch.setattr(
            module, "analyze", lambda text: analyzed.append(text) or real_analyze(text)
        )

    class CountingEmbedder(HashingEmbedder):
        def embed(self, texts):
            calls.append(len(texts))
            return super().embed(texts)

    retriever = HybridRetriever(
        [f"document number {i} about topic {i}" for i in range(20)],
        embedder=CountingEmbedder(),
        mode="hybrid",
    )
    retriever.retrieve("topic 3")
    calls.clear()
    analyzed.clear()
    retriever.add(["a brand new document about otters"])
    assert ids(retriever.retrieve("otters", 1)) == [retriever.documents[-1].id]
    assert sum(calls) == 2  # the new document and the (new) query; no corpus re-embedding
    assert analyzed == [
        "a brand new document about otters",
        "otters",
    ]  # the index rebuilt from cached tokens


def test_score_all_and_document_embeddings_are_aligned_with_index_order(retriever):
    scores = retriever.score_all("rocket launch")
    order = [d.id for d in retriever.documents]
    assert all(len(v) == len(order) for v in scores.values())
    assert order[int(np.argmax(scores["bm25"]))] == "emoji"
    vectors = retriever.document_embeddings(["emoji", "bm25"])
    assert vectors.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(
        scores["dense"][[order.index("emoji"), order.index("bm25")]],
        vectors @ retriever._embedder().embed(["rocket launch"])[0],
        rtol=1e-4,
    )


def test_adaptive_alpha_leans_lexical_for_rare_keywords_and_dense_for_questions(retriever):
    rare = retriever.adaptive_alpha("Zürich")
    question = retriever.adaptive_alpha(
        "why would old messages in a long conversation matter less than the recent ones?"
    )
    assert 0.0 <= rare < question <= 1.0
    assert retriever.retrieve("Zürich", 1, mode="adaptive")[0].stage_scores[
        "alpha"
    ] == pytest.approx(rare)


def test_state_round_trip_ranks_identically_without_analysis_or_embedding():
    calls: list[str] = []

    class CountingEmbedder(HashingEmbedder):
        def embed(self, texts):
            calls.extend(texts)
            return super().embed(texts)

    original = HybridRetriever(CORPUS, embedder=HashingEmbedder(), alpha=0.4, fusion="rrf")
    state = original.export_state()
    assert state["params"]["alpha"] == 0.4 and state["vectors"].shape == (len(CORPUS), 2048)
    restored = HybridRetriever.from_state(
        state["documents"],
        state["tokens"],
        state["vectors"],
        embedder=CountingEmbedder(),
        **state["params"],
    )
    for mode in MODES:
        before = [(r.id, r.score) for r in original.retrieve("memory of old turns", 5, mode=mode)]
        assert [
            (r.id, r.score) for r in restored.retrieve("memory of old turns", 5, mode=mode)
        ] == before
    assert calls == ["memory of old turns"]  # only the query; documents came from the state
    with pytest.raises(DuplicateDocumentError):
        HybridRetriever.from_state([CORPUS[0], CORPUS[0]], [(), ()])


def test_rrf_fusion_ranks_by_ranks():
    retriever = HybridRetriever(CORPUS, embedder=HashingEmbedder(), fusion="rrf", alpha=0.5)
    results = retriever.retrieve("memory decay of old turns", 3)
    assert results[0].id == "decay"
    # the top document is first in both lists: 0.5/61 + 0.5/61
    assert results[0].score == pytest.approx(1 / 61)


def test_retrieve_is_safe_while_documents_are_added_concurrently():
    retriever = HybridRetriever(
        [f"seed document {i}" for i in range(50)], embedder=HashingEmbedder()
    )
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(100):
                retriever.add([Document(id=f"new-{i}", text=f"fresh note {i} about penguins")])
        except Exception as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(100):
                for mode in ("keyword", "hybrid"):
                    results = retriever.retrieve("penguins note", 5, mode=mode)
                    assert all(
                        r.id.startswith("new-") for r in results if r.stage_scores["bm25"] > 0
                    )
        except Exception as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(retriever) == 150
    assert len(retriever.retrieve("penguins", 200, mode="keyword")) == 100


@pytest.mark.slow
def test_hybrid_beats_keyword_and_dense_on_a_locomo_conversation(locomo, embedder):
    conversation = locomo[0]
    retriever = HybridRetriever(
        [Document(id=turn.dia_id, text=turn.document_text) for turn in conversation.turns],
        embedder=embedder,
    )
    questions = conversation.answerable()
    assert len(questions) > 100

    def mean_ndcg(mode: str) -> float:
        return mean(
            [
                ndcg_at_k(ids(retriever.retrieve(q.question, 10, mode=mode)), set(q.evidence), 10)
                for q in questions
            ]
        )

    hybrid, keyword, dense = mean_ndcg("hybrid"), mean_ndcg("keyword"), mean_ndcg("dense")
    assert hybrid > keyword and hybrid > dense, (hybrid, keyword, dense)


LONG = Document(
    "Museum hours vary by season. The gift shop sells postcards and maps. Parking is free on "
    "Sundays. The octopus can change the colour of its skin in milliseconds to hide from "
    "predators. Guided tours start at ten. Tickets are cheaper online.",
    id="long",
)
SHORT = [
    Document("Cats sleep for most of the day.", id="cats"),
    Document("Dolphins sleep with one half of the brain at a time.", id="dolphins"),
]


@pytest.mark.parametrize("passage_embedding", ["late", "separate"])
def test_dense_score_is_the_best_of_the_document_and_its_sentence_windows(
    embedder, passage_embedding
):
    from ctxengine.embeddings import late_chunk
    from ctxengine.retrieval.windows import window_spans, window_texts

    query = "How does an octopus camouflage itself?"
    retriever = HybridRetriever(
        [LONG, *SHORT], mode="dense", embedder=embedder, passage_embedding=passage_embedding
    )
    scores = retriever.score_all(query)["dense"]
    q = embedder.embed([query])[0]
    for doc, score in zip([LONG, *SHORT], scores):
        if passage_embedding == "late":  # pooled from the document's own forward pass
            [rows] = late_chunk(embedder.embedder, [doc.text], [window_spans(doc.text, 2)])
        else:
            rows = embedder.embed([doc.text] + window_texts(doc.text, 2))
        assert score == pytest.approx(float((rows @ q).max()), abs=1e-5)
    whole = HybridRetriever([LONG, *SHORT], mode="dense", embedder=embedder, passage_window=0)
    plain = whole.score_all(query)["dense"]
    np.testing.assert_allclose(
        plain, embedder.embed([d.text for d in (LONG, *SHORT)]) @ q, atol=1e-5
    )
    # the window holding the answer lifts the long document well above its whole-text cosine
    assert scores[0] > plain[0] + 0.1
    assert retriever.retrieve(query, k=1)[0].id == "long"


@pytest.mark.parametrize("passage_window", [2, 0])
def test_dense_scores_of_candidates_are_the_dense_signal_in_the_order_given(
    embedder, passage_window
):
    retriever = HybridRetriever(
        [LONG, *SHORT], mode="dense", embedder=embedder, passage_window=passage_window
    )
    query = "How does an octopus camouflage itself?"
    full = retriever.score_all(query)["dense"]
    order = [d.id for d in retriever.documents]
    asked = ["dolphins", "long", "cats"]  # not index order
    got = retriever.dense_scores_of(asked, retriever.query_vector(query))
    np.testing.assert_array_equal(got, full[[order.index(i) for i in asked]])
    assert retriever.dense_scores_of([], retriever.query_vector(query)).shape == (0,)
    with pytest.raises(DocumentNotFoundError):
        retriever.dense_scores_of(["long", "missing"], retriever.query_vector(query))


def test_passage_windows_follow_upserts_and_removals(embedder):
    retriever = HybridRetriever([LONG, *SHORT], mode="dense", embedder=embedder)
    query = "How does an octopus camouflage itself?"
    before = retriever.score_all(query)["dense"][0]
    retriever.upsert(
        Document(
            "Museum hours vary by season. The gift shop sells postcards. "
            "Parking is free on Sundays.",
            id="long",
        )
    )
    assert retriever.score_all(query)["dense"][0] < before - 0.1  # the octopus window is gone
    retriever.remove(["long"])
    assert {d.id for d in retriever.retrieve(query, k=5)} == {"cats", "dolphins"}
    with pytest.raises(InvalidInputError):
        HybridRetriever(passage_window=-1)


def test_candidate_pool_is_the_deprecated_name_of_fusion_depth(tmp_path):
    """The old name still configures the same size, with a FutureWarning, and an index
    saved with the old key in its manifest loads with it."""
    import json

    from ctxengine import ContextEngine

    with pytest.warns(FutureWarning, match="fusion_depth"):
        retriever = HybridRetriever(mode="keyword", candidate_pool=7)
    assert retriever.fusion_depth == 7
    engine = ContextEngine.from_documents(
        ["alpha beta", "gamma delta"],
        retrieval="keyword",
        retriever_options={"fusion_depth": 3},
    )
    path = engine.save(tmp_path / "index")
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["retriever"]["candidate_pool"] = manifest["retriever"].pop("fusion_depth")
    manifest_path.write_text(json.dumps(manifest))
    loaded = ContextEngine.load(path)
    assert loaded.retriever.fusion_depth == 3


def test_an_index_saved_before_feedback_existed_loads_without_it(tmp_path):
    """Feedback is on by default for new indexes; one whose manifest predates the option
    ranks as it did when it was saved, and a saved choice is kept."""
    import json

    from ctxengine import ContextEngine

    engine = ContextEngine.from_documents(["alpha beta", "gamma delta"], retrieval="keyword")
    assert engine.retriever.feedback == "rocchio"
    path = engine.save(tmp_path / "index")
    assert ContextEngine.load(path).retriever.feedback == "rocchio"
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for key in ("feedback", "feedback_docs", "feedback_weight", "feedback_terms"):
        manifest["retriever"].pop(key)
    manifest_path.write_text(json.dumps(manifest))
    assert ContextEngine.load(path).retriever.feedback is None
