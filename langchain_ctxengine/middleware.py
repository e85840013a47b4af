"""``ContextEngineMiddleware``: every model call of a ``create_agent`` loop within budget.

Before each model call the middleware lays the whole request out on one budget ledger
(:func:`ctxengine.agent.prepare_call`): the agent's system prompt (with what middleware
running before this one added) composed with the engine's, the bound tools' schemas, the
question, the current turn's tool calls and results (the newest kept whole when it fits,
older ones compressed for the question, then set aside as stubs with a handle), and the
engine's history and retrieved context in what is left. It changes only the *request*:
the agent's checkpointed state keeps every message, and every full tool output is kept
in :attr:`ContextEngineMiddleware.store`, which the model reads back with the
``read_tool_result`` tool the middleware adds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain.tools import ToolRuntime
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.tools import BaseTool, StructuredTool

from ctxengine._validation import check_finite, check_positive_int, check_text
from ctxengine.agent import PreparedCall, ToolResultStore, prepare_call, read_back, resolve_session
from ctxengine.engine import ContextEngine
from ctxengine.errors import DocumentNotFoundError, InvalidTypeError

from ._agent import from_agent_message, question_message, to_agent_message, tool_schemas
from ._convert import to_langchain_messages
from ._history import check_engine, remember_message, storable, stored_message_ids

_MAX_OFFERED = 100_000
READ_TOOL = "read_tool_result"


class ContextEngineMiddleware(AgentMiddleware):
    """Keeps every model call of a ``create_agent`` loop within the engine's budget.

    The question is the last human message. Its session (for memory and stored tool
    outputs) is ``session_id``, else the run's ``thread_id``, else ``context_key`` of the
    run's context (``create_agent(context_schema=...)``), else ``shared_session`` if set;
    without any of them the first call is a :class:`~ctxengine.errors.ConfigurationError`.
    Finished turns (question and final answer) are remembered in the engine's memory.
    A request with no human message (a run resumed from tool results) is fitted too: its
    system prompt and messages, with nothing recalled or retrieved and nothing remembered.

    Parameters
    ----------
    engine:
        A :class:`~ctxengine.ContextEngine` with a memory; its ``token_budget`` bounds
        every request, counted by :func:`ctxengine.agent.count_request`.
    session_id, context_key, shared_session:
        Where the session comes from (see above).
    store:
        Where full tool outputs are kept (default: a new in-process
        :class:`~ctxengine.agent.ToolResultStore`).
    read_back:
        Offer the model the ``read_tool_result(handle, query=None)`` tool.
    tool_share, question_share:
        The most of what is left that the current turn's tool messages, and before them
        the question, may take (see :func:`ctxengine.agent.prepare_call`).
    list_earlier:
        How many handles of earlier turns' tool outputs to list in the system prompt, so
        the model can read them again with ``read_tool_result`` (0, the default: none;
        at a 2,000-token budget three cost 10 points of evidence in
        ``benchmarks/agent_loop.py``, at larger budgets they cost little).
    """

    def __init__(
        self,
        engine: ContextEngine,
        *,
        session_id: str | None = None,
        context_key: str = "user_id",
        shared_session: str | None = None,
        store: ToolResultStore | None = None,
        read_back: bool = True,
        tool_share: float = 0.7,
        question_share: float = 0.5,
        list_earlier: int = 0,
    ) -> None:
        super().__init__()
        check_engine(engine)
        if session_id is not None:
            check_text(session_id, "session_id")
        if shared_session is not None:
            check_text(shared_session, "shared_session")
        if store is not None and not isinstance(store, ToolResultStore):
            raise InvalidTypeError(f"store must be a ToolResultStore, got {type(store).__name__}")
        self.engine = engine
        self.session_id = session_id
        self.context_key = check_text(context_key, "context_key")
        self.shared_session = shared_session
        self.store = store if store is not None else ToolResultStore()
        self.tool_share = check_finite(tool_share, "tool_share", low=0.0, high=1.0)
        self.question_share = check_finite(question_share, "question_share", low=0.0, high=1.0)
        self.list_earlier = check_positive_int(list_earlier, "list_earlier", allow_zero=True)
        self.tools: list[BaseTool] = [self._read_tool()] if read_back else []
        self._reader = READ_TOOL if read_back else None
        # Message ids offered to memory this process, stored or dropped by its dedup.
        self._offered: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # --- the hooks -----------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> Any:
        index = _question_index(request.messages)
        session = self._session(request)
        request = self._offer_tools(request)
        if index is None:  # no question: the request is fitted, nothing is remembered
            return handler(self._override(request, self._prepare(request, None, session), None))
        self._remember_history(session, request.messages[:index])
        prepared = self._prepare(request, index, session)
        response = handler(self._override(request, prepared, index))
        self._remember_finished_turn(session, request.messages[index], response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> Any:
        index = _question_index(request.messages)
        session = self._session(request)
        request = self._offer_tools(request)
        if index is None:  # no question: the request is fitted, nothing is remembered
            prepared = await asyncio.to_thread(self._prepare, request, None, session)
            return await handler(self._override(request, prepared, None))
        await asyncio.to_thread(self._remember_history, session, request.messages[:index])
        prepared = await asyncio.to_thread(self._prepare, request, index, session)
        response = await handler(self._override(request, prepared, index))
        await asyncio.to_thread(
            self._remember_finished_turn, session, request.messages[index], response
        )
        return response

    def delete_session(self, session_id: str) -> None:
        """Forget a session: its turns in the engine's memory and its stored tool outputs
        (call it with the thread id when you delete a thread from the checkpointer)."""
        check_text(session_id, "session_id")
        self.engine.memory.clear(session_id)  # type: ignore[union-attr]
        self.store.clear(session_id)

    # --- translation ---------------------------------------------------------------------

    @staticmethod
    def _offer_tools(request: ModelRequest) -> ModelRequest:
        """The request without the read-back tool when its model cannot call tools (a
        chat model that does not implement ``bind_tools``): no tool is offered to it."""
        if type(request.model).bind_tools is not BaseChatModel.bind_tools:
            return request
        tools = [t for t in request.tools if getattr(t, "name", None) != READ_TOOL]
        return request if len(tools) == len(request.tools) else request.override(tools=tools)

    def _prepare(self, request: ModelRequest, index: int | None, session: str) -> PreparedCall:
        system = request.system_message.text if request.system_message is not None else ""
        messages = request.messages
        earlier, in_flight = (
            ([], messages) if index is None else (messages[:index], messages[index + 1 :])
        )
        return prepare_call(
            self.engine,
            session_id=session,
            question=None if index is None else to_agent_message(messages[index]),
            in_flight=[to_agent_message(m) for m in in_flight],
            system_prompt=str(system),
            tools=tool_schemas(request.tools),
            store=self.store,
            reader=self._reader
            if any(getattr(t, "name", None) == READ_TOOL for t in request.tools)
            else None,
            tool_share=self.tool_share,
            question_share=self.question_share,
            earlier=[to_agent_message(m) for m in earlier],
            k_earlier=self.list_earlier,
        )

    def _session(self, request: ModelRequest) -> str:
        return self._session_of(getattr(request.runtime, "context", None), _thread_id(request))

    def _session_of(self, context: Any, thread_id: Any) -> str:
        user = None
        if isinstance(context, Mapping):
            user = context.get(self.context_key)
        elif context is not None:
            user = getattr(context, self.context_key, None)
        return resolve_session(self.session_id, thread_id, user, self.shared_session)

    @staticmethod
    def _override(request: ModelRequest, prepared: PreparedCall, index: int | None) -> ModelRequest:
        in_flight = [from_agent_message(m) for m in prepared.in_flight.messages]
        if prepared.packet is None or index is None:  # a call with no question
            system_prompt = prepared.system_prompt
            return request.override(
                system_message=SystemMessage(system_prompt) if system_prompt else None,
                messages=in_flight,
            )
        packet = prepared.packet
        entries = packet.messages
        system = None
        if entries and entries[0]["role"] == "system":
            system, entries = SystemMessage(entries[0]["content"]), entries[1:]
        question = None
        if entries and entries[-1]["role"] == "user":  # the question (merged with a user turn)
            question = question_message(entries[-1]["content"], request.messages[index])
            entries = entries[:-1]
        history = to_langchain_messages(entries)
        messages: list[Any] = [*history, *([question] if question else []), *in_flight]
        return request.override(system_message=system, messages=messages)

    def _read_tool(self) -> BaseTool:
        middleware = self

        def read_tool_result(handle: str, runtime: ToolRuntime, query: str | None = None) -> str:
            config = runtime.config or {}
            thread_id = (config.get("configurable") or {}).get("thread_id")
            session = middleware._session_of(runtime.context, thread_id)
            try:
                return read_back(middleware.engine, middleware.store, session, handle, query)
            except DocumentNotFoundError as exc:
                return f"error: {exc.args[0]}"

        return StructuredTool.from_function(
            read_tool_result,
            name=READ_TOOL,
            description=(
                "Read back a tool output that was compressed or set aside to save context, "
                "by the handle its note gives; with a query, only the parts that matter for it."
            ),
        )

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

    def _remember_finished_turn(self, session: str, question: BaseMessage, response: Any) -> None:
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


def _question_index(messages: Sequence[BaseMessage]) -> int | None:
    """The index of the last human message (the question), if any."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].type == "human":
            return index
    return None


def _thread_id(request: ModelRequest) -> Any:
    info = getattr(request.runtime, "execution_info", None)
    thread_id = getattr(info, "thread_id", None)
    if thread_id is None:
        try:
            from langgraph.config import get_config

            thread_id = get_config().get("configurable", {}).get("thread_id")
        except RuntimeError:  # called outside a graph run
            thread_id = None
    return thread_id


__all__ = ["READ_TOOL", "ContextEngineMiddleware"]
