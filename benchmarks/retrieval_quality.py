"""Retrieval quality of every HybridRetriever mode on SciFact train and LoCoMo dev.

* SciFact (BEIR form): the 809 train claims against the full 5,183-abstract corpus
  (document = title + ". " + text); relevant = qrels. nDCG@10 and Recall@100.
* LoCoMo dev (5 conversations, one index each): documents = turns ("Speaker: text", id =
  dia_id), queries = questions of categories 1-4, relevant = evidence turns. Recall@5,
  Recall@10, nDCG@10, averaged over all questions.

Modes: keyword (BM25 k1=1.5 b=0.75), tfidf, dense (bundled all-MiniLM-L6-v2), hybrid
(min-max, alpha 0.65), hybrid-rrf (weighted RRF, alpha 0.65, k=60), adaptive. Embeddings are
cached on disk (.cache/embeddings); the first SciFact run embeds the corpus (~8 min).

``--tune-adaptive`` re-runs the grid search that set the adaptive-alpha constants (see
``ctxengine/retrieval/adaptive.py``) on these same dev sets.

    python benchmarks/retrieval_quality.py [--dataset scifact|locomo|both] [--quick] [--tune-adaptive]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ROOT first: an unrelated 'benchmarks' package in site-packages must not shadow ours
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.data import load_locomo, load_scifact_corpus, load_scifact_queries
from ctxengine.embeddings import default_embedder
from ctxengine.metrics import mean, ndcg_at_k, recall_at_k
from ctxengine.retrieval import HybridRetriever, adaptive, fusion
from ctxengine.retrieval.windows import window_texts
from ctxengine.text import analyze
from ctxengine.types import Document

# (label, mode, retriever attributes other than the defaults)
MODES: list[tuple[str, str, dict[str, object]]] = [
    ("keyword", "keyword", {}),
    ("tfidf", "tfidf", {}),
    ("dense", "dense", {}),
    ("hybrid", "hybrid", {}),
    ("hybrid-rrf", "hybrid", {"fusion": "rrf"}),
    ("rrf a=0.5", "hybrid", {"fusion": "rrf", "alpha": 0.5}),  # plain (unweighted) RRF order
    ("adaptive", "adaptive", {}),
]
PER_COLLECTION = ("keyword", "dense", "hybrid", "adaptive")
METRICS = {
    "scifact": [("nDCG@10", "ndcg", 10), ("R@100", "recall", 100)],
    "locomo": [("R@5", "recall", 5), ("R@10", "recall", 10), ("nDCG@10", "ndcg", 10)],
}


@dataclass
class Collection:
    """One index and the queries asked of it."""

    name: str
    documents: list[Document]
    queries: list[tuple[str, dict[str, float]]] = field(default_factory=list)


def scifact(quick: bool) -> list[Collection]:
    queries, qrels = load_scifact_queries()
    docs = [Document(id=d.id, text=d.document_text) for d in load_scifact_corpus()]
    items = [
        (text, {doc: float(s) for doc, s in qrels[qid].items()}) for qid, text in queries.items()
    ]
    if quick:  # 40 claims over their relevant abstracts plus 400 others
        items = items[:40]
        wanted = {doc for _, rel in items for doc in rel}
        docs = [d for d in docs if d.id in wanted] + [d for d in docs if d.id not in wanted][:400]
    return [Collection("scifact", docs, items)]


def locomo(quick: bool) -> list[Collection]:
    out = []
    for conv in load_locomo()[: 1 if quick else None]:
        docs = [Document(id=t.dia_id, text=t.document_text) for t in conv.turns]
        items = [(q.question, {e: 1.0 for e in q.evidence}) for q in conv.answerable()]
        out.append(Collection(conv.sample_id, docs, items[:40] if quick else items))
    return out


def metric(kind: str, ranked: list[str], relevant: dict[str, float], k: int) -> float:
    return ndcg_at_k(ranked, relevant, k) if kind == "ndcg" else recall_at_k(ranked, relevant, k)


def evaluate(
    dataset: str, collections: Sequence[Collection], passage_window: int | None = None
) -> dict[str, dict[str, float]]:
    """Mean of each metric per mode over every query of every collection (per-collection
    nDCG@10 of the main modes is printed when there are several collections).
    ``passage_window``: the retriever's (None: its default; 0: whole-document vectors)."""
    metrics = METRICS[dataset]
    depth = max(k for _, _, k in metrics)
    values: dict[str, dict[str, list[float]]] = {
        label: {m: [] for m, _, _ in metrics} for label, _, _ in MODES
    }
    defaults = HybridRetriever()
    window = defaults.passage_window if passage_window is None else passage_window
    windows = (
        sum(len(window_texts(d.text, window)) for c in collections for d in c.documents)
        if window
        else 0
    )
    print(f"{dataset}: passage_window={window}, {windows:,} sentence windows besides the documents")
    for collection in collections:
        retriever = HybridRetriever(
            collection.documents, embedder=default_embedder(), passage_window=window
        )
        own: dict[str, float] = {}
        for label, mode, options in MODES:
            for name in ("alpha", "fusion"):
                setattr(retriever, name, options.get(name, getattr(defaults, name)))
            ndcgs = []
            for query, relevant in collection.queries:
                ranked = [r.id for r in retriever.retrieve(query, depth, mode=mode)]
                for name, kind, k in metrics:
                    values[label][name].append(metric(kind, ranked, relevant, k))
                ndcgs.append(ndcg_at_k(ranked, relevant, 10))
            own[label] = mean(ndcgs)
        if len(collections) > 1:
            print(
                f"  {collection.name} nDCG@10: "
                + ", ".join(f"{m} {own[m]:.3f}" for m in PER_COLLECTION)
            )
    return {label: {name: mean(v) for name, v in per.items()} for label, per in values.items()}


def print_table(dataset: str, n_queries: int, results: dict[str, dict[str, float]]) -> None:
    names = [name for name, _, _ in METRICS[dataset]]
    print(f"\n{dataset} ({n_queries} queries)")
    print(f"{'mode':<11}" + "".join(f"{name:>9}" for name in names))
    for label, row in results.items():
        print(f"{label:<11}" + "".join(f"{row[name]:>9.3f}" for name in names))


# --- adaptive-alpha tuning -------------------------------------------------------------

ALPHA_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)


@dataclass
class QueryTable:
    """Per query: its features for the rule and its nDCG@10 at every alpha of the grid."""

    features: list[adaptive.QueryFeatures]
    ndcg: np.ndarray  # (queries, len(ALPHA_GRID))


def query_table(
    collections: Sequence[Collection], pool: int, passage_window: int | None = None
) -> QueryTable:
    features, rows = [], []
    options = {} if passage_window is None else {"passage_window": passage_window}
    for collection in collections:
        retriever = HybridRetriever(collection.documents, embedder=default_embedder(), **options)
        ids = [d.id for d in retriever.documents]
        index = retriever._bm25(retriever._snapshot())  # the df table adaptive mode reads
        for query, relevant in collection.queries:
            scores = retriever.score_all(query)
            features.append(
                adaptive.QueryFeatures.of(query, analyze(query), index.document_frequency, len(ids))
            )
            row = []
            for alpha in ALPHA_GRID:
                chosen, _ = fusion.fuse(
                    scores["dense"], scores["bm25"], alpha=float(alpha), k=10, pool=pool
                )
                row.append(ndcg_at_k([ids[i] for i in chosen], relevant, 10))
            rows.append(row)
    return QueryTable(features, np.array(rows))


def rule_score(rule: adaptive.AdaptiveAlpha, table: QueryTable) -> float:
    columns = [round(rule.alpha(f) / 0.05) for f in table.features]
    return float(table.ndcg[np.arange(len(columns)), columns].mean())


def tune_adaptive(tables: dict[str, QueryTable]) -> adaptive.AdaptiveAlpha:
    """Grid search maximising the unweighted mean over datasets of mean nDCG@10."""
    for name, table in tables.items():
        best = int(table.ndcg.mean(0).argmax())
        print(
            f"{name}: best fixed alpha {ALPHA_GRID[best]:.2f} -> {table.ndcg.mean(0)[best]:.3f}; "
            f"0.65 -> {table.ndcg.mean(0)[13]:.3f}; per-query oracle {table.ndcg.max(1).mean():.3f}"
        )
    best_rule, best_value = adaptive.DEFAULT, -1.0
    for values in itertools.product(*adaptive.SEARCH_SPACE.values()):
        rule = adaptive.AdaptiveAlpha(**dict(zip(adaptive.SEARCH_SPACE, values)))
        value = mean([rule_score(rule, table) for table in tables.values()])
        if value > best_value + 1e-9:
            best_rule, best_value = rule, value
    default = {name: rule_score(adaptive.DEFAULT, t) for name, t in tables.items()}
    tuned = {name: rule_score(best_rule, t) for name, t in tables.items()}
    print(f"best rule {best_rule}: " + ", ".join(f"{n} {v:.3f}" for n, v in tuned.items()))
    print("shipped rule: " + ", ".join(f"{n} {v:.3f}" for n, v in default.items()))
    return best_rule


def alpha_sweep(
    dataset: str,
    collections: Sequence[Collection],
    alphas: Sequence[float],
    passage_window: int | None,
) -> dict[float, float]:
    """Hybrid nDCG@10 at each alpha (the signals are computed once per query)."""
    window = HybridRetriever().passage_window if passage_window is None else passage_window
    per_alpha: dict[float, list[float]] = {alpha: [] for alpha in alphas}
    for collection in collections:
        retriever = HybridRetriever(
            collection.documents, embedder=default_embedder(), passage_window=window
        )
        ids = [d.id for d in retriever.documents]
        for query, relevant in collection.queries:
            scores = retriever.score_all(query)
            for alpha in alphas:
                chosen, _ = fusion.fuse(
                    scores["dense"],
                    scores["bm25"],
                    alpha=alpha,
                    k=10,
                    pool=retriever.fusion_depth,
                )
                per_alpha[alpha].append(ndcg_at_k([ids[i] for i in chosen], relevant, 10))
    result = {alpha: mean(values) for alpha, values in per_alpha.items()}
    print(
        f"{dataset} hybrid nDCG@10 (passage_window={window}): "
        + ", ".join(f"alpha {a:g} {v:.4f}" for a, v in result.items())
    )
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["scifact", "locomo", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="40 queries on a small slice")
    parser.add_argument("--tune-adaptive", action="store_true")
    parser.add_argument(
        "--passage-window",
        type=int,
        default=None,
        help="HybridRetriever(passage_window=N); 0: whole-document vectors (default: its default, 2)",
    )
    parser.add_argument(
        "--alphas",
        default=None,
        help="comma-separated alphas: hybrid nDCG@10 at each (a sweep), then stop",
    )
    args = parser.parse_args(argv)
    datasets = ["scifact", "locomo"] if args.dataset == "both" else [args.dataset]
    loaders = {"scifact": scifact, "locomo": locomo}
    collections = {name: loaders[name](args.quick) for name in datasets}
    if args.tune_adaptive:
        tables = {
            name: query_table(c, HybridRetriever().fusion_depth, args.passage_window)
            for name, c in collections.items()
        }
        tune_adaptive(tables)
        return {}
    if args.alphas:
        return {
            name: alpha_sweep(
                name, colls, [float(a) for a in args.alphas.split(",")], args.passage_window
            )
            for name, colls in collections.items()
        }
    out = {}
    for name, colls in collections.items():
        start = time.perf_counter()
        out[name] = evaluate(name, colls, args.passage_window)
        print_table(name, sum(len(c.queries) for c in colls), out[name])
        print(f"({time.perf_counter() - start:.0f} s)")
    return out


if __name__ == "__main__":
    main()
