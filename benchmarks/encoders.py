"""Encoder backends: the bundled MiniLM on torch, on ONNX Runtime (fp32) and on ONNX
Runtime with int8 dynamically quantized weights; speed and retrieval quality.

Per backend, in one run (repeats interleaved across backends, so load on the machine hits
all of them alike):

- throughput: texts/s embedding SciFact abstracts in batches of 64 (what indexing sends),
  median over repeats, and its ratio to torch;
- single-query latency: median ms to embed one SciFact claim;
- nDCG@10, hybrid and dense-only, on SciFact train (809 claims) and LoCoMo dev (5
  conversations, 760 answerable questions), with that backend's vectors for documents,
  sentence windows and queries; the difference to torch with a 95% paired-bootstrap interval
  over queries (the same resampling as ``benchmarks.peers``).

Embedding cost bounds the quality runs (every backend but torch, whose vectors the shared
cache holds, embeds its corpus afresh; on a loaded 2-core machine the 47k SciFact sentence
windows take about an hour per backend). So by default: whole-document vectors
(``--passage-window 0``: the retriever's sentence windows off, for every backend alike) and
a SciFact slice of every abstract judged for a train claim (565) plus the first unjudged
abstracts of the corpus file, up to ``--scifact-docs`` (default 800). Its nDCG is therefore
higher than the full-corpus figure; the differences between backends are what it measures.

"Equal quality" here: hybrid nDCG@10 within 0.002 of torch on both datasets.

    CTXENGINE_DATA=../shared/data python -m benchmarks.encoders
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from statistics import median
from typing import Any

import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.peers import margins
from benchmarks.retrieval_quality import Collection, locomo, scifact
from ctxengine.embeddings import CachedEmbedder, SentenceTransformerEmbedder
from ctxengine.metrics import ndcg_at_k
from ctxengine.onnx_backend import BACKENDS
from ctxengine.retrieval import HybridRetriever

# Hybrid nDCG@10 gap to torch, on both datasets, that still counts as the same quality.
EQUAL_QUALITY = 0.002


def scifact_slice(collection: Collection, size: int) -> Collection:
    """Every judged abstract plus the first unjudged ones in corpus order, ``size`` in all."""
    judged = {doc for _, relevant in collection.queries for doc in relevant}
    kept = [d for d in collection.documents if d.id in judged]
    others = [d for d in collection.documents if d.id not in judged]
    kept += others[: max(0, size - len(kept))]
    return Collection(f"scifact[{len(kept)}]", kept, collection.queries)


def throughput(
    embedders: dict[str, SentenceTransformerEmbedder], texts: list[str], repeats: int
) -> dict[str, float]:
    """Median texts/s per backend, batches of 64, repeats interleaved across backends."""
    seconds: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(repeats):
        for name, embedder in embedders.items():
            started = time.perf_counter()
            for start in range(0, len(texts), 64):
                embedder.embed(texts[start : start + 64])
            seconds[name].append(time.perf_counter() - started)
    return {name: len(texts) / median(values) for name, values in seconds.items()}


def query_latency(
    embedders: dict[str, SentenceTransformerEmbedder], queries: list[str]
) -> dict[str, float]:
    """Median ms to embed one query (each query once per backend, interleaved)."""
    times: dict[str, list[float]] = {name: [] for name in embedders}
    for query in queries:
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.embed([query])
            times[name].append(time.perf_counter() - started)
    return {name: 1000 * median(values) for name, values in times.items()}


def per_query_ndcg(
    collections: Sequence[Collection], embedder: Any, window: int
) -> dict[str, list[float]]:
    """nDCG@10 per query, hybrid and dense-only, over every collection."""
    out: dict[str, list[float]] = {"hybrid": [], "dense": []}
    for collection in collections:
        retriever = HybridRetriever(collection.documents, embedder=embedder, passage_window=window)
        # The queries in batches first (one at a time is ~10x slower); retrieve() then finds
        # them in the embedder's memory cache.
        embedder.embed([query for query, _ in collection.queries])
        for query, relevant in collection.queries:
            for mode, values in out.items():
                ranked = [r.id for r in retriever.retrieve(query, 10, mode=mode)]
                values.append(ndcg_at_k(ranked, relevant, 10))
    return out


def paired(base: list[float], other: list[float]) -> dict[str, Any]:
    """``other - base``: mean difference and its 95% paired-bootstrap interval."""
    rows = [
        {"system": "base", "group": "ours", "per_query": base},
        {"system": "other", "group": "peer", "per_query": other},
    ]
    m = margins(rows, ours="base")["other"]  # base - other
    return {"delta": -m["margin"], "ci95": [-m["ci95"][1], -m["ci95"][0]]}


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small slice (a smoke run)")
    parser.add_argument("--scifact-docs", type=int, default=800)
    parser.add_argument(
        "--passage-window",
        type=int,
        default=0,
        help="HybridRetriever(passage_window=N); 0 (default): whole-document vectors",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args(argv)
    names = args.backends.split(",")
    if names[0] != "torch":
        parser.error("--backends must start with torch (the reference)")

    loaded: dict[str, SentenceTransformerEmbedder] = {}
    load_seconds: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        loaded[name] = SentenceTransformerEmbedder(backend=name)
        load_seconds[name] = time.perf_counter() - started  # the first ONNX load exports

    facts = scifact(args.quick)[0]
    facts = scifact_slice(facts, 300 if args.quick else args.scifact_docs)
    conversations = locomo(args.quick)
    abstracts = [d.text for d in facts.documents[: 32 if args.quick else 64]]
    claims = [q for q, _ in facts.queries[: 10 if args.quick else 40]]
    for embedder in loaded.values():
        embedder.embed(abstracts[:64])  # warm-up: first-call allocations off the clock
    speed = throughput(loaded, abstracts, 2 if args.quick else args.repeats)
    latency = query_latency(loaded, claims)
    print(
        f"speed: {len(abstracts)} SciFact abstracts in batches of 64, median of "
        f"{2 if args.quick else args.repeats} repeats; one query: median over {len(claims)} claims"
    )

    cache = os.environ.get("CTXENGINE_EMBED_CACHE") or None
    quality: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name, embedder in loaded.items():
        cached = CachedEmbedder(embedder, cache)  # keyed by name: one cache per backend
        started = time.perf_counter()
        quality[name] = {
            "scifact": per_query_ndcg([facts], cached, args.passage_window),
            "locomo": per_query_ndcg(conversations, cached, args.passage_window),
        }
        print(f"{name}: quality runs took {time.perf_counter() - started:.0f} s")
    print(
        f"quality: passage_window={args.passage_window}, {facts.name} "
        f"({len(facts.queries)} claims), LoCoMo dev "
        f"({sum(len(c.queries) for c in conversations)} questions)"
    )

    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {
            "backend": name,
            "texts/s (batch 64)": speed[name],
            "x torch": speed[name] / speed["torch"],
            "query ms": latency[name],
            "query x torch": latency["torch"] / latency[name],
            "load s": load_seconds[name],
        }
        equal = True
        for dataset in ("scifact", "locomo"):
            for mode in ("hybrid", "dense"):
                values = quality[name][dataset][mode]
                row[f"{dataset} {mode}"] = float(np.mean(values))
            diff = paired(quality["torch"][dataset]["hybrid"], quality[name][dataset]["hybrid"])
            row[f"{dataset} hybrid delta"] = diff["delta"]
            row[f"{dataset} delta ci95"] = f"{diff['ci95'][0]:+.4f}..{diff['ci95'][1]:+.4f}"
            equal = equal and abs(diff["delta"]) <= EQUAL_QUALITY
        row["equal quality"] = equal
        rows.append(row)

    print()
    for row in rows:
        print(
            f"{row['backend']:>10}: {row['texts/s (batch 64)']:7.1f} texts/s "
            f"({row['x torch']:.2f}x torch), query {row['query ms']:6.1f} ms "
            f"({row['query x torch']:.2f}x), load {row['load s']:.1f} s | SciFact hybrid "
            f"{row['scifact hybrid']:.4f} ({row['scifact hybrid delta']:+.4f}, CI "
            f"{row['scifact delta ci95']}) dense {row['scifact dense']:.4f} | LoCoMo hybrid "
            f"{row['locomo hybrid']:.4f} ({row['locomo hybrid delta']:+.4f}, CI "
            f"{row['locomo delta ci95']}) dense {row['locomo dense']:.4f} | equal: "
            f"{row['equal quality']}"
        )
    qualified = [r for r in rows if r["equal quality"]]
    fastest = max(qualified, key=lambda r: r["texts/s (batch 64)"])
    print(
        f"\nfastest at equal quality (hybrid nDCG@10 within {EQUAL_QUALITY} on both): "
        f"{fastest['backend']}"
    )
    return rows


if __name__ == "__main__":
    main()
