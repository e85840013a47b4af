"""Context modeling vs context engineering: do scorers trained on the data beat the
hand-set rules on that data?

* SciFact (809 train claims, 5,183 abstracts), 5-fold cross-validation over claims: the
  hybrid first stage's top 100 per claim, featurized (``DocumentFeatures``), the shipped
  ``LinearScorer`` (pointwise, piecewise-linear) trained on four folds re-orders the fifth.
  Hand-set rows: min-max hybrid at every alpha in 0..1 (0 = BM25, 1 = dense), weighted
  RRF, passage blends and the engine's default re-ranker over the same pool.
* LoCoMo dev (5 conversations, turns as documents), leave-one-conversation-out: the same.
* LoCoMo memory, leave-one-conversation-out: ``LearnedMemory`` against every memory row of
  ``benchmarks/memory_quality.py`` (same replay, same evidence-recall metric, slots of
  256/512/1024 tokens).
* Latency: what the learned ranker costs for 100 candidates (median), next to the
  re-ranker it replaces; memory recall, learned vs hand-set.

"best hand-set" is the best row *chosen on the test folds themselves* (an oracle the
learned model never gets); "tuned hand-set" picks the row on the training folds, as the
learned model does. Figures are means over folds +- their standard deviation.

    python -m benchmarks.learned_ranker            # everything (~4 min with warm caches)
    python -m benchmarks.learned_ranker --quick    # 40 claims over a slice, 2 conversations (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.data import load_locomo
from benchmarks.memory_quality import BUDGETS, Replay, evidence_recall, systems
from benchmarks.peers import SharedCache  # queries from the disk cache too
from benchmarks.retrieval_quality import scifact
from ctxengine.learn import DocumentFeatures, LearnedMemory, LinearScorer, MemoryFeatures
from ctxengine.memory import DecayMemory
from ctxengine.metrics import ndcg_at_k
from ctxengine.rerank import DEFAULT_RERANKER
from ctxengine.retrieval import HybridRetriever
from ctxengine.retrieval.fusion import fuse
from ctxengine.tokens import TiktokenCounter
from ctxengine.types import Document, ScoredDocument

TOP = 100
ALPHAS = tuple(round(a / 10, 1) for a in range(11))
QUICK_CONVERSATIONS = ("conv-30", "conv-26")


@dataclass
class Query:
    """One query: its candidate pool (first-stage order), the feature rows of the default
    feature set and of the one with TF-IDF, labels, and the nDCG@10 of every hand-set row."""

    text: str
    pool: list[ScoredDocument]
    features: dict[str, np.ndarray]  # feature set name -> rows
    gains: np.ndarray
    relevant: dict[str, float]
    handset: dict[str, float]


FEATURE_SETS = {"default": {}, "no passage": {"passage": False}, "tfidf": {"tfidf": True}}
PASSAGE_WEIGHTS = (0.2, 0.35, 0.5)
ENGINE_DEFAULT = f"hybrid + engine's default re-ranker ({', '.join(DEFAULT_RERANKER)})"


def make_queries(
    retriever: HybridRetriever, items: Sequence[tuple[str, dict[str, float]]]
) -> list[Query]:
    """Featurize the top-``TOP`` pool of each query and score every hand-set row: hybrid
    and RRF over the whole index at every alpha, and the hybrid pool re-ranked by
    :class:`PassageReranker` blends and by the engine's default re-ranker."""
    from ctxengine.rerank import PassageReranker, get_reranker

    documents = retriever.documents
    ids = [doc.id for doc in documents]
    featurizers = {name: DocumentFeatures(**options) for name, options in FEATURE_SETS.items()}
    rerankers = {
        f"hybrid + passage blend w={w:g}": PassageReranker(weight=w) for w in PASSAGE_WEIGHTS
    }
    rerankers[ENGINE_DEFAULT] = get_reranker(None)
    out = []
    for text, relevant in items:
        signals = retriever.score_all(text)
        # The first stage's own fusion (what retrieve() returns), from the signals at hand.
        chosen, fused = fuse(
            signals["dense"],
            signals["bm25"],
            alpha=retriever.alpha,
            k=TOP,
            pool=retriever.fusion_depth,
            method=retriever.fusion,
            rrf_k=retriever.rrf_k,
        )
        pool = [
            ScoredDocument(
                documents[i],
                float(score),
                {s: float(signals[s][i]) for s in ("bm25", "tfidf", "dense")},
            )
            for i, score in zip(chosen, fused)
        ]
        handset = {}
        for alpha in ALPHAS:
            chosen, _ = fuse(signals["dense"], signals["bm25"], alpha=alpha, k=10, pool=TOP)
            handset[f"hybrid alpha={alpha:g}"] = ndcg_at_k([ids[i] for i in chosen], relevant, 10)
        chosen, _ = fuse(signals["dense"], signals["bm25"], alpha=0.5, k=10, pool=TOP, method="rrf")
        handset["rrf alpha=0.5"] = ndcg_at_k([ids[i] for i in chosen], relevant, 10)
        for name, reranker in rerankers.items():
            handset[name] = ndcg_at_k(
                [d.id for d in reranker.rerank(text, pool, k=10)], relevant, 10
            )
        gains = np.array([relevant.get(doc.id, 0.0) for doc in pool])
        rows = {name: featurizer.transform(text, pool) for name, featurizer in featurizers.items()}
        out.append(Query(text, pool, rows, gains, relevant, handset))
    return out


# --- learners: train on some queries, return a scorer of a query's pool -----------------

Learner = Callable[[list[Query]], Callable[[Query], np.ndarray]]
SHIPPED = "learned (defaults: all features, pointwise, piecewise)"
NO_PASSAGE = "learned, without the passage features"


def scorer_learner(feature_set: str = "default", **options: object) -> Learner:
    featurizer = DocumentFeatures(**FEATURE_SETS[feature_set])

    def rows(q: Query) -> np.ndarray:
        return q.features[feature_set]

    def train(queries: list[Query]) -> Callable[[Query], np.ndarray]:
        model = LinearScorer(**options).fit([(rows(q), q.gains) for q in queries], featurizer)  # type: ignore[arg-type]
        return lambda q: model.score(rows(q))

    return train


def gbt_learner(queries: list[Query]) -> Callable[[Query], np.ndarray]:
    """Gradient-boosted trees (pointwise): does a non-linear model earn its cost?"""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=0
    )
    model.fit(
        np.vstack([q.features["default"] for q in queries]),
        np.concatenate([q.gains > 0 for q in queries]),
    )
    return lambda q: model.predict_proba(q.features["default"])[:, 1]


def pool_ndcg(query: Query, scores: np.ndarray) -> float:
    order = sorted(range(len(query.pool)), key=lambda i: -scores[i])  # stable: ties keep pool order
    return ndcg_at_k([query.pool[i].id for i in order], query.relevant, 10)


def cross_validate(
    folds: Sequence[list[Query]], learners: dict[str, Learner]
) -> dict[str, list[float]]:
    """Mean nDCG@10 per fold for every hand-set row, the tuned hand-set row, and every
    learner (trained on the other folds)."""
    rows = list(folds[0][0].handset)
    per: dict[str, list[float]] = {name: [] for name in rows}
    per["tuned hand-set (best row on training folds)"] = []
    per.update({name: [] for name in learners})
    for held, test in enumerate(folds):
        train = [q for i, fold in enumerate(folds) if i != held for q in fold]
        for name in rows:
            per[name].append(statistics.fmean(q.handset[name] for q in test))
        tuned = max(rows, key=lambda name: statistics.fmean(q.handset[name] for q in train))
        per["tuned hand-set (best row on training folds)"].append(
            statistics.fmean(q.handset[tuned] for q in test)
        )
        for name, learner in learners.items():
            scorer = learner(train)
            per[name].append(statistics.fmean(pool_ndcg(q, scorer(q)) for q in test))
    return per


def table_rows(per: dict[str, list[float]]) -> list[list[str]]:
    """One row per system: mean +- std over folds, and the folds."""
    return [
        [
            name,
            f"{statistics.fmean(v):.4f} ± {statistics.pstdev(v):.4f}",
            " ".join(f"{x:.3f}" for x in v),
        ]
        for name, v in per.items()
    ]


def margin(per: dict[str, list[float]], learned: str, handset: Sequence[str]) -> dict:
    """``learned`` against the best of ``handset`` (chosen by its mean over all folds, i.e.
    on the test data: an oracle the learned model never gets)."""
    best = max(handset, key=lambda n: statistics.fmean(per[n]))
    margins = np.array(per[learned]) - np.array(per[best])
    return {
        "learned_row": learned,
        "best_handset": best,
        "learned": statistics.fmean(per[learned]),
        "best": statistics.fmean(per[best]),
        "margin_mean": float(margins.mean()),
        "margin_std": float(margins.std()),
        "folds_won": int((margins > 0).sum()),
        "folds": len(margins),
    }


def print_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], lines: list[str]
) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    block = [f"\n{title}", "  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    block += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    print("\n".join(block))
    lines += [f"\n**{title}**\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def verdict(
    learned: str, what: str, s: dict, folds: int, unit: str, spec: str, lines: list[str]
) -> None:
    """Print and record one 'learned vs the best hand-set' line."""
    beats = "beats" if s["margin_mean"] > 0 else "does NOT beat"
    line = (
        f"{learned} ({s['learned']:{spec}}) {beats} the best hand-set {what} ({s['best_handset']}, "
        f"{s['best']:{spec}}) by {s['margin_mean']:+{spec}} ± {s['margin_std']:{spec}} "
        f"(wins {s['folds_won']}/{folds} {unit})"
    )
    print(line)
    lines.append(f"\n- {line}")


def document_section(name: str, folds: Sequence[list[Query]], lines: list[str]) -> dict:
    learners: dict[str, Learner] = {
        SHIPPED: scorer_learner(),
        "learned: pairwise, piecewise": scorer_learner(objective="pairwise"),
        "learned: pointwise, linear (knots=0)": scorer_learner(knots=0),
        "learned, + TF-IDF features": scorer_learner("tfidf"),
        NO_PASSAGE: scorer_learner("no passage"),
        "gradient-boosted trees (pointwise, all features; not shipped)": gbt_learner,
    }
    started = time.perf_counter()
    per = cross_validate(folds, learners)
    queries = sum(len(f) for f in folds)
    print_table(
        f"{name}: nDCG@10, {queries} queries, {len(folds)} folds (mean ± std over folds)",
        ["system", "nDCG@10", "per fold"],
        table_rows(per),
        lines,
    )
    rows = list(folds[0][0].handset)
    summaries = [
        margin(per, SHIPPED, rows),
        margin(per, NO_PASSAGE, [r for r in rows if "passage" not in r]),
    ]
    for s in summaries:
        verdict(
            f"{name}: {s['learned_row']}",
            "row on the same signals",
            s,
            s["folds"],
            "folds",
            ".4f",
            lines,
        )
    print(f"({time.perf_counter() - started:.0f} s)")
    return {"folds": per, "summary": summaries}


# --- data ---------------------------------------------------------------------------------


def scifact_folds(quick: bool, k: int) -> list[list[Query]]:
    # The collection retrieval_quality.py and peers.py evaluate (quick: 40 claims over
    # their abstracts plus 400 others, so a smoke test embeds a slice, not the corpus).
    (collection,) = scifact(quick)
    retriever = HybridRetriever(collection.documents, embedder=SharedCache())
    built = make_queries(retriever, collection.queries)
    order = np.random.default_rng(0).permutation(len(built))
    return [[built[i] for i in order[f::k]] for f in range(k)]


def locomo_folds(conversations: Sequence) -> list[list[Query]]:
    folds = []
    for conversation in conversations:
        retriever = HybridRetriever(
            [Document(t.document_text, id=t.dia_id) for t in conversation.turns],
            embedder=SharedCache(),
        )
        items = [(q.question, {e: 1.0 for e in q.evidence}) for q in conversation.answerable()]
        folds.append(make_queries(retriever, items))
    return folds


# --- memory -------------------------------------------------------------------------------

LEARNED_MEMORY = "learned memory (default LinearScorer)"


def memory_section(conversations: Sequence, lines: list[str]) -> dict:
    """Leave-one-conversation-out: LearnedMemory vs every memory_quality row, per slot."""
    started = time.perf_counter()
    counter = TiktokenCounter("cl100k_base")
    replays = [Replay(c, counter) for c in conversations]
    features = MemoryFeatures()
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for replay in replays:
        memory = replay.memory()
        for question in replay.conversation.answerable():
            scored = memory.score(question.question, session_id=replay.session, now=replay.now)
            evidence = set(question.evidence)
            gains = np.array([float(s.turn.metadata.get("dia_id") in evidence) for s in scored])
            rows = features.transform(question.question, scored, replay.now)
            groups.setdefault(replay.session, []).append((rows, gains))
    per: dict[str, dict[str, dict[int, float]]] = {}  # system -> conversation -> budget -> recall
    learned_by_session: dict[str, LearnedMemory] = {}
    for replay in replays:
        for name, select in systems(replay).items():
            per.setdefault(name.strip(), {})[replay.session] = evidence_recall(replay, select)
        train = [g for session, gs in groups.items() if session != replay.session for g in gs]
        learned = learned_by_session[replay.session] = LearnedMemory(
            LinearScorer().fit(train, features), features
        )
        memory = replay.memory()

        def select(
            question: str,
            budget: int,
            replay: Replay = replay,
            learned: LearnedMemory = learned,
            memory: DecayMemory = memory,
        ) -> set[str]:
            found = learned.recall(
                memory, question, budget, session_id=replay.session, now=replay.now
            )
            return {s.turn.metadata["dia_id"] for s in found}

        per.setdefault(LEARNED_MEMORY, {})[replay.session] = evidence_recall(replay, select)
    sessions = [r.session for r in replays]
    handset = [n for n in per if n != LEARNED_MEMORY]
    rows, summary = [], {}
    for name, by_conv in per.items():
        cells = []
        for b in BUDGETS:
            values = [by_conv[s][b] for s in sessions]
            cells.append(f"{statistics.fmean(values):.1%} ± {statistics.pstdev(values):.1%}")
        rows.append([name, *cells])
    for b in BUDGETS:
        best = max(handset, key=lambda n: statistics.fmean(per[n][s][b] for s in sessions))
        margins = np.array([per[LEARNED_MEMORY][s][b] - per[best][s][b] for s in sessions])
        # tuned: the row that is best on the other conversations, scored on the held-out one
        tuned = [
            per[
                max(
                    handset,
                    key=lambda n: statistics.fmean(per[n][o][b] for o in sessions if o != s),
                )
            ][s][b]
            for s in sessions
        ]
        summary[b] = {
            "best_handset": best,
            "margin_mean": float(margins.mean()),
            "margin_std": float(margins.std()),
            "folds_won": int((margins > 0).sum()),
            "learned": statistics.fmean(per[LEARNED_MEMORY][s][b] for s in sessions),
            "best": statistics.fmean(per[best][s][b] for s in sessions),
            "tuned": statistics.fmean(tuned),
        }
    rows.append(
        [
            "tuned hand-set (best row on the other conversations)",
            *(f"{summary[b]['tuned']:.1%}" for b in BUDGETS),
        ]
    )
    print_table(
        f"LoCoMo memory: evidence recall in the history slot, {len(replays)} conversations, "
        "leave-one-conversation-out (mean ± std over conversations)",
        ["system", *(f"B={b}" for b in BUDGETS)],
        rows,
        lines,
    )
    for b in BUDGETS:
        verdict(
            f"B={b}: learned", "memory", summary[b], len(sessions), "conversations", ".1%", lines
        )
    replay = replays[0]
    memory, learned = replay.memory(), learned_by_session[replay.session]
    questions = [q.question for q in replay.conversation.answerable()][:100]
    timing = {
        "DecayMemory.recall (hand-set)": _median_ms(
            questions, lambda q: memory.recall(q, 512, session_id=replay.session, now=replay.now)
        ),
        "LearnedMemory.recall": _median_ms(
            questions,
            lambda q: learned.recall(memory, q, 512, session_id=replay.session, now=replay.now),
        ),
    }
    print_table(
        f"Memory recall latency, {len(replay.conversation.turns)} turns, B=512, median over "
        f"{len(questions)} questions",
        ["what", "median ms"],
        [[k, f"{v:.2f}"] for k, v in timing.items()],
        lines,
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    return {"per": per, "summary": summary, "latency_ms": timing}


# --- latency ------------------------------------------------------------------------------


def _median_ms(items: Sequence, run: Callable[[object], object]) -> float:
    """Median ms of ``run(item)`` over ``items``, each timed on its second (warm) call."""
    times = []
    for item in items:
        run(item)
        start = time.perf_counter()
        run(item)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def latency_section(queries: list[Query], lines: list[str]) -> dict:
    """What the learned ranker costs for ``TOP`` candidates, next to the default re-ranker
    it replaces (windows and documents already embedded: the caches are warm)."""
    from ctxengine.learn import LearnedRanker
    from ctxengine.rerank import get_reranker

    rankers, models, fit_seconds = {}, {}, {}
    for name in ("default", "no passage"):
        features = DocumentFeatures(**FEATURE_SETS[name])
        started = time.perf_counter()
        models[name] = LinearScorer().fit([(q.features[name], q.gains) for q in queries], features)
        fit_seconds[name] = time.perf_counter() - started
        rankers[name] = LearnedRanker(models[name], features)
    default = get_reranker(None)
    sample = queries[:200]
    figures = {
        f"model only ({TOP} feature rows -> scores)": _median_ms(
            sample, lambda q: models["default"].score(q.features["default"])
        ),
        "LearnedRanker.rerank, default features (passage windows from the cache)": _median_ms(
            sample, lambda q: rankers["default"].rerank(q.text, q.pool, k=10)
        ),
        "LearnedRanker.rerank, without passage features": _median_ms(
            sample, lambda q: rankers["no passage"].rerank(q.text, q.pool, k=10)
        ),
        f"the engine's default re-ranker ({', '.join(DEFAULT_RERANKER)}), replaced": _median_ms(
            sample, lambda q: default.rerank(q.text, q.pool, k=10)
        ),
        # training is not per query: one fit on every query's candidate rows
        f"training: LinearScorer.fit on {len(queries)} queries x {TOP} candidates (ms, once)": 1000
        * fit_seconds["default"],
    }
    print_table(
        f"Re-ranking latency, {TOP} candidates, median over {len(sample)} queries (1 BLAS thread)",
        ["what", "median ms"],
        [[k, f"{v:.3f}"] for k, v in figures.items()],
        lines,
    )
    return figures


def main(argv: Sequence[str] | None = None) -> dict:
    from threadpoolctl import threadpool_limits

    # One BLAS thread: a 5,000 x 384 mat-vec takes 0.1 ms alone but tens of ms when
    # OpenBLAS spins threads on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        return _main(argv)


def _main(argv: Sequence[str] | None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="40 claims over a slice, 2 conversations"
    )
    parser.add_argument("--folds", type=int, default=5, help="SciFact cross-validation folds")
    parser.add_argument("--only", choices=("scifact", "locomo", "memory"), action="append")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the tables to this markdown file (python -m benchmarks puts them in RESULTS.md)",
    )
    args = parser.parse_args(argv)
    sections = args.only or ["scifact", "locomo", "memory"]
    started = time.perf_counter()
    command = "python -m benchmarks.learned_ranker" + (" --quick" if args.quick else "")
    lines = ["## Learned ranker and memory scorer vs hand-set rules", "", f"`{command}`"]
    results: dict = {}
    if "scifact" in sections:
        folds = scifact_folds(args.quick, args.folds)
        results["scifact"] = document_section("SciFact train claims", folds, lines)
        results["latency"] = latency_section([q for f in folds for q in f], lines)
    conversations = load_locomo() if {"locomo", "memory"} & set(sections) else []
    if args.quick:
        conversations = [c for c in conversations if c.sample_id in QUICK_CONVERSATIONS]
    if "locomo" in sections:
        results["locomo"] = document_section(
            "LoCoMo dev, turns as documents", locomo_folds(conversations), lines
        )
    if "memory" in sections:
        results["memory"] = memory_section(conversations, lines)
    lines.append(f"\n({time.perf_counter() - started:.0f} s)")
    out = args.out
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
