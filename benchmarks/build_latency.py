"""``engine.build()`` speed and scale: latency per retrieval mode at growing corpus sizes,
indexing throughput and peak memory.

Each (size, mode) runs in its own subprocess so that the peak RSS it reports belongs to
that index alone (``VmHWM``; the process also holds Python, torch and the MiniLM model,
reported apart as the RSS before the corpus is built).

Corpora are synthesized from the LoCoMo dev turns ("Speaker: text", 2,760 of them):

* lexical modes (keyword, tfidf): ``turn + " #<i>"``, so every document is unique text
  and the vocabulary grows by one term per document;
* modes that embed (dense, hybrid, adaptive): the turns repeated with unique ids. Their
  vectors are the cached MiniLM vectors of the 2,760 base turns and of their two-sentence
  windows (disk cache, loaded once): "cached document embeddings", as the target says. Embedding 100k unique texts would
  take ~10 minutes on this machine; ``retrieval_latency.py`` reports the model's rate.

The engine is the default one (``ContextEngine.from_documents``: token budget 800, k=5,
30 candidates, extractive compression, in-process memory holding 40 LoCoMo turns), except
that lexical modes re-rank with ``tags`` only: the default chain (tags, dedup) embeds the
candidates for dedup, which a lexical deployment does not want (and which, on unique
synthetic texts, would be uncached model calls). Queries: LoCoMo questions, each built twice: "new query" is the
first ``build()`` of a question (the retriever embeds it with the model; the memory reads it
from the embedding cache), the median/p95 and stage columns are the second (every
embedding cached: what the index and the pipeline cost).

    python -m benchmarks.build_latency [--sizes 1000,10000,100000] [--queries 60] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)

SIZES = (1_000, 10_000, 100_000)
# (label, retrieval mode, rerank)
MODES: tuple[tuple[str, str, object], ...] = (
    ("keyword", "keyword", "tags"),
    ("tfidf", "tfidf", "tags"),
    ("dense", "dense", "default"),
    ("hybrid", "hybrid", "default"),
    ("hybrid rerank=tags", "hybrid", "tags"),
    ("adaptive", "adaptive", "default"),
)
LEXICAL = ("keyword", "tfidf")
#: Opt-in labels (``--modes``, not in the default run): hybrid with each pseudo-relevance
#: feedback setting (``hybrid`` itself has the default, Rocchio), the default engine otherwise
FEEDBACK_MODES = {
    f"hybrid feedback={f or 'off'}": {"feedback": f} for f in (None, "rocchio", "rm3", "both")
}
HISTORY_TURNS = 40
STAGES = ("retrieve", "rerank", "memory", "compress", "assemble")


def _rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (``VmHWM``) or current (``VmRSS``) resident set, in MB.

    Not ``getrusage``: Linux keeps ``ru_maxrss`` across ``execve``, so a child started by a
    large parent (the harness holds torch and both frameworks) would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: KiB, a peak


def measure(size: int, label: str, n_queries: int) -> dict:
    """One cell, in this process: build the engine over ``size`` documents, time ``build``."""
    import numpy as np

    from benchmarks.data import load_locomo
    from ctxengine import ContextEngine, ManualClock
    from ctxengine.embeddings import default_embedder
    from ctxengine.retrieval import HybridRetriever
    from ctxengine.retrieval.windows import window_texts

    options = FEEDBACK_MODES.get(label)
    if options is not None:
        mode, rerank = "hybrid", "default"
    else:
        _, mode, rerank = next(m for m in MODES if m[0] == label)
    conversations = load_locomo()
    turns = [t.document_text for c in conversations for t in c.turns]
    questions = [q.question for c in conversations for q in c.questions]
    history = conversations[0].turns[:HISTORY_TURNS]
    embedder = default_embedder()
    embedder.embed(turns[:1] + questions[: n_queries + 1])  # loads the model; memory reads these
    if mode not in LEXICAL:
        embedder.embed(turns)  # the base vectors, from the disk cache
        # and the sentence windows the retriever adds to them, cached alike
        window = HybridRetriever().passage_window
        embedder.embed([w for turn in turns for w in window_texts(turn, window)])
        documents = [{"id": f"d{i}", "text": turns[i % len(turns)]} for i in range(size)]
    else:
        documents = [{"id": f"d{i}", "text": f"{turns[i % len(turns)]} #{i}"} for i in range(size)]
    rss_before = _rss_mb("VmRSS")

    clock = ManualClock(history[-1].timestamp)
    started = time.perf_counter()
    engine = ContextEngine.from_documents(
        documents, retrieval=mode, rerank=rerank, clock=clock, retriever_options=options
    )
    construct = time.perf_counter() - started
    for turn in history:
        engine.remember(turn.speaker, turn.text, session_id="bench", timestamp=turn.timestamp)
    started = time.perf_counter()
    engine.build(questions[0], session_id="bench")  # builds the lazy indexes
    first = time.perf_counter() - started

    new: list[float] = []
    repeat: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for query in questions[1 : n_queries + 1]:
        started = time.perf_counter()
        engine.build(query, session_id="bench")  # first sight: the retriever embeds the query
        new.append(time.perf_counter() - started)
        started = time.perf_counter()
        packet = engine.build(query, session_id="bench")  # every embedding cached
        repeat.append(time.perf_counter() - started)
        for stage in STAGES:
            stages[stage].append(packet.timings.get(stage, 0.0))
    ms = np.array(repeat) * 1000
    row = {
        "docs": size,
        "mode": label,
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "new_query_median_ms": 1000 * statistics.median(new),
        "stage_ms": {s: 1000 * statistics.median(v) for s, v in stages.items()},
        "construct_s": construct,
        "first_build_s": first,
        "docs_per_s": size / (construct + first),
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb(),
        "queries": len(repeat),
    }
    return row


def run_child(size: int, label: str, n_queries: int) -> dict:
    """``measure`` in a fresh interpreter (its own peak RSS); raises with its stderr on failure."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.build_latency",
        "--child",
        str(size),
        label,
        "--queries",
        str(n_queries),
    ]
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ)
    )
    if done.returncode != 0:
        raise RuntimeError(f"build_latency child {size} {label!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


HEADER = (
    f"{'docs':>7} {'mode':<18} {'median ms':>9} {'p95 ms':>7} {'new q ms':>8} "
    f"{'retr':>6} {'rerank':>6} {'mem':>5} {'compr':>6} {'asm':>5} {'index docs/s':>12} "
    f"{'RSS base':>8} {'peak MB':>7}"
)


def print_rows(rows: Sequence[dict]) -> None:
    for r in rows:
        s = r["stage_ms"]
        print(
            f"{r['docs']:>7} {r['mode']:<18} {r['median_ms']:>9.2f} {r['p95_ms']:>7.2f} {r['new_query_median_ms']:>8.1f} "
            f"{s['retrieve']:>6.2f} {s['rerank']:>6.2f} {s['memory']:>5.2f} {s['compress']:>6.2f} {s['assemble']:>5.2f} "
            f"{r['docs_per_s']:>12,.0f} {r['rss_before_mb']:>8.0f} {r['peak_rss_mb']:>7.0f}",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument(
        "--modes", default=",".join(m[0] for m in MODES), help="comma-separated labels"
    )
    parser.add_argument("--queries", type=int, default=60, help="timed build() calls per cell")
    parser.add_argument(
        "--quick", action="store_true", help="500 documents, keyword and hybrid, 5 queries"
    )
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1], args.queries)))
        return []
    sizes = [500] if args.quick else [int(s) for s in args.sizes.split(",")]
    labels = ["keyword", "hybrid"] if args.quick else [m.strip() for m in args.modes.split(",")]
    n_queries = 5 if args.quick else args.queries
    print(
        f"engine.build() over synthetic LoCoMo corpora; {n_queries} timed queries per cell, "
        f"one process per cell; {os.cpu_count()} CPUs"
    )
    print(HEADER)
    rows = []
    for size in sizes:
        for label in labels:
            rows.append(run_child(size, label, n_queries))
            print_rows(rows[-1:])
    return rows


if __name__ == "__main__":
    main()
