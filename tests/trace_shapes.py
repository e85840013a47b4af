"""Agent traces of the shapes real agents produce, for the property suites of the core and
both adapters: parallel tool calls answered in any order, calls never answered, outputs
far larger than the budget or tiny, JSON / table / code / log / CJK / emoji / empty text,
images in tool results, long tool-call arguments, hundreds of steps, a budget barely above
the system prompt.

A trace is framework-neutral data (:class:`Turn`, :class:`Step`, :class:`Result`); the
suites turn it into ``AgentMessage``s, LangChain messages or LlamaIndex ``ChatMessage``s.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from hypothesis import strategies as st

from benchmarks.agent_traces import shaped_text

SHAPES = ("json", "table", "code", "log", "cjk", "emoji", "prose", "one_line", "empty")


@dataclass
class Result:
    text: str
    images: int = 0


@dataclass
class Step:
    """An assistant message calling tools; ``results`` maps a call index to its answer
    (a missing index: the call was never answered); answered in the order of ``order``."""

    text: str
    arguments: list[str]
    results: dict[int, Result]
    order: list[int]


@dataclass
class Turn:
    question: str
    images: int
    steps: list[Step] = field(default_factory=list)


@dataclass
class Trace:
    system: str
    budget: int
    turns: list[Turn]
    seed: int


@st.composite
def results(draw, seed: int) -> Result:
    shape = draw(st.sampled_from(SHAPES))
    size = draw(st.sampled_from([0, 1, 5, 30, 120, 400, 3000]))
    return Result(shaped_text(shape, size, seed), images=draw(st.sampled_from([0, 0, 0, 1, 2])))


@st.composite
def steps(draw, max_calls: int = 4) -> Step:
    seed = draw(st.integers(0, 2**16))
    calls = draw(st.integers(1, max_calls))
    arguments = []
    for i in range(calls):
        kind = draw(st.sampled_from(["small", "small", "unicode", "long"]))
        if kind == "small":
            arguments.append(json.dumps({"q": f"query {i}"}))
        elif kind == "unicode":
            arguments.append(json.dumps({"q": "日志 🔥 café"}, ensure_ascii=False))
        else:  # a coding agent writing a file: arguments as long as an output
            arguments.append(
                json.dumps({"path": "a.py", "content": shaped_text("code", 400, seed)})
            )
    answered = draw(st.lists(st.booleans(), min_size=calls, max_size=calls).filter(any))
    interrupted = draw(st.integers(0, 9)) == 0  # one step in ten has an unanswered call
    keep = [i for i in range(calls) if answered[i] or not interrupted]
    results_ = {i: draw(results(seed + i)) for i in keep}
    order = draw(st.permutations(sorted(results_)))
    text = draw(st.sampled_from(["", "", "Let me look.", "我来查一下 🔍", "thinking " * 600]))
    return Step(text, arguments, results_, list(order))


@st.composite
def traces(draw, max_turns: int = 3, max_steps: int = 5) -> Trace:
    seed = draw(st.integers(0, 2**16))
    system = draw(st.sampled_from(["ALWAYS ANSWER IN FRENCH.", "You are an SRE agent. " * 60]))
    budget = draw(st.sampled_from([700, 1500, 3000, 6000]))
    turns = []
    for t in range(draw(st.integers(1, max_turns))):
        shape = draw(st.sampled_from(["prose", "cjk", "emoji", "log", "empty"]))
        size = draw(st.sampled_from([3, 3, 300]))
        question = shaped_text(shape, size, seed + t) or "?"
        images = draw(st.sampled_from([0, 0, 0, 1]))
        turns.append(Turn(question, images, draw(st.lists(steps(), max_size=max_steps))))
    return Trace(system, budget, turns, seed)


def many_steps(count: int, seed: int = 0) -> list[Step]:
    """``count`` steps of one call each with tiny to mid-sized outputs."""
    rng = random.Random(seed)
    return [
        Step(
            "",
            [json.dumps({"q": f"page {i}"})],
            {0: Result(shaped_text(rng.choice(SHAPES), rng.choice([1, 5, 30]), i))},
            [0],
        )
        for i in range(count)
    ]
