"""Where users wait, measured: query-time model calls, the engine's overhead over an
external first stage, and the cost of adding one document to a live index.

Sections (each prints a table; medians over the queries, the peer measured in the same run):

* ``keyword build``: ``retrieval="keyword"`` with the default re-ranking on new queries
  (questions never seen before, so nothing is cached): now (dedup by the lexical test) vs
  the former behaviour (``MMRReranker(similarity="embedding")``: MiniLM embeds the
  candidates), and how many texts reached the model per build.
* ``external first stage``: ``ContextEngine.from_retriever`` over a stub first stage that
  returns 30 *new* texts per query (SciFact abstracts, or synthetic ones without data, each
  made unique), with and without the vectors a store returns with its hits; the engine's
  overhead is ``total - retrieve`` (everything after the first stage) with default settings;
  *build CPU ms* is the whole build's process time (what a loaded machine does not inflate).
* ``upsert``: one document upserted into a 10,000-document hybrid index, then the next
  ``build()``, against the steady-state ``build()`` of the same engine. The vectors come from
  :class:`~ctxengine.embeddings.HashingEmbedder`, so the figures are the index's own work,
  not the model's (the one new document's embedding is the same in every design).
* ``query once``: a hybrid ``build()`` with history and semantic compression on a new
  query: texts the model sees (the query once, nothing else).

    python -m benchmarks.speed [--quick] [--queries 40] [--data PATH] [--only external ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
import benchmarks  # noqa: F401  the shared environment, before ctxengine loads

sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

import numpy as np

from ctxengine import ContextEngine
from ctxengine.embeddings import (
    CachedEmbedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    model_usage,
)
from ctxengine.rerank import MMRReranker, TagReranker
from ctxengine.tokens import TiktokenCounter
from ctxengine.types import Document, ScoredDocument


def _ms(values: Sequence[float]) -> float:
    return 1000.0 * statistics.median(values)


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n## {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")


def _corpus(data: str | None, size: int) -> tuple[list[str], list[str]]:
    """Texts and queries: SciFact abstracts and claims when the data is there, else synthetic."""
    try:
        from benchmarks.data import data_root, load_scifact_corpus, load_scifact_queries

        # ``data`` is the data root (as every benchmark's --data); the loaders take its
        # scifact folder (given the root they found no file and fell back to synthetic text)
        root = data_root(data)
        if root is None:
            raise FileNotFoundError("no benchmark data")
        corpus = load_scifact_corpus(root / "scifact")
        queries, _ = load_scifact_queries(root / "scifact")
        texts = [doc.document_text for doc in corpus]
        claims = list(queries.values())
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        words = [f"term{i}" for i in range(3000)]
        texts = [" ".join(rng.choice(words, 120)) + "." for _ in range(2000)]
        claims = [" ".join(rng.choice(words, 8)) for _ in range(400)]
    while len(texts) < size:  # repeat with a marker: every document stays unique text
        texts = texts + [f"{t} #{len(texts) + i}" for i, t in enumerate(texts[: size - len(texts)])]
    return texts[:size], claims


def _timed_builds(
    engine: ContextEngine, queries: Sequence[str], stage: NewTextsFirstStage | None = None
) -> tuple[dict[str, list[float]], int]:
    """Per-build timings (``total``, ``overhead`` = total - retrieve, and each stage) and how
    many texts reached an embedding model; with the ``stage`` the engine wraps, also
    ``overhead_cpu``: the build's process time less the first stage's own."""
    timings: dict[str, list[float]] = {}
    texts = 0
    for query in queries:
        before = model_usage()
        stage_cpu = stage.cpu if stage is not None else 0.0
        started = time.process_time()
        packet = engine.build(query)
        cpu = time.process_time() - started
        texts += (model_usage() - before).texts
        extra = {} if stage is None else {"overhead_cpu": cpu - (stage.cpu - stage_cpu)}
        for name, value in {
            **packet.timings,
            "overhead": packet.timings["total"] - packet.timings["retrieve"],
            "cpu": cpu,
            **extra,
        }.items():
            timings.setdefault(name, []).append(value)
    return timings, texts


def keyword_build(data: str | None, queries: Sequence[str], model: bool) -> None:
    texts, _ = _corpus(data, 1000)
    rows = []
    variants: list[tuple[str, object]] = [("default (tags, dedup by vectors/lexical)", "default")]
    if model:
        # no disk cache here: the shared one would answer for candidates an earlier run saw
        minilm = CachedEmbedder(SentenceTransformerEmbedder())
        former = [TagReranker(), MMRReranker(minilm, lambda_=1.0, similarity="embedding")]
        variants.append(("former: dedup embeds candidates (MiniLM, no disk cache)", former))
    for label, rerank in variants:
        engine = ContextEngine.from_documents(texts, retrieval="keyword", rerank=rerank)
        engine.build("warm-up question")
        # every variant sees questions it never saw (the model's cache would hide the call)
        fresh = [f"{q} (variant {len(rows)})" for q in queries]
        timings, model_texts = _timed_builds(engine, fresh)
        rows.append((label, _ms(timings["total"]), model_texts / len(fresh)))
    _table(
        "keyword-mode build(), 1,000 SciFact abstracts, new queries",
        ("re-ranking", "median ms", "texts embedded / build"),
        rows,
    )


class NewTextsFirstStage:
    """An external first stage returning ``k`` texts it never returned before, optionally
    with their vectors (as a vector store does when asked for embeddings)."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray | None, tag: str = "") -> None:
        # ``tag`` makes the texts of one stage differ from another's (a compressor's memo
        # of documents must not answer for texts an earlier variant returned; their
        # sentences are the same: each variant's engine has a token counter of its own).
        self.texts, self.vectors, self.calls, self.tag = list(texts), vectors, 0, tag
        self.cpu = 0.0  # process time spent in retrieve (not the engine's overhead)

    def retrieve(self, query: str, k: int = 10) -> list[ScoredDocument]:
        started = time.process_time()
        try:
            return self._hits(k)
        finally:
            self.cpu += time.process_time() - started

    def _hits(self, k: int) -> list[ScoredDocument]:
        self.calls += 1
        start = (self.calls * k) % max(1, len(self.texts) - k)
        hits = []
        for rank, i in enumerate(range(start, start + k)):
            vector = None if self.vectors is None else self.vectors[i]
            document = Document(
                f"{self.texts[i]} [{self.tag}{self.calls}]", id=f"{self.tag}{self.calls}-{i}"
            )
            hits.append(
                ScoredDocument(
                    document, 1.0 - rank / k, {"first_stage": 1.0 - rank / k}, vector=vector
                )
            )
        return hits


def langchain_peer(texts: Sequence[str], vectors: np.ndarray, queries: Sequence[str]) -> tuple:
    """The peer on the same stream of hits: LangChain's ``EmbeddingsRedundantFilter`` over
    the vectors the hits carry (its near-duplicate removal, no model call), the first five
    kept, and one tiktoken count of their joined text (no compression). Median wall ms and
    process ms per query, the first stage's own time excluded."""
    from langchain_community.document_transformers import EmbeddingsRedundantFilter
    from langchain_community.document_transformers.embeddings_redundant_filter import (
        _DocumentWithState,
    )
    from langchain_core.embeddings import FakeEmbeddings

    from ctxengine.tokens import default_token_counter

    counter = default_token_counter()
    dedup = EmbeddingsRedundantFilter(embeddings=FakeEmbeddings(size=vectors.shape[1]))
    stage = NewTextsFirstStage(texts, vectors, tag="peer")
    walls, cpus = [], []
    for query in ["warm-up question", *queries]:
        hits = stage.retrieve(query, 30)
        wall, cpu = time.perf_counter(), time.process_time()
        docs = [
            _DocumentWithState(
                page_content=h.document.text,
                metadata={"id": h.id},
                state={"embedded_doc": h.vector.tolist()},  # type: ignore[union-attr]
            )
            for h in hits
        ]
        kept = list(dedup.transform_documents(docs))[:5]
        counter.count("\n\n".join(d.page_content for d in kept))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return _ms(walls[1:]), _ms(cpus[1:])


def external_stage(data: str | None, queries: Sequence[str]) -> list[dict[str, object]]:
    texts, _ = _corpus(data, 3000)
    vectors = HashingEmbedder(384).embed(
        texts
    )  # real vectors of the texts; the model does not matter here
    rows: list[tuple[object, ...]] = []
    for label, carried in (
        ("hits carry vectors", vectors),
        ("hits without vectors (lexical dedup)", None),
    ):
        stage = NewTextsFirstStage(texts, carried, tag=label)
        # A counter of its own (the default encoding): the variants return the same
        # abstracts (tagged apart), and a counter remembers sentence counts, so a shared
        # one would answer the second variant's sentences from the first's.
        engine = ContextEngine.from_retriever(stage, token_counter=TiktokenCounter())
        engine.build("warm-up question")
        timings, model_texts = _timed_builds(engine, queries, stage)
        stages = [_ms(timings[name]) for name in ("rerank", "compress", "assemble")]
        row = (label, _ms(timings["overhead"]), _ms(timings["overhead_cpu"]), *stages)
        rows.append((*row, _ms(timings["cpu"]), model_texts / len(queries)))
    wall, cpu = langchain_peer(texts, vectors, queries)
    rows.append(
        ("peer: LangChain EmbeddingsRedundantFilter (carried vectors) + one count", wall, cpu)
        + ("-",) * 3
        + (cpu, 0.0)
    )
    header = (
        "first stage",
        "overhead ms",
        "overhead CPU ms",
        "rerank ms",
        "compress ms",
        "assemble ms",
        "build CPU ms",
        "texts embedded / build",
    )
    _table(
        "engine overhead over an external first stage (30 new candidates, default settings)",
        header,
        rows,
    )
    print(
        f"\noverhead / peer (CPU, hits carry vectors): {float(rows[0][2]) / cpu:.1f}x; "  # type: ignore[arg-type]
        "the peer removes near-duplicates and counts, the engine also compresses"
    )
    return [dict(zip(header, row)) for row in rows]


def upsert(data: str | None, queries: Sequence[str], size: int) -> None:
    texts, _ = _corpus(data, size + len(queries))
    embedder = CachedEmbedder(HashingEmbedder(384))
    engine = ContextEngine.from_documents(texts[:size], embedder=embedder, rerank="tags")
    engine.build("warm-up question")
    steady = [engine.build(q).timings["total"] for q in queries]
    ups, nexts = [], []
    for i, query in enumerate(queries):
        doc = {"id": f"new-{i}", "text": texts[size + i]}
        embedder.embed([doc["text"]])  # the one document's vector: the same in every design
        started = time.perf_counter()
        engine.upsert_documents([doc])
        ups.append(time.perf_counter() - started)
        nexts.append(engine.build(query).timings["total"])
    _table(
        f"upsert one document into {size:,} (hybrid, vectors precomputed)",
        ("step", "median ms"),
        [
            ("upsert_documents([doc])", _ms(ups)),
            ("next build()", _ms(nexts)),
            ("steady-state build()", _ms(steady)),
            ("next / steady", _ms(nexts) / _ms(steady)),
        ],
    )


def query_once(data: str | None, queries: Sequence[str]) -> None:
    texts, _ = _corpus(data, 500)
    engine = ContextEngine.from_documents(texts, compression="semantic")
    engine.remember("user", "I read about vaccines and the immune response last week.")
    engine.build("warm-up question about vaccines")
    fresh = [f"{q} (query-once)" for q in queries]
    timings, model_texts = _timed_builds(engine, fresh)
    totals = timings["total"]
    _table(
        "hybrid build() with history and semantic compression, new queries",
        ("figure", "value"),
        [("texts embedded / build", model_texts / len(fresh)), ("median ms", _ms(totals))],
    )


SECTIONS: dict[str, Callable[..., None]] = {}


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    """Prints every table; returns the external-stage rows (the harness's table)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small slice (CI smoke; figures not comparable)"
    )
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--data", default=os.environ.get("CTXENGINE_DATA"))
    parser.add_argument(
        "--only",
        choices=("keyword", "external", "upsert", "once"),
        action="append",
        help="run these tables only (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    n = 5 if args.quick else args.queries
    _, claims = _corpus(args.data, 10)
    queries = claims[:n]
    wanted = set(args.only or ("keyword", "external", "upsert", "once"))
    if "keyword" in wanted:
        keyword_build(args.data, queries, model=not args.quick)
    overhead: list[dict[str, object]] = []
    if "external" in wanted:
        overhead = external_stage(args.data, queries)
    if "upsert" in wanted:
        upsert(args.data, queries, 1000 if args.quick else 10_000)
    if "once" in wanted:
        query_once(args.data, queries[: min(n, 10)])
    return overhead


if __name__ == "__main__":
    main()
