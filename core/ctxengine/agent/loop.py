"""One model call of an agent loop, planned on one budget ledger.

:func:`prepare_call` lays out a whole request in the engine's ledger, in this order:

1. the system prompt: the agent's own (with what other middleware added) composed with
   the engine's, both counted (:class:`~ctxengine.errors.BudgetError` if they cannot fit);
2. the bound tools' schemas (slot ``"tools"``), the per-message overhead
   (``"message_overhead"``) and the question's non-text blocks (``"attachments"``);
3. the question: at most ``question_share`` of what is left; a longer one is fitted by
   :func:`~.request.fit_head_tail` (beginning and end kept), with a note and a warning;
4. the current turn's tool calls and results (``"tool_messages"``): at most
   ``tool_share`` of what the question leaves, fitted by :func:`~.fit.fit_tool_messages`;
5. history and retrieved documents from :meth:`ContextEngine.build`, into the rest.

The finished request is counted once more with :func:`~.request.count_request`; if the
chat form costs more than the ledger's text form (message overheads, joins), the plan is
redone with that much more set aside, so every call is within ``token_budget`` less the
answer reserve. When tool results were squeezed and history and documents left room
unused, the plan is redone once with that room given to the tool messages.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._validation import check_finite, check_items, check_positive_int, check_text, is_blank
from ..errors import BudgetError, ConfigurationError, InvalidTypeError
from ..packet import ContextPacket
from .fit import FittedMessages, fit_tool_messages, group_steps, step_outputs
from .lines import compress_lines, output_lines
from .request import (
    MESSAGE_OVERHEAD,
    NON_TEXT_BLOCK_TOKENS,
    AgentMessage,
    count_request,
    count_tools,
    fit_head_tail,
)
from .store import ToolResultStore

if TYPE_CHECKING:
    from ..budget import BudgetLedger
    from ..engine import ContextEngine
    from ..tokens import TokenCounter

# Tokens the question's section tags and separators take in the ledger's text form.
_QUESTION_TAGS = 16
_ATTEMPTS = 5
# Unused tokens worth a second plan (one more compression pass), and a margin kept on it.
_SLACK = 64


@dataclass
class PreparedCall:
    """A planned model call: the packet, the question as sent, the fitted in-flight
    messages, and the request's tokens as :func:`count_request` counts them."""

    packet: ContextPacket | None  # None: a call with no question (nothing was built)
    system_prompt: str
    messages: list[AgentMessage]  # history and question (from the packet), then in-flight
    in_flight: FittedMessages
    tokens: int
    limit: int
    notes: list[str] = field(default_factory=list)


def compose_system_prompt(agent_prompt: str, engine_prompt: str) -> str:
    """The agent's system prompt first (its instructions), then the engine's."""
    return "\n\n".join(p for p in (agent_prompt.strip(), engine_prompt.strip()) if p)


def resolve_session(
    session_id: str | None,
    thread_id: Any = None,
    user_id: Any = None,
    shared_session: str | None = None,
) -> str:
    """The memory session of a call: ``session_id``, else the run's thread id, else the
    user id from the run's context, else ``shared_session`` if the application opted in;
    else a :class:`~ctxengine.errors.ConfigurationError` (never a silent shared default,
    which would show one user's turns to another)."""
    for value in (session_id, thread_id, user_id):
        if value is not None and str(value).strip():
            return str(value)
    if shared_session is not None:
        return check_text(shared_session, "shared_session")
    raise ConfigurationError(
        "no session for this call: pass session_id=..., run with "
        "config={'configurable': {'thread_id': ...}}, put a user id in the run's context, "
        "or opt in to one shared session with shared_session='...'"
    )


def packet_messages(packet: ContextPacket) -> tuple[str, list[AgentMessage]]:
    """The packet's system content and its other messages, in the core's message form."""
    system = ""
    messages: list[AgentMessage] = []
    for entry in packet.messages:
        if entry["role"] == "system" and not messages and not system:
            system = entry["content"]
        else:
            messages.append(AgentMessage(entry["role"], entry["content"]))
    return system, messages


def prepare_call(
    engine: ContextEngine,
    *,
    session_id: str,
    question: AgentMessage | None,
    in_flight: Sequence[AgentMessage] = (),
    system_prompt: str = "",
    tools: Sequence[Mapping[str, Any]] = (),
    store: ToolResultStore,
    reader: str | None = None,
    tool_share: float = 0.7,
    question_share: float = 0.5,
    touch: bool = False,
    earlier: Sequence[AgentMessage] = (),
    k_earlier: int = 0,
) -> PreparedCall:
    """Plan one model call within the engine's budget (see the module docstring).

    ``earlier``: the messages of earlier turns; their tool outputs are kept in ``store``
    and, when ``reader`` names a read-back tool, the newest ``k_earlier`` handles are
    listed at the end of the system prompt (counted; left out if they would take more
    than a twentieth of the budget), so the model can read an earlier output again.

    ``question=None``: a request with no user message (a run resumed from tool results, a
    history of assistant and tool turns only). There is nothing to recall or retrieve for,
    so no packet is built: the request is the system prompt and ``in_flight`` fitted into
    all the room the system prompt and tools leave (``packet`` is ``None``).
    """
    check_finite(tool_share, "tool_share", low=0.0, high=1.0)
    check_finite(question_share, "question_share", low=0.0, high=1.0)
    check_text(system_prompt, "system_prompt", allow_empty=True)
    if question is not None and not isinstance(question, AgentMessage):
        raise InvalidTypeError(f"question must be an AgentMessage, got {type(question).__name__}")
    check_items(in_flight, AgentMessage, "in_flight")
    check_items(earlier, AgentMessage, "earlier")
    counter = engine.token_counter
    system = compose_system_prompt(system_prompt, engine.system_prompt)
    listing = earlier_outputs(earlier, store, session_id, reader, k_earlier)
    if listing and counter.count(listing) <= engine.budget.total // 20:
        system = compose_system_prompt(system, listing)
    limit = engine.budget.total - engine.budget.reserve_for_answer
    tool_tokens = count_tools(tools, counter)
    extra, slack = 0, 0
    for _attempt in range(_ATTEMPTS):
        ledger = engine.budget.start(system)
        ledger.reserve("tools", tool_tokens)
        ledger.reserve("message_overhead", min(2 * MESSAGE_OVERHEAD + extra, ledger.remaining))
        notes: list[str] = []
        if question is None:  # nothing competes with the tool messages for the room
            text, room = "", max(ledger.remaining, 0)
        else:
            text, notes = _fit_question(question, ledger, question_share, counter)
            question_tokens = counter.count(text) + _QUESTION_TAGS
            room = max(int((ledger.remaining - question_tokens) * tool_share), 0)
            room = min(room + slack, max(ledger.remaining - question_tokens, 0))
        fitted = fit_tool_messages(
            in_flight,
            room,
            counter=counter,
            store=store,
            session_id=session_id,
            question="" if question is None else question.text,
            compressor=engine.compressor,
            reader=reader,
        )
        ledger.reserve("tool_messages", fitted.tokens)
        packet: ContextPacket | None = None
        packet_system = system
        messages: list[AgentMessage] = []
        if question is not None:
            packet = engine.build(
                "?" if is_blank(text) else text, session_id=session_id, ledger=ledger, touch=touch
            )
            packet_system, messages = packet_messages(packet)
            if messages and messages[-1].role == "user":
                messages[-1] = AgentMessage(
                    "user", messages[-1].text, blocks=question.blocks, extra=question.extra
                )
        messages = [*messages, *fitted.messages]
        tokens = count_request(packet_system, messages, tools, counter)
        squeezed = any(state != "whole" for state in fitted.states.values())
        if tokens <= limit and squeezed and not slack and limit - tokens > _SLACK:
            # History and documents left room unused: give it to the squeezed tool results.
            slack = limit - tokens - _SLACK // 2
            continue
        if tokens <= limit:
            notes = [*notes, *fitted.notes]
            for note in notes:
                if note.startswith("the user's message"):
                    warnings.warn(note, UserWarning, stacklevel=3)
            if packet is not None:
                packet.notes.extend(notes)
            return PreparedCall(packet, packet_system, messages, fitted, tokens, limit, notes)
        extra += tokens - limit
    raise BudgetError(
        f"could not fit the request into {limit} tokens (system prompt and tools take "
        f"{counter.count(system) + tool_tokens})"
    )


def _fit_question(
    question: AgentMessage, ledger: BudgetLedger, share: float, counter: TokenCounter
) -> tuple[str, list[str]]:
    """The question's text as sent (its non-text blocks reserved in ``ledger``): at most
    ``share`` of what is left, beginning and end kept, with a note when it was cut."""
    if question.blocks or question.extra:
        attachments = NON_TEXT_BLOCK_TOKENS * question.blocks + counter.count(question.extra)
        ledger.reserve("attachments", attachments)
    room = max(int(ledger.remaining * share) - _QUESTION_TAGS, 1)
    if counter.count(question.text) <= room:
        return question.text, []
    note = (
        f"the user's message ({counter.count(question.text)} tokens) exceeded its "
        f"share ({room}); its beginning and end were kept"
    )
    return fit_head_tail(question.text, room, counter), [note]


def earlier_outputs(
    messages: Sequence[AgentMessage],
    store: ToolResultStore,
    session_id: str,
    reader: str | None,
    k: int,
) -> str:
    """Keep earlier turns' tool outputs in ``store``; the listing of the newest ``k``
    handles for the system prompt ("" without a read-back tool)."""
    entries = []
    for step in group_steps(messages)[0]:
        for _, call, message in step_outputs(step):
            handle = store.put(session_id, call.id, call.name, call.arguments, message.text)
            entries.append(f"- {handle}: {call.name}({call.arguments[:60]})")
    if reader is None or not entries or k <= 0:
        return ""
    return f"Tool outputs from earlier turns, readable with {reader}(handle, query):\n" + "\n".join(
        entries[-k:]
    )


def read_back(
    engine: ContextEngine,
    store: ToolResultStore,
    session_id: str,
    handle: str,
    query: str | None = None,
    max_tokens: int | None = None,
) -> str:
    """A stored tool output by handle: whole when it fits ``max_tokens`` (default: half
    the budget), else its beginning and end with a note to ask with a query (read back
    whole, it would only be squeezed again on the next call, under a new handle, and the
    model would read again); with ``query``, the parts of it that matter for the query
    (the engine's compressor, line by line for an output made of lines)."""
    if query is not None:
        check_text(query, "query", allow_empty=True)
    if max_tokens is not None:
        check_positive_int(max_tokens, "max_tokens")
    stored = store.get(session_id, handle)
    counter = engine.token_counter
    room = max_tokens if max_tokens is not None else engine.budget.total // 2
    tokens = counter.count(stored.text)
    if query is None or is_blank(query) or engine.compressor is None:
        if tokens <= room:
            return stored.text
        hint = f"\n[ctx: {tokens} tokens in all; read it with a query for the parts that matter]"
        return fit_head_tail(stored.text, max(room - counter.count(hint), 1), counter) + hint
    lines = output_lines(stored.text)
    if lines is not None:
        return compress_lines(lines, query, room, counter, engine.compressor)
    from ..types import Document, ScoredDocument

    kept = engine.compressor.compress(
        query, [ScoredDocument(Document(stored.text, id=handle), 1.0)], room
    )
    return kept[0].text if kept else ""


__all__ = [
    "PreparedCall",
    "compose_system_prompt",
    "earlier_outputs",
    "packet_messages",
    "prepare_call",
    "read_back",
    "resolve_session",
]
