"""How much labelled data is enough? Quality against the number of labelled queries.

LoCoMo dev, leave-one-conversation-out: for n in 10, 30, 100, 300 and all labelled
questions of the other four conversations (a seeded random sample, three samples per n
below all), train each model type and score the held-out conversation (nDCG@10, turns as
documents), next to the hand-set hybrid rule that needs no labels:

* learned ranker (``LinearScorer`` on ``DocumentFeatures`` over the hybrid top 100);
* query adapter (``QueryAdapter``) under the hand-set hybrid first stage.

Prints a table (mean and spread over folds x samples) and writes
``benchmarks/learning_curves.png``.

    python -m benchmarks.learning_curves           # ~10 min here
    python -m benchmarks.learning_curves --quick   # 2 conversations, n in 10, 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.data import load_locomo
from benchmarks.learned_adapter import REPO_ROOT, concat, featurize, learned_ndcg
from benchmarks.learned_ranker import QUICK_CONVERSATIONS
from benchmarks.peers import SharedCache
from ctxengine.errors import InvalidInputError
from ctxengine.learn import DocumentFeatures, RankingExample, document_pairs, fit_adapter
from ctxengine.metrics import ndcg_at_k
from ctxengine.retrieval import HybridRetriever
from ctxengine.types import Document

SIZES = (10, 30, 100, 300)
SAMPLES = 3


def main(argv: Sequence[str] | None = None) -> dict:
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "learning_curves.png"
    )
    args = parser.parse_args(argv)
    conversations = load_locomo()
    sizes = SIZES[:2] if args.quick else SIZES
    if args.quick:
        conversations = [c for c in conversations if c.sample_id in QUICK_CONVERSATIONS]
    started = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        retrievers, examples, pairs, rows = {}, {}, {}, {}
        features = DocumentFeatures()
        for c in conversations:
            r = HybridRetriever(
                [Document(t.document_text, id=t.dia_id) for t in c.turns], embedder=SharedCache()
            )
            s = c.sample_id
            retrievers[s] = r
            examples[s] = [
                RankingExample(q.question, [e for e in q.evidence if e in r])
                for q in c.answerable()
                if any(e in r for e in q.evidence)
            ]
            pairs[s] = document_pairs(examples[s], r)
            rows[s] = featurize(r, examples[s], features)
        names = list(retrievers)
        curves: dict[str, dict[str, list[float]]] = {
            "hand-set hybrid (no labels)": {},
            "learned ranker": {},
            "query adapter + hybrid": {},
        }
        for held in names:
            r = retrievers[held]
            base = statistics.fmean(
                ndcg_at_k([d.id for d in r.retrieve(e.query, k=10)], e.relevant, 10)
                for e in examples[held]
            )
            others = [(s, i) for s in names if s != held for i in range(len(examples[s]))]
            for n in (*sizes, "all"):
                draws = (
                    [np.arange(len(others))]
                    if n == "all"
                    else [
                        np.random.default_rng(seed).choice(
                            len(others), min(n, len(others)), replace=False
                        )
                        for seed in range(SAMPLES)
                    ]
                )
                for draw in draws:
                    chosen = [others[i] for i in draw]
                    curves["hand-set hybrid (no labels)"].setdefault(str(n), []).append(base)
                    try:
                        value = learned_ndcg([rows[s][i] for s, i in chosen], rows[held], features)
                    except InvalidInputError:  # no query with a relevant turn in its pool
                        value = base
                    curves["learned ranker"].setdefault(str(n), []).append(value)
                    sub = concat(
                        [(pairs[s][0][[i]], [pairs[s][1][i]], [pairs[s][2][i]]) for s, i in chosen]
                    )
                    r.query_adapter = fit_adapter(sub)
                    curves["query adapter + hybrid"].setdefault(str(n), []).append(
                        statistics.fmean(
                            ndcg_at_k([d.id for d in r.retrieve(e.query, k=10)], e.relevant, 10)
                            for e in examples[held]
                        )
                    )
                    r.query_adapter = None
                print(held, n, {k: round(v[str(n)][-1], 4) for k, v in curves.items()}, flush=True)
    labels = [str(n) for n in (*sizes, "all")]
    print(
        f"\nLoCoMo dev, nDCG@10 vs labelled queries, leave-one-conversation-out ({len(names)} folds"
        f" x {SAMPLES} samples below 'all'); mean ± std"
    )
    print("| model | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels))
    for name, by_n in curves.items():
        print(
            f"| {name} | "
            + " | ".join(
                f"{statistics.fmean(by_n[n]):.4f} ± {statistics.pstdev(by_n[n]):.4f}"
                for n in labels
            )
            + " |"
        )
    _plot(curves, labels, args.out)
    print(f"\nwrote {args.out} ({time.perf_counter() - started:.0f} s)")
    return curves


def _plot(curves: dict[str, dict[str, list[float]]], labels: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    x = np.arange(len(labels))
    for name, by_n in curves.items():
        means = np.array([statistics.fmean(by_n[n]) for n in labels])
        spread = np.array([statistics.pstdev(by_n[n]) for n in labels])
        axis.plot(x, means, marker="o", label=name)
        axis.fill_between(x, means - spread, means + spread, alpha=0.15)
    axis.set_xticks(x, labels)
    axis.set_xlabel("labelled queries used for training")
    axis.set_ylabel("nDCG@10 on the held-out conversation")
    axis.set_title("LoCoMo dev: when does training pay?")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1:])
