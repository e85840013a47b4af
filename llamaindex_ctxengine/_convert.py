"""Translation between LlamaIndex objects and ctxengine types, and nothing else.

``NodeWithScore`` <-> :class:`~ctxengine.types.ScoredDocument` and ``ChatMessage`` <->
:class:`~ctxengine.types.Turn`. Every decision (ranking, dedup, budget) is the core's;
these functions only move data across the boundary without mutating what they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from ctxengine import formatting as fmt
from ctxengine._validation import is_blank
from ctxengine.errors import ConfigurationError, InvalidTypeError
from ctxengine.integration import RESULT_KEYS, result_metadata
from ctxengine.retrieval import filters as core
from ctxengine.tokens import TokenCounter, counter_for_model
from ctxengine.types import Document, ScoredDocument, ScoredTurn, Turn, chat_role

#: Metadata keys the adapters add to the nodes they return. They explain a choice; they are
#: not content, so LlamaIndex is told to keep them out of prompts and embeddings.
SCORE_KEYS: tuple[str, ...] = RESULT_KEYS

#: The stage name under which a node's incoming LlamaIndex score is kept.
INPUT_STAGE = "input"

# LlamaIndex has more roles than a conversation needs; the core stores these three.
_ROLE_TO_CORE = {
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
}


# --- nodes ------------------------------------------------------------------------------


def node_to_scored(item: NodeWithScore) -> ScoredDocument:
    """A LlamaIndex node as a core document; its id is the node id, its score the incoming one."""
    if not isinstance(item, NodeWithScore):
        raise InvalidTypeError(f"expected NodeWithScore, got {type(item).__name__}")
    node = item.node
    document = Document(
        text=node.get_content(metadata_mode=MetadataMode.NONE),
        id=node.node_id,
        metadata=dict(node.metadata),
    )
    vector = None if node.embedding is None else np.asarray(node.embedding, dtype=np.float32)
    if item.score is None:
        return ScoredDocument(document, 0.0, vector=vector)
    return ScoredDocument(
        document, float(item.score), {INPUT_STAGE: float(item.score)}, vector=vector
    )


def scored_to_node(scored: ScoredDocument, original: BaseNode | None = None) -> NodeWithScore:
    """A NEW node carrying the engine's score and kept text.

    With ``original`` the copy keeps its id, class, relationships (the link to its source
    document) and templates, so citations still resolve; ``original`` itself is untouched.
    """
    metadata = result_metadata(scored)
    if original is None:
        node: BaseNode = TextNode(id_=scored.id, text=scored.text)
        llm_excluded: list[str] = []
        embed_excluded: list[str] = []
    else:
        node = original.model_copy()
        node.relationships = dict(original.relationships)
        llm_excluded = list(original.excluded_llm_metadata_keys)
        embed_excluded = list(original.excluded_embed_metadata_keys)
        if scored.text != original.get_content(metadata_mode=MetadataMode.NONE):
            node.set_content(scored.text)
            # The vector was computed for the full text; it does not describe the kept part.
            node.embedding = None
    node.metadata = metadata
    node.excluded_llm_metadata_keys = llm_excluded + [
        k for k in SCORE_KEYS if k not in llm_excluded
    ]
    node.excluded_embed_metadata_keys = embed_excluded + [
        k for k in SCORE_KEYS if k not in embed_excluded
    ]
    return NodeWithScore(node=node, score=float(scored.score))


def scored_to_nodes(
    scored: Sequence[ScoredDocument], originals: Mapping[str, BaseNode] | None = None
) -> list[NodeWithScore]:
    originals = originals or {}
    return [scored_to_node(item, originals.get(item.id)) for item in scored]


def nodes_to_scored(
    items: Sequence[NodeWithScore],
) -> tuple[list[ScoredDocument], dict[int, BaseNode]]:
    """The nodes as core documents, and each document's own node keyed by the document
    object. Keyed by object, not id: two nodes that share an id (two chunks stored under
    one id) each keep their own text and source."""
    scored = [node_to_scored(item) for item in items]
    return scored, {id(doc.document): item.node for doc, item in zip(scored, items)}


def scored_to_own_nodes(
    scored: Sequence[ScoredDocument], originals: Mapping[int, BaseNode]
) -> list[NodeWithScore]:
    """:func:`scored_to_node` of each result with the node its document came from."""
    return [scored_to_node(item, originals.get(id(item.document))) for item in scored]


def rendered_tokens(items: Sequence[NodeWithScore], counter: Any) -> int:
    """Tokens the nodes take in a prompt as LlamaIndex renders them: each node's
    ``get_content(metadata_mode=MetadataMode.LLM)``, joined by blank lines as the response
    synthesizers join their context chunks."""
    texts = [item.node.get_content(metadata_mode=MetadataMode.LLM) for item in items]
    return counter.count("\n\n".join(texts)) if texts else 0


# --- metadata filters ------------------------------------------------------------------

_RANGE_OPERATORS = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}


def to_core_filter(
    filters: MetadataFilters | core.Filter | dict[str, Any] | None,
) -> core.Filter | None:
    """LlamaIndex ``MetadataFilters`` as a ctxengine filter (a ctxengine filter or a
    Chroma-style dict is parsed as it is). Operators without a ctxengine equivalent (text
    match, contains, any/all of a list, is-empty) raise :class:`ConfigurationError`."""
    if filters is None or not isinstance(filters, (MetadataFilters, MetadataFilter)):
        return core.parse_filter(filters)
    if isinstance(filters, MetadataFilter):
        return _leaf(filters)
    parts = [to_core_filter(item) for item in filters.filters]
    if not parts:
        raise ConfigurationError("MetadataFilters with no filters")
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition == FilterCondition.NOT:  # LlamaIndex: none of them holds
        return core.Not(parts[0] if len(parts) == 1 else core.Or(tuple(parts)))
    if len(parts) == 1:
        return parts[0]
    return core.And(tuple(parts)) if condition == FilterCondition.AND else core.Or(tuple(parts))


def _leaf(item: MetadataFilter) -> core.Filter:
    operator = FilterOperator(item.operator)
    if operator == FilterOperator.EQ:
        return core.Eq(item.key, item.value)
    if operator == FilterOperator.NE:
        return core.Not(core.Eq(item.key, item.value))
    if operator in (FilterOperator.IN, FilterOperator.NIN):
        member = core.In(item.key, tuple(item.value or ()))
        return member if operator == FilterOperator.IN else core.Not(member)
    if operator in _RANGE_OPERATORS:
        return core.Range(item.key, **{_RANGE_OPERATORS[operator]: item.value})
    raise ConfigurationError(f"the {operator.value!r} filter operator has no ctxengine equivalent")


def to_metadata_filters(spec: core.Filter) -> MetadataFilters:
    """A ctxengine filter as LlamaIndex ``MetadataFilters`` (for a wrapped vector retriever)."""
    if isinstance(spec, core.Or):
        return MetadataFilters(
            filters=[_llama(item) for item in spec.filters], condition=FilterCondition.OR
        )
    parts = spec.filters if isinstance(spec, core.And) else (spec,)
    return all_of(*(_llama(item) for item in parts))


def all_of(*parts: MetadataFilter | MetadataFilters) -> MetadataFilters:
    """``MetadataFilters`` requiring every part, flat where the parts allow it (LlamaIndex's
    own vector store rejects nested filters)."""
    flat: list[MetadataFilter | MetadataFilters] = []
    for part in parts:
        if (
            isinstance(part, MetadataFilters)
            and FilterCondition(part.condition or "and") == FilterCondition.AND
        ):
            flat.extend(part.filters)
        else:
            flat.append(part)
    return MetadataFilters(filters=flat, condition=FilterCondition.AND)


def _llama(spec: core.Filter) -> MetadataFilter | MetadataFilters:
    if isinstance(spec, core.Eq):
        return MetadataFilter(key=spec.key, value=spec.value, operator=FilterOperator.EQ)
    if isinstance(spec, core.In):
        return MetadataFilter(key=spec.key, value=list(spec.values), operator=FilterOperator.IN)
    if isinstance(spec, core.Not) and isinstance(spec.filter, core.Eq):
        return MetadataFilter(
            key=spec.filter.key, value=spec.filter.value, operator=FilterOperator.NE
        )
    if isinstance(spec, core.Not) and isinstance(spec.filter, core.In):
        inner = spec.filter
        return MetadataFilter(key=inner.key, value=list(inner.values), operator=FilterOperator.NIN)
    if isinstance(spec, core.Not):
        return MetadataFilters(filters=[_llama(spec.filter)], condition=FilterCondition.NOT)
    if isinstance(spec, core.Range):
        operators = {name: operator for operator, name in _RANGE_OPERATORS.items()}
        leaves = [
            MetadataFilter(key=spec.key, value=bound, operator=operators[name])
            for name, bound in spec.bounds().items()
        ]
        return leaves[0] if len(leaves) == 1 else MetadataFilters(filters=leaves)
    return to_metadata_filters(spec)


# --- models -----------------------------------------------------------------------------


def counter_for_llm(llm: Any) -> TokenCounter:
    """The token counter of a LlamaIndex LLM: its ``metadata.model_name`` (an OpenAI name or
    a local model directory) through :func:`ctxengine.tokens.counter_for_model`."""
    metadata = getattr(llm, "metadata", None)
    name = getattr(metadata, "model_name", None)
    return counter_for_model(name if isinstance(name, str) and name else None)


# --- chat messages ----------------------------------------------------------------------


def message_text(message: ChatMessage) -> str:
    """What a message says, as text (its text blocks)."""
    if not isinstance(message, ChatMessage):
        raise InvalidTypeError(f"expected a llama_index ChatMessage, got {type(message).__name__}")
    return "\n".join(
        block.text for block in message.blocks if isinstance(block, TextBlock) and block.text
    )


def message_role(message: ChatMessage) -> str | None:
    """The core role of a message worth remembering, or None for tool traffic.

    A tool result means nothing in a history without its call, and a call carries no
    answer; chat APIs also reject a ``tool`` message whose call has decayed away. Within
    a run an agent keeps its own tool calls; what it concludes is in its final answer.
    """
    calls = message.additional_kwargs.get("tool_calls") or any(
        isinstance(block, ToolCallBlock) for block in message.blocks
    )
    return None if calls else _ROLE_TO_CORE.get(MessageRole(message.role))


def turn_to_message(turn: Turn | ScoredTurn) -> ChatMessage:
    """A stored turn as a ChatMessage, with the core's role mapping
    (:func:`ctxengine.types.chat_role`): assistant turns are the assistant's, every other
    turn is said by the user, labelled with its role when that is not ``user`` (a
    speaker's name, or a remembered ``system``/``tool`` turn, which must not come back as
    a second system message or a tool message without its call)."""
    role = chat_role(turn.role)
    if role == "user" and turn.role not in ("user", "human"):
        return ChatMessage(role=MessageRole.USER, content=fmt.render_turn(turn.role, turn.content))
    return ChatMessage(role=MessageRole(role), content=turn.content)


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    """The text of the latest user message (the query memory is recalled for)."""
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            text = message_text(message)
            if not is_blank(text):
                return text
    return ""


__all__ = [
    "INPUT_STAGE",
    "SCORE_KEYS",
    "all_of",
    "counter_for_llm",
    "last_user_text",
    "message_role",
    "message_text",
    "node_to_scored",
    "nodes_to_scored",
    "rendered_tokens",
    "scored_to_node",
    "scored_to_nodes",
    "scored_to_own_nodes",
    "to_core_filter",
    "to_metadata_filters",
    "turn_to_message",
]
