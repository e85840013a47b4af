"""``ContextEngineLLM``: every model call of a LlamaIndex agent within the engine's budget.

``FunctionAgent`` / ``AgentWorkflow`` keep the current run's tool calls and results in a
scratchpad that never passes through memory, and send them to the LLM with the memory's
history on every step. So the one place that sees the whole request is the LLM call:
this wrapper lays it out on one budget ledger (:func:`ctxengine.agent.prepare_call`) and
hands the fitted messages to the wrapped LLM. Use it with
:class:`~llamaindex_ctxengine.ContextEngineChatMemory` on the same engine and session,
which stores the finished turns the request's history is recalled from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, LLMMetadata, MessageRole
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.tools import FunctionTool

from ctxengine._validation import check_finite, check_text
from ctxengine.agent import ToolResultStore, prepare_call, read_back, resolve_session
from ctxengine.errors import DocumentNotFoundError, InvalidTypeError
from ctxengine.integration import adapter_engine

from ._agent import from_agent_message, to_agent_message, tool_schemas

READ_TOOL = "read_tool_result"


class ContextEngineLLM(FunctionCallingLLM):
    """A function-calling LLM that fits every request into the engine's budget.

    Parameters
    ----------
    llm:
        The LLM to call (any LlamaIndex ``FunctionCallingLLM``).
    engine:
        A :class:`~ctxengine.ContextEngine` with a memory.
    session_id:
        The conversation (memory and stored tool outputs); without it,
        ``shared_session`` must be set (an explicit opt-in), else the first call is a
        :class:`~ctxengine.errors.ConfigurationError`.
    store:
        Where full tool outputs are kept (default: a new in-process store).
    read_back:
        Stubs name the ``read_tool_result`` tool; add :meth:`read_tool` to the agent's tools.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llm: Any = Field(exclude=True, description="The wrapped LLM.")
    engine: Any = Field(default=None, exclude=True, description="The ContextEngine used.")
    session_id: str | None = Field(default=None, description="The conversation.")
    shared_session: str | None = Field(default=None, description="Opt-in shared session.")
    tool_share: float = Field(default=0.7, description="Most of what is left for tool traffic.")
    question_share: float = Field(default=0.5, description="Most of what is left for the question.")
    read_back: bool = Field(default=True, description="Stubs name the read_tool_result tool.")
    _store: ToolResultStore = PrivateAttr()

    def __init__(
        self,
        llm: Any,
        engine: Any | None = None,
        *,
        session_id: str | None = None,
        shared_session: str | None = None,
        store: ToolResultStore | None = None,
        tool_share: float = 0.7,
        question_share: float = 0.5,
        read_back: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(llm, FunctionCallingLLM):
            raise InvalidTypeError(f"llm must be a FunctionCallingLLM, got {type(llm).__name__}")
        for value, name in ((session_id, "session_id"), (shared_session, "shared_session")):
            if value is not None:
                check_text(value, name)
        if store is not None and not isinstance(store, ToolResultStore):
            raise InvalidTypeError(f"store must be a ToolResultStore, got {type(store).__name__}")
        engine = adapter_engine(engine)
        super().__init__(
            llm=llm,
            engine=engine,
            session_id=session_id,
            shared_session=shared_session,
            tool_share=check_finite(tool_share, "tool_share", low=0.0, high=1.0),
            question_share=check_finite(question_share, "question_share", low=0.0, high=1.0),
            read_back=bool(read_back),
            **kwargs,
        )
        self._store = store if store is not None else ToolResultStore()

    @classmethod
    def class_name(cls) -> str:
        return "ContextEngineLLM"

    @property
    def store(self) -> ToolResultStore:
        return self._store

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata

    # --- fitting ------------------------------------------------------------------------

    def fit(self, messages: Sequence[ChatMessage], tools: Sequence[Any] = ()) -> list[ChatMessage]:
        """The request as the wrapped LLM will receive it (see the module docstring)."""
        items = [to_agent_message(m) for m in messages]
        index = next((i for i in range(len(items) - 1, -1, -1) if items[i].role == "user"), None)
        # no user message: every message is in flight (nothing to recall or retrieve for)
        head, tail = (items, items) if index is None else (items[:index], items[index + 1 :])
        system = "\n\n".join(i.text for i in head if i.role == "system")
        prepared = prepare_call(
            self.engine,
            session_id=self._session(),
            question=None if index is None else items[index],
            in_flight=[i for i in tail if i.role != "system"],
            system_prompt=system,
            tools=tool_schemas(tools),
            store=self._store,
            reader=READ_TOOL if self.read_back else None,
            tool_share=self.tool_share,
            question_share=self.question_share,
        )
        out: list[ChatMessage] = []
        if prepared.packet is None or index is None:  # a call with no question
            if prepared.system_prompt:
                out.append(ChatMessage(role=MessageRole.SYSTEM, content=prepared.system_prompt))
            return out + [from_agent_message(m) for m in prepared.in_flight.messages]
        entries = prepared.packet.messages
        for position, entry in enumerate(entries):
            if position == len(entries) - 1 and entry["role"] == "user":
                original = messages[index]
                blocks = [b for b in original.blocks if b.block_type not in ("text", "tool_call")]
                question = ChatMessage(role=MessageRole.USER, content=entry["content"])
                question.blocks.extend(blocks)
                out.append(question)
            else:
                out.append(ChatMessage(role=MessageRole(entry["role"]), content=entry["content"]))
        out += [from_agent_message(m) for m in prepared.in_flight.messages]
        return out

    def _session(self) -> str:
        return resolve_session(self.session_id, shared_session=self.shared_session)

    def read_tool(self) -> FunctionTool:
        """The ``read_tool_result(handle, query=None)`` tool for the agent's tool list."""

        def read_tool_result(handle: str, query: str | None = None) -> str:
            """Read back a tool output that was compressed or set aside to save context,
            by the handle its note gives; with a query, only the parts that matter for it."""
            try:
                return read_back(self.engine, self._store, self._session(), handle, query)
            except DocumentNotFoundError as exc:
                return f"error: {exc.args[0]}"

        return FunctionTool.from_defaults(read_tool_result, name=READ_TOOL)

    # --- the calls: fit, then delegate ----------------------------------------------------

    def chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: Any = None,
        chat_history: list[ChatMessage] | None = None,
        **kwargs: Any,
    ) -> ChatResponse:
        history = self.fit(_joined(user_msg, chat_history), tools)
        return self.llm.chat_with_tools(tools, chat_history=history, **kwargs)

    async def achat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: Any = None,
        chat_history: list[ChatMessage] | None = None,
        **kwargs: Any,
    ) -> ChatResponse:
        history = self.fit(_joined(user_msg, chat_history), tools)
        return await self.llm.achat_with_tools(tools, chat_history=history, **kwargs)

    def stream_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: Any = None,
        chat_history: list[ChatMessage] | None = None,
        **kwargs: Any,
    ) -> Any:
        history = self.fit(_joined(user_msg, chat_history), tools)
        return self.llm.stream_chat_with_tools(tools, chat_history=history, **kwargs)

    async def astream_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: Any = None,
        chat_history: list[ChatMessage] | None = None,
        **kwargs: Any,
    ) -> Any:
        history = self.fit(_joined(user_msg, chat_history), tools)
        return await self.llm.astream_chat_with_tools(tools, chat_history=history, **kwargs)

    def _prepare_chat_with_tools(self, tools: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
        return self.llm._prepare_chat_with_tools(tools, **kwargs)

    def get_tool_calls_from_response(self, response: ChatResponse, **kwargs: Any) -> Any:
        return self.llm.get_tool_calls_from_response(response, **kwargs)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.llm.chat(self.fit(messages), **kwargs)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self.llm.achat(self.fit(messages), **kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        return self.llm.stream_chat(self.fit(messages), **kwargs)

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        return await self.llm.astream_chat(self.fit(messages), **kwargs)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        return self.llm.complete(prompt, formatted=formatted, **kwargs)

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        return await self.llm.acomplete(prompt, formatted=formatted, **kwargs)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        return self.llm.stream_complete(prompt, formatted=formatted, **kwargs)

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        return await self.llm.astream_complete(prompt, formatted=formatted, **kwargs)


def _joined(user_msg: Any, chat_history: list[ChatMessage] | None) -> list[ChatMessage]:
    messages = list(chat_history or [])
    if isinstance(user_msg, str):
        messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
    elif user_msg is not None:
        messages.append(user_msg)
    return messages


__all__ = ["READ_TOOL", "ContextEngineLLM"]
