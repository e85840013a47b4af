"""Metadata filters: what a filtered ``HybridRetriever.retrieve`` costs next to the same query
unfiltered and next to filtering afterwards (retrieve the whole ranking, keep the documents
that pass: what a user does without filters in the index).

Corpus: SciFact abstracts and their two-sentence windows, embedded by ctxengine's hashing
embedder at MiniLM's 384 dimensions: what a query costs depends on the vector size, not on
the model, and MiniLM would first spend ~15 minutes here embedding 5k abstracts and their
windows. Each abstract is given synthetic metadata: ``year`` 2000-2024 and ``group`` 0-99 by position,
``lang`` one of four. Queries: SciFact claims, each run once to warm its query vector, then
timed. Every row is measured in the same process, interleaved per query.

    python -m benchmarks.filters [--quick] [--queries 100] [--mode hybrid]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
import benchmarks  # noqa: F401  the shared environment, before ctxengine loads

FILTERS: tuple[tuple[str, dict | None], ...] = (
    ("none", None),
    ("year >= 2012 (~52%)", {"year": {"$gte": 2012}}),
    ("lang in en,fr (~50%)", {"lang": {"$in": ["en", "fr"]}}),
    ("group < 10 (~10%)", {"group": {"$lt": 10}}),
    ("year >= 2020 and lang = en (~5%)", {"$and": [{"year": {"$gte": 2020}}, {"lang": "en"}]}),
    ("group = 7 (~1%)", {"group": 7}),
)


def _median_ms(queries: Sequence[str], run: Callable[[str], object]) -> float:
    times = []
    for query in queries:
        started = time.perf_counter()
        run(query)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 abstracts, 30 queries")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--mode", default="hybrid", choices=("keyword", "dense", "hybrid"))
    args = parser.parse_args(argv)
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

    from benchmarks.data import load_scifact_corpus, load_scifact_queries
    from ctxengine.embeddings import HashingEmbedder
    from ctxengine.retrieval import HybridRetriever
    from ctxengine.retrieval.filters import parse_filter
    from ctxengine.types import Document

    corpus = load_scifact_corpus()
    queries = list(load_scifact_queries()[0].values())
    if args.quick:
        corpus, queries = corpus[:1000], queries[:30]
    queries = queries[: args.queries]
    langs = ("en", "fr", "de", "es")
    documents = [
        Document(
            id=doc.id,
            text=doc.document_text,
            metadata={"year": 2000 + i % 25, "group": i % 100, "lang": langs[i % 4]},
        )
        for i, doc in enumerate(corpus)
    ]
    started = time.perf_counter()
    retriever = HybridRetriever(documents, mode=args.mode, embedder=HashingEmbedder(384))
    for query in queries:  # warm: query vectors, snapshot parts, metadata columns
        for _, spec in FILTERS:
            retriever.retrieve(query, 10, filter=spec)
    print(
        f"{len(documents):,} documents, {len(queries)} queries, mode={args.mode} (setup {time.perf_counter() - started:.1f} s)"
    )

    everything = len(documents)
    rows = []
    unfiltered = _median_ms(queries, lambda q: retriever.retrieve(q, 10))
    for label, spec in FILTERS:
        parsed = parse_filter(spec)
        share = (
            1.0
            if parsed is None
            else sum(parsed.matches(d.metadata) for d in documents) / everything
        )

        def after(query: str, parsed=parsed) -> list:
            ranked = retriever.retrieve(query, everything)
            return [d for d in ranked if parsed is None or parsed.matches(d.metadata)][:10]

        filtered = _median_ms(queries, lambda q, spec=spec: retriever.retrieve(q, 10, filter=spec))
        post = _median_ms(queries, after)
        rows.append(
            {
                "filter": label,
                "share": share,
                "filtered_ms": filtered,
                "post_filter_ms": post,
                "unfiltered_ms": unfiltered,
            }
        )

    print(
        f"{'filter':<34} {'passing':>8} {'filter= ms':>11} {'after ms':>9} {'after/filter':>13} {'filter/none':>12}"
    )
    for row in rows:
        print(
            f"{row['filter']:<34} {row['share']:>8.1%} {row['filtered_ms']:>11.2f} {row['post_filter_ms']:>9.2f} "
            f"{row['post_filter_ms'] / row['filtered_ms']:>12.1f}x {row['filtered_ms'] / row['unfiltered_ms']:>11.2f}x"
        )
    return rows


if __name__ == "__main__":
    main()
