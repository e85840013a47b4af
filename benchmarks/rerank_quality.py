"""Does re-ranking help? nDCG@10 of the first stage alone vs first stage + each re-ranker.

SciFact (BEIR train claims, 5,183 abstracts): the first stage retrieves the top ``--top``
candidates, each re-ranker re-orders them, nDCG@10 against the qrels. LoCoMo dev
(documents = turns, relevant = evidence turns): the same per conversation.

    CTXENGINE_EMBED_CACHE=.cache/embeddings python benchmarks/rerank_quality.py \
        --dataset scifact --limit 100 --top 50            # the README figures
    python benchmarks/rerank_quality.py --dataset scifact --skip 100 --limit 100 --top 50
    python benchmarks/rerank_quality.py --dataset locomo --top 50

The first run embeds every abstract and every two-sentence window of the candidates
(~22k windows for 100 claims at top 50, ~47k for all claims: tens of minutes on 2 cores);
the on-disk cache makes later runs take seconds of model time. ``--limit N`` uses the first
N claims/questions, ``--skip N`` starts after the first N, ``--only TEXT`` keeps the
strategies whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# First on the path: site-packages may hold an unrelated top-level "benchmarks" package.
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.data import load_locomo, load_scifact_corpus, load_scifact_queries
from ctxengine.embeddings import default_embedder
from ctxengine.metrics import mean, ndcg_at_k, recall_at_k
from ctxengine.rerank import MMRReranker, PassageReranker, Reranker, RerankPipeline, TagReranker
from ctxengine.retrieval import HybridRetriever
from ctxengine.types import Document, ScoredDocument

Case = tuple[str, list[ScoredDocument], dict[str, float]]  # query, candidates, relevance


def build_rerankers(
    weights: Sequence[float], gains: Sequence[float], window: int, mmr: bool
) -> dict[str, Reranker]:
    """The strategies compared; they share the process-wide (cached) embedder."""
    embedder = default_embedder()
    out: dict[str, Reranker] = {"tags (no tags in data)": TagReranker()}
    for weight in weights:
        out[f"passage w={weight:g} win={window}"] = PassageReranker(
            embedder, window=window, weight=weight
        )
    for weight in gains:
        out[f"passage gain w={weight:g} win={window}"] = PassageReranker(
            embedder, window=window, weight=weight, mode="gain"
        )
    if mmr:
        out["mmr lambda=0.7"] = MMRReranker(embedder)
        # lambda=1: relevance order untouched, only near-duplicates (cos > 0.92) removed.
        out["mmr dedup-only lambda=1"] = MMRReranker(embedder, lambda_=1.0)
        out["passage gain w=1 + mmr"] = RerankPipeline(
            [
                PassageReranker(embedder, window=window, weight=1.0, mode="gain"),
                MMRReranker(embedder),
            ]
        )
        out["passage gain w=1 + dedup-only"] = RerankPipeline(
            [
                PassageReranker(embedder, window=window, weight=1.0, mode="gain"),
                MMRReranker(embedder, lambda_=1.0),
            ]
        )
    return out


def evaluate(
    cases: Sequence[Case], rerankers: dict[str, Reranker], top: int
) -> list[dict[str, object]]:
    """nDCG@10 (and recall@10) per strategy; latency = median seconds per query, warm cache."""
    rows: list[dict[str, object]] = []
    first = [ndcg_at_k([c.id for c in cands], rel, 10) for _, cands, rel in cases]
    rows.append(
        {
            "strategy": "first stage alone",
            "ndcg@10": mean(first),
            "recall@10": mean(
                [recall_at_k([c.id for c in cands], rel, 10) for _, cands, rel in cases]
            ),
            f"recall@{top}": mean(
                [recall_at_k([c.id for c in cands], rel, top) for _, cands, rel in cases]
            ),
            "median_ms": 0.0,
        }
    )
    for name, reranker in rerankers.items():
        scores, recalls, times = [], [], []
        for query, candidates, relevant in cases:
            reranker.rerank(query, candidates, k=10)  # warm: embeddings come from the cache
            start = time.perf_counter()
            ranked = [c.id for c in reranker.rerank(query, candidates, k=10)]
            times.append(time.perf_counter() - start)
            scores.append(ndcg_at_k(ranked, relevant, 10))
            recalls.append(recall_at_k(ranked, relevant, 10))
        wins = sum(s > f for s, f in zip(scores, first))
        losses = sum(s < f for s, f in zip(scores, first))
        rows.append(
            {
                "strategy": name,
                "ndcg@10": mean(scores),
                "recall@10": mean(recalls),
                f"recall@{top}": rows[0][f"recall@{top}"],
                "median_ms": 1000 * statistics.median(times),
                "better/worse queries": f"{wins}/{losses}",
            }
        )
        print(f"  {name}: nDCG@10 {mean(scores):.4f}", file=sys.stderr, flush=True)
    return rows


def scifact_cases(limit: int | None, top: int, mode: str, skip: int = 0) -> list[Case]:
    corpus = load_scifact_corpus()
    queries, qrels = load_scifact_queries()
    retriever = HybridRetriever(
        [Document(doc.document_text, id=doc.id) for doc in corpus], mode=mode
    )
    items = list(queries.items())[skip:][:limit]
    cases: list[Case] = []
    for done, (qid, text) in enumerate(items, 1):
        relevant = {doc_id: float(score) for doc_id, score in qrels[qid].items()}
        cases.append((text, retriever.retrieve(text, k=top), relevant))
        if done % 100 == 0:
            print(f"  retrieved {done}/{len(items)}", file=sys.stderr, flush=True)
    return cases


def locomo_cases(limit: int | None, top: int, mode: str, skip: int = 0) -> list[Case]:
    cases: list[Case] = []
    for conversation in load_locomo():
        retriever = HybridRetriever(
            [Document(turn.document_text, id=turn.dia_id) for turn in conversation.turns], mode=mode
        )
        for question in conversation.answerable():
            relevant = {dia_id: 1.0 for dia_id in question.evidence}
            cases.append(
                (question.question, retriever.retrieve(question.question, k=top), relevant)
            )
    return cases[skip:][:limit]


def prewarm(cases: Sequence[Case], window: int) -> None:
    """Embed every candidate window once, in big batches (fast, and progress is visible)."""
    from ctxengine.rerank import passage_windows

    texts = sorted(
        {
            w
            for _, cands, _ in cases
            for c in cands
            for w in passage_windows(c.document.text, window)
        }
    )
    embedder = default_embedder()
    start = time.perf_counter()
    for offset in range(0, len(texts), 2000):
        embedder.embed(texts[offset : offset + 2000])
        print(
            f"  windows {min(offset + 2000, len(texts))}/{len(texts)} "
            f"({time.perf_counter() - start:.0f}s)",
            file=sys.stderr,
            flush=True,
        )


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n{title}")
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]
    widths = {c: max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c, "")).ljust(widths[c]) for c in columns))


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=("scifact", "locomo", "both"), default="scifact")
    parser.add_argument("--limit", type=int, default=None, help="first N claims / questions")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N (a fresh slice)")
    parser.add_argument("--top", type=int, default=100, help="candidates re-ranked per query")
    parser.add_argument("--first-stage", default="hybrid", help="HybridRetriever mode")
    parser.add_argument(
        "--weights", default="0.2,0.5,0.7", help="passage weights to compare (blend mode)"
    )
    parser.add_argument("--gains", default="0.5,1.0", help="passage weights in 'gain' mode")
    parser.add_argument("--window", type=int, default=2, help="sentences per passage window")
    parser.add_argument("--no-mmr", action="store_true", help="skip the MMR rows")
    parser.add_argument("--only", default="", help="run only strategies whose name contains this")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    weights = [float(w) for w in args.weights.split(",") if w.strip()]
    gains = [float(w) for w in args.gains.split(",") if w.strip()]
    rerankers = build_rerankers(weights, gains, args.window, not args.no_mmr)
    rerankers = {name: r for name, r in rerankers.items() if args.only in name}
    loaders: dict[str, Callable[[int | None, int, str, int], list[Case]]] = {
        "scifact": scifact_cases,
        "locomo": locomo_cases,
    }
    names = ["scifact", "locomo"] if args.dataset == "both" else [args.dataset]
    results: dict[str, list[dict[str, object]]] = {}
    for name in names:
        print(
            f"[{name}] first stage: {args.first_stage}, top {args.top}", file=sys.stderr, flush=True
        )
        cases = loaders[name](args.limit, args.top, args.first_stage, args.skip)
        prewarm(cases, args.window)
        rows = evaluate(cases, rerankers, args.top)
        results[name] = rows
        print_table(
            f"{name}: {len(cases)} queries (after skipping {args.skip}), first stage {args.first_stage!r}, "
            f"top {args.top} re-ranked, nDCG@10",
            rows,
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
