"""Fitting the current turn's tool calls and tool results into their slot.

An agent's in-flight messages are *steps*: an assistant message that calls tools and the
tool messages that answer it. The rule, newest first:

1. every tool output is kept in the :class:`~.store.ToolResultStore` under a handle;
2. a tool result is kept whole when it fits the room that is left;
3. else it is compressed query-aware with the engine's compressor into that room (the
   query: the user's question, the text of the assistant message that asked for it and
   the call's arguments), with a note naming its handle; a line-structured output (log,
   table, code, JSON) line by line (:mod:`~.lines`);
4. else it becomes a short stub naming the tool, its size and its handle;
5. when even the stubs do not fit, whole steps are left out, oldest first; the newest
   step is never left out for its assistant message alone: a message too long for the
   room (long reasoning, a ``write_file`` call's content) is fitted by
   :func:`~.shrink.fit_call_message` (beginning and end kept, arguments still JSON);
   and when that message alone takes over half the room, it is fitted into half of it
   before any earlier step is left out.

A step is kept or left out as a whole, so no tool message is left without its call and
no call without its answer (chat APIs reject both). Tool messages whose call is not among
the messages (orphans) are left out with a note. A call that never got a result (a run
interrupted between the call and its answer) is answered by a *placeholder* tool message
saying so, with a note, so the results its siblings did return are still seen. A result
reduced to a stub or compressed past room for its images leaves them out (its stub says
how many); the stored text is the output's text only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .._validation import check_items, check_text, is_blank
from ..compress import Compressor
from ..tokens import TokenCounter
from .request import (
    AgentMessage,
    ToolCall,
    count_message,
)
from .shrink import fit_call_message
from .squeeze import (
    COMPRESSED,
    MIN_COMPRESSED_TOKENS,
    STUB,
    WHOLE,
    Result,
    allocate,
    compressed_note,
    stub_text,
)
from .store import ToolResultStore

SHRUNK_NOTE = (
    "fitted the newest assistant message (its text or call arguments) by keeping their "
    "beginning and end; its media and reasoning blocks were left out"
)
#: What a placeholder answering a call that never got a result says.
NO_RESULT = "[ctx: this call returned no result (the run was interrupted before it answered)]"


@dataclass
class FittedMessages:
    """The in-flight messages as the model will see them.

    ``states`` maps each kept tool call id to ``"whole"``, ``"compressed"`` or ``"stub"``;
    ``handles`` maps every tool call id seen to its handle in the store.
    """

    messages: list[AgentMessage]
    tokens: int
    states: dict[str, str] = field(default_factory=dict)
    handles: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def placeholder(call_id: str, name: str) -> AgentMessage:
    """The tool message answering a call that never got a result."""
    return AgentMessage("tool", NO_RESULT, tool_call_id=call_id, name=name, placeholder=True)


def group_steps(
    messages: Sequence[AgentMessage],
) -> tuple[list[list[AgentMessage]], list[str]]:
    """Messages cut into steps (a call and its answers, or a lone message), without
    orphan tool messages or unanswered calls; plus notes on what was left out."""
    messages = check_items(messages, AgentMessage, "messages")
    steps: list[list[AgentMessage]] = []
    notes: list[str] = []
    open_step: list[AgentMessage] | None = None
    # The calls of the open step still waiting for a result, in call order. A list, not a
    # set: parallel calls may share an id (local models that send none give each ""), and
    # their results then answer them in order.
    waiting: list[ToolCall] = []

    def close() -> None:
        nonlocal open_step
        if open_step is not None:
            if waiting:
                notes.append(
                    f"answered {len(waiting)} call(s) that never got a result with a "
                    f"placeholder: {sorted(call.id for call in waiting)}"
                )
                open_step.extend(placeholder(call.id, call.name) for call in waiting)
            steps.append(open_step)
        open_step = None
        waiting.clear()

    for message in messages:
        if message.role == "tool":
            answered = next((c for c in waiting if c.id == message.tool_call_id), None)
            if open_step is not None and answered is not None:
                open_step.append(message)
                waiting.remove(answered)
            else:
                notes.append(
                    f"left out a tool message whose call is not in the request ({message.tool_call_id})"
                )
            continue
        close()
        if message.role == "assistant" and message.tool_calls:
            open_step = [message]
            waiting.extend(message.tool_calls)
        else:
            steps.append([message])
    close()
    return steps, notes


def step_outputs(step: Sequence[AgentMessage]) -> list[tuple[int, ToolCall, AgentMessage]]:
    """The outputs of a :func:`group_steps` step as ``(position in the step, its call, the
    tool message)``, placeholders left out: each result answers the first call with its id
    not yet answered (ids may repeat)."""
    calls: dict[str, list[ToolCall]] = {}
    for call in step[0].tool_calls:
        calls.setdefault(call.id, []).append(call)
    out = []
    for position, message in enumerate(step[1:], start=1):
        call = calls[message.tool_call_id or ""].pop(0)
        if not message.placeholder:  # not an output: nothing to keep, nothing to squeeze
            out.append((position, call, message))
    return out


def fit_tool_messages(
    messages: Sequence[AgentMessage],
    max_tokens: int,
    *,
    counter: TokenCounter,
    store: ToolResultStore,
    session_id: str,
    question: str = "",
    compressor: Compressor | None = None,
    reader: str | None = None,
) -> FittedMessages:
    """Fit in-flight ``messages`` into ``max_tokens`` (see the module docstring).

    ``reader`` names the tool the model can call to read a stored output back (stubs and
    notes tell it how); ``None``: the handles are only named.
    """
    check_text(session_id, "session_id")
    check_text(question, "question", allow_empty=True)
    steps, notes = group_steps(messages)
    results: list[tuple[int, Result]] = []  # (step index, result), oldest first
    handles: dict[str, str] = {}
    for index, step in enumerate(steps):
        call = step[0]
        for position, tool_call, message in step_outputs(step):
            handle = store.put(
                session_id, tool_call.id, tool_call.name, tool_call.arguments, message.text
            )
            handles[tool_call.id] = handle
            query = " ".join(
                p for p in (question, call.text, tool_call.arguments) if not is_blank(p)
            )
            results.append(
                (index, Result(position, message, handle, query, count_message(message, counter)))
            )

    def stub(result: Result) -> AgentMessage:
        name = result.message.name or "tool"
        blocks = result.message.blocks
        text = stub_text(name, result.tokens, result.handle, reader, blocks)
        return replace(result.message, text=text, blocks=0, extra="")

    def fixed_cost(step: list[AgentMessage]) -> int:
        return sum(count_message(m, counter) for m in step if m.role != "tool" or m.placeholder)

    if steps and sum(fixed_cost(step) for step in steps) > max_tokens // 2:
        # One long assistant message (reasoning, a file's content as arguments) must not
        # push every earlier step out: past half the room, the newest is fitted first.
        newest = steps[-1][0]
        if count_message(newest, counter) > max_tokens // 2:
            shrunk = fit_call_message(newest, max_tokens // 2, counter)
            if shrunk is not None:
                steps[-1] = [shrunk, *steps[-1][1:]]
                notes.append(SHRUNK_NOTE)
    first = 0  # steps before this one are left out
    while True:
        kept = [(i, r) for i, r in results if i >= first]
        stubs = {r.handle: stub(r) for _, r in kept}
        fixed = sum(fixed_cost(step) for step in steps[first:])
        base = fixed + sum(count_message(s, counter) for s in stubs.values())
        if base > max_tokens and first < len(steps) - 1:
            first += 1
            continue
        if base > max_tokens and first == len(steps) - 1:
            # Only the newest step is left: fit its own message rather than hide the
            # model's newest call from it (it would call again).
            shrunk = fit_call_message(
                steps[first][0], max_tokens - (base - fixed_cost(steps[first][:1])), counter
            )
            if shrunk is None:
                first += 1
            else:
                steps[first] = [shrunk, *steps[first][1:]]
                notes.append(SHRUNK_NOTE)
            continue
        chosen, states = allocate(
            kept,
            len(steps) - 1,
            stubs,
            max_tokens - base,
            question=question,
            counter=counter,
            compressor=compressor,
            reader=reader,
        )
        out: list[AgentMessage] = []
        by_step = {(i, r.position): r.handle for i, r in kept}
        for index in range(first, len(steps)):
            for position, message in enumerate(steps[index]):
                key = by_step.get((index, position))
                out.append(chosen[key] if key else message)
        tokens = sum(count_message(m, counter) for m in out)
        if tokens <= max_tokens:
            break
        first += 1  # counts are exact per message, so this is only a safety net
    if first:
        notes.append(f"left out the {first} oldest step(s) of this turn to fit {max_tokens} tokens")
    reduced = sum(1 for s in states.values() if s != WHOLE)
    if reduced:
        notes.append(
            f"{reduced} tool result(s) compressed or set aside; full outputs kept by handle"
        )
    return FittedMessages(out, tokens, states, handles, notes)


__all__ = [
    "COMPRESSED",
    "MIN_COMPRESSED_TOKENS",
    "NO_RESULT",
    "STUB",
    "WHOLE",
    "FittedMessages",
    "compressed_note",
    "fit_tool_messages",
    "group_steps",
    "placeholder",
    "step_outputs",
    "stub_text",
]
