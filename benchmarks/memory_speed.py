"""How long memory selection takes on long sessions: ``DecayMemory.recall`` at 1k/10k/100k turns.

Turns are real LoCoMo dev turns (``Speaker: text``, the speaker as the role), cycled with
new timestamps (each cycle starts a day after the previous one ended) until the session
holds N turns. Each system then selects the history for a 512-token slot for the same
LoCoMo questions; the figure is the median per call, with the query's vector already
computed (one untimed pass first: query embedding is the retriever's cost and is shared).

Rows:

* ctxengine ``recall()`` with lexical, dense (the bundled MiniLM; the 2.8k distinct turn
  texts come from the embedding cache) and hybrid relevance, on the in-process store and
  on a SQLite file (warm: the session's arrays cached, one version query per call). *cold*:
  the first recall of a new store object and memory on the same file (a restart), which
  reads the session and its stored vectors (no model call over the history); *learned*:
  in-process, through a trained ``LearnedMemory`` (hybrid relevance, per-token packing);
* LlamaIndex ``Memory.get()`` (``llama_index.core.memory.Memory``, ``token_limit=512``):
  *set* holds the N turns as its active history (``Memory.set``), *put* adds them with
  ``put_messages``, whose flush archives all but the last few (run at 1k turns only: the
  flush of 10k turns alone took 80 s here);
* LangChain ``trim_messages(strategy="last", max_tokens=512)`` with a memoised per-message
  cl100k counter.

``ratio`` is the peer's median divided by ctxengine's lexical in-process median at the
same size, measured in the same run. A second table gives the same medians in CPU time
(``time.process_time``): on a shared machine the wall time of a call includes the time it
waited for a core, its CPU time does not.

    python -m benchmarks.memory_speed [--quick] [--sizes 1000 10000 100000] [--queries 30]
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]
import benchmarks  # noqa: F401  the shared environment, before ctxengine loads
from benchmarks.data import load_locomo
from ctxengine.clock import ManualClock
from ctxengine.embeddings import default_embedder, embed_query
from ctxengine.learn import LearnedMemory, LinearScorer, MemoryFeatures
from ctxengine.memory import DecayMemory, InMemoryStore
from ctxengine.memory.sqlite import SQLiteStore
from ctxengine.tokens import TiktokenCounter, load_tiktoken_encoding

DAY = 86_400.0
BUDGET = 512
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
PUT_LIMIT = 1_000  # put_messages of 10k turns took 80 s of flushing here: run at 1k only


def cycled_turns(n: int) -> list[dict]:
    """``n`` LoCoMo dev turns as messages, cycling the conversations with new timestamps."""
    source = [turn for conversation in load_locomo() for turn in conversation.turns]
    span = source[-1].timestamp - source[0].timestamp + DAY
    messages = []
    for i in range(n):
        turn = source[i % len(source)]
        shift = (i // len(source)) * span
        messages.append(
            {"role": turn.speaker, "content": turn.text, "timestamp": turn.timestamp + shift}
        )
    return messages


def questions(k: int) -> list[str]:
    asked = [q.question for c in load_locomo() for q in c.answerable()]
    return asked[:: max(1, len(asked) // k)][:k]


CPU = " [CPU]"  # suffix of a row's CPU-time figure (process time: what load does not inflate)


def median_ms(call: Callable[[str], object], queries: Sequence[str]) -> tuple[float, float]:
    """Median wall and CPU milliseconds per call."""
    start = time.perf_counter()
    call(queries[0])  # warm-up: query vectors, caches
    if time.perf_counter() - start > 1.0:
        queries = queries[:3]  # a peer that takes seconds per call: three calls suffice
    else:
        for query in queries[1:3]:
            call(query)
    wall, cpu = [], []
    for query in queries:
        start, started = time.perf_counter(), time.process_time()
        call(query)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - started)
    return 1000.0 * statistics.median(wall), 1000.0 * statistics.median(cpu)


def timed(out: dict[str, float], name: str, figures: tuple[float, float]) -> None:
    out[name], out[name + CPU] = figures


def ctxengine_rows(
    messages: list[dict], queries: Sequence[str], counter: TiktokenCounter, workdir: Path
) -> dict[str, float]:
    clock = ManualClock(messages[-1]["timestamp"])
    embedder = default_embedder()
    for query in queries:
        embedder.embed([query])  # the query vector is shared with the retriever
    options = {"clock": clock, "token_counter": counter, "embedder": embedder}
    out: dict[str, float] = {}
    memory_store = InMemoryStore()
    start = time.perf_counter()
    writer = DecayMemory(memory_store, **options)
    writer.add_many(messages, session_id="s")
    out["add_many per 1k turns (s)"] = (time.perf_counter() - start) * 1000 / len(messages)
    for query in queries:  # dense relevance embeds the query without the speakers' names
        embed_query(embedder, writer.dense_query(query, session_id="s"))
    path = workdir / f"memory-{len(messages)}.db"
    with SQLiteStore(path, synchronous="NORMAL") as store:
        store.add_many(memory_store.turns("s"))  # the same turns, with their vectors
    for mode in ("lexical", "dense", "hybrid"):
        memory = DecayMemory(memory_store, relevance=mode, **options)
        timed(
            out,
            f"in-process {mode}",
            median_ms(lambda q, m=memory: m.recall(q, BUDGET, session_id="s"), queries),
        )
    timed(out, "in-process learned", learned_recall(memory_store, queries, options))
    for mode in ("lexical", "dense", "hybrid"):
        with SQLiteStore(path) as store:
            memory = DecayMemory(store, relevance=mode, **options)
            start, started = time.perf_counter(), time.process_time()
            memory.recall(queries[0], BUDGET, session_id="s")
            out[f"SQLite {mode} cold"] = 1000.0 * (time.perf_counter() - start)
            out[f"SQLite {mode} cold" + CPU] = 1000.0 * (time.process_time() - started)
            timed(
                out,
                f"SQLite {mode}",
                median_ms(lambda q, m=memory: m.recall(q, BUDGET, session_id="s"), queries),
            )
    return out


def learned_recall(
    store: InMemoryStore, queries: Sequence[str], options: dict
) -> tuple[float, float]:
    """``recall`` through a trained :class:`~ctxengine.learn.LearnedMemory` (hybrid
    relevance, the default per-token packing). The scorer is fitted on five of the
    questions, each turn labelled by whether it is among the five the rules rank first:
    the time of a recall does not depend on the weights, only on the session's size."""
    memory = DecayMemory(store, **options)
    features = MemoryFeatures()
    groups = []
    for query in queries[:5]:
        scored = memory.score(query, session_id="s")
        labels = np.zeros(len(scored))
        labels[:5] = 1.0  # scored is best first
        groups.append((features.transform(query, scored, options["clock"]()), labels))
    learned = LearnedMemory(LinearScorer().fit(groups, features), features)
    return median_ms(lambda q: learned.recall(memory, q, BUDGET, session_id="s"), queries)


def llamaindex_rows(
    messages: list[dict], queries: Sequence[str], put_limit: int
) -> dict[str, float]:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.memory import Memory

    encode = load_tiktoken_encoding("cl100k_base").encode
    history = [ChatMessage(role="user", content=f"{m['role']}: {m['content']}") for m in messages]
    out: dict[str, float] = {}
    held = Memory.from_defaults(session_id="set", token_limit=BUDGET, tokenizer_fn=encode)
    held.set(history)
    timed(out, "LlamaIndex Memory.get (set)", median_ms(lambda q: held.get(), queries))
    if len(messages) <= put_limit:
        put = Memory.from_defaults(session_id="put", token_limit=BUDGET, tokenizer_fn=encode)
        put.put_messages(history)
        timed(out, "LlamaIndex Memory.get (put)", median_ms(lambda q: put.get(), queries))
    return out


def langchain_rows(
    messages: list[dict], queries: Sequence[str], counter: TiktokenCounter
) -> dict[str, float]:
    from langchain_core.messages import BaseMessage, HumanMessage, trim_messages

    history = [HumanMessage(f"{m['role']}: {m['content']}") for m in messages]

    @functools.cache
    def count_text(text: str) -> int:
        return counter.count(text)

    def count(batch: Sequence[BaseMessage]) -> int:
        # A list counter (this module's annotations are strings, so trim_messages would
        # not recognise a per-message one); each message's count is memoised.
        return sum(count_text(str(message.content)) + 3 for message in batch)

    def trim(query: str) -> object:
        return trim_messages(history, max_tokens=BUDGET, token_counter=count, strategy="last")

    out: dict[str, float] = {}
    timed(out, "LangChain trim_messages", median_ms(trim, queries))
    return out


ROW_ORDER = (
    "in-process lexical",
    "in-process dense",
    "in-process hybrid",
    "in-process learned",
    "SQLite lexical",
    "SQLite dense",
    "SQLite hybrid",
    "SQLite lexical cold",
    "SQLite dense cold",
    "SQLite hybrid cold",
    "LlamaIndex Memory.get (set)",
    "LlamaIndex Memory.get (put)",
    "LangChain trim_messages",
)


def print_table(results: dict[int, dict[str, float]], suffix: str = "") -> None:
    """One row per system (``suffix``: the CPU figures instead of wall time)."""
    sizes = sorted(results)
    header = (
        "| system | " + " | ".join(f"{n:,} turns (ms)" for n in sizes) + " | ratio vs lexical |"
    )
    print(header)
    print("|" + "---|" * (len(sizes) + 2))
    for name in ROW_ORDER:
        cells, ratios = [], []
        for n in sizes:
            value = results[n].get(name + suffix)
            cells.append("-" if value is None else f"{value:.2f}")
            base = results[n]["in-process lexical" + suffix]
            if value is not None and not name.startswith("in-process lexical"):
                ratios.append(f"{value / base:.1f}x")
            else:
                ratios.append("-")
        print(f"| {name} | " + " | ".join(cells) + " | " + " / ".join(ratios) + " |")
    adds = " / ".join(f"{results[n]['add_many per 1k turns (s)']:.2f} s" for n in sizes)
    print(f"\nadd_many (dedup, importance, hybrid vectors from the cache), per 1k turns: {adds}")


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k turns, 10 queries")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    queries = questions(10 if args.quick else args.queries)
    counter = TiktokenCounter("cl100k_base")
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in sizes:
            messages = cycled_turns(n)
            row = ctxengine_rows(messages, queries, counter, Path(tmp))
            gc.collect()
            row.update(llamaindex_rows(messages, queries, PUT_LIMIT))
            row.update(langchain_rows(messages, queries, counter))
            results[n] = row
            print(f"{n:,} turns: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    print(f"\nrecall() median per call, {BUDGET}-token slot, {len(queries)} LoCoMo questions\n")
    print_table(results)
    print("\nThe same calls in CPU time (process time; on a loaded machine wall time includes")
    print("waiting for a core, CPU time does not)\n")
    print_table(results, CPU)
    # One flat row per system and clock, for the harness's table.
    return [
        {
            "system": name + suffix,
            **{f"{n:,} turns (ms)": results[n].get(name + suffix) for n in results},
        }
        for suffix in ("", CPU)
        for name in ROW_ORDER
        if any(name + suffix in results[n] for n in results)
    ]


if __name__ == "__main__":
    main()
