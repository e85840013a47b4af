"""Metadata filters: the typed spec, the Chroma-style dict form, the index-wide mask, and
filtered retrieval in every mode and through the engine."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError, InvalidInputError, InvalidTypeError
from ctxengine.retrieval import MODES, HybridRetriever
from ctxengine.retrieval.filter_columns import MetadataColumns
from ctxengine.retrieval.filters import (
    And,
    Eq,
    In,
    Not,
    Or,
    Range,
    parse_filter,
)
from ctxengine.types import Document

TOPICS = [
    "Solar panels convert sunlight into electricity. Output falls on cloudy days. Storage evens it out.",
    "Wind turbines turn moving air into power. Offshore farms see steadier wind. Maintenance is costly.",
    "Battery storage shifts solar energy to the evening. Lithium cells dominate. Prices keep falling.",
    "Hydroelectric dams store water as potential energy. They respond within minutes to demand.",
    "Heat pumps move heat instead of burning fuel. They work in cold climates too.",
    "Nuclear plants run at a constant output. They need long planning horizons and cooling water.",
]
LANGS = ["en", "fr", "de"]
DOCS = [
    Document(
        id=f"d{i}",
        text=TOPICS[i % len(TOPICS)] + f" Report number {i}.",
        metadata={
            "year": 2014 + i,
            "lang": LANGS[i % 3],
            **({"draft": True} if i % 4 == 0 else {}),
        },
    )
    for i in range(18)
]
RECENT_EN_FR = {"$and": [{"year": {"$gte": 2020}}, {"lang": {"$in": ["en", "fr"]}}]}


@pytest.fixture(scope="module")
def retriever(embedder) -> HybridRetriever:
    return HybridRetriever(DOCS, embedder=embedder)


def passing(spec) -> list[Document]:
    parsed = parse_filter(spec)
    return [doc for doc in DOCS if parsed.matches(doc.metadata)]


# --- the spec ---------------------------------------------------------------------------


def test_dict_form_parses_to_the_typed_tree():
    assert parse_filter(RECENT_EN_FR) == And((Range("year", gte=2020), In("lang", ("en", "fr"))))
    assert parse_filter({"lang": "en"}) == Eq("lang", "en")
    assert parse_filter({"lang": {"$ne": "en"}}) == Not(Eq("lang", "en"))
    assert parse_filter({"lang": {"$nin": ["en"]}}) == Not(In("lang", ("en",)))
    assert parse_filter({"$or": [{"lang": "en"}, {"year": {"$lt": 2016}}]}) == Or(
        (Eq("lang", "en"), Range("year", lt=2016))
    )
    # several keys in one dict, several operators on one key: all are required
    assert parse_filter({"lang": "en", "year": {"$gt": 2015, "$lte": 2020}}) == And(
        (Eq("lang", "en"), Range("year", gt=2015, lte=2020))
    )
    assert parse_filter(None) is None
    typed = Eq("lang", "fr")
    assert parse_filter(typed) is typed


@pytest.mark.parametrize(
    "spec",
    [
        RECENT_EN_FR,
        {"lang": {"$ne": "en"}},
        {"$or": [{"lang": "de"}, {"year": {"$lt": 2016}}]},
        {"year": {"$gt": 2015, "$lte": 2020}},
        {"$not": {"$or": [{"draft": True}, {"lang": "en"}]}},
    ],
)
def test_to_dict_round_trips(spec):
    # to_dict writes Chroma's dialect (one operator per key, $ne/$nin for negated leaves)
    parsed = parse_filter(spec)
    again = parse_filter(parsed.to_dict())
    assert [again.matches(d.metadata) for d in DOCS] == [parsed.matches(d.metadata) for d in DOCS]
    assert any(parsed.matches(d.metadata) for d in DOCS)
    assert all(len(cond) == 1 for cond in _leaf_conditions(parsed.to_dict()))


def _leaf_conditions(spec):
    for key, value in spec.items():
        if key in ("$and", "$or"):
            for item in value:
                yield from _leaf_conditions(item)
        elif key == "$not":
            yield from _leaf_conditions(value)
        else:
            yield value


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"year": {"$regex": "20.*"}}, InvalidInputError),
        ({"$nor": [{"a": 1}]}, InvalidInputError),
        ({"$and": []}, InvalidInputError),
        ({"$and": {"a": 1}}, InvalidInputError),
        ({"year": {"$gte": "2020"}}, InvalidInputError),
        ({"year": {"$gte": float("nan")}}, InvalidInputError),
        ({"tags": ["a", "b"]}, InvalidTypeError),
        ({"lang": {"$in": "en"}}, InvalidTypeError),
        ({}, InvalidInputError),
        ("lang == 'en'", InvalidTypeError),
        ({"": 1}, InvalidInputError),
    ],
)
def test_bad_filters_raise_typed_errors(spec, error):
    with pytest.raises(error):
        parse_filter(spec)


def test_missing_keys_and_bools():
    meta = {"lang": "en", "flag": True, "count": 1}
    assert not Eq("year", 2020).matches(meta)
    assert not Range("year", gte=0).matches(meta)
    assert Not(Eq("year", 2020)).matches(meta)  # no year: "year != 2020" holds
    assert Eq("flag", True).matches(meta)
    assert not Eq("count", True).matches(meta)  # True is not the number 1
    assert not Eq("flag", 1).matches(meta)
    assert Eq("count", 1.0).matches(meta)
    assert not Range("flag", gte=0).matches(meta)  # booleans are not numbers


def test_columns_agree_with_matches_on_random_metadata():
    rng = random.Random(7)
    values = ["a", "b", 1, 2, 2.5, True, False, None, ["x"], {"n": 1}]
    docs = [
        Document(
            id=str(i),
            text="t",
            metadata={key: rng.choice(values) for key in "pq" if rng.random() < 0.8},
        )
        for i in range(300)
    ]
    columns = MetadataColumns(docs)
    specs = [
        {"p": "a"},
        {"p": {"$in": ["a", 2, True]}},
        {"q": {"$gte": 1, "$lt": 2.5}},
        {"$or": [{"p": {"$ne": "b"}}, {"q": False}]},
        {"$and": [{"p": {"$nin": [1, "a"]}}, {"$not": {"q": {"$gt": 1}}}]},
        {"p": "never there"},
    ]
    for spec in specs:
        parsed = parse_filter(spec)
        expected = np.array([parsed.matches(doc.metadata) for doc in docs])
        assert np.array_equal(columns.mask(spec), expected), spec
        assert expected.any() or spec == {"p": "never there"}


# --- filtered retrieval -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_returns_only_documents_that_pass(retriever, mode):
    allowed = {doc.id for doc in passing(RECENT_EN_FR)}
    results = retriever.retrieve("solar energy storage", 20, mode=mode, filter=RECENT_EN_FR)
    assert results, mode
    assert {doc.id for doc in results} <= allowed
    if mode not in ("keyword", "tfidf"):  # dense and fused modes rank every survivor
        assert {doc.id for doc in results} == allowed


@pytest.mark.parametrize("mode", ["keyword", "tfidf", "dense"])
def test_single_signal_order_is_the_unfiltered_order_restricted(retriever, mode):
    # A document's BM25, TF-IDF or cosine score does not depend on the others, so a filter
    # only removes documents; with sentence windows the dense score includes the best window.
    spec = {"lang": {"$ne": "de"}}
    allowed = {doc.id for doc in passing(spec)}
    full = retriever.retrieve("wind power offshore", len(DOCS), mode=mode)
    filtered = retriever.retrieve("wind power offshore", 5, mode=mode, filter=spec)
    expected = [doc for doc in full if doc.id in allowed][:5]
    assert [d.score for d in filtered] == pytest.approx([d.score for d in expected], abs=1e-6)
    # (same-topic reports tie up to float rounding, so ids are compared as a set)
    assert {d.id for d in filtered} <= allowed
    assert {d.id for d in filtered if d.score > expected[-1].score + 1e-5} == {
        d.id for d in expected if d.score > expected[-1].score + 1e-5
    }


def test_hybrid_normalises_among_the_survivors(retriever, embedder):
    # A filter behaves as if the index held only the documents that pass (dense side
    # exactly; BM25 keeps the whole corpus's statistics).
    spec = {"year": {"$lt": 2020}}
    sub = HybridRetriever(passing(spec), embedder=embedder, mode="dense")
    filtered = retriever.retrieve("heat pumps in cold climates", 3, mode="dense", filter=spec)
    assert [d.id for d in filtered] == [
        d.id for d in sub.retrieve("heat pumps in cold climates", 3)
    ]
    hybrid = retriever.retrieve("heat pumps in cold climates", 3, filter=spec)
    assert hybrid[0].id == "d4"
    assert max(d.score for d in hybrid) == pytest.approx(hybrid[0].score)


def test_filter_that_matches_nothing_or_everything(retriever):
    assert retriever.retrieve("solar", 5, filter={"lang": "es"}) == []
    assert retriever.retrieve("solar", 5, filter={"year": {"$gt": 3000}}) == []
    everything = {"year": {"$gte": 0}}
    assert [d.id for d in retriever.retrieve("solar", 5, filter=everything)] == [
        d.id for d in retriever.retrieve("solar", 5)
    ]


def test_filter_sees_documents_written_after_the_first_query(embedder):
    index = HybridRetriever(DOCS[:6], embedder=embedder, mode="keyword")
    assert index.retrieve("solar", 5, filter={"lang": "fr", "year": {"$gte": 2030}}) == []
    index.add(
        Document(id="new", text="Solar farms in 2031.", metadata={"lang": "fr", "year": 2031})
    )
    assert [
        d.id for d in index.retrieve("solar", 5, filter={"lang": "fr", "year": {"$gte": 2030}})
    ] == ["new"]
    index.upsert(
        Document(id="new", text="Solar farms in 2031.", metadata={"lang": "de", "year": 2031})
    )
    assert index.retrieve("solar", 5, filter={"lang": "fr", "year": {"$gte": 2030}}) == []


def test_bad_filter_is_a_typed_error_at_query_time(retriever):
    with pytest.raises(InvalidInputError):
        retriever.retrieve("solar", 5, filter={"year": {"$near": 2020}})


# --- through the engine -----------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(embedder) -> ContextEngine:
    return ContextEngine.from_documents(
        DOCS, embedder=embedder, rerank="none", k=5, token_budget=2000
    )


def test_engine_retrieve_and_build_take_a_filter(engine):
    allowed = {doc.id for doc in passing({"lang": "de"})}
    retrieved = engine.retrieve("energy", 10, filter={"lang": "de"})
    assert {d.id for d in retrieved} == allowed
    packet = engine.build("energy", filter={"lang": "de"})
    assert packet.documents and {d.id for d in packet.documents} <= allowed
    assert {d.id for d in packet.candidates} == allowed
    unfiltered = engine.build("energy")
    assert {d.id for d in unfiltered.documents} - allowed


async def test_engine_async_paths_take_a_filter(engine):
    allowed = {doc.id for doc in passing(RECENT_EN_FR)}
    packet = await engine.abuild("battery storage", filter=RECENT_EN_FR)
    assert packet.documents and {d.id for d in packet.documents} <= allowed
    retrieved = await engine.aretrieve("battery storage", 4, filter=RECENT_EN_FR)
    assert retrieved and {d.id for d in retrieved} <= allowed


def test_engine_without_a_retriever_rejects_a_filter():
    engine = ContextEngine.from_retriever(None)
    with pytest.raises(ConfigurationError):
        engine.build("anything", filter={"lang": "en"})


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_gathering_the_rows_and_masking_all_scores_agree(retriever, mode, monkeypatch):
    # A selective filter scores only its rows (and their windows); a broad one scores
    # everything and masks. Both must give the same documents and scores.
    from ctxengine.retrieval import querying

    results = {}
    for gather_below in (0.0, 1.1):  # never gather / always gather
        monkeypatch.setattr(querying, "_GATHER_BELOW", gather_below)
        results[gather_below] = [
            (d.id, round(d.score, 6))
            for d in retriever.retrieve(
                "battery storage at night", 6, mode=mode, filter=RECENT_EN_FR
            )
        ]
    assert results[0.0] == results[1.1] and results[0.0]
