"""Dense search at scale: the exact scan against the ANN index (FAISS IVF, ``ann_threshold``).

At 10k / 50k / 100k / 1M rows, one process per size: dense ``retrieve(k=100)`` latency on
the exact scan and on the ANN path (medians, and their ratio measured in the same run),
recall@100 of the ANN path's documents against the exact scan's (mean and worst query),
top-10 agreement of hybrid retrieval, the ANN index's build time and the RSS it adds,
hybrid ``engine.build()`` medians both ways, and the load time and RSS of the saved index
read memory-mapped or not (each load in a fresh process).

The corpus is a benchmark fixture, never what the product does: 1M real embeddings are not
available here (the bundled MiniLM embeds ~30 texts/s on this machine). Rows are built from
the real vectors in the shared embedding cache (``CTXENGINE_EMBED_CACHE``: SciFact
abstracts and windows, LoCoMo turns, ~24k; the SciFact claims are kept out, as queries):
the first rows are those vectors as they are, every further row is one of them plus
Gaussian noise (sigma 0.02 per dimension) renormalised. The 5,183 SciFact abstracts keep
their real text; every other row gets 25 tokens drawn from the abstracts' token
frequencies, so BM25 sees a real vocabulary. Texts are short, so ``passage_window=0``:
rows = documents. Queries: the first 100 SciFact train claims, their real MiniLM vectors.

Usage: python -m benchmarks.ann [--sizes 10000,50000] [--queries 100] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data import data_root

SIZES = (10_000, 50_000, 100_000, 1_000_000)
NOISE = 0.02
SYNTHETIC_TOKENS = 25


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _cache_file() -> Path:
    folder = Path(os.environ.get("CTXENGINE_EMBED_CACHE") or "/work/.embcache")
    files = sorted(folder.glob("embeddings-*.sqlite"))
    if not files:
        raise SystemExit(f"no embedding cache in {folder} (set CTXENGINE_EMBED_CACHE)")
    return max(files, key=lambda p: p.stat().st_size)


def _real(queries: int) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict[str, str]]]:
    """The cached vectors (claims left out), the claims' vectors by text, the abstracts."""
    root = data_root()
    if root is None:
        raise SystemExit("../shared/data is absent (set CTXENGINE_DATA)")
    with open(root / "scifact" / "queries_train.jsonl", encoding="utf-8") as handle:
        claims = [json.loads(line)["text"] for line in handle]
    with open(root / "scifact" / "corpus.jsonl", encoding="utf-8") as handle:
        abstracts = [json.loads(line) for line in handle]
    claim_keys = {_key(c): c for c in claims}
    abstract_keys = {_key(f"{a['title']}. {a['text']}"): i for i, a in enumerate(abstracts)}
    pool, found, own = [], {}, {}
    db = sqlite3.connect(f"file:{_cache_file()}?mode=ro", uri=True)
    for key, blob in db.execute("SELECT key, vector FROM vectors ORDER BY key"):
        vector = np.frombuffer(blob, dtype=np.float32)
        if key in claim_keys:
            found[claim_keys[key]] = vector
        elif key in abstract_keys:
            own[abstract_keys[key]] = vector
        else:
            pool.append(vector)
    db.close()
    if len(own) < len(abstracts):
        raise SystemExit("the embedding cache lacks some SciFact abstracts' vectors")
    # the abstracts first, in corpus order: row i < 5,183 is abstract i with its own vector
    pool = [own[i] for i in range(len(abstracts))] + pool
    asked = [c for c in claims if c in found][:queries]
    if len(asked) < queries:
        raise SystemExit("the embedding cache lacks the SciFact claims' vectors")
    return np.stack(pool), {c: found[c] for c in asked}, abstracts


def _corpus(size: int, pool: np.ndarray, abstracts: list[dict[str, str]]) -> tuple[Any, ...]:
    from ctxengine import Document
    from ctxengine.text import analyze

    rng = np.random.default_rng(0)
    real = [(f"{a['title']}. {a['text']}", a["_id"]) for a in abstracts]
    real_tokens = [analyze(text) for text, _ in real]
    frequency = Counter(t for tokens in real_tokens for t in tokens)
    vocabulary = np.array(list(frequency))
    weights = np.array(list(frequency.values()), dtype=np.float64)
    weights /= weights.sum()
    vectors = np.empty((size, pool.shape[1]), dtype=np.float32)
    for start in range(0, size, 50_000):
        rows = np.arange(start, min(size, start + 50_000))
        chunk = pool[rows % len(pool)].copy()
        noisy = rows >= len(pool)
        chunk[noisy] += rng.normal(0.0, NOISE, (int(noisy.sum()), pool.shape[1])).astype(np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        vectors[rows] = chunk
    documents, tokens = [], []
    drawn = rng.choice(len(vocabulary), size=(size, SYNTHETIC_TOKENS), p=weights)
    for i in range(size):
        if i < len(real):
            text, doc_id = real[i]
            documents.append(Document(text=text, id=f"scifact-{doc_id}"))
            tokens.append(tuple(real_tokens[i]))
        else:
            words = tuple(vocabulary[drawn[i]].tolist())
            documents.append(Document(text=" ".join(words), id=f"row-{i}"))
            tokens.append(words)
    return documents, tokens, vectors


def _child(size: int, queries: int, workdir: Path) -> dict[str, Any]:
    from ctxengine import ContextEngine
    from ctxengine.embeddings import CallableEmbedder
    from ctxengine.persist import save_index
    from ctxengine.retrieval import HybridRetriever

    pool, claims, abstracts = _real(queries)
    texts = list(claims)

    def lookup(batch: list[str]) -> np.ndarray:
        return np.stack([claims[t] for t in batch])

    embedder = CallableEmbedder(lookup, name="benchmark-fixture", dimension=pool.shape[1])
    started = time.perf_counter()
    documents, tokens, vectors = _corpus(size, pool, abstracts)
    del pool
    retriever = HybridRetriever.from_state(
        documents, tokens, vectors, embedder=embedder, passage_window=0, ann_threshold=None
    )
    del vectors, documents, tokens
    engine = ContextEngine.from_retriever(retriever, embedder=embedder, token_budget=800)
    live = {"retriever": retriever, "engine": engine}  # dropped before the loads below
    del retriever, engine
    for query in texts[:3]:  # BM25, the matrix and the engine's stages built once
        live["engine"].build(query)
    corpus_s = time.perf_counter() - started
    rss_exact = _rss_mb()

    def dense(query: str) -> list[str]:
        return [hit.document.id for hit in live["retriever"].retrieve(query, k=100, mode="dense")]

    def hybrid(query: str) -> list[str]:
        return [hit.document.id for hit in live["retriever"].retrieve(query, k=10)]

    def build(query: str) -> Any:
        return live["engine"].build(query)

    retriever = live["retriever"]
    retriever.ann_threshold = 1  # the ANN path; its first query builds the index
    started = time.perf_counter()
    dense(texts[0])
    ann_build_s = time.perf_counter() - started
    rss_ann = _rss_mb()

    def paired(function: Any) -> tuple[list[float], list[float], list[Any], list[Any]]:
        # exact and ANN alternate query by query: the machine's load hits both alike
        times: dict[Any, list[float]] = {None: [], 1: []}
        out: dict[Any, list[Any]] = {None: [], 1: []}
        for query in texts:
            for threshold in (None, 1):
                live["retriever"].ann_threshold = threshold
                started = time.perf_counter()
                out[threshold].append(function(query))
                times[threshold].append(time.perf_counter() - started)
        return times[None], times[1], out[None], out[1]

    exact_t, ann_t, exact_top, ann_top = paired(dense)
    _, _, exact_hybrid, ann_hybrid = paired(hybrid)
    build_exact_t, build_ann_t, _, _ = paired(build)
    exact_ms, ann_ms = (statistics.median(t) * 1000 for t in (exact_t, ann_t))
    exact_build_ms, ann_build_ms = (
        statistics.median(t) * 1000 for t in (build_exact_t, build_ann_t)
    )
    retriever.ann_threshold = 1
    recall = [len(set(a) & set(b)) / len(a) for a, b in zip(exact_top, ann_top)]
    agree = [len(set(a) & set(b)) / len(a) for a, b in zip(exact_hybrid, ann_hybrid)]
    assert retriever.ann_index is not None
    lists = retriever.ann_index.lists

    partial = {
        "rows": size,
        "exact ms": exact_ms,
        "ANN ms": ann_ms,
        "recall@100": statistics.fmean(recall),
    }
    partial |= {"worst recall@100": min(recall), "hybrid top-10 agree": statistics.fmean(agree)}
    partial |= {"build() exact ms": exact_build_ms, "build() ANN ms": ann_build_ms}
    partial |= {"ANN build s": ann_build_s, "ANN RSS MB": rss_ann - rss_exact, "RSS MB": rss_ann}
    print(json.dumps(partial), file=sys.stderr, flush=True)  # kept if the save or a load fails
    path = workdir / f"index-{size}"
    started = time.perf_counter()
    save_index(retriever, path)
    save_s = time.perf_counter() - started
    index_mb = sum(p.stat().st_size for p in path.iterdir()) / 2**20
    ann_mb = (path / "ann.faiss").stat().st_size / 2**20
    del retriever
    live.clear()
    loads = {mmap: _load(path, mmap) for mmap in (True, False)}
    shutil.rmtree(path)
    return {
        "rows": size,
        "exact ms": exact_ms,
        "ANN ms": ann_ms,
        "exact/ANN": exact_ms / ann_ms,
        "recall@100": statistics.fmean(recall),
        "worst recall@100": min(recall),
        "hybrid top-10 agree": statistics.fmean(agree),
        "build() exact ms": exact_build_ms,
        "build() ANN ms": ann_build_ms,
        "IVF lists": lists,
        "ANN build s": ann_build_s,
        "ANN RSS MB": rss_ann - rss_exact,
        "process RSS MB": rss_ann,
        "corpus s": corpus_s,
        "save s": save_s,
        "index MB": index_mb,
        "ann.faiss MB": ann_mb,
        "load s mmap": loads[True]["seconds"],
        "load s read": loads[False]["seconds"],
        "load RSS MB mmap": loads[True]["rss"],
        "load RSS MB read": loads[False]["rss"],
    }


def _load(path: Path, mmap: bool) -> dict[str, float]:
    """Load the saved index in a fresh process; its time and the RSS it ends with."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.ann",
            "--load",
            str(path),
            *(["--mmap"] if mmap else []),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _load_child(path: str, mmap: bool) -> dict[str, float]:
    from ctxengine.embeddings import CallableEmbedder
    from ctxengine.persist import load_index

    embedder = CallableEmbedder(lambda texts: [], name="benchmark-fixture", dimension=384)
    base = _rss_mb()
    started = time.perf_counter()
    retriever = load_index(path, embedder=embedder, mmap=mmap)
    seconds = time.perf_counter() - started
    assert retriever.ann_index is not None and retriever.ann_index.mapped == mmap
    return {"seconds": seconds, "rss": _rss_mb() - base}


def quality() -> dict[str, Any]:
    """SciFact train nDCG@10, hybrid with the default sentence windows and real MiniLM
    vectors (all read from the embedding cache), exact scan vs the ANN path forced on
    (``ann_threshold=1``): the cost of approximate candidates and of the estimated dense
    minimum. Queries split into 5 folds for the spread of the difference."""
    from benchmarks.data import load_scifact_corpus, load_scifact_queries
    from ctxengine.metrics import ndcg_at_k
    from ctxengine.retrieval import HybridRetriever

    docs = [{"id": d.id, "text": d.document_text} for d in load_scifact_corpus()]
    queries, qrels = load_scifact_queries()
    retriever = HybridRetriever(docs, ann_threshold=None)
    per_query: dict[str, list[float]] = {"exact": [], "ANN": []}
    for label, threshold in (("exact", None), ("ANN", 1)):
        retriever.ann_threshold = threshold
        for qid, text in queries.items():
            ranked = [hit.document.id for hit in retriever.retrieve(text, k=10)]
            per_query[label].append(ndcg_at_k(ranked, qrels[qid], 10))
    exact, ann = np.array(per_query["exact"]), np.array(per_query["ANN"])
    folds = [float((ann[f::5] - exact[f::5]).mean()) for f in range(5)]
    rows = len(retriever._matrix(retriever._snapshot())) + len(
        retriever._windows(retriever._snapshot()).vectors
    )
    result = {
        "queries": len(exact),
        "dense rows": rows,
        "nDCG@10 exact": float(exact.mean()),
        "nDCG@10 ANN": float(ann.mean()),
        "fold deltas": folds,
    }
    print(
        f"SciFact train, hybrid (passage_window=2, {rows:,} dense rows), {len(exact)} claims: "
        f"nDCG@10 exact {exact.mean():.4f}, ANN path {ann.mean():.4f}; ANN - exact per fold "
        f"(5 folds of claims): {', '.join(f'{d:+.4f}' for d in folds)}"
    )
    return result


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="10k and 50k rows, 30 queries")
    parser.add_argument(
        "--quality", action="store_true", help="only the SciFact nDCG@10, exact vs ANN"
    )
    parser.add_argument("--no-quality", action="store_true", help="skip the SciFact nDCG run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--mmap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        print(json.dumps(_load_child(args.load, args.mmap)))
        return []
    if args.child:
        print(json.dumps(_child(args.child, args.queries, Path(args.workdir))))
        return []
    if args.quality:
        quality()
        return []
    sizes = (10_000, 50_000) if args.quick else tuple(int(s) for s in args.sizes.split(","))
    queries = 30 if args.quick else args.queries
    print(
        f"dense search, exact scan vs ANN (FAISS IVF-SQ8, exact re-scoring), {queries} SciFact "
        f"claims, one process per size, {os.cpu_count()} CPUs; fixture rows: real cached "
        f"MiniLM vectors + Gaussian noise (sigma {NOISE}), see the module docstring"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="ctxengine-ann-") as workdir:
        for size in sizes:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.ann",
                    "--child",
                    str(size),
                    "--queries",
                    str(queries),
                    "--workdir",
                    workdir,
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{size:>9,} rows  exact {row['exact ms']:7.2f} ms  ANN {row['ANN ms']:6.2f} ms "
                f"(x{row['exact/ANN']:.1f})  recall@100 {row['recall@100']:.3f} "
                f"(worst {row['worst recall@100']:.2f})  hybrid top-10 agree "
                f"{row['hybrid top-10 agree']:.3f}  build() {row['build() exact ms']:.1f} -> "
                f"{row['build() ANN ms']:.1f} ms  ANN build {row['ANN build s']:.1f} s "
                f"+{row['ANN RSS MB']:.0f} MB (process {row['process RSS MB']:.0f} MB)  load "
                f"mmap {row['load s mmap']:.1f} s +{row['load RSS MB mmap']:.0f} MB / read "
                f"{row['load s read']:.1f} s +{row['load RSS MB read']:.0f} MB",
                flush=True,
            )
    if not (args.quick or args.no_quality):
        quality()
    return rows


if __name__ == "__main__":
    main()
