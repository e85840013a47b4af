"""Hybrid indexing at the model's own pace: what the passage signal costs, and what it buys.

One run, one model object (the bundled all-MiniLM-L6-v2), the same SciFact abstracts:

* ``plain encode``: one ``SentenceTransformer.encode`` of the documents (the floor: every
  dense index embeds each document at least once);
* ``ctxengine hybrid, <passage embedding>``: ``HybridRetriever`` in hybrid mode with each
  ``passage_embedding``: ``late`` (document and sentence-window vectors from one forward
  pass per document, further segments only where a document is longer than the model
  reads), ``late-truncated`` (that one pass only), ``sentences`` (each sentence of that
  pass embedded once, windows summed from them) and ``separate`` (the default: every
  window embedded as its own text; one repeat, it is the slow one), each on a cold
  embedding cache (a new temporary directory per repeat), up to and including the first
  query (which builds BM25 and the matrices).

Arms alternate within each repeat; the table gives medians and the ratio to the plain
encode of the same repeat. Then the quality of each index: nDCG@10 of hybrid retrieval on
SciFact train (809 claims, full 5,183-abstract corpus) and LoCoMo dev (5 conversations),
with the mean and spread (standard deviation) over 5 query folds and the paired difference
of each method to ``separate``; vectors come from ``CTXENGINE_EMBED_CACHE`` there (quality does not depend
on the cache; only the timed arms must be cold). Nothing is tuned on these sets.

``--claims N --distractors M`` evaluates SciFact on a slice instead (the first N claims over
every abstract judged for them plus M others), for a loaded machine.

    python -m benchmarks.indexing [--docs 200] [--repeats 3] [--quick] [--no-quality] [--data DIR]
                                  [--claims N] [--distractors M] [--no-separate]
                                  [--methods late,late-truncated,sentences,separate]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.data import data_folder, load_scifact_corpus
from benchmarks.retrieval_quality import Collection, locomo, scifact
from ctxengine.embeddings import CachedEmbedder, SentenceTransformerEmbedder, default_embedder
from ctxengine.metrics import ndcg_at_k
from ctxengine.retrieval import HybridRetriever
from ctxengine.retrieval.sentence_read import sentences_read
from ctxengine.retrieval.windows import PASSAGE_EMBEDDINGS, window_texts
from ctxengine.types import Document

FOLDS = 5
#: The retriever's default passage embedding (marked in the tables).
DEFAULT = HybridRetriever().passage_embedding


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def speed(
    n_docs: int, repeats: int, separate: bool, methods: Sequence[str] = PASSAGE_EMBEDDINGS
) -> list[dict[str, object]]:
    """Seconds per arm (medians over ``repeats``) and the ratio to the plain encode;
    ``methods``: the passage embeddings timed (``separate`` once, and only with
    ``separate``)."""
    docs = [Document(id=d.id, text=d.document_text) for d in load_scifact_corpus()[:n_docs]]
    texts = [d.text for d in docs]
    model = SentenceTransformerEmbedder()
    encoder = model._model  # the very SentenceTransformer the embedder runs

    def plain() -> None:
        encoder.encode(texts, batch_size=model.batch_size, normalize_embeddings=True)

    def hybrid(method: str) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory() as cache:
                retriever = HybridRetriever(
                    docs, embedder=CachedEmbedder(model, cache), passage_embedding=method
                )
                retriever.retrieve("warm-up query builds BM25 and the matrices", k=10)

        return run

    plain()  # load and warm the model once, outside every arm
    late = [m for m in methods if m != "separate"]
    times: dict[str, list[float]] = {"plain": [], **{m: [] for m in PASSAGE_EMBEDDINGS}}
    ratios: dict[str, list[float]] = {m: [] for m in PASSAGE_EMBEDDINGS}
    for repeat in range(repeats):
        arms = late + ["separate"] if separate and repeat == 0 else late
        base = _timed(plain)
        times["plain"].append(base)
        for arm in arms:
            seconds = _timed(hybrid(arm))
            times[arm].append(seconds)
            ratios[arm].append(seconds / base)
    windows = sum(len(window_texts(t, 2)) for t in texts)
    # sentences: every sentence of a windowed document's first read, other documents whole
    read = sum(len(sentences_read(t, model, 2)) or 1 for t in texts)
    sent = {m: read if m == "sentences" else len(texts) for m in late}
    rows: list[dict[str, object]] = [
        {
            "arm": "plain SentenceTransformer.encode",
            "texts to the model": len(texts),
            "repeats": len(times["plain"]),
            "median s": statistics.median(times["plain"]),
            "ratio to plain": 1.0,
        }
    ]
    for arm, sent in [(m, sent[m]) for m in late] + [("separate", len(texts) + windows)]:
        if times[arm]:
            rows.append(
                {
                    "arm": f"ctxengine hybrid, {arm}" + (" (default)" if arm == DEFAULT else ""),
                    "texts to the model": sent,
                    "repeats": len(times[arm]),
                    "median s": statistics.median(times[arm]),
                    "ratio to plain": statistics.median(ratios[arm]),
                }
            )
    print(f"\n## Indexing {len(texts)} SciFact abstracts (cold cache), same model, same run\n")
    print("| arm | texts to the model | repeats | median s | ratio to plain (median) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['arm']} | {row['texts to the model']:,} | {row['repeats']} | "
            f"{row['median s']:.2f} | {row['ratio to plain']:.2f}x |"
        )
    return rows


def _per_query_ndcg(collections: Sequence[Collection], method: str) -> np.ndarray:
    out = []
    for collection in collections:
        retriever = HybridRetriever(
            collection.documents, embedder=default_embedder(), passage_embedding=method
        )
        for query, relevant in collection.queries:
            ranked = [hit.id for hit in retriever.retrieve(query, 10)]
            out.append(ndcg_at_k(ranked, relevant, 10))
    return np.array(out)


def scifact_slice(claims: int | None, distractors: int) -> list[Collection]:
    """SciFact train: the first ``claims`` claims (None: all 809) over every abstract judged
    for them plus the first ``distractors`` other abstracts in corpus order (None with
    ``claims=None``: the full corpus). The same slice for every arm."""
    [full] = scifact(False)
    if claims is None:
        return [full]
    queries = full.queries[:claims]
    judged = {doc for _, relevant in queries for doc in relevant}
    docs = [d for d in full.documents if d.id in judged]
    docs += [d for d in full.documents if d.id not in judged][:distractors]
    return [Collection("scifact", docs, queries)]


def quality(
    claims: int | None,
    distractors: int,
    quick: bool,
    methods: Sequence[str] = PASSAGE_EMBEDDINGS,
) -> list[dict[str, object]]:
    """nDCG@10 of hybrid retrieval per passage embedding, with its spread over query folds."""
    rows: list[dict[str, object]] = []
    sets = [
        ("SciFact train", scifact(True) if quick else scifact_slice(claims, distractors)),
        ("LoCoMo dev", locomo(quick)),
    ]
    for dataset, collections in sets:
        docs = sum(len(c.documents) for c in collections)
        queries = sum(len(c.queries) for c in collections)
        print(f"{dataset}: {queries} queries over {docs:,} documents")
    print("\n## Quality of the index: hybrid nDCG@10 (mean, and over 5 query folds)\n")
    print("| dataset | passage embedding | nDCG@10 | fold mean ± sd | - separate (folds) |")
    print("|---|---|---|---|---|")
    for dataset, collections in sets:
        scores = {method: _per_query_ndcg(collections, method) for method in methods}
        first = scores[methods[0]]
        folds = np.arange(len(first)) % FOLDS  # queries dealt round-robin into folds
        for method in methods:
            per_fold = [float(scores[method][folds == f].mean()) for f in range(FOLDS)]
            paired = scores[method] - scores.get("separate", scores[method])
            gap = [float(paired[folds == f].mean()) for f in range(FOLDS)]
            row = {
                "dataset": dataset,
                "passage embedding": method,
                "nDCG@10": float(scores[method].mean()),
                "fold sd": float(np.std(per_fold)),
                "- separate": float(np.mean(gap)),
                "gap fold sd": float(np.std(gap)),
                "folds better": sum(g > 0 for g in gap),
            }
            rows.append(row)
            print(
                f"| {dataset} | {method} | {row['nDCG@10']:.4f} | "
                f"{np.mean(per_fold):.4f} ± {row['fold sd']:.4f} | "
                + (
                    f"{row['- separate']:+.4f} ± {row['gap fold sd']:.4f} "
                    f"({row['folds better']}/{FOLDS} better) |"
                    if method != "separate" and "separate" in scores
                    else "- |"
                )
            )
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="abstracts in the timed index")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="30 docs, 1 repeat, late only, small sets"
    )
    parser.add_argument("--no-quality", action="store_true", help="timing only")
    parser.add_argument("--no-speed", action="store_true", help="quality only")
    parser.add_argument(
        "--claims", type=int, default=None, help="SciFact slice: first N claims (default: all)"
    )
    parser.add_argument(
        "--distractors", type=int, default=500, help="SciFact slice: unjudged abstracts added"
    )
    parser.add_argument(
        "--no-separate", action="store_true", help="skip separately embedded windows"
    )
    parser.add_argument(
        "--methods",
        default=",".join(PASSAGE_EMBEDDINGS),
        help="passage embeddings timed and measured (comma-separated; default: all)",
    )
    parser.add_argument(
        "--data", default=None, help="data folder (default: $CTXENGINE_DATA, else ../shared/data)"
    )
    args = parser.parse_args(argv)
    if args.data is not None and not Path(args.data).is_dir():
        parser.error(f"--data {args.data!r} is not a folder")
    with data_folder(args.data):
        return _run(args, parser)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict[str, object]]:
    n_docs, repeats = (30, 1) if args.quick else (args.docs, args.repeats)
    # --quick is the smoke test's slice: the former path would embed ~9x the texts
    separate = not (args.no_separate or args.quick)
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(PASSAGE_EMBEDDINGS))
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {PASSAGE_EMBEDDINGS}")
    rows = (
        [] if args.no_speed else speed(n_docs, repeats, separate and "separate" in chosen, chosen)
    )
    if not args.no_quality:
        methods = tuple(m for m in chosen if separate or m != "separate")
        rows += quality(args.claims, args.distractors, args.quick, methods)
    return rows


if __name__ == "__main__":
    main()
