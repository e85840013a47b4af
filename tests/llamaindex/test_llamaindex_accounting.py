"""Budgets count what LlamaIndex sends: the postprocessor's nodes as rendered into a real
query engine's prompt (metadata lines included), and the chat memory under a real
SimpleChatEngine with the system prompt taken off its limit."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document as LIDocument
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.schema import MetadataMode
from llamaindex_support import CapturingLLM, offline_settings  # noqa: F401

from ctxengine import ContextEngine
from ctxengine.demo import KNOWLEDGE_BASE
from llamaindex_ctxengine import (
    ContextEngineChatMemory,
    ContextEngineEmbedding,
    ContextEnginePostprocessor,
)
from llamaindex_ctxengine._convert import node_to_scored, scored_to_nodes

QUERY = "How does a token budget keep retrieved context and memory within the window?"


def documents_with_metadata() -> list[LIDocument]:
    # a file name, a section and an owner: three metadata lines LlamaIndex renders per node
    return [
        LIDocument(
            text=doc.text,
            id_=doc.id,
            metadata={
                "file_name": f"handbook/{doc.id}-engineering-notes.md",
                "section": f"Part {i}: {' '.join(doc.tags)} in production retrieval systems",
                "owner": "platform-retrieval-team@example.com",
            },
        )
        for i, doc in enumerate(KNOWLEDGE_BASE)
    ]


@pytest.fixture(scope="module")
def index(embedder) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        documents_with_metadata(), embed_model=ContextEngineEmbedding(embedder)
    )


def context_of(prompt: str) -> str:
    """The context_str of LlamaIndex's default text QA prompt."""
    return prompt.split("---------------------\n")[1].rsplit("\n---------------------", 1)[0]


@pytest.mark.parametrize("budget", [150, 300, 500])
def test_postprocessor_budget_holds_for_the_rendered_context_in_a_query_engine(index, budget):
    post = ContextEnginePostprocessor(token_budget=budget)
    llm = CapturingLLM()
    engine = index.as_query_engine(similarity_top_k=5, node_postprocessors=[post], llm=llm)
    response = engine.query(QUERY)
    assert response.source_nodes
    counter = post.engine.token_counter
    sent = context_of(llm.prompts[-1])
    assert "file_name: handbook/" in sent  # the metadata lines really are in the prompt
    assert counter.count(sent) <= budget


def test_budgeting_texts_alone_would_overflow(index):
    # What the budget must cover: the same fit with the texts alone goes past 300 once
    # LlamaIndex adds the metadata lines (so the test above can fail).
    nodes = index.as_retriever(similarity_top_k=5).retrieve(QUERY)
    engine = ContextEngine.from_retriever(None)
    fitted = engine.fit_documents(
        QUERY, [node_to_scored(n) for n in nodes], max_tokens=300, headers=False
    )
    rendered = [
        n.node.get_content(metadata_mode=MetadataMode.LLM)
        for n in scored_to_nodes(fitted, {n.node.node_id: n.node for n in nodes})
    ]
    assert engine.token_counter.count("\n\n".join(rendered)) > 300


def _sent_tokens(counter, messages: list[ChatMessage]) -> int:
    return sum(counter.count(message.content or "") for message in messages)


LONG_SYSTEM = " ".join(
    ["You are the support assistant of a gardening shop; answer briefly and cite the turn."] * 12
)
QUESTION = "What should I plan for the garden this week?"
TOPICS = [
    "tomatoes want six hours of direct sun and deep watering twice weekly",
    "beans climb trellises quickly once nights stay above ten degrees",
    "basil bolts in heat unless you pinch the flower heads early",
    "compost piles need brown leaves balanced against green kitchen scraps",
    "slugs retreat from copper tape and crushed eggshell barriers",
    "raspberries fruit on second year canes which you prune after harvest",
    "garlic cloves go into cold soil in autumn pointed end upward",
    "mulching strawberries with straw keeps berries off damp ground",
    "aphids disappear when ladybirds find nearby flowering dill",
    "potatoes must be earthed up so tubers never see daylight",
    "rhubarb crowns rest over winter and crave manure in spring",
    "cucumbers prefer greenhouse humidity and steady warm temperatures",
    "lavender hates wet roots so plant it in gritty free draining soil",
    "apple trees get pruned in midwinter while fully dormant",
    "seedlings harden off outdoors for a week before transplanting",
    "rainwater butts save money and suit acid loving blueberries",
]
TURNS = [
    ("user" if i % 2 == 0 else "assistant", f"{topic.capitalize()}, so plan the week around it.")
    for i, topic in enumerate(TOPICS)
]


def test_chat_memory_takes_the_system_prompt_off_its_limit_under_simple_chat_engine():
    engine = ContextEngine.from_retriever(None, token_budget=2000)
    counter = engine.token_counter
    assert counter.count(LONG_SYSTEM) > 150
    memory = ContextEngineChatMemory(engine, session_id="shop", token_limit=400)
    buffer = ChatMemoryBuffer.from_defaults(token_limit=400)
    for role, text in TURNS:
        memory.put(ChatMessage(role=role, content=text))
        buffer.put(ChatMessage(role=role, content=text))
    sent = {}
    for name, mem in (("ctxengine", memory), ("buffer", buffer)):
        llm = CapturingLLM()
        SimpleChatEngine.from_defaults(llm=llm, memory=mem, system_prompt=LONG_SYSTEM).chat(
            QUESTION
        )
        sent[name] = llm.chats[-1]
        assert sent[name][0].content == LONG_SYSTEM and sent[name][-1].content == QUESTION
    # ChatMemoryBuffer keeps system + history within its limit; so does ours (same tokenizer here)
    assert _sent_tokens(counter, sent["ctxengine"]) <= 400
    assert _sent_tokens(counter, sent["buffer"]) <= 400
    assert len(sent["ctxengine"]) > 2  # some history still fits
    # without the system prompt taken off, the history alone would fill the 400 tokens
    alone = memory.get(initial_token_count=0)
    assert counter.count(LONG_SYSTEM) + _sent_tokens(counter, alone) > 400
