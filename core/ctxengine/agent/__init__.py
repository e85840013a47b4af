"""Agent loops within the budget: counting whole requests, fitting tool traffic, keeping
full tool outputs by handle. Framework-neutral; the LangChain and LlamaIndex adapters
translate their messages into :class:`AgentMessage` and back."""

from .fit import FittedMessages, fit_tool_messages, group_steps
from .loop import PreparedCall, compose_system_prompt, prepare_call, read_back, resolve_session
from .request import (
    MESSAGE_OVERHEAD,
    NON_TEXT_BLOCK_TOKENS,
    AgentMessage,
    ToolCall,
    arguments_json,
    count_message,
    count_messages,
    count_request,
    count_tools,
    fit_head_tail,
    split_blocks,
)
from .store import StoredToolResult, ToolResultStore

__all__ = [
    "MESSAGE_OVERHEAD",
    "NON_TEXT_BLOCK_TOKENS",
    "AgentMessage",
    "FittedMessages",
    "PreparedCall",
    "StoredToolResult",
    "ToolCall",
    "ToolResultStore",
    "arguments_json",
    "compose_system_prompt",
    "count_message",
    "count_messages",
    "count_request",
    "count_tools",
    "fit_head_tail",
    "fit_tool_messages",
    "group_steps",
    "prepare_call",
    "read_back",
    "resolve_session",
    "split_blocks",
]
