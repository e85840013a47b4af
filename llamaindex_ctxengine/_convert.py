"""Translation between LlamaIndex objects and ctxengine types, and nothing else.

``NodeWithScore`` <-> :class:`~ctxengine.types.ScoredDocument` and ``ChatMessage`` <->
:class:`~ctxengine.types.Turn`. Every decision (ranking, dedup, budget) is the core's;
these functions only move data across the boundary without mutating what they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, TextNode

from ctxengine import formatting as fmt
from ctxengine.errors import InvalidTypeError
from ctxengine.packet import chat_role
from ctxengine.types import Document, ScoredDocument, ScoredTurn, Turn

#: Metadata keys the adapters add to the nodes they return. They explain a choice; they are
#: not content, so LlamaIndex is told to keep them out of prompts and embeddings.
SCORE_KEYS: tuple[str, ...] = ("ctxengine_score", "stage_scores", "compressed", "tokens")

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
    return ScoredDocument(document, float(item.score), {INPUT_STAGE: float(item.score)}, vector=vector)


def scored_to_node(scored: ScoredDocument, original: BaseNode | None = None) -> NodeWithScore:
    """A NEW node carrying the engine's score and kept text.

    With ``original`` the copy keeps its id, class, relationships (the link to its source
    document) and templates, so citations still resolve; ``original`` itself is untouched.
    """
    metadata = {key: value for key, value in scored.metadata.items() if key not in SCORE_KEYS}
    metadata.update(
        ctxengine_score=float(scored.score),
        stage_scores=dict(scored.stage_scores),
        compressed=bool(scored.compressed),
        tokens=scored.tokens,
    )
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
    node.excluded_llm_metadata_keys = llm_excluded + [k for k in SCORE_KEYS if k not in llm_excluded]
    node.excluded_embed_metadata_keys = embed_excluded + [
        k for k in SCORE_KEYS if k not in embed_excluded
    ]
    return NodeWithScore(node=node, score=float(scored.score))


def scored_to_nodes(
    scored: Sequence[ScoredDocument], originals: Mapping[str, BaseNode] | None = None
) -> list[NodeWithScore]:
    originals = originals or {}
    return [scored_to_node(item, originals.get(item.id)) for item in scored]


def nodes_to_scored(items: Sequence[NodeWithScore]) -> tuple[list[ScoredDocument], dict[int, BaseNode]]:
    """The nodes as core documents, and each document's own node keyed by the document
    object. Keyed by object, not id: two nodes that share an id (two chunks stored under
    one id) each keep their own text and source."""
    scored = [node_to_scored(item) for item in items]
    return scored, {id(doc.document): item.node for doc, item in zip(scored, items)}


def scored_to_own_nodes(scored: Sequence[ScoredDocument], originals: Mapping[int, BaseNode]) -> list[NodeWithScore]:
    """:func:`scored_to_node` of each result with the node its document came from."""
    return [scored_to_node(item, originals.get(id(item.document))) for item in scored]


# --- chat messages ----------------------------------------------------------------------


def message_text(message: ChatMessage) -> str:
    """What a message says, as text (its text blocks)."""
    if not isinstance(message, ChatMessage):
        raise InvalidTypeError(f"expected a llama_index ChatMessage, got {type(message).__name__}")
    return "\n".join(block.text for block in message.blocks if isinstance(block, TextBlock) and block.text)


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
    (:func:`ctxengine.packet.chat_role`): assistant turns are the assistant's, every other
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
            if text.strip():
                return text
    return ""


__all__ = [
    "INPUT_STAGE",
    "SCORE_KEYS",
    "last_user_text",
    "message_role",
    "message_text",
    "node_to_scored",
    "nodes_to_scored",
    "scored_to_node",
    "scored_to_nodes",
    "scored_to_own_nodes",
    "turn_to_message",
]
