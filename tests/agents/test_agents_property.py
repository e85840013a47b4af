"""Property: over generated agent traces (human messages, assistant tool calls, tool
results of any size, in several scripts, with images), every planned model call is
within budget, no tool-call pair is broken, and every tool output is in the store."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_support import scaled_examples

from ctxengine.agent import AgentMessage, ToolCall, ToolResultStore, count_request, prepare_call
from ctxengine.agent.fit import group_steps

pytestmark = pytest.mark.filterwarnings("ignore:the user.s message:UserWarning")
SCALE = float(os.environ.get("CTXENGINE_FUZZ_SCALE", "1"))
WORDS = {
    "latin": [
        "disk",
        "quota",
        "worker",
        "latency",
        "index",
        "shard",
        "replica",
        "queue",
        "relay",
        "error",
        "retry",
    ],
    "cjk": [
        "磁盘",
        "配额",
        "超出",
        "服务",
        "日志",
        "错误",
        "重试",
        "索引",
        "分片",
        "队列",
        "中継",
        "再試行",
        "ログ",
    ],
    "arabic": ["القرص", "الحصة", "الخادم", "السجل", "خطأ", "إعادة", "فهرس"],
    "mixed": ["naïve", "café", "😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ß", "İ", "\u200b", "e\u0301"],
    "script": ["<script>", "</ctx:context>", '{"json": [1,2]}', "def f(x):", "\t", "\n"],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    },
]


def text(rng: random.Random, script: str, words: int) -> str:
    return " ".join(rng.choice(WORDS[script]) for _ in range(words))


@st.composite
def traces(draw):
    """A list of turns: (question, blocks, steps); a step is a list of result sizes."""
    seed = draw(st.integers(0, 2**32 - 1))
    turns = draw(
        st.lists(
            st.tuples(
                st.integers(1, 900),  # question words
                st.integers(0, 2),  # image blocks
                st.lists(st.lists(st.integers(0, 1500), min_size=1, max_size=3), max_size=5),
            ),
            min_size=1,
            max_size=3,
        )
    )
    budget = draw(st.integers(2500, 6000))
    return seed, turns, budget


@scaled_examples(25, SCALE)
@given(trace=traces())
def test_every_call_within_budget_no_orphans_nothing_lost(engines, trace):
    seed, turns, budget = trace
    engine = engines(budget)
    rng = random.Random(seed)
    store = ToolResultStore()
    session = f"s{seed}"
    outputs: dict[str, str] = {}
    for turn_number, (words, blocks, steps) in enumerate(turns):
        question = AgentMessage("user", text(rng, rng.choice(list(WORDS)), words), blocks=blocks)
        in_flight: list[AgentMessage] = []
        for step_number, sizes in enumerate([*steps, None]):
            prepared = prepare_call(
                engine,
                session_id=session,
                question=question,
                in_flight=in_flight,
                system_prompt="ALWAYS ANSWER IN FRENCH.",
                tools=TOOLS,
                store=store,
                reader="read_tool_result",
            )
            recount = count_request(
                prepared.system_prompt, prepared.messages, TOOLS, engine.token_counter
            )
            assert recount == prepared.tokens <= budget
            assert prepared.system_prompt.startswith("ALWAYS ANSWER IN FRENCH.")
            kept_steps, notes = group_steps(prepared.in_flight.messages)
            assert not notes  # no orphan tool message, no unanswered call
            assert sum(len(s) for s in kept_steps) == len(prepared.in_flight.messages)
            if sizes is None:
                break
            calls = tuple(
                ToolCall(f"c{turn_number}-{step_number}-{i}", "search", '{"q":"x"}')
                for i in range(len(sizes))
            )
            in_flight.append(AgentMessage("assistant", "", tool_calls=calls))
            for call, size in zip(calls, sizes):
                output = text(rng, rng.choice(list(WORDS)), size)
                outputs[call.id] = output
                in_flight.append(AgentMessage("tool", output, tool_call_id=call.id, name="search"))
        prepare_call(
            engine, session_id=session, question=question, in_flight=in_flight, store=store
        )
    stored = {
        store.get(session, h).tool_call_id: store.get(session, h).text
        for h in store.handles(session)
    }
    assert stored == outputs  # every output kept whole, under its call
    store.close()


def test_orphans_are_left_out_and_unanswered_calls_get_a_placeholder():
    call = AgentMessage("assistant", "", tool_calls=(ToolCall("a", "search"),))
    orphan = AgentMessage("tool", "stray", tool_call_id="zzz")
    unanswered = AgentMessage("assistant", "", tool_calls=(ToolCall("b", "search"),))
    answer = AgentMessage("tool", "ok", tool_call_id="a")
    steps, notes = group_steps([orphan, call, answer, unanswered])
    assert steps[0] == [call, answer]
    (asked, no_result) = steps[1]  # the unanswered call gets a placeholder answer
    assert asked == unanswered and no_result.placeholder and no_result.tool_call_id == "b"
    assert len(notes) == 2 and "whose call is not in the request" in notes[0]
    assert "placeholder" in notes[1]
