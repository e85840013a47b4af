"""Encoder fine-tuning (``ctxengine.learn.fine_tune_encoder``): does fine-tuning the bundled
MiniLM on the application's labelled queries beat the base model and the query adapter on
queries it never saw, and what does it cost on a CPU?

SciFact, the 809 train claims split 75/25 with the seeded split of
``benchmarks/learned_adapter.py`` (the BEIR test split's labels are held out and cannot be
read here): the 25% are never trained on, never used to decide, scored once at the end.
On the 75%:

* ``fine_tune_encoder`` splits them again with the OnlineLearner's hash holdout (25%): it
  trains on the rest (MultipleNegativesRankingLoss, one first-stage hard negative per pair,
  1 epoch, batch 16, lr 2e-5, seed 0), re-embeds the index with the fine-tuned model and
  switches only if that ranks its own holdout better;
* the :class:`~ctxengine.learn.QueryAdapter` is trained on all of them (its own validation
  slice inside), as ``benchmarks/learned_adapter.py --only scifact`` does.

The index holds the 5,183 abstracts as whole documents (``passage_window=0``: re-embedding
every sentence window too would take ~10x longer here); training reads the first 128 word
pieces of each abstract (the model reads 256 when it embeds). Reported: nDCG@10 of dense and
hybrid retrieval on the unseen claims for the base model, base + adapter and the fine-tuned
model, the spread of the fine-tuned model's margin over 5 seeded chunks of those claims,
training seconds and steps, and the seconds to re-embed the corpus.

    python -m benchmarks.finetune            # full (~70 min on a loaded 2-core machine)
    python -m benchmarks.finetune --quick    # 40 claims, 400 abstracts, 4 steps (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO_ROOT)] + [p for p in sys.path if p != str(REPO_ROOT)]
import numpy as np

import benchmarks  # noqa: F401  the shared environment, before ctxengine loads
from benchmarks.learned_ranker import print_table
from ctxengine import ContextEngine
from ctxengine.embeddings import default_embedder
from ctxengine.learn import (
    EncoderFineTuner,
    OnlineLearner,
    RankingExample,
    document_pairs,
    fine_tune_encoder,
    fit_adapter,
)
from ctxengine.metrics import ndcg_at_k
from ctxengine.retrieval import HybridRetriever

CHUNKS = 5


def per_query(retriever: HybridRetriever, examples: Sequence[RankingExample], mode: str) -> list:
    return [
        ndcg_at_k([d.id for d in retriever.retrieve(e.query, k=10, mode=mode)], e.relevant, 10)
        for e in examples
    ]


def main(argv: Sequence[str] | None = None) -> list[dict]:
    from benchmarks.retrieval_quality import scifact

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 claims, 400 abstracts, 4 steps")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="training time budget")
    args = parser.parse_args(argv)

    (collection,) = scifact(args.quick)
    items = [RankingExample(text, relevant) for text, relevant in collection.queries]
    order = np.random.default_rng(0).permutation(len(items))
    cut = int(0.75 * len(items))
    train, test = [items[i] for i in order[:cut]], [items[i] for i in order[cut:]]
    retriever = HybridRetriever(collection.documents, embedder=default_embedder(), passage_window=0)
    engine = ContextEngine.from_retriever(retriever, rerank="none")
    rows: list[dict] = []
    scores: dict[str, dict[str, list[float]]] = {}
    for mode in ("dense", "hybrid"):
        scores.setdefault("base", {})[mode] = per_query(retriever, test, mode)

    started = time.perf_counter()
    adapter = fit_adapter(document_pairs(train, retriever))
    adapter_seconds = time.perf_counter() - started
    retriever.query_adapter = adapter
    for mode in ("dense", "hybrid"):
        scores.setdefault("base + query adapter", {})[mode] = per_query(retriever, test, mode)
    retriever.query_adapter = None

    tuner = EncoderFineTuner(
        max_steps=4 if args.quick else None,
        max_seconds=args.max_seconds,
        max_seq_length=128,
        show_progress=True,
    )
    learner = OnlineLearner(min_examples=10, min_holdout=5)
    with tempfile.TemporaryDirectory(prefix="ctxengine-finetune-") as scratch:
        report = fine_tune_encoder(
            engine, train, Path(scratch) / "model", tuner=tuner, learner=learner
        )
        candidate = retriever
        if not report["switched"] and report.get("model_path"):
            # not switched in: measure it anyway, on a copy re-embedded with it
            from ctxengine.embeddings import CachedEmbedder, SentenceTransformerEmbedder

            model = SentenceTransformerEmbedder(report["model_path"])
            candidate = retriever.reembedded(CachedEmbedder(model))
        for mode in ("dense", "hybrid"):
            scores.setdefault("fine-tuned", {})[mode] = per_query(candidate, test, mode)

    chunks = np.array_split(np.random.default_rng(1).permutation(len(test)), CHUNKS)
    for system, by_mode in scores.items():
        for mode, values in by_mode.items():
            row = {"system": system, "mode": mode, "ndcg@10": round(statistics.fmean(values), 4)}
            if system != "base":
                base = np.array(scores["base"][mode])
                delta = [float(np.mean(np.array(values)[c] - base[c])) for c in chunks]
                row["margin"] = round(float(np.mean(np.array(values) - base)), 4)
                row["chunk_min"] = round(min(delta), 4)
                row["chunk_max"] = round(max(delta), 4)
                row["chunks_won"] = f"{sum(d > 0 for d in delta)}/{CHUNKS}"
            rows.append(row)
    training = report.get("training", {})
    lines: list[str] = []
    print_table(
        f"SciFact: trained on {len(train)} train claims, nDCG@10 on {len(test)} claims never seen "
        f"(whole abstracts, {len(collection.documents)} documents); margin = over the base model, "
        f"chunk min/max = over {CHUNKS} chunks of the unseen claims",
        ["system", "mode", "nDCG@10", "margin", "chunk min", "chunk max", "chunks won"],
        [
            [
                r["system"],
                r["mode"],
                f"{r['ndcg@10']:.4f}",
                *(
                    [f"{r['margin']:+.4f}", f"{r['chunk_min']:+.4f}", f"{r['chunk_max']:+.4f}"]
                    if "margin" in r
                    else ["", "", ""]
                ),
                r.get("chunks_won", ""),
            ]
            for r in rows
        ],
        lines,
    )
    print(
        f"\nfine_tune_encoder: switched={report['switched']} ({report.get('reason')}); "
        f"its holdout: current {report.get('current')} vs candidate {report.get('candidate')} "
        f"on {report['holdout']} claims, trained on {report['train']}\n"
        f"training: {training.get('steps')} steps on {training.get('triples')} triples in "
        f"{training.get('seconds')} s ({training.get('stopped')}); re-embedding "
        f"{len(collection.documents)} abstracts: {report.get('reembed_seconds')} s; "
        f"query adapter training: {adapter_seconds:.1f} s"
    )
    rows.append(
        {
            "system": "costs",
            "mode": "",
            "train_s": training.get("seconds"),
            "steps": training.get("steps"),
            "reembed_s": report.get("reembed_seconds"),
            "adapter_train_s": round(adapter_seconds, 1),
            "switched": str(report["switched"]),
        }
    )
    return rows


if __name__ == "__main__":
    main()
