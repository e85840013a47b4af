"""``ContextEngineMiddleware``: the engine's packet as what a ``create_agent`` model sees.

Before each model call the middleware hands the model the engine's packet (system prompt
with retrieved context, the decayed history that fits, the question) instead of the whole
message list. It changes only the *request*: the agent's checkpointed state keeps every
message, so nothing is lost when a turn falls out of the packet.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage

from ctxengine._validation import check_text
from ctxengine.engine import ContextEngine
from ctxengine.packet import ContextPacket

from ._convert import message_text, to_langchain_messages
from ._history import check_engine, remember_message, storable, stored_message_ids

_MAX_OFFERED = 100_000


class ContextEngineMiddleware(AgentMiddleware):
    """Feeds a ``create_agent`` model the engine's packet, within the engine's budget.

    The question is the last human message. Finished turns (the question and the final
    answer) are remembered in the engine's memory under ``session_id``, or, when that is
    ``None``, under the run's ``thread_id`` (``config={"configurable": {"thread_id": ...}}``).
    The engine's ``system_prompt`` replaces the agent's: give your instructions to the engine
    so they are counted in the budget. The current turn's tool calls and tool results are
    passed after the packet unchanged (the agent loop needs them); the budget covers the
    packet, not them.
    """

    def __init__(self, engine: ContextEngine, *, session_id: str | None = None) -> None:
        super().__init__()
        check_engine(engine)
        if session_id is not None:
            check_text(session_id, "session_id")
        self.engine = engine
        self.session_id = session_id
        # Message ids offered to memory this process, stored or dropped by its dedup.
        self._offered: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # --- the hooks -----------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> Any:
        plan = self._plan(request)
        if plan is None:
            return handler(request)
        session, index = plan
        self._remember_history(session, request.messages[:index])
        packet = self.engine.build(message_text(request.messages[index]), session_id=session)
        response = handler(self._override(request, packet, index))
        self._remember_finished_turn(session, request.messages[index], response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> Any:
        plan = self._plan(request)
        if plan is None:
            return await handler(request)
        session, index = plan
        await asyncio.to_thread(self._remember_history, session, request.messages[:index])
        query = message_text(request.messages[index])
        packet = await self.engine.abuild(query, session_id=session)
        response = await handler(self._override(request, packet, index))
        await asyncio.to_thread(
            self._remember_finished_turn, session, request.messages[index], response
        )
        return response

    # --- translation ---------------------------------------------------------------------

    def _plan(self, request: ModelRequest) -> tuple[str, int] | None:
        """The session and the index of the question, or ``None`` to leave the call alone."""
        for index in range(len(request.messages) - 1, -1, -1):
            message = request.messages[index]
            if message.type == "human":
                if not message_text(message).strip():
                    return None
                return self._session(request), index
        return None

    def _session(self, request: ModelRequest) -> str:
        if self.session_id is not None:
            return self.session_id
        info = getattr(request.runtime, "execution_info", None)
        thread_id = getattr(info, "thread_id", None)
        if thread_id is None:
            try:
                from langgraph.config import get_config

                thread_id = get_config().get("configurable", {}).get("thread_id")
            except RuntimeError:  # called outside a graph run
                thread_id = None
        return str(thread_id) if thread_id is not None else "default"

    @staticmethod
    def _override(request: ModelRequest, packet: ContextPacket, index: int) -> ModelRequest:
        messages = to_langchain_messages(packet.messages)
        system = None
        if messages and isinstance(messages[0], SystemMessage):
            system, messages = messages[0], messages[1:]
        in_flight: list[AnyMessage] = list(request.messages[index + 1 :])
        return request.override(system_message=system, messages=[*messages, *in_flight])

    # --- memory --------------------------------------------------------------------------

    def _remember_history(self, session: str, messages: Sequence[BaseMessage]) -> None:
        """Store earlier turns memory has not seen (history from before the middleware,
        or a turn whose answer was produced elsewhere)."""
        pending = [m for m in messages if storable(m) and not self._was_offered(session, m)]
        if not pending:
            return
        stored = stored_message_ids(self.engine, session)
        for message in pending:
            if message.id not in stored:
                remember_message(self.engine, session, message)
            self._mark_offered(session, message)

    def _remember_finished_turn(
        self, session: str, question: BaseMessage, response: Any
    ) -> None:
        answer = _final_message(response)
        if answer is None or not storable(answer):
            return  # the turn goes on with tool calls; it is stored when it ends
        for message in (question, answer):
            if not self._was_offered(session, message):
                remember_message(self.engine, session, message)
                self._mark_offered(session, message)

    def _was_offered(self, session: str, message: BaseMessage) -> bool:
        with self._lock:
            return message.id is not None and (session, message.id) in self._offered

    def _mark_offered(self, session: str, message: BaseMessage) -> None:
        if message.id is not None:
            with self._lock:
                if len(self._offered) >= _MAX_OFFERED:
                    # Only a shortcut: stored turns are found again through their message ids.
                    self._offered.clear()
                self._offered.add((session, message.id))


def _final_message(response: Any) -> AIMessage | None:
    """The model's message in whatever a handler returned."""
    if isinstance(response, AIMessage):
        return response
    inner = getattr(response, "model_response", response)  # ExtendedModelResponse
    for message in reversed(getattr(inner, "result", None) or []):
        if isinstance(message, AIMessage):
            return message
    return None


__all__ = ["ContextEngineMiddleware"]
