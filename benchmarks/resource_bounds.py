"""Resource bounds: peak memory and time of the cases the README promises to bound.

* 100k documents indexed and queried (keyword, tfidf, hybrid): one cell of
  ``build_latency`` each (same corpus, same subprocess-per-cell measurement);
* a packet built over a 50k-turn history (in-process store and SQLite), replayed from the
  LoCoMo dev turns (2,760 turns cycled; their MiniLM vectors come from the disk cache);
* one 10 MB document, through each compressor, and three pathological 10 MB documents
  (a single 10-million-character word, a run of dots, random characters with emoji and CJK).

Every scenario runs in its own interpreter and reports its peak RSS (``VmHWM``, as
``build_latency``: not ``ru_maxrss``, which Linux keeps across ``execve`` so a child of a
large parent would report the parent's peak) and the peak after imports and data loading
("base"), so "added" is what the scenario itself cost. ``--check`` exits non-zero when a
scenario exceeds the limit documented in the README (``LIMITS``, chosen from these
measurements with headroom for other machines).

    python -m benchmarks.resource_bounds [--only '10 MB;history'] [--check] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.build_latency import _rss_mb, run_child  # one peak-RSS rule for both

HISTORY_TURNS = 50_000
BIG_DOCUMENT = 10_000_000  # characters
PROSE = (
    "Memory decay lets old conversation turns fade unless they stay relevant to the question. "
    "Embeddings map text to dense vectors, while TF-IDF weighs terms by how rare they are. "
    "A context engine decides what enters the window, how much of it, and in what order. "
)
QUESTION = "How does memory decay keep old turns from crowding the context window?"
# Documented limits: peak RSS in MB and seconds, per scenario (README "Guarantees").
LIMITS: dict[str, tuple[float, float]] = {
    "100k docs keyword": (1000, 300),
    "100k docs tfidf": (1000, 300),
    # sentence windows (passage_window=2) hold ~1.2 extra vectors per LoCoMo turn, stacked
    # once more per snapshot: ~+530 MB at 100k; passage_window=0 peaked at 969 MB
    "100k docs hybrid": (2000, 600),
    "50k-turn history, in-process": (1500, 600),
    "50k-turn history, SQLite": (1500, 900),
    "10 MB document, truncate": (1500, 300),
    "10 MB document, sentence": (1500, 300),
    "10 MB document, extractive": (1500, 300),
    "10 MB document, semantic": (1500, 300),
    "10 MB single word": (1500, 300),
    "10 MB of dots": (1500, 300),
    "10 MB random characters": (1500, 300),
}


# --- scenarios (run in the child) ------------------------------------------------------


def history(store: str, scale: float) -> dict:
    """Remember ``HISTORY_TURNS`` LoCoMo turns in one session, then build packets."""
    from benchmarks.data import load_locomo
    from ctxengine import ContextEngine, ManualClock
    from ctxengine.embeddings import default_embedder

    conversations = load_locomo()
    turns = [t for c in conversations for t in c.turns]
    questions = [q.question for c in conversations for q in c.questions][:5]
    default_embedder().embed([t.document_text for t in turns] + questions)  # disk cache
    url = None
    if store == "sqlite":
        import tempfile

        url = f"sqlite:///{tempfile.mkdtemp()}/history.db?synchronous=NORMAL"
    engine = ContextEngine.from_documents(
        [],
        retrieval="keyword",
        memory_url=url,
        clock=ManualClock(turns[0].timestamp),
        token_budget=800,
    )
    base = _rss_mb()
    started = time.perf_counter()
    n = int(HISTORY_TURNS * scale)
    offset = turns[-1].timestamp - turns[0].timestamp + 60
    stored = 0
    for i in range(n):
        turn = turns[i % len(turns)]
        at = turn.timestamp + (i // len(turns)) * offset
        stored += (
            engine.remember(turn.speaker, turn.text, session_id="long", timestamp=at) is not None
        )
    remembered = time.perf_counter() - started
    builds = []
    for question in questions:
        t0 = time.perf_counter()
        packet = engine.build(question, session_id="long")
        builds.append(time.perf_counter() - t0)
        assert packet.tokens_used <= 800
    return {
        "base": base,
        "seconds": time.perf_counter() - started,
        "detail": f"{stored:,} turns stored in {remembered:.0f} s; build {1000 * min(builds):.0f}-"
        f"{1000 * max(builds):.0f} ms, {len(packet.memory_turns)} turns in the packet",
    }


def big_document(kind: str, compression: str, scale: float) -> dict:
    """One ``BIG_DOCUMENT``-character document among small ones; index, then build."""
    import random

    from ctxengine import ContextEngine, Document
    from ctxengine.embeddings import HashingEmbedder
    from ctxengine.rerank import MMRReranker, TagReranker

    size = int(BIG_DOCUMENT * scale)
    if kind == "prose":
        text = (PROSE * (size // len(PROSE) + 1))[:size]
    elif kind == "word":
        text = "x" * size
    elif kind == "dots":
        text = "." * size
    else:
        rng = random.Random(0)
        text = "".join(rng.choices("abcdefghij klmno.,!?\n\u5b57\U0001f600\u05d0", k=size))
    # Few enough small documents that the big one is among the k=5 the packet compresses.
    small = [
        Document(f"A short note {i} about context windows and memory decay.", id=f"s{i}")
        for i in range(3)
    ]
    # The hashing embedder keeps the model out of the measurement: a model truncates its
    # input (MiniLM: 256 tokens), so what scales with the document is analysis and counting.
    hashing = HashingEmbedder(384)
    base = _rss_mb()
    started = time.perf_counter()
    engine = ContextEngine.from_documents(
        [Document(text, id="big"), *small],
        retrieval="keyword"
        if kind == "prose"
        else "hybrid",  # hybrid ranks even a word-less document
        embedder=hashing,
        rerank=[TagReranker(), MMRReranker(hashing)],
        compression=compression,
        compressor_options={"embedder": hashing} if compression == "semantic" else None,
        memory_options={"embedder": hashing},
        token_budget=800,
    )
    indexed = time.perf_counter() - started
    packet = engine.build(QUESTION)
    built = time.perf_counter() - started - indexed
    assert packet.tokens_used <= 800
    kept = next((d.tokens for d in packet.documents if d.id == "big"), 0)
    return {
        "base": base,
        "seconds": time.perf_counter() - started,
        "detail": f"index {indexed:.1f} s, build {built:.1f} s, {kept} tokens of it kept",
    }


def _history_scenarios() -> dict[str, Callable[[float], dict]]:
    return {
        "50k-turn history, in-process": lambda scale: history("memory", scale),
        "50k-turn history, SQLite": lambda scale: history("sqlite", scale),
    }


def _document_scenarios() -> dict[str, Callable[[float], dict]]:
    out: dict[str, Callable[[float], dict]] = {}
    for compression in ("truncate", "sentence", "extractive", "semantic"):
        out[f"10 MB document, {compression}"] = lambda scale, c=compression: big_document(
            "prose", c, scale
        )
    for kind, label in (
        ("word", "10 MB single word"),
        ("dots", "10 MB of dots"),
        ("random", "10 MB random characters"),
    ):
        out[label] = lambda scale, k=kind: big_document(k, "extractive", scale)
    return out


SCENARIOS: dict[str, Callable[[float], dict]] = {**_history_scenarios(), **_document_scenarios()}
CORPUS_CELLS = {
    "100k docs keyword": "keyword",
    "100k docs tfidf": "tfidf",
    "100k docs hybrid": "hybrid",
}


# --- the parent ------------------------------------------------------------------------


def run(name: str, scale: float, timeout: float | None = None) -> dict:
    """One scenario in a fresh interpreter: its peak RSS is its own (``timeout`` in
    seconds raises ``subprocess.TimeoutExpired``)."""
    if name in CORPUS_CELLS:
        size = int(100_000 * scale)
        started = time.perf_counter()
        cell = run_child(size, CORPUS_CELLS[name], 5)
        return {
            "name": name,
            "seconds": time.perf_counter() - started,
            "base": cell["rss_before_mb"],
            "peak": cell["peak_rss_mb"],
            "detail": f"{size:,} docs indexed at {cell['docs_per_s']:,.0f}/s; build median "
            f"{cell['median_ms']:.1f} ms",
        }
    command = [
        sys.executable,
        "-m",
        "benchmarks.resource_bounds",
        "--child",
        name,
        "--scale",
        str(scale),
    ]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scenario {name!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", help="scenarios whose name contains one of these ';'-separated parts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="every size divided by 100 (a smoke test)"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a scenario exceeds its documented limit"
    )
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        row = SCENARIOS[args.child](args.scale)
        print(json.dumps({"name": args.child, **row, "peak": _rss_mb()}))
        return []
    names = [*CORPUS_CELLS, *SCENARIOS]
    if args.only:
        names = [
            n
            for n in names
            if any(part.strip().lower() in n.lower() for part in args.only.split(";"))
        ]
    scale = 0.01 if args.quick else args.scale
    print(f"resource bounds, one process per scenario, scale {scale:g}; {os.cpu_count()} CPUs")
    print(
        f"{'scenario':<30} {'seconds':>8} {'base MB':>8} {'peak MB':>8} {'added':>6} {'limit MB / s':>13}  detail"
    )
    rows, over = [], []
    for name in names:
        row = run(name, scale)
        limit_mb, limit_s = LIMITS[name]
        if row["peak"] > limit_mb or row["seconds"] > limit_s:
            over.append(name)
        print(
            f"{name:<30} {row['seconds']:>8.1f} {row['base']:>8.0f} {row['peak']:>8.0f} "
            f"{row['peak'] - row['base']:>6.0f} {f'{limit_mb:.0f} / {limit_s:.0f}':>13}  {row['detail']}",
            flush=True,
        )
        rows.append(row)
    if args.check and over:
        print(f"over the documented limit: {', '.join(over)}")
        sys.exit(1)
    return rows


if __name__ == "__main__":
    main()
