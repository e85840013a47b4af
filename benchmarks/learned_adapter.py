"""The query adapter (``ctxengine.learn.QueryAdapter``): does a learned map on query
vectors make the dense signal, the hybrid first stage, the learned ranker and memory
recall better on data it was not trained on?

LoCoMo dev (5 conversations), leave-one-conversation-out: the adapter is trained on the
questions of four conversations (their evidence turns as positives, the first stage's
top non-evidence turns as hard negatives) and evaluated on the fifth:

* documents = turns: nDCG@10 of dense and hybrid retrieval without / with the adapter, and
  of the learned ranker (``LinearScorer`` on ``DocumentFeatures``, trained on the same four
  conversations) over the plain and the adapted first stage;
* memory: evidence recall of the default ``DecayMemory`` in a slot of 256/512/1024 tokens,
  without / with a memory adapter trained on the other conversations' questions.

The adapter's own cost per query (one low-rank map of the query vector, independent of the
number of documents) is timed too.

    python -m benchmarks.learned_adapter            # LoCoMo, 5 conversations (~10 min here)
    python -m benchmarks.learned_adapter --quick    # 2 conversations (smoke test)
    python -m benchmarks.learned_adapter --only scifact   # SciFact: trained on 75% of the
                                                          # train claims, scored once on the rest
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO_ROOT)] + [p for p in sys.path if p != str(REPO_ROOT)]
import numpy as np

import benchmarks  # noqa: F401  the shared environment, before ctxengine loads
from benchmarks.data import load_locomo
from benchmarks.learned_ranker import QUICK_CONVERSATIONS, print_table
from benchmarks.memory_quality import BUDGETS, Replay, evidence_recall
from benchmarks.peers import SharedCache
from ctxengine.learn import (
    DocumentFeatures,
    LinearScorer,
    MemoryExample,
    QueryAdapter,
    RankingExample,
    document_pairs,
    fit_adapter,
    memory_pairs,
)
from ctxengine.metrics import ndcg_at_k
from ctxengine.retrieval import HybridRetriever
from ctxengine.tokens import TiktokenCounter
from ctxengine.types import Document

TOP = 100


def concat(pairs: Sequence[tuple]) -> tuple:
    return (
        np.vstack([p[0] for p in pairs if len(p[0])]),
        [x for p in pairs for x in p[1]],
        [x for p in pairs for x in p[2]],
    )


def featurize(
    retriever: HybridRetriever, examples: Sequence[RankingExample], features: DocumentFeatures
) -> list:
    """(pool ids, feature rows, gains) of each example over the retriever's top ``TOP``."""
    out = []
    for example in examples:
        pool = retriever.retrieve(example.query, k=TOP)
        gains = np.array([example.relevant.get(d.id, 0.0) for d in pool])
        out.append(
            ([d.id for d in pool], features.transform(example.query, pool), gains, example.relevant)
        )
    return out


def learned_ndcg(train: list, test: list, features: DocumentFeatures) -> float:
    model = LinearScorer().fit([(rows, gains) for _, rows, gains, _ in train], features)
    values = []
    for ids, rows, _, relevant in test:
        order = np.argsort(-model.score(rows), kind="stable")
        values.append(ndcg_at_k([ids[i] for i in order], relevant, 10))
    return statistics.fmean(values)


def documents_section(conversations: Sequence, lines: list[str]) -> dict:
    started = time.perf_counter()
    retrievers, examples, pairs = {}, {}, {}
    for c in conversations:
        r = HybridRetriever(
            [Document(t.document_text, id=t.dia_id) for t in c.turns], embedder=SharedCache()
        )
        retrievers[c.sample_id] = r
        examples[c.sample_id] = [
            RankingExample(q.question, [e for e in q.evidence if e in r])
            for q in c.answerable()
            if any(e in r for e in q.evidence)
        ]
        pairs[c.sample_id] = document_pairs(examples[c.sample_id], r)
    names = list(retrievers)
    features = DocumentFeatures()
    plain = {s: featurize(retrievers[s], examples[s], features) for s in names}
    per: dict[str, list[float]] = {}
    fit_seconds = []
    for held in names:
        t0 = time.perf_counter()
        adapter = fit_adapter(concat([pairs[s] for s in names if s != held]))
        fit_seconds.append(time.perf_counter() - t0)
        r = retrievers[held]
        for label, a in (("", None), (" + adapter", adapter)):
            r.query_adapter = a
            for mode in ("dense", "hybrid"):
                per.setdefault(f"{mode}{label}", []).append(
                    statistics.fmean(
                        ndcg_at_k(
                            [d.id for d in r.retrieve(e.query, k=10, mode=mode)], e.relevant, 10
                        )
                        for e in examples[held]
                    )
                )
        r.query_adapter = None
        per.setdefault("learned ranker", []).append(
            learned_ndcg([g for s in names if s != held for g in plain[s]], plain[held], features)
        )
        # the same ranker over the adapted first stage: every conversation featurized with
        # this fold's adapter (trained without the held-out conversation)
        for s in names:
            retrievers[s].query_adapter = adapter
        adapted = {s: featurize(retrievers[s], examples[s], features) for s in names}
        for s in names:
            retrievers[s].query_adapter = None
        per.setdefault("learned ranker + adapter", []).append(
            learned_ndcg(
                [g for s in names if s != held for g in adapted[s]], adapted[held], features
            )
        )
        print(held, {k: round(v[-1], 4) for k, v in per.items()}, flush=True)
    rows = [
        [
            k,
            f"{statistics.fmean(v):.4f} ± {statistics.pstdev(v):.4f}",
            " ".join(f"{x:.3f}" for x in v),
        ]
        for k, v in per.items()
    ]
    print_table(
        f"LoCoMo dev, turns as documents: nDCG@10, leave-one-conversation-out ({len(names)} folds)",
        ["system", "nDCG@10", "per conversation"],
        rows,
        lines,
    )
    lines.append(
        f"\n- adapter training: median {statistics.median(fit_seconds):.1f} s per fold (CPU, 1 thread)"
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    return {"per": per, "fit_seconds": fit_seconds}


def memory_section(conversations: Sequence, lines: list[str]) -> dict:
    started = time.perf_counter()
    counter = TiktokenCounter("cl100k_base")
    replays = [Replay(c, counter) for c in conversations]

    def label(scored: Sequence, relevant: dict) -> np.ndarray:
        return np.array([relevant.get(s.turn.metadata.get("dia_id"), 0.0) for s in scored])

    pairs = {}
    for replay in replays:
        examples = [
            MemoryExample(q.question, list(q.evidence), replay.session, replay.now)
            for q in replay.conversation.answerable()
        ]
        pairs[replay.session] = memory_pairs(examples, replay.memory(), label=label)
    per: dict[str, dict[str, dict[int, float]]] = {}
    for replay in replays:
        adapter = fit_adapter(concat([pairs[s] for s in pairs if s != replay.session]))
        for name, a in (("default DecayMemory", None), ("default DecayMemory + adapter", adapter)):
            memory = replay.memory()
            memory.query_adapter = a

            def select(question: str, budget: int, memory=memory, replay=replay) -> set[str]:
                found = memory.recall(question, budget, session_id=replay.session, now=replay.now)
                return {s.turn.metadata["dia_id"] for s in found}

            per.setdefault(name, {})[replay.session] = evidence_recall(replay, select)
        print(
            replay.session,
            {n: round(v[replay.session][512], 4) for n, v in per.items()},
            flush=True,
        )
    sessions = [r.session for r in replays]
    rows = [
        [
            name,
            *(
                f"{statistics.fmean(v[s][b] for s in sessions):.1%} ± "
                f"{statistics.pstdev([v[s][b] for s in sessions]):.1%}"
                for b in BUDGETS
            ),
        ]
        for name, v in per.items()
    ]
    print_table(
        f"LoCoMo memory: evidence recall, leave-one-conversation-out ({len(sessions)} conversations)",
        ["system", *(f"B={b}" for b in BUDGETS)],
        rows,
        lines,
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    return per


def scifact_section(lines: list[str]) -> dict:
    """Trained on 75% of the SciFact train claims (seeded split), evaluated once on the
    other 25%, never tuned on; whole-abstract vectors (``passage_window=0``: the sentence
    windows of the corpus are the slow part to embed)."""
    from benchmarks.retrieval_quality import scifact

    started = time.perf_counter()
    (collection,) = scifact(False)
    retriever = HybridRetriever(collection.documents, embedder=SharedCache(), passage_window=0)
    items = [RankingExample(text, relevant) for text, relevant in collection.queries]
    order = np.random.default_rng(0).permutation(len(items))
    cut = int(0.75 * len(items))
    train, test = [items[i] for i in order[:cut]], [items[i] for i in order[cut:]]
    adapter = fit_adapter(document_pairs(train, retriever))
    per = {}
    for label, a in (("", None), (" + adapter", adapter)):
        retriever.query_adapter = a
        for mode in ("dense", "hybrid"):
            per[f"{mode}{label}"] = statistics.fmean(
                ndcg_at_k(
                    [d.id for d in retriever.retrieve(e.query, k=10, mode=mode)], e.relevant, 10
                )
                for e in test
            )
    retriever.query_adapter = None
    print_table(
        f"SciFact: adapter trained on {len(train)} train claims, nDCG@10 on {len(test)} claims it never saw "
        "(whole abstracts)",
        ["system", "nDCG@10"],
        [[k, f"{v:.4f}"] for k, v in per.items()],
        lines,
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    return per


def latency(lines: list[str]) -> dict:
    """What the adapter adds to a query: one low-rank map of the query vector, whatever
    the number of documents (the document scoring itself is unchanged)."""
    rng = np.random.default_rng(0)
    adapter = QueryAdapter(rank=32)
    adapter.down = rng.normal(size=(32, 384)).astype(np.float32) / 20
    adapter.up = rng.normal(size=(384, 32)).astype(np.float32) / 20
    matrix = rng.normal(size=(10_000, 384)).astype(np.float32)
    vector = rng.normal(size=384).astype(np.float32)
    out = {}
    for name, run in (
        ("adapter.transform (1 query vector)", lambda: adapter(vector)),
        (
            "dense scores, 10,000 documents (the einsum it precedes)",
            lambda: np.einsum("ij,j->i", matrix, vector),
        ),
    ):
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        out[name] = 1000 * statistics.median(times)
    print_table(
        "Adapter latency per query (median of 200, ms)",
        ["what", "ms"],
        [[k, f"{v:.4f}"] for k, v in out.items()],
        lines,
    )
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 conversations")
    parser.add_argument(
        "--only", choices=("documents", "memory", "latency", "scifact"), action="append"
    )
    args = parser.parse_args(argv)
    sections = args.only or ["latency", "documents", "memory"]
    conversations = load_locomo()
    if args.quick:
        conversations = [c for c in conversations if c.sample_id in QUICK_CONVERSATIONS]
    lines = [
        "## Query adapter (learned map on query vectors)",
        "",
        "`python -m benchmarks.learned_adapter" + (" --quick`" if args.quick else "`"),
    ]
    results: dict = {}
    with threadpool_limits(limits=1, user_api="blas"):
        if "latency" in sections:
            results["latency"] = latency(lines)
        if "documents" in sections:
            results["documents"] = documents_section(conversations, lines)
        if "memory" in sections:
            results["memory"] = memory_section(conversations, lines)
        if "scifact" in sections:
            results["scifact"] = scifact_section(lines)
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
