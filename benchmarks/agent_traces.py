"""Agent traces of generated shapes: is a fact from an early tool output still in the
request of the call that asks for it?

Six tool calls, one a step, each returning an output of one shape (log, JSON, table, code,
prose, CJK lines) of 60 to 200 lines with one fact planted in its middle ("the rollback
token for cluster Orvieto-3 is RB-123456"); then the question asks for the fact of one
early output (never the newest). Two phrasings: the fact's own words ("What is the
rollback token for cluster Orvieto-3?") and a paraphrase sharing only the name ("Which
RB code was issued to Orvieto-3?"). One :func:`ctxengine.agent.prepare_call` per trace,
engine without documents and its default compressor, as in ``benchmarks/agent_loop.py``.

Reported per budget and shape: the share of traces whose fact reached the request
(mean ± standard deviation over five folds of seeds), calls over budget, and the share
where the newest output was seen (whole or compressed, not a stub).

    python -m benchmarks.agent_traces [--quick] [--budgets 2000 4000] [--seeds 50]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the repository importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

import argparse
import json
import random
import statistics
import time
import warnings
from collections.abc import Sequence
from typing import Any

SHAPES = ("log", "json", "table", "code", "prose", "cjk")
NAMES = ("Orvieto", "Kestrel", "Marlowe", "Quillon", "Tashkent", "Umbria", "Valdez", "Wexford")
_WORDS = {
    "prose": [
        "the",
        "worker",
        "retried",
        "the",
        "shard",
        "and",
        "the",
        "replica",
        "lagged",
        "behind",
        "the",
        "queue",
    ],
    "cjk": ["磁盘", "配额", "超出", "服务", "日志", "错误", "重试", "索引", "ログ", "再試行"],
    "emoji": ["😀", "🔥", "👩‍💻", "🇫🇷", "e\u0301", "ß", "İ", "\u200b", "𝔘𝔫𝔦", "café"],
}


def shaped_text(shape: str, size: int, seed: int, fact: str = "") -> str:
    """About ``size`` lines (or records) of text of one shape, ``fact`` in the middle.
    Shapes: json, table, code, log, one_line (no space or line break), prose, cjk,
    emoji, empty."""
    rng = random.Random(seed)
    if shape == "empty" or size == 0:
        return fact
    if shape == "json":
        rows: list[dict[str, Any]] = [
            {"id": i, "host": f"host-{rng.randrange(9)}", "ok": rng.random() > 0.1, "ms": i * 3}
            for i in range(size)
        ]
        if fact:
            rows.insert(size // 2, {"id": -1, "note": fact})
        return json.dumps({"results": rows}, ensure_ascii=False)
    if shape == "table":
        lines = ["| id | host | status | latency |", "|---|---|---|---|"]
        lines += [
            f"| {i} | host-{rng.randrange(9)} | ok | {rng.randrange(900)}ms |" for i in range(size)
        ]
    elif shape == "code":
        lines = [
            f"def handler_{i}(event):\n    return process(event, retries={i % 5})"
            for i in range(size)
        ]
    elif shape == "log":
        lines = [
            f"2026-03-{1 + i % 28:02d}T10:{i % 60:02d} host-{rng.randrange(9)} worker={i} status=ok"
            for i in range(size)
        ]
    elif shape == "one_line":
        return "".join(rng.choice("abcdef0123456789") for _ in range(size * 6)) + fact
    else:
        words = _WORDS[shape]
        lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(max(1, size // 3))]
    if fact:
        lines.insert(len(lines) // 2, fact)
    return "\n".join(lines)


def one_trace(engine: Any, shape: str, seed: int, paraphrase: bool) -> tuple[bool, bool, bool]:
    """(fact kept, within budget, newest seen) for one generated trace."""
    from ctxengine.agent import AgentMessage, ToolCall, ToolResultStore, prepare_call

    rng = random.Random(seed)
    names = [f"{rng.choice(NAMES)}-{i}" for i in range(6)]
    tokens = [f"RB-{rng.randrange(10**6):06d}" for _ in range(6)]
    messages = []
    for i in range(6):
        fact = f"the rollback token for cluster {names[i]} is {tokens[i]}"
        text = shaped_text(shape, rng.choice([60, 120, 200]), seed * 10 + i, fact)
        call = ToolCall(f"c{i}", "fetch", json.dumps({"page": i}))
        messages += [
            AgentMessage("assistant", "", tool_calls=(call,)),
            AgentMessage("tool", text, tool_call_id=call.id, name="fetch"),
        ]
    target = rng.randrange(5)
    question = (
        f"Which RB code was issued to {names[target]}?"
        if paraphrase
        else f"What is the rollback token for cluster {names[target]}?"
    )
    prepared = prepare_call(
        engine,
        session_id=f"s{seed}",
        question=AgentMessage("user", question),
        in_flight=messages,
        store=ToolResultStore(),
        reader="read_tool_result",
    )
    sent = "\n".join(m.text for m in prepared.messages)
    newest = prepared.in_flight.states.get("c5") in ("whole", "compressed")
    return tokens[target] in sent, prepared.tokens <= prepared.limit, newest


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small slice (CI smoke)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--seeds", type=int, default=50, help="traces per shape and phrasing")
    args = parser.parse_args(argv)
    from ctxengine import ContextEngine

    seeds = 5 if args.quick else args.seeds
    warnings.simplefilter("ignore", UserWarning)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for budget in args.budgets:
        engine = ContextEngine.from_retriever(None, token_budget=budget)
        for paraphrase in (False, True):
            for shape in SHAPES:
                runs = [one_trace(engine, shape, seed, paraphrase) for seed in range(seeds)]
                folds = [
                    statistics.mean(kept for kept, _, _ in runs[f::5]) for f in range(min(5, seeds))
                ]
                rows.append(
                    {
                        "budget": budget,
                        "question": "paraphrase" if paraphrase else "same words",
                        "shape": shape,
                        "traces": seeds,
                        "fact kept": round(statistics.mean(folds), 3),
                        "± sd (5 folds)": round(statistics.pstdev(folds), 3),
                        "over budget": sum(not within for _, within, _ in runs),
                        "newest seen": round(statistics.mean(seen for _, _, seen in runs), 3),
                    }
                )
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    for budget in args.budgets:
        for phrasing in ("same words", "paraphrase"):
            kept = [
                r["fact kept"] for r in rows if (r["budget"], r["question"]) == (budget, phrasing)
            ]
            print(f"B={budget} {phrasing}: fact kept {statistics.mean(kept):.3f} over shapes")
    print(f"{len(rows) * seeds} traces, {time.perf_counter() - started:.0f} s")
    return rows


if __name__ == "__main__":
    main()
