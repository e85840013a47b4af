"""Pseudo-relevance feedback in hybrid retrieval (Rocchio on vectors, RM3 on terms), chosen out of sample.

``HybridRetriever(feedback=...)`` runs a second pass from the first pass's top documents
(``ctxengine/retrieval/feedback.py``). This script scores a small grid of feedback settings
(method x ``feedback_docs`` x ``feedback_weight``, plus ``alpha`` after feedback) on SciFact
train (809 claims, 5,183 abstracts) and LoCoMo dev (760 answerable questions over 5
conversations), every setting through ``retrieve()`` itself, with cached vectors (no query is
embedded twice; feedback never calls the model), and shows:

* **in sample**: hybrid nDCG@10 of every setting on each whole dataset (for reference only);
* **shipped vs off**: the retriever's default feedback against ``feedback=None``, with a 95%
  paired-bootstrap interval over the queries (1,000 resamples, fixed seed);
* **2-fold within each dataset**: the setting chosen on a random half of the queries (the
  grid at the default alpha, ``off`` included), its gain over ``off`` scored on the other
  half; 5 splits x 2 directions, mean and range of the 10 held-out gains; then the same
  with ``alpha`` free as well;
* **across datasets**: the setting chosen on one dataset, scored on the other;
* **cost**: ``engine.build()`` (the default engine, hybrid) over 10,000 documents (LoCoMo
  turns repeated, cached vectors, as ``build_latency.py``), every query built once to warm
  its vector, then timed with feedback off, Rocchio, RM3 and both in turn on the same
  engine, query by query (the least of 3 runs each), wall clock and this thread's CPU
  time (on a loaded machine a longer call is pre-empted more often, which the wall clock
  counts and the CPU time does not): medians over the queries and the ratio to off.

    python -m benchmarks.feedback [--quick] [--dataset scifact|locomo|both] [--speed-docs N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.peers import SharedCache
from benchmarks.quality_aims import best_point, paired_ci, two_fold
from benchmarks.retrieval_quality import Collection, locomo, scifact
from ctxengine.metrics import ndcg_at_k
from ctxengine.retrieval import HybridRetriever

OFF = "off"
_DEFAULTS = HybridRetriever()
#: The shipped setting (the retriever's defaults; ``rocchio`` measured when they are off).
SHIPPED = {
    "feedback": _DEFAULTS.feedback or "rocchio",
    "feedback_docs": _DEFAULTS.feedback_docs,
    "feedback_weight": _DEFAULTS.feedback_weight,
}


def _label(options: dict[str, Any]) -> str:
    if options.get("feedback") is None:
        name = OFF
    else:
        name = (
            f"{options['feedback']} d={options['feedback_docs']} w={options['feedback_weight']:g}"
        )
    return name + (f" alpha={options['alpha']:g}" if "alpha" in options else "")


def grid() -> list[dict[str, Any]]:
    """Every setting scored: off, Rocchio (docs x weight), RM3 and both at two points each,
    and alpha 0.55 / 0.75 with feedback off and at the shipped setting."""
    settings: list[dict[str, Any]] = [{"feedback": None}]
    for docs, weight in itertools.product((3, 5, 10), (0.1, 0.2, 0.33)):
        settings.append({"feedback": "rocchio", "feedback_docs": docs, "feedback_weight": weight})
    for method in ("rm3", "both"):
        for docs, weight in ((5, 0.2), (10, 0.33)):
            settings.append({"feedback": method, "feedback_docs": docs, "feedback_weight": weight})
    for alpha in (0.55, 0.75):
        settings.append({"feedback": None, "alpha": alpha})
        settings.append({**SHIPPED, "alpha": alpha})
    return settings


def per_query_ndcg(
    collections: Sequence[Collection], settings: Sequence[dict[str, Any]]
) -> dict[str, np.ndarray]:
    """Hybrid nDCG@10 of every query (all collections, in order) under every setting."""
    table: dict[str, list[float]] = {_label(s): [] for s in settings}
    for collection in collections:
        retriever = HybridRetriever(collection.documents, embedder=SharedCache())
        for setting in settings:
            retriever.alpha = setting.get("alpha", _DEFAULTS.alpha)
            retriever.feedback = setting.get("feedback")
            retriever.feedback_docs = setting.get("feedback_docs", _DEFAULTS.feedback_docs)
            retriever.feedback_weight = setting.get("feedback_weight", _DEFAULTS.feedback_weight)
            scores = table[_label(setting)]
            for query, relevant in collection.queries:
                ranked = [hit.id for hit in retriever.retrieve(query, 10)]
                scores.append(ndcg_at_k(ranked, relevant, 10))
    return {label: np.array(values) for label, values in table.items()}


def _ms(call: Any) -> tuple[float, float]:
    """Wall and CPU (this thread's) milliseconds of one ``call()``."""
    wall, cpu = time.perf_counter(), time.thread_time()
    call()
    return 1000 * (time.perf_counter() - wall), 1000 * (time.thread_time() - cpu)


def speed(size: int, n_queries: int) -> list[dict[str, Any]]:
    """Median ``build()`` ms per feedback setting at ``size`` documents, interleaved."""
    from benchmarks.data import load_locomo
    from ctxengine import ContextEngine

    conversations = load_locomo()
    turns = [t.document_text for c in conversations for t in c.turns]
    questions = [q.question for c in conversations for q in c.questions][:n_queries]
    documents = [{"id": f"d{i}", "text": turns[i % len(turns)]} for i in range(size)]
    engine = ContextEngine.from_documents(documents, embedder=SharedCache())
    retriever = engine.retriever
    assert isinstance(retriever, HybridRetriever)
    for query in questions:  # query vectors and the lazy indexes, before any timing
        engine.build(query)
    methods = (None, "rocchio", "rm3", "both")
    runs: dict[tuple[str, str], dict[str | None, list[float]]] = {
        (stage, clock): {m: [] for m in methods}
        for stage in ("build()", "retrieve()")
        for clock in ("wall", "cpu")
    }
    for query in questions:
        for method in methods:
            retriever.feedback = method
            # the least of 3 runs per query: on a shared machine the other jobs' bursts
            # only ever add time, so the minimum is the closest to the work itself
            for stage, call in (
                ("build()", partial(engine.build, query)),
                ("retrieve()", partial(retriever.retrieve, query, 30)),  # the first stage
            ):
                wall, cpu = zip(*(_ms(call) for _ in range(3)))
                runs[(stage, "wall")][method].append(min(wall))
                runs[(stage, "cpu")][method].append(min(cpu))
    rows = []
    print(
        f"\nat {size:,} documents, {len(questions)} queries, settings interleaved: median ms "
        "of build() and of the first stage alone (retrieve, k=30), wall and CPU time"
    )
    for (stage, clock), times in runs.items():
        off = float(np.median(times[None]))
        for method in methods:
            median = float(np.median(times[method]))
            rows.append(
                {
                    "protocol": f"{stage} {clock} ms",
                    "dataset": f"{size:,} LoCoMo turns",
                    "setting": method or OFF,
                    "median ms": median,
                    "added ms": median - off,
                    "ratio to off": median / off,
                }
            )
            print(
                f"  {stage:<10} {clock:<4} {method or OFF:<8} {median:7.2f} ms  "
                f"{median - off:+6.2f}  x{median / off:.2f}"
            )
    return rows


def _compared(protocol: str, dataset: str, label: str, table: dict[str, np.ndarray]) -> dict:
    """A report row: ``label`` against off on ``table``, with its paired-bootstrap interval
    (``printed``: the same as one line of text)."""
    gain, low, high = paired_ci(table[label], table[OFF])
    before, after = float(table[OFF].mean()), float(table[label].mean())
    interval = f"[{low:+.4f}, {high:+.4f}]"
    return {
        "protocol": protocol,
        "dataset": dataset,
        "setting": label,
        "off": before,
        "with": after,
        "gain": gain,
        "ci95 / folds": interval,
        "printed": f"{before:.4f} -> {after:.4f}  {gain:+.4f} {interval}",
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 queries per dataset slice")
    parser.add_argument("--dataset", choices=["scifact", "locomo", "both"], default="both")
    parser.add_argument("--speed-docs", type=int, default=10_000, help="0: no cost part")
    args = parser.parse_args(argv)
    settings = grid()
    at_default = [_label(s) for s in settings if "alpha" not in s]
    tables: dict[str, dict[str, np.ndarray]] = {}
    for name, loader in (("scifact", scifact), ("locomo", locomo)):
        if args.dataset not in (name, "both"):
            continue
        start = time.perf_counter()
        collections = loader(args.quick)
        tables[name] = per_query_ndcg(collections, settings)
        queries = sum(len(c.queries) for c in collections)
        print(
            f"{name}: {queries} queries, {len(settings)} settings "
            f"({time.perf_counter() - start:.0f} s)"
        )
    rows: list[dict[str, Any]] = []
    print("\nin sample (hybrid nDCG@10 on the whole set; for reference, not for choosing)")
    print(f"  {'setting':<32}" + "".join(f"{name:>10}" for name in tables))
    for setting in settings:
        label = _label(setting)
        print(f"  {label:<32}" + "".join(f"{t[label].mean():>10.4f}" for t in tables.values()))
    shipped = _label(SHIPPED)
    print(f"\nshipped ({shipped}) vs off, 95% paired-bootstrap interval")
    for name, table in tables.items():
        rows.append(_compared("shipped vs off", name, shipped, table))
        print(f"  {name:<8} {rows[-1]['printed']}")
    print("\n2-fold within each dataset (5 random splits x 2 directions), held-out gain over off")
    for name, table in tables.items():
        for scope, labels in (("feedback grid", at_default), ("grid + alpha", list(table))):
            gains = two_fold({label: table[label] for label in labels}, base=OFF)
            rows.append(
                {
                    "protocol": f"2-fold, {scope}",
                    "dataset": name,
                    "setting": "chosen per fold",
                    "off": float(table[OFF].mean()),
                    "with": float(table[OFF].mean()) + float(np.mean(gains)),
                    "gain": float(np.mean(gains)),
                    "ci95 / folds": f"folds {min(gains):+.4f} .. {max(gains):+.4f}",
                }
            )
            print(
                f"  {name:<8} {scope:<14} mean {np.mean(gains):+.4f}, "
                f"folds {min(gains):+.4f} .. {max(gains):+.4f}"
            )
    if len(tables) > 1:
        print("\nchosen on one dataset (feedback grid at the default alpha), scored on the other")
    for chosen_on, scored_on in itertools.permutations(tables, 2):
        label = best_point({k: tables[chosen_on][k] for k in at_default})
        rows.append(_compared(f"chosen on {chosen_on}", scored_on, label, tables[scored_on]))
        print(f"  {label} chosen on {chosen_on}: {scored_on} {rows[-1]['printed']}")
    for row in rows:
        row.pop("printed", None)
    if args.speed_docs:
        rows += speed(1_000 if args.quick else args.speed_docs, 10 if args.quick else 60)
    return rows


if __name__ == "__main__":
    main()
