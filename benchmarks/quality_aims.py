"""BM25's length normalisation in hybrid retrieval: the old and new defaults, chosen out of sample.

The lexical side of ``hybrid`` is BM25 with ``k1`` (term-frequency saturation) and ``b``
(document-length normalisation). The old default (``k1=1.5, b=0.75``, bm25s/Lucene) was
never chosen for fusion. This script scores a grid of ``(k1, b)`` at the retriever's
``alpha`` and fusion on SciFact train (809 claims, 5,183 abstracts) and LoCoMo dev
(760 answerable questions over 5 conversations), with the same dense signal (the bundled
MiniLM, the retriever's default sentence windows) for every point, and shows:

* **before / after**: the old default against the retriever's current default, on each
  dataset, hybrid and keyword mode, with a 95% paired-bootstrap interval (1,000 resamples of
  the queries, fixed seed);
* **across datasets**: ``(k1, b)`` chosen on one dataset, scored on the other (the
  project's held-out checks use other claims and conversations of these sets);
* **2-fold within each dataset**: ``(k1, b)`` chosen on a random half of the queries,
  its gain over the old default scored on the other half; 5 splits x 2 directions, mean
  and spread of the 10 held-out gains.

    python -m benchmarks.quality_aims [--quick] [--passage-window N] [--dataset D]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.peers import SharedCache
from benchmarks.retrieval_quality import Collection, locomo, scifact
from ctxengine.metrics import ndcg_at_k
from ctxengine.retrieval import HybridRetriever, fusion
from ctxengine.retrieval.lexical import BM25Index
from ctxengine.text import analyze

#: The BM25 parameters hybrid retrieval used before this comparison.
OLD = (1.5, 0.75)
#: The grid searched (``k1`` x ``b``); both defaults are on it.
K1S = (0.6, 0.9, 1.2, 1.5, 2.0)
BS = (0.2, 0.4, 0.6, 0.75, 0.9)
SPLITS = 5

Point = tuple[float, float]
Key = TypeVar("Key", bound=Hashable)


def per_query_ndcg(
    collections: Sequence[Collection], passage_window: int | None
) -> tuple[dict[Point, np.ndarray], dict[Point, np.ndarray]]:
    """nDCG@10 of every query (all collections, in order) at every grid point: hybrid (the
    retriever's alpha, fusion and pool) and keyword (BM25 alone)."""
    hybrid: dict[Point, list[float]] = {p: [] for p in itertools.product(K1S, BS)}
    keyword: dict[Point, list[float]] = {p: [] for p in hybrid}
    options = {} if passage_window is None else {"passage_window": passage_window}
    for collection in collections:
        retriever = HybridRetriever(collection.documents, embedder=SharedCache(), **options)
        ids = [d.id for d in retriever.documents]
        tokens = [analyze(d.text) for d in retriever.documents]
        indexes = {p: BM25Index.from_tokens(tokens, k1=p[0], b=p[1]) for p in hybrid}
        for query, relevant in collection.queries:
            dense = retriever.score_all(query)["dense"]
            terms = analyze(query)
            for point, index in indexes.items():
                lexical = index.scores(terms)
                chosen, _ = fusion.fuse(
                    dense,
                    lexical,
                    alpha=retriever.alpha,
                    k=10,
                    pool=retriever.fusion_depth,
                    method=retriever.fusion,
                    rrf_k=retriever.rrf_k,
                )
                hybrid[point].append(ndcg_at_k([ids[i] for i in chosen], relevant, 10))
                matched = fusion.top_indices(lexical, 10, np.flatnonzero(lexical > 0))
                keyword[point].append(ndcg_at_k([ids[i] for i in matched], relevant, 10))
    return (
        {p: np.array(v) for p, v in hybrid.items()},
        {p: np.array(v) for p, v in keyword.items()},
    )


def paired_ci(after: np.ndarray, before: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``after - before`` and its 95% paired-bootstrap interval over the queries."""
    diff = after - before
    samples = np.random.default_rng(seed).integers(0, len(diff), size=(1000, len(diff)))
    means = diff[samples].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def best_point(table: Mapping[Key, np.ndarray], rows: np.ndarray | slice = slice(None)) -> Key:
    """The grid point with the highest mean nDCG@10 over ``rows`` (first on the grid on ties)."""
    return max(table, key=lambda p: float(table[p][rows].mean()))


def two_fold(table: Mapping[Key, np.ndarray], base: Hashable = OLD) -> list[float]:
    """Held-out gains over ``base`` (default :data:`OLD`): choose on one random half,
    score on the other."""
    n = len(table[base])
    gains = []
    for seed in range(SPLITS):
        order = np.random.default_rng(seed).permutation(n)
        halves = (order[: n // 2], order[n // 2 :])
        for chosen_on, scored_on in (halves, halves[::-1]):
            point = best_point(table, chosen_on)
            gains.append(float((table[point][scored_on] - table[base][scored_on]).mean()))
    return gains


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 queries per dataset slice")
    parser.add_argument(
        "--passage-window",
        type=int,
        default=None,
        help="HybridRetriever(passage_window=N) for the dense signal (default: its default)",
    )
    parser.add_argument("--dataset", choices=["scifact", "locomo", "both"], default="both")
    args = parser.parse_args(argv)
    new = (HybridRetriever().k1, HybridRetriever().b)
    tables = {}
    for name, loader in (("scifact", scifact), ("locomo", locomo)):
        if args.dataset not in (name, "both"):
            continue
        start = time.perf_counter()
        collections = loader(args.quick)
        tables[name] = per_query_ndcg(collections, args.passage_window)
        queries = sum(len(c.queries) for c in collections)
        print(
            f"{name}: {queries} queries, grid of {len(K1S) * len(BS)} (k1, b) points "
            f"({time.perf_counter() - start:.0f} s)"
        )
    rows: list[dict[str, object]] = []
    print(f"\nbefore (k1={OLD[0]}, b={OLD[1]}) / after (k1={new[0]}, b={new[1]}), nDCG@10")
    for name, (hybrid, keyword) in tables.items():
        for mode, table in (("hybrid", hybrid), ("keyword", keyword)):
            gain, low, high = paired_ci(table[new], table[OLD])
            rows.append(
                {
                    "protocol": "before/after",
                    "dataset": name,
                    "mode": mode,
                    "k1, b": f"{new[0]:g}, {new[1]:g}",
                    "before": float(table[OLD].mean()),
                    "after": float(table[new].mean()),
                    "gain": gain,
                    "ci95": f"[{low:+.4f}, {high:+.4f}]",
                }
            )
            print(
                f"  {name:<8} {mode:<8} {table[OLD].mean():.4f} -> {table[new].mean():.4f}  "
                f"{gain:+.4f} [{low:+.4f}, {high:+.4f}]"
            )
    names = list(tables)
    if len(names) > 1:
        print("\nchosen on one dataset (hybrid), scored on the other")
    for chosen_on, scored_on in itertools.permutations(names, 2):
        point = best_point(tables[chosen_on][0])
        table = tables[scored_on][0]
        gain, low, high = paired_ci(table[point], table[OLD])
        rows.append(
            {
                "protocol": f"chosen on {chosen_on}",
                "dataset": scored_on,
                "mode": "hybrid",
                "k1, b": f"{point[0]:g}, {point[1]:g}",
                "before": float(table[OLD].mean()),
                "after": float(table[point].mean()),
                "gain": gain,
                "ci95": f"[{low:+.4f}, {high:+.4f}]",
            }
        )
        print(
            f"  k1={point[0]:g} b={point[1]:g} chosen on {chosen_on}: {scored_on} "
            f"{table[OLD].mean():.4f} -> {table[point].mean():.4f}  {gain:+.4f} "
            f"[{low:+.4f}, {high:+.4f}]"
        )
    print(
        f"\n2-fold within each dataset ({SPLITS} random splits x 2 directions), "
        "held-out hybrid gain over the old default"
    )
    for name, (hybrid, _) in tables.items():
        gains = two_fold(hybrid)
        rows.append(
            {
                "protocol": "2-fold held-out",
                "dataset": name,
                "mode": "hybrid",
                "k1, b": "chosen per fold",
                "before": float(hybrid[OLD].mean()),
                "after": float(hybrid[OLD].mean()) + float(np.mean(gains)),
                "gain": float(np.mean(gains)),
                "ci95": f"folds {min(gains):+.4f} .. {max(gains):+.4f}",
            }
        )
        print(
            f"  {name:<8} mean {np.mean(gains):+.4f}, folds {min(gains):+.4f} .. {max(gains):+.4f}"
        )
    print("\nhybrid nDCG@10 over the grid (rows k1, columns b)")
    for name, (hybrid, _) in tables.items():
        print(f"  {name:<8}" + "".join(f"{b:>8g}" for b in BS))
        for k1 in K1S:
            print(f"  {k1:<8g}" + "".join(f"{hybrid[(k1, b)].mean():>8.4f}" for b in BS))
    return rows


if __name__ == "__main__":
    main()
