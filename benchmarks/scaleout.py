"""Per-query overhead of ctxengine's stages on top of a Chroma server holding 100k documents.

The first stage is a real Chroma server (``.ci/chroma.sh``) reached over HTTP through
LangChain's ``Chroma`` vector store, wrapped by ``langchain_ctxengine.LangChainFirstStage``
into ``ContextEngine.from_retriever``: what a deployment whose documents do not fit one
process runs. For each query the table gives the store's own query time (``collection.query``
with a precomputed query vector, the same ``n_results`` as the engine asks for) measured
on the same query as the engine's ``build``, before it and after it on alternate queries
(the server answers a vector it has just seen faster), then each of the engine's stages as ``packet.timings``
reports them, and the engine's overhead: ``build`` total minus its first stage.

Documents: real text, SciFact abstract sentences and LoCoMo turns, then windows of 2, 3...
consecutive sentences/turns, each with its own id, until ``--docs`` are reached (distinct
texts, no copies; units of fewer than four words, such as the stray "." sentences of a few
abstracts, are left out). Embeddings: the bundled MiniLM embeds ~30 texts/s on this machine's two
shared cores (an hour for 100k), so the vectors are ctxengine's deterministic
``HashingEmbedder`` (384 dimensions, MiniLM's size, so the server's HNSW index does the same
work), inserted precomputed (``embeddings=``) and used for the queries and for the engine's
own stages alike. Retrieval quality is not measured here; speed is. The collection is kept
between runs (``ctxengine_bench_<docs>_w<window>_<dimension>``), so only the first run pays the insert.
The session holds ``--turns`` LoCoMo turns, so the memory stage recalls from a real history.

    python -m benchmarks.scaleout [--docs 100000] [--queries 200] [--window 1] [--quick] [--chroma-url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

from benchmarks.data import load_locomo, load_scifact_queries, load_scifact_sentences
from ctxengine import ContextEngine
from ctxengine.embeddings import HashingEmbedder

CHROMA_ENV = "CTXENGINE_TEST_CHROMA_URL"
# Some SciFact abstracts are split into stray "." sentences; a unit needs this many words.
MIN_WORDS = 4


def corpus(count: int, window: int = 1) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``count`` distinct real texts ``(id, text, metadata)``: every window of ``window``
    consecutive SciFact sentences or LoCoMo turns (1: each alone), then of ``window + 1``..."""
    abstracts = [(doc_id, sentences) for doc_id, (_, sentences) in load_scifact_sentences().items()]
    conversations = [
        (conv.sample_id, [turn.document_text for turn in conv.turns]) for conv in load_locomo()
    ]
    produced = 0
    width = window
    while True:
        for source, groups in (("scifact", abstracts), ("locomo", conversations)):
            for group_id, units in groups:
                for start in range(len(units) - width + 1):
                    text = " ".join(units[start : start + width])
                    if len(re.findall(r"[^\W\d_]{2,}", text)) < MIN_WORDS:
                        continue
                    meta = {"source": source, "group": str(group_id), "window": width}
                    yield f"{source}-{group_id}-{start}-w{width}", text, meta
                    produced += 1
                    if produced == count:
                        return
        width += 1


def open_collection(
    client: Any, count: int, window: int, embedder: HashingEmbedder
) -> tuple[Any, float | None]:
    """The benchmark collection holding ``count`` documents (built when missing or partial),
    and the insert rate in documents/s when this call built it."""
    name = f"ctxengine_bench_{count}_w{window}_{embedder.dimension}"
    existing = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    if name in existing:
        collection = client.get_collection(name)
        if collection.count() == count:
            return collection, None
        client.delete_collection(name)
    collection = client.create_collection(name)
    batch = min(2000, client.get_max_batch_size())
    started = time.perf_counter()
    rows = list(corpus(count, window))
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} texts available for --docs {count}")
    for offset in range(0, count, batch):
        part = rows[offset : offset + batch]
        collection.add(
            ids=[row[0] for row in part],
            documents=[row[1] for row in part],
            metadatas=[row[2] for row in part],
            embeddings=embedder.embed([row[1] for row in part]),
        )
        done = offset + len(part)
        if done % 20000 < batch or done == count:
            print(f"  inserted {done:,} / {count:,}", flush=True)
    return collection, count / (time.perf_counter() - started)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="SciFact train claims")
    parser.add_argument("--candidates", type=int, default=30, help="what the store hands over")
    parser.add_argument("--k", type=int, default=5, help="documents the engine keeps")
    parser.add_argument("--token-budget", type=int, default=800)
    parser.add_argument("--turns", type=int, default=200, help="LoCoMo turns in the session")
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument(
        "--window", type=int, default=1, help="sentences/turns per document (then one more...)"
    )
    parser.add_argument("--chroma-url", default=os.environ.get(CHROMA_ENV))
    parser.add_argument("--quick", action="store_true", help="5,000 documents, 40 queries")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.queries = 5_000, 40
    if not args.chroma_url:
        print(
            f'no Chroma server: set {CHROMA_ENV} (export {CHROMA_ENV}="$(.ci/chroma.sh)") or --chroma-url'
        )
        return []

    import chromadb
    from langchain_chroma import Chroma

    from langchain_ctxengine import ContextEngineEmbeddings, LangChainFirstStage

    url = urlparse(args.chroma_url)
    client = chromadb.HttpClient(
        host=url.hostname,
        port=url.port,
        settings=chromadb.config.Settings(anonymized_telemetry=False),
    )
    embedder = HashingEmbedder(args.dimension)
    print(
        f"chromadb {chromadb.__version__} server at {args.chroma_url}: {args.docs:,} documents",
        flush=True,
    )
    collection, rate = open_collection(client, args.docs, args.window, embedder)
    if rate is not None:
        print(f"  built the collection: {rate:,.0f} documents/s (HashingEmbedder + insert)")

    store = Chroma(
        client=client,
        collection_name=collection.name,
        embedding_function=ContextEngineEmbeddings(embedder),
        create_collection_if_not_exists=False,
    )
    first_stage = LangChainFirstStage(store.as_retriever(search_kwargs={"k": args.candidates}))
    engine = ContextEngine.from_retriever(
        first_stage,
        embedder=embedder,
        token_budget=args.token_budget,
        k=args.k,
        candidates=args.candidates,
    )
    turns = [turn for conv in load_locomo() for turn in conv.turns][: args.turns]
    for index, turn in enumerate(turns):
        engine.remember(
            "user" if index % 2 == 0 else "assistant", turn.document_text, session_id="bench"
        )

    queries = list(load_scifact_queries()[0].values())
    queries = [queries[i % len(queries)] for i in range(args.queries + 5)]
    store_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    compressed = 0
    for number, query in enumerate(queries):
        vector = embedder.embed([query])
        # The server answers a vector faster the second time it sees it, so the store's own
        # query and the engine's go first on alternate queries.
        if number % 2:
            packet = engine.build(query, session_id="bench")
        started = time.perf_counter()
        collection.query(query_embeddings=vector, n_results=args.candidates)
        store_time = time.perf_counter() - started
        if not number % 2:
            packet = engine.build(query, session_id="bench")
        assert packet.tokens_used <= args.token_budget, "the budget did not hold"
        if number < 5:  # warm-up: connection pool, first-call imports
            continue
        store_ms.append(store_time * 1000)
        compressed += any(doc.compressed for doc in packet.documents)
        timings = dict(packet.timings)
        timings["overhead"] = timings["total"] - timings.get("retrieve", 0.0)
        # What build() does between its timed stages (the budget ledger: system prompt and
        # question reserved and counted), so the stage rows add up to the overhead.
        timed = sum(v for key, v in packet.timings.items() if key not in ("retrieve", "total"))
        timings["untimed"] = timings["overhead"] - timed
        for stage, seconds in timings.items():
            stages.setdefault(stage, []).append(seconds * 1000)

    store_median = statistics.median(store_ms)
    label = {
        "retrieve": "first stage: LangChain Chroma retriever (embed + HTTP query)",
        "untimed": "rest of build (budget ledger, question; not in timings)",
        "overhead": "ctxengine overhead (build total - first stage)",
        "total": "engine.build total",
    }
    rows = [
        {
            "what": f"Chroma collection.query (HTTP, n_results={args.candidates})",
            "median ms": store_median,
            "p95 ms": percentile(store_ms, 0.95),
            "x store": 1.0,
        }
    ]
    order = [
        "retrieve",
        *(s for s in stages if s not in ("retrieve", "overhead", "total")),
        "overhead",
        "total",
    ]
    for stage in order:
        values = stages[stage]
        median = statistics.median(values)
        rows.append(
            {
                "what": label.get(stage, f"stage: {stage}"),
                "median ms": median,
                "p95 ms": percentile(values, 0.95),
                "x store": median / store_median,
            }
        )

    print(
        f"\n{args.docs:,} documents of {args.window}+ sentences/turns in Chroma (HashingEmbedder {args.dimension}-d vectors, precomputed); "
        f"{args.queries} SciFact claims; {args.candidates} candidates -> k={args.k}, "
        f"budget {args.token_budget} tokens, {len(turns)} turns in the session; "
        f"default re-rank, extractive compression (it cut a document in {compressed} of "
        f"{len(store_ms)} packets); the engine's stages embed with the same HashingEmbedder"
    )
    print(f"{'what':<64} {'median ms':>10} {'p95 ms':>9} {'x store':>8}")
    for row in rows:
        print(
            f"{row['what']:<64} {row['median ms']:>10.2f} {row['p95 ms']:>9.2f} {row['x store']:>7.2f}x"
        )
    return rows


if __name__ == "__main__":
    main()
