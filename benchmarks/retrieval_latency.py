"""Per-query latency of every HybridRetriever mode at growing corpus sizes, plus indexing speed.

Corpus: the LoCoMo dev turns ("Speaker: text", 2,760 of them) repeated with unique ids up
to each size. Texts repeat, so document embeddings come from the disk cache (computed
once); lexical postings grow with the corpus as they would with real data, the vocabulary
does not. Queries: LoCoMo questions. Every dense-mode query is embedded by the model during
the measurement (each mode gets its own, never-seen questions, and a retriever caches query
vectors only in its own memory), because the query embedding is part of what a user waits
for.

Reported per size and mode, after one warm-up query: median and p95 milliseconds per
``retrieve(q, k=10)``; "repeat": the median when the same queries are asked again (query
vector cached, so the index-side cost alone); "first query": the warm-up, which builds the
lazy parts (lexical index from cached tokens, embedding matrix from cached vectors);
"add s": building the retriever (analysis + cached vectors). Indexing: analysis
throughput (docs/s, ``ctxengine.text.analyze``) and model embedding throughput (docs/s,
uncached, bundled MiniLM on this CPU).

    python benchmarks/retrieval_latency.py [--sizes 1000,5000,10000,50000] [--queries 100] [--quick] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ROOT first: an unrelated 'benchmarks' package in site-packages must not shadow ours
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.data import load_locomo
from ctxengine.embeddings import Embedder, default_embedder
from ctxengine.retrieval import HybridRetriever
from ctxengine.text import analyze
from ctxengine.types import Document

# (label, mode, fusion); dense-mode rows need their own fresh queries
MODES = [
    ("keyword", "keyword", "minmax"),
    ("tfidf", "tfidf", "minmax"),
    ("dense", "dense", "minmax"),
    ("hybrid", "hybrid", "minmax"),
    ("hybrid-rrf", "hybrid", "rrf"),
    ("adaptive", "adaptive", "minmax"),
]


def synthetic_corpus(turns: Sequence[str], size: int) -> list[Document]:
    return [Document(id=f"d{i}", text=turns[i % len(turns)]) for i in range(size)]


def time_queries(
    retriever: HybridRetriever, queries: Sequence[str], mode: str
) -> tuple[float, list[float], list[float]]:
    """Seconds of the warm-up query, of each new query, and of each query asked again (its
    vector then comes from the retriever's query cache: the index-side cost alone)."""
    start = time.perf_counter()
    retriever.retrieve(queries[0], 10, mode=mode)  # builds this mode's lazy parts
    first = time.perf_counter() - start
    rounds: list[list[float]] = [[], []]
    for times in rounds:
        for query in queries[1:]:
            start = time.perf_counter()
            retriever.retrieve(query, 10, mode=mode)
            times.append(time.perf_counter() - start)
    return first, rounds[0], rounds[1]


def indexing_speed(turns: Sequence[str], model: Embedder, sample: int) -> tuple[float, float]:
    texts = [f"{text} #{i}" for i, text in enumerate(turns[:sample])]  # never cached
    start = time.perf_counter()
    for text in texts:
        analyze(text)
    analysis = len(texts) / (time.perf_counter() - start)
    embed_texts = texts[: min(len(texts), 256)]
    start = time.perf_counter()
    model.embed(embed_texts)
    embedding = len(embed_texts) / (time.perf_counter() - start)
    return analysis, embedding


def query_embedding_ms(model: Embedder, queries: Sequence[str]) -> tuple[float, float]:
    """Median and p95 of embedding one query with the model alone (the floor under every
    dense-mode latency)."""
    model.embed([queries[0]])
    times = []
    for query in queries[1:]:
        start = time.perf_counter()
        model.embed([query])
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def main(argv: Sequence[str] | None = None) -> dict[tuple[int, str], tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000,50000")
    parser.add_argument("--queries", type=int, default=100, help="timed queries per cell")
    parser.add_argument("--quick", action="store_true", help="sizes 200,1000 and 10 queries")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) first (on a shared, loaded machine 1 thread "
        "embeds one query far faster than torch's default of one per core)",
    )
    args = parser.parse_args(argv)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    sizes = [200, 1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    n_queries = 10 if args.quick else args.queries

    conversations = load_locomo()
    turns = [turn.document_text for conv in conversations for turn in conv.turns]
    questions = [q.question for conv in conversations for q in conv.questions]
    shared = default_embedder()
    model = getattr(shared, "embedder", shared)  # the model behind the cache
    shared.embed(turns)  # once; a no-op when the disk cache is warm

    analysis_rate, embed_rate = indexing_speed(turns, model, 100 if args.quick else 2000)
    print(
        f"indexing: analysis {analysis_rate:,.0f} docs/s; embedding {embed_rate:,.0f} docs/s "
        f"({model.name}, uncached, {os.cpu_count()} CPUs)"
    )
    embed_median, embed_p95 = query_embedding_ms(model, questions[-(n_queries + 1) :])
    print(f"query embedding alone: median {embed_median:.2f} ms, p95 {embed_p95:.2f} ms")
    print(
        f"corpus: LoCoMo dev turns repeated to size; {n_queries} timed queries per cell, k=10; "
        f"load average {os.getloadavg()[0]:.1f} (other processes share the CPUs when > 0)"
    )
    if args.torch_threads:
        print(f"torch threads: {args.torch_threads}")
    print(
        f"{'docs':>7} {'mode':<11} {'median ms':>10} {'p95 ms':>8} {'repeat ms':>10} {'first query ms':>15} {'add s':>7}"
    )
    results: dict[tuple[int, str], tuple[float, float]] = {}
    for size in sizes:
        corpus = synthetic_corpus(turns, size)
        start = time.perf_counter()
        retriever = HybridRetriever(corpus, embedder=shared)  # analysis + cached vectors
        add_seconds = time.perf_counter() - start
        offset = 0
        for label, mode, fusion in MODES:
            retriever.fusion = fusion
            queries = questions[offset : offset + n_queries + 1]
            if mode != "keyword" and mode != "tfidf":
                offset += n_queries + 1  # dense modes never see a query twice
            first, times, repeats = time_queries(retriever, queries, mode)
            ms = np.array(times) * 1000
            median, p95 = float(np.median(ms)), float(np.percentile(ms, 95))
            repeat = float(np.median(repeats)) * 1000
            results[(size, label)] = (median, p95)
            print(
                f"{size:>7} {label:<11} {median:>10.2f} {p95:>8.2f} {repeat:>10.2f} {first * 1000:>15.1f} "
                f"{add_seconds:>7.2f}",
                flush=True,
            )
    return results


if __name__ == "__main__":
    main()
