"""Bad input at every public entry point: a clear exception from ``ctxengine.errors`` (or a
documented graceful result), raised by ctxengine itself rather than by numpy or a driver
three calls deeper, and nothing already stored is lost.

Each row of the README's bad-input table is a case here (or names the test that already
holds it). Component-level checks live next to their components (test_retrieval,
test_memory, test_compress, test_rerank, test_stores, test_persist); this file goes
through the engine, as an application does.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import ctxengine
from ctxengine import ContextEngine, Document
from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import (
    BudgetError,
    ConfigurationError,
    CtxEngineError,
    DocumentNotFoundError,
    DuplicateDocumentError,
    EmbeddingMismatchError,
    IndexFormatError,
    InvalidInputError,
    InvalidTypeError,
    StoreError,
    UnknownStrategyError,
)
from ctxengine.types import ScoredDocument

NAN, INF = float("nan"), float("inf")
PACKAGE_DIR = str(Path(ctxengine.__file__).parent)
DOCS = [
    Document(id="emb", text="Embeddings map text to dense vectors that capture meaning."),
    Document(id="tfidf", text="TF-IDF weighs a term by how rare it is across documents."),
    Document(id="decay", text="Memory decay lets old conversation turns fade unless relevant."),
]


def engine(**options) -> ContextEngine:
    """A cheap engine: BM25, tag re-ranking, lexical memory relevance (no model)."""
    settings = {
        "retrieval": "keyword",
        "rerank": "tags",
        "memory_options": {"relevance": "lexical"},
    }
    settings.update(options)
    return ContextEngine.from_documents(DOCS, **settings)


def assert_raised_by_ctxengine(info: pytest.ExceptionInfo) -> None:
    """The error is ours and was raised by our code, not by numpy, sqlite or a driver."""
    assert isinstance(info.value, CtxEngineError)
    frames = [entry.path for entry in info.traceback]
    assert str(frames[-1]).startswith(PACKAGE_DIR), frames[-1]


class WrongShape:
    """An embedder that lies about its dimension (a misconfigured model)."""

    name, dimension = "liar", 8

    def __init__(
        self, rows: int | None = None, width: int = 8, value: float = 1.0, poison: str = ""
    ):
        self.rows, self.width, self.value, self.poison = rows, width, value, poison

    def embed(self, texts):
        rows = len(texts) if self.rows is None else self.rows
        width = self.width if any(self.poison in t for t in texts) else self.dimension
        return np.full((rows, width), self.value, dtype=np.float32)


class NotARetriever:
    pass


# --- construction ------------------------------------------------------------------------

CONSTRUCTION = [
    ("documents None", lambda: ContextEngine.from_documents(None), InvalidTypeError),
    ("documents int", lambda: ContextEngine.from_documents(5), InvalidTypeError),
    ("documents bytes", lambda: ContextEngine.from_documents([b"bytes"]), InvalidTypeError),
    (
        "document None",
        lambda: ContextEngine.from_documents([None], retrieval="keyword"),
        InvalidTypeError,
    ),
    (
        "document mapping without text",
        lambda: engine().add_documents([{"id": "x"}]),
        InvalidInputError,
    ),
    ("document text int", lambda: Document(text=5), InvalidTypeError),
    ("document id int", lambda: Document(text="x", id=5), InvalidTypeError),
    ("document metadata list", lambda: Document(text="x", metadata=[1]), InvalidTypeError),
    ("document lone surrogate", lambda: Document(text="bad \ud83d text"), InvalidInputError),
    (
        "duplicate ids in one batch",
        lambda: ContextEngine.from_documents(
            [Document("a", id="x"), Document("b", id="x")], retrieval="keyword"
        ),
        DuplicateDocumentError,
    ),
    ("budget None", lambda: engine(token_budget=None), InvalidTypeError),
    ("budget str", lambda: engine(token_budget="800"), InvalidTypeError),
    ("budget float", lambda: engine(token_budget=800.0), InvalidTypeError),
    ("budget nan", lambda: engine(token_budget=NAN), InvalidTypeError),
    ("budget zero", lambda: engine(token_budget=0), InvalidInputError),
    ("budget negative", lambda: engine(token_budget=-800), InvalidInputError),
    (
        "budget below system prompt",
        lambda: engine(token_budget=3, system_prompt="You are helpful and kind."),
        BudgetError,
    ),
    (
        "answer reserve >= budget",
        lambda: engine(token_budget=100, reserve_for_answer=100),
        BudgetError,
    ),
    ("answer reserve negative", lambda: engine(reserve_for_answer=-1), InvalidInputError),
    (
        "answer reserve leaves no room for the system prompt",
        lambda: engine(
            token_budget=20, reserve_for_answer=15, system_prompt="You are helpful and kind."
        ),
        BudgetError,
    ),
    ("system prompt None", lambda: engine(system_prompt=None), InvalidTypeError),
    ("k zero", lambda: engine(k=0), InvalidInputError),
    ("k negative", lambda: engine(k=-3), InvalidInputError),
    ("k float", lambda: engine(k=2.5), InvalidTypeError),
    ("k bool", lambda: engine(k=True), InvalidTypeError),
    ("candidates zero", lambda: engine(candidates=0), InvalidInputError),
    ("history share nan", lambda: engine(max_history_share=NAN), InvalidInputError),
    ("history share inf", lambda: engine(max_history_share=INF), InvalidInputError),
    ("history share > 1", lambda: engine(max_history_share=1.5), InvalidInputError),
    (
        "alpha nan",
        lambda: engine(retrieval="hybrid", embedder="hashing", retriever_options={"alpha": NAN}),
        InvalidInputError,
    ),
    (
        "alpha inf",
        lambda: engine(retrieval="hybrid", embedder="hashing", retriever_options={"alpha": INF}),
        InvalidInputError,
    ),
    ("bm25 k1 nan", lambda: engine(retriever_options={"k1": NAN}), InvalidInputError),
    (
        "relevance weight inf",
        lambda: engine(memory_options={"relevance_weight": INF}),
        InvalidInputError,
    ),
    ("half-life nan", lambda: engine(memory_options={"half_life": NAN}), InvalidInputError),
    ("half-life zero", lambda: engine(memory_options={"half_life": 0}), InvalidInputError),
    (
        "compressor weight nan",
        lambda: engine(compressor_options={"rank_weight": NAN}),
        InvalidInputError,
    ),
    (
        "unknown retriever option",
        lambda: engine(retriever_options={"alhpa": 0.5}),
        ConfigurationError,
    ),
    ("unknown memory option", lambda: engine(memory_options={"halflife": 10}), ConfigurationError),
    (
        "unknown compressor option",
        lambda: engine(compressor_options={"ratio": 0.5}),
        ConfigurationError,
    ),
    ("unknown retrieval", lambda: engine(retrieval="semantic-magic"), UnknownStrategyError),
    ("retrieval None", lambda: engine(retrieval=None), InvalidTypeError),
    ("unknown compression", lambda: engine(compression="zip"), UnknownStrategyError),
    ("compression int", lambda: engine(compression=5), ConfigurationError),
    ("unknown rerank", lambda: engine(rerank="magic"), UnknownStrategyError),
    ("rerank int", lambda: engine(rerank=5), InvalidTypeError),
    (
        "unknown memory relevance",
        lambda: engine(memory_options={"relevance": "vibes"}),
        UnknownStrategyError,
    ),
    (
        "unknown memory_url scheme",
        lambda: engine(memory_url="redis://localhost"),
        UnknownStrategyError,
    ),
    ("memory_url int", lambda: engine(memory_url=5), InvalidTypeError),
    ("memory_url blank", lambda: engine(memory_url="  "), InvalidInputError),
    ("unknown token counter", lambda: engine(token_counter="gpt-17"), UnknownStrategyError),
    ("token counter int", lambda: engine(token_counter=5), ConfigurationError),
    ("embedder int", lambda: engine(retrieval="dense", embedder=5), InvalidTypeError),
    (
        "embedder missing path",
        lambda: engine(retrieval="dense", embedder="/no/such/model"),
        ctxengine.errors.ModelNotFoundError,
    ),
    ("clock not callable", lambda: engine(clock=5), InvalidTypeError),
    (
        "first stage without retrieve()",
        lambda: ContextEngine.from_retriever(NotARetriever()),
        InvalidTypeError,
    ),
    ("first stage int", lambda: ContextEngine.from_retriever(5), InvalidTypeError),
    ("reranker without rerank()", lambda: ContextEngine(None, reranker=object()), InvalidTypeError),
    ("retriever without compressor", lambda: ContextEngine(engine().retriever), ConfigurationError),
    (
        "embedder of another dimension for documents",
        lambda: ContextEngine.from_documents(
            DOCS, retrieval="dense", embedder=WrongShape(width=5, poison="")
        ),
        EmbeddingMismatchError,
    ),
    (
        "embedder returning too few rows",
        lambda: ContextEngine.from_documents(DOCS, retrieval="dense", embedder=WrongShape(rows=1)),
        EmbeddingMismatchError,
    ),
    (
        "embedder returning NaN",
        lambda: ContextEngine.from_documents(
            DOCS, retrieval="hybrid", embedder=WrongShape(value=NAN)
        ),
        EmbeddingMismatchError,
    ),
]


@pytest.mark.parametrize("case, error", [pytest.param(c, e, id=n) for n, c, e in CONSTRUCTION])
def test_construction_rejects_bad_input(case, error):
    with pytest.raises(error) as info:
        case()
    assert_raised_by_ctxengine(info)


# --- calls on a working engine -----------------------------------------------------------


@pytest.fixture(scope="module")
def shared():
    return engine()


CALLS = [
    ("build query None", lambda e: e.build(None), InvalidTypeError),
    ("build query int", lambda e: e.build(42), InvalidTypeError),
    ("build query bytes", lambda e: e.build(b"embeddings"), InvalidTypeError),
    ("build query empty", lambda e: e.build(""), InvalidInputError),
    ("build query blank", lambda e: e.build(" \n\t"), InvalidInputError),
    ("build query lone surrogate", lambda e: e.build("emb\udc80eddings"), InvalidInputError),
    ("build k zero", lambda e: e.build("embeddings", k=0), InvalidInputError),
    ("build k negative", lambda e: e.build("embeddings", k=-1), InvalidInputError),
    ("build k nan", lambda e: e.build("embeddings", k=NAN), InvalidTypeError),
    ("build session None", lambda e: e.build("embeddings", session_id=None), InvalidTypeError),
    ("build session empty", lambda e: e.build("embeddings", session_id=""), InvalidInputError),
    ("build now nan", lambda e: e.build("embeddings", now=NAN), InvalidInputError),
    ("build now inf", lambda e: e.build("embeddings", now=-INF), InvalidInputError),
    ("build now str", lambda e: e.build("embeddings", now="yesterday"), InvalidTypeError),
    ("build touch str", lambda e: e.build("embeddings", touch="yes"), InvalidTypeError),
    ("abuild query None", lambda e: asyncio.run(e.abuild(None)), InvalidTypeError),
    ("retrieve query None", lambda e: e.retrieve(None), InvalidTypeError),
    ("retrieve k zero", lambda e: e.retrieve("embeddings", k=0), InvalidInputError),
    ("retrieve k None", lambda e: e.retrieve("embeddings", k=None), InvalidTypeError),
    (
        "aretrieve k negative",
        lambda e: asyncio.run(e.aretrieve("embeddings", k=-2)),
        InvalidInputError,
    ),
    ("remember role None", lambda e: e.remember(None, "hello there"), InvalidTypeError),
    ("remember role empty", lambda e: e.remember("", "hello there"), InvalidInputError),
    ("remember text None", lambda e: e.remember("user", None), InvalidTypeError),
    ("remember text int", lambda e: e.remember("user", 42), InvalidTypeError),
    ("remember text blank", lambda e: e.remember("user", "   "), InvalidInputError),
    (
        "remember text lone surrogate",
        lambda e: e.remember("user", "hi \ud800 there"),
        InvalidInputError,
    ),
    (
        "remember session None",
        lambda e: e.remember("user", "hello there", session_id=None),
        InvalidTypeError,
    ),
    (
        "remember timestamp nan",
        lambda e: e.remember("user", "hello there", timestamp=NAN),
        InvalidInputError,
    ),
    (
        "remember timestamp inf",
        lambda e: e.remember("user", "hello there", timestamp=INF),
        InvalidInputError,
    ),
    (
        "remember timestamp str",
        lambda e: e.remember("user", "hello there", timestamp="now"),
        InvalidTypeError,
    ),
    (
        "remember importance nan",
        lambda e: e.remember("user", "hello there", importance=NAN),
        InvalidInputError,
    ),
    (
        "remember importance inf",
        lambda e: e.remember("user", "hello there", importance=INF),
        InvalidInputError,
    ),
    (
        "remember importance negative",
        lambda e: e.remember("user", "hello there", importance=-1.0),
        InvalidInputError,
    ),
    (
        "remember metadata list",
        lambda e: e.remember("user", "hello there", metadata=[("a", 1)]),
        InvalidTypeError,
    ),
    ("recall max_tokens negative", lambda e: e.recall("q", max_tokens=-1), InvalidInputError),
    ("recall max_tokens nan", lambda e: e.recall("q", max_tokens=NAN), InvalidTypeError),
    ("recall query int", lambda e: e.recall(5), InvalidTypeError),
    ("fit_documents None", lambda e: e.fit_documents("q", None), InvalidTypeError),
    ("fit_documents str", lambda e: e.fit_documents("q", "a document"), InvalidTypeError),
    ("fit_documents [None]", lambda e: e.fit_documents("q", [None]), InvalidTypeError),
    (
        "fit_documents max_tokens negative",
        lambda e: e.fit_documents("q", ["text"], max_tokens=-5),
        InvalidInputError,
    ),
    ("fit_documents k zero", lambda e: e.fit_documents("q", ["text"], k=0), InvalidInputError),
    (
        "fit_documents headers str",
        lambda e: e.fit_documents("q", ["text"], headers="no"),
        InvalidTypeError,
    ),
    ("add_documents None", lambda e: e.add_documents(None), InvalidTypeError),
    ("add_documents [None]", lambda e: e.add_documents([None]), InvalidTypeError),
    (
        "add_documents existing id",
        lambda e: e.add_documents([Document("new text", id="emb")]),
        DuplicateDocumentError,
    ),
    ("remove unknown id", lambda e: e.remove_documents(["no-such-id"]), DocumentNotFoundError),
    ("remove None", lambda e: e.remove_documents(None), InvalidTypeError),
    ("save None", lambda e: e.save(None), InvalidTypeError),
    ("save int", lambda e: e.save(5), InvalidTypeError),
    ("load None", lambda e: ContextEngine.load(None), InvalidTypeError),
]


@pytest.mark.parametrize("case, error", [pytest.param(c, e, id=n) for n, c, e in CALLS])
def test_calls_reject_bad_input(shared, case, error):
    with pytest.raises(error) as info:
        case(shared)
    assert_raised_by_ctxengine(info)


def test_a_query_embedding_of_another_dimension_is_a_mismatch():
    poisoned = ContextEngine.from_documents(
        DOCS, retrieval="dense", embedder=WrongShape(width=5, poison="POISON")
    )
    with pytest.raises(EmbeddingMismatchError) as info:
        poisoned.build("POISON query")
    assert_raised_by_ctxengine(info)
    assert poisoned.build("a normal query").documents  # the engine still works


# --- graceful results (documented in the README table) -------------------------------------


def test_graceful_results(shared, tmp_path):
    # an empty or whitespace document is indexed but never put in a packet
    blank = ContextEngine.from_documents(
        ["", "   ", "Embeddings are vectors."], retrieval="keyword", rerank="tags"
    )
    assert [d.text for d in blank.build("embeddings vectors").documents] == [
        "Embeddings are vectors."
    ]
    # an empty system prompt is allowed; k above the corpus size returns every match once
    packet = engine(system_prompt="", k=50).build("embeddings tf-idf decay")
    assert (
        "system_prompt" not in packet.usage
        and len(packet.documents) == len({d.id for d in packet.documents}) == 3
    )
    # a question longer than the budget is cut to fit, and the packet says so
    small = engine(token_budget=60, system_prompt="Be brief.")
    packet = small.build("embeddings " * 500)
    assert packet.tokens_used <= 60 and any("question" in note for note in packet.notes)
    # a budget exactly the system prompt's size gives a packet with the system prompt only
    prompt = "Be brief."
    exact = engine(token_budget=shared.token_counter.count(prompt), system_prompt=prompt)
    assert exact.build("embeddings").text == prompt
    # an unknown session has no history; the empty index retrieves nothing
    assert shared.build("embeddings", session_id="never-seen").memory_turns == []
    assert ContextEngine.from_documents([], retrieval="keyword").build("anything").documents == []
    # repeated content is dropped by dedup: remember returns None
    mem = engine()
    assert mem.remember("user", "Please explain how memory decay works in agents.") is not None
    assert mem.remember("user", "Please explain how memory decay works in agents.") is None
    # fit_documents keeps given documents that share an id as separate documents
    fitted = shared.fit_documents(
        "embeddings",
        [Document("Embeddings are vectors.", id="x"), Document("TF-IDF counts terms.", id="x")],
    )
    assert len(fitted) == 2

    # NaN and infinite scores from a foreign first stage count as "no information"
    class Scores:
        def retrieve(self, query, k):
            return [
                ScoredDocument(DOCS[0], NAN),
                ScoredDocument(DOCS[1], INF),
                ScoredDocument(DOCS[2], 1.0),
            ]

    packet = ContextEngine.from_retriever(Scores(), rerank="tags").build("embeddings")
    assert {d.id for d in packet.documents} == {"emb", "tfidf", "decay"}
    assert all(math.isfinite(d.score) for d in packet.documents)


def test_nul_characters_are_kept_in_process_and_in_sqlite(tmp_path):
    for url in (None, f"sqlite:///{tmp_path / 'chat.db'}"):
        e = engine(memory_url=url)
        stored = e.remember("user", "a NUL \x00 inside a turn", session_id="nul")
        assert e.memory.turns("nul")[0].content == stored.content == "a NUL \x00 inside a turn"


@pytest.mark.postgres
def test_postgres_refuses_nul_characters_with_a_store_error_and_keeps_the_rest(pg_url):
    e = engine(memory_url=pg_url)
    e.remember("user", "a turn before the bad one", session_id="nul")
    with pytest.raises(StoreError, match="NUL") as info:
        e.remember("user", "a NUL \x00 inside a turn", session_id="nul")
    assert_raised_by_ctxengine(info)
    assert [t.content for t in e.memory.turns("nul")] == ["a turn before the bad one"]


# --- nothing already stored is lost ---------------------------------------------------------

BAD_REMEMBER = [
    lambda e: e.remember(None, "text"),
    lambda e: e.remember("user", None),
    lambda e: e.remember("user", ""),
    lambda e: e.remember("user", "bad \udfff surrogate"),
    lambda e: e.remember("user", "ok text", session_id=""),
    lambda e: e.remember("user", "ok text", timestamp=NAN),
    lambda e: e.remember("user", "ok text", importance=INF),
    lambda e: e.remember("user", "ok text", metadata="not a mapping"),
]


def _snapshot(e: ContextEngine, session: str) -> list[tuple]:
    return [
        (t.id, t.seq, t.role, t.content, t.timestamp, dict(t.metadata))
        for t in e.memory.turns(session)
    ]


def test_rejected_turns_leave_stored_turns_untouched(memory_url):
    e = engine(memory_url=memory_url)
    for i in range(5):
        e.remember(
            "user" if i % 2 == 0 else "assistant",
            f"stored turn number {i} about topic {i}",
            session_id="keep",
            metadata={"i": i},
        )
    before = _snapshot(e, "keep")
    for bad in BAD_REMEMBER:
        with pytest.raises(CtxEngineError):
            bad(e)
    if memory_url is not None:  # persistent stores also refuse what they cannot store
        for metadata in ({"x": NAN}, {"x": object()}, {"x": "\ud800"}):
            with pytest.raises(InvalidInputError):
                e.remember("user", "ok text here now", session_id="keep", metadata=metadata)
    assert _snapshot(e, "keep") == before
    added = e.remember("user", "a good turn after the bad ones", session_id="keep")
    assert added is not None and added.seq == 5  # no position was burnt by a failed add


def test_rejected_documents_leave_the_index_untouched():
    e = ContextEngine.from_documents(
        DOCS, retrieval="dense", embedder=WrongShape(width=5, poison="POISON"), rerank="tags"
    )
    before = [(d.id, d.score) for d in e.retrieve("meaning of vectors", k=3)]
    bad_batches = [
        [
            Document("fresh text", id="new"),
            Document("again", id="new"),
        ],  # duplicate within the batch
        [Document("fresh text", id="new"), Document("clash", id="emb")],  # clashes with the index
        [
            Document("fresh text", id="new"),
            Document("POISON text", id="p"),
        ],  # embedder fails midway
        [Document("fresh text", id="new"), None],
    ]
    for batch in bad_batches:
        with pytest.raises(CtxEngineError):
            e.add_documents(batch)
    with pytest.raises(DocumentNotFoundError):
        e.remove_documents(["emb", "no-such-id"])  # all or nothing
    assert len(e.retriever) == 3 and "new" not in e.retriever
    assert [(d.id, d.score) for d in e.retrieve("meaning of vectors", k=3)] == before


# --- files: index directories and SQLite databases ------------------------------------------


def _index(path: Path) -> None:
    ContextEngine.from_documents(DOCS, embedder=HashingEmbedder(64)).save(path)


def _resign(path: Path) -> None:
    """Make the manifest's checksums match again, so only the content check can catch it."""
    import hashlib

    manifest = json.loads((path / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))


def _edit_manifest(path: Path, **changes) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


INDEX_DAMAGE = {
    "manifest binary": lambda p: (p / "manifest.json").write_bytes(os.urandom(64) + b"\xff"),
    "manifest array": lambda p: (p / "manifest.json").write_text("[1, 2]"),
    "embedder not an object": lambda p: _edit_manifest(p, embedder=[64]),
    "retriever not an object": lambda p: _edit_manifest(p, retriever=["HybridRetriever"]),
    "unknown retriever parameters": lambda p: _edit_manifest(
        p, retriever={"class": "HybridRetriever", "mode": "magic"}
    ),
    "file outside the index": lambda p: _edit_manifest(
        p, files={"documents.jsonl": "", "tokens.jsonl": "", "../x": ""}
    ),
    "documents not JSON (re-signed)": lambda p: (
        (p / "documents.jsonl").write_text("{oops\n" * 3),
        _resign(p),
    ),
    "documents binary (re-signed)": lambda p: (
        (p / "documents.jsonl").write_bytes(os.urandom(300) + b"\xff"),
        _resign(p),
    ),
    "duplicate document ids (re-signed)": lambda p: (
        (p / "documents.jsonl").write_text(
            "".join(json.dumps({"id": "same", "text": f"t{i}"}) + "\n" for i in range(3))
        ),
        _resign(p),
    ),
    "tokens not lists (re-signed)": lambda p: (
        (p / "tokens.jsonl").write_text('"abc"\n' * 3),
        _resign(p),
    ),
    "vectors NaN (re-signed)": lambda p: (
        np.save(p / "embeddings.npy", np.full((3, 64), NAN, np.float32)),
        _resign(p),
    ),
    "vectors 3-D (re-signed)": lambda p: (
        np.save(p / "embeddings.npy", np.ones((3, 64, 1), np.float32)),
        _resign(p),
    ),
    "a file, not a directory": lambda p: (
        __import__("shutil").rmtree(p),
        p.write_text("not an index"),
    ),
}


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE.values()), ids=list(INDEX_DAMAGE))
def test_corrupt_or_foreign_index_files_are_format_errors(tmp_path, damage):
    """Beyond test_persist's cases: damage that survives the checksums (a re-signed
    manifest) and manifests of the wrong shape."""
    path = tmp_path / "idx"
    _index(path)
    damage(path)
    with pytest.raises(IndexFormatError) as info:
        ContextEngine.load(path)
    assert_raised_by_ctxengine(info)


def test_loading_with_an_embedder_of_another_dimension_is_a_mismatch(tmp_path):
    _index(tmp_path / "idx")
    with pytest.raises(EmbeddingMismatchError) as info:
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(128))
    assert_raised_by_ctxengine(info)


def test_a_failed_save_leaves_the_previous_index_in_place(tmp_path):
    path = tmp_path / "idx"
    _index(path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    e = ContextEngine.from_documents(
        [Document("text", id="a", metadata={"when": object()})], retrieval="keyword"
    )
    with pytest.raises(InvalidInputError):
        e.save(path)
    e = ContextEngine.from_documents(
        [Document("text", id="a", metadata={"bad": "\ud800"})], retrieval="keyword"
    )
    with pytest.raises(InvalidInputError):
        e.save(path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no staging directory left


def test_a_corrupt_sqlite_file_is_a_store_error_and_is_not_modified(tmp_path):
    """At open (header damaged, see test_stores for more) and later (pages damaged after
    a clean open): a StoreError from every call, never a bare sqlite3 error."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    before = garbage.read_bytes()
    with pytest.raises(StoreError) as info:
        engine(memory_url=f"sqlite:///{garbage}")
    assert_raised_by_ctxengine(info)
    assert garbage.read_bytes() == before

    path = tmp_path / "chat.db"
    e = engine(memory_url=f"sqlite:///{path}")
    for i in range(200):
        e.remember(
            "user",
            f"turn {i} with enough padding to fill several pages " * 3,
            session_id=f"s{i % 3}",
        )
    e.memory.store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    data[8192:16384] = b"\xab" * 8192  # pages 3-4: the turns table and its index
    path.write_bytes(bytes(data))
    reopened = engine(memory_url=f"sqlite:///{path}")
    for call in (
        lambda: reopened.build("turn", session_id="s1"),
        lambda: reopened.remember("user", "one more turn here", session_id="s1"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        assert_raised_by_ctxengine(info)
