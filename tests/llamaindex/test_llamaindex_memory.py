"""ContextEngineChatMemory and DecayMemoryBlock, alone and inside LlamaIndex chat engines,
a FunctionAgent and ``Memory`` (offline): what reached the LLM fits the limit, holds the old
turn that still matters, ends with the question, and carries no orphan tool message."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.chat_engine import ContextChatEngine, SimpleChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.core.storage.chat_store.sql import MessageStatus
from llama_index.core.tools import FunctionTool
from llamaindex_support import (  # noqa: F401 (offline_settings: an autouse fixture)
    CapturingFunctionLLM,
    CapturingLLM,
    knowledge_base,
    offline_settings,
)

from ctxengine import ContextEngine, ManualClock
from ctxengine.errors import InvalidInputError, InvalidTypeError
from ctxengine.formatting import TURN_SEPARATOR, render_turn
from llamaindex_ctxengine import (
    ContextEngineChatMemory,
    ContextEngineEmbedding,
    ContextEnginePostprocessor,
    DecayMemoryBlock,
)

FACT = "My sister Priya moved to Lisbon last spring and works there as an architect."
QUESTION = "Which city does my sister live in now?"
TOPICS = (
    "a sourdough starter",
    "my bike's gears",
    "a python decorator",
    "tomato seedlings",
    "a chess opening",
    "the bus timetable",
    "a birthday cake",
    "my router's wifi",
)
CONVERSATION = [
    ("user", FACT),
    ("assistant", "That sounds exciting! Lisbon has a lively architecture scene."),
    *[
        turn
        for topic in TOPICS
        for turn in (
            ("user", f"Can you give me a tip about {topic}?"),
            ("assistant", f"Sure, here is a practical tip about {topic}: keep it simple."),
        )
    ],
]


@pytest.fixture
def engine(clock) -> ContextEngine:
    return ContextEngine.from_documents([], clock=clock)


def replay(memory, clock: ManualClock, turns=CONVERSATION, step: float = 600.0) -> None:
    for role, text in turns:
        clock.advance(step)
        memory.put(ChatMessage(role=role, content=text))


def history_tokens(engine: ContextEngine, messages: list[ChatMessage]) -> int:
    return engine.token_counter.count(
        TURN_SEPARATOR.join(render_turn(m.role.value, m.content or "") for m in messages)
    )


def texts(messages) -> list[str]:
    return [m.content for m in messages]


# --- the memory on its own ------------------------------------------------------------


def test_get_keeps_the_old_relevant_turn_a_buffer_drops(engine, clock):
    memory = ContextEngineChatMemory.from_defaults(
        engine=engine, session_id="alice", token_limit=120
    )
    buffer = ChatMemoryBuffer.from_defaults(token_limit=120)
    for target in (memory, buffer):
        replay(target, clock, [*CONVERSATION, ("user", QUESTION)], step=0)

    got = memory.get()
    assert FACT in texts(got) and FACT not in texts(buffer.get())
    assert got[-1].content == QUESTION  # the question being answered comes last
    assert history_tokens(engine, got) <= 120
    order = texts(memory.get_all())
    assert [order.index(t) for t in texts(got)] == sorted(order.index(t) for t in texts(got))


def test_decay_drops_what_nothing_revives(engine, clock):
    memory = ContextEngineChatMemory(engine, session_id="bob")
    memory.put(ChatMessage(role="user", content="Thanks, that is all for today."))
    memory.put(ChatMessage(role="user", content="What is a good name for a cat?"))
    assert "Thanks, that is all for today." in texts(memory.get())
    clock.advance(7 * 86400)
    memory.put(ChatMessage(role="user", content="What is a good name for a dog?"))
    got = texts(memory.get())
    assert "Thanks, that is all for today." not in got
    assert got[-1] == "What is a good name for a dog?"


def test_sessions_reset_set_and_get_all(engine):
    alice = ContextEngineChatMemory.from_defaults(
        engine=engine,
        session_id="alice",
        chat_history=[ChatMessage(role="user", content="I prefer window seats on trains.")],
    )
    bob = ContextEngineChatMemory.from_defaults(engine=engine, session_id="bob", llm=MockLLM())
    bob.put(ChatMessage(role="user", content="Book me a table for two at eight."))
    assert texts(alice.get_all()) == ["I prefer window seats on trains."]
    assert texts(bob.get_all()) == ["Book me a table for two at eight."]

    alice.set(
        [
            ChatMessage(role="user", content="Aisle seats, please."),
            ChatMessage(role="assistant", content="Aisle seats it is."),
        ]
    )
    assert texts(alice.get_all()) == ["Aisle seats, please.", "Aisle seats it is."]
    alice.reset()
    assert alice.get_all() == [] and alice.get() == []
    assert texts(bob.get_all()) == ["Book me a table for two at eight."]


def test_a_repeated_question_is_stored_once_and_still_asked(engine):
    memory = ContextEngineChatMemory(engine, session_id="carol")
    for message in (
        "What time does the museum open?",
        "It opens at nine.",
        "What time does the museum open?",
    ):
        role = "assistant" if message.startswith("It") else "user"
        memory.put(ChatMessage(role=role, content=message))
    assert texts(memory.get_all()).count("What time does the museum open?") == 1
    assert texts(memory.get())[-1] == "What time does the museum open?"


def test_tool_traffic_is_not_stored(engine):
    memory = ContextEngineChatMemory(engine, session_id="dave")
    memory.put(ChatMessage(role="user", content="Weather in Oslo?"))
    memory.put(
        ChatMessage(
            role="assistant",
            blocks=[
                ToolCallBlock(
                    tool_call_id="c1", tool_name="get_weather", tool_kwargs={"city": "Oslo"}
                )
            ],
        )
    )
    memory.put(
        ChatMessage(role="tool", content="Snow, -3 C", additional_kwargs={"tool_call_id": "c1"})
    )
    memory.put(ChatMessage(role="assistant", content="It is snowing in Oslo, -3 C."))
    assert texts(memory.get_all()) == ["Weather in Oslo?", "It is snowing in Oslo, -3 C."]
    assert texts(memory.get(input="Is it cold in Oslo?")) == texts(memory.get_all())


def test_limits_and_bad_input(engine, clock):
    memory = ContextEngineChatMemory(engine, session_id="erin", token_limit=120)
    replay(memory, clock)
    full, trimmed = memory.get(input=QUESTION), memory.get(input=QUESTION, initial_token_count=80)
    assert history_tokens(engine, trimmed) <= 40 < history_tokens(engine, full)
    # Without a limit the engine's history budget applies, as in its packets.
    small = ContextEngine.from_documents([], clock=clock, token_budget=150)
    unlimited = ContextEngineChatMemory(small, session_id="erin")
    replay(unlimited, clock)
    assert 0 < history_tokens(small, unlimited.get(input=QUESTION)) <= small.history_budget() < 100
    with pytest.raises(InvalidInputError):
        ContextEngineChatMemory(engine, token_limit=0)
    with pytest.raises(InvalidInputError):
        ContextEngineChatMemory(engine, session_id=" ")
    with pytest.raises(InvalidTypeError):
        ContextEngineChatMemory(object())
    with pytest.raises(InvalidTypeError):
        memory.put("not a message")


async def test_async_methods(engine):
    memory = ContextEngineChatMemory(engine, session_id="frank")
    await memory.aput(ChatMessage(role="user", content="Remind me to water the ferns."))
    assert texts(await memory.aget()) == ["Remind me to water the ferns."]
    await memory.areset()
    assert await memory.aget_all() == []


# --- inside LlamaIndex ----------------------------------------------------------------


def test_simple_chat_engine_sends_the_recalled_history(engine, clock):
    memory = ContextEngineChatMemory.from_defaults(
        engine=engine, session_id="alice", token_limit=120
    )
    replay(memory, clock)
    llm = CapturingLLM()
    chat = SimpleChatEngine.from_defaults(llm=llm, memory=memory, system_prompt="Be brief.")
    chat.chat(QUESTION)

    sent = llm.chats[-1]
    assert sent[0].role == MessageRole.SYSTEM and sent[-1].content == QUESTION
    assert FACT in texts(sent)
    assert history_tokens(engine, sent[1:]) <= 120
    assert texts(memory.get_all())[-1] == "Noted."  # the reply was stored


def test_context_chat_engine_with_postprocessor_and_memory(engine, clock, embedder):
    memory = ContextEngineChatMemory.from_defaults(
        engine=engine, session_id="alice", token_limit=120
    )
    replay(memory, clock)
    index = VectorStoreIndex.from_documents(
        knowledge_base(), embed_model=ContextEngineEmbedding(embedder)
    )
    llm = CapturingLLM()
    chat = ContextChatEngine.from_defaults(
        retriever=index.as_retriever(similarity_top_k=5),
        memory=memory,
        llm=llm,
        node_postprocessors=[ContextEnginePostprocessor(token_budget=250, engine=engine)],
    )
    question = "My sister asks how embeddings and TF-IDF compare for agent memory."
    expected_history = memory.get(input=question)
    response = chat.chat(question)

    prompt = llm.prompts[-1]
    assert all(message.content in prompt for message in expected_history)
    assert FACT in prompt
    assert sum(engine.token_counter.count(n.node.text) for n in response.source_nodes) <= 250
    assert all(n.node.text in prompt for n in response.source_nodes)
    assert texts(memory.get_all())[-2:] == [question, "Noted."]


def get_weather(city: str = "Paris") -> str:
    """Current weather for a city."""
    return f"Sunny and 21 degrees in {city}."


async def test_function_agent_runs_with_the_memory(engine):
    llm = CapturingFunctionLLM()
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(get_weather)], llm=llm, system_prompt="You plan trips."
    )
    memory = ContextEngineChatMemory.from_defaults(
        engine=engine, session_id="trip", token_limit=200
    )
    await agent.run(user_msg="What is the weather in Paris today?", memory=memory)
    first_run = len(llm.chats)
    await agent.run(user_msg="Should I pack an umbrella for Paris?", memory=memory)

    sent = llm.chats[first_run]  # the second run's first call: history from memory
    assert sent[0].content == "You plan trips."
    assert sent[-1].content == "Should I pack an umbrella for Paris?"
    # The first run's question and answer are recalled; its tool traffic was not stored.
    assert texts(sent)[1:] == [
        "What is the weather in Paris today?",
        "Tool calls complete.",
        "Should I pack an umbrella for Paris?",
    ]
    assert {m.role for m in sent} <= {MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT}
    assert history_tokens(engine, sent[1:]) <= 200


# --- the block inside Memory ----------------------------------------------------------


def block_memory(engine: ContextEngine, **block_options) -> Memory:
    # A short-term queue of ~80 tokens: the early turns are flushed into the block.
    return Memory.from_defaults(
        session_id="alice",
        token_limit=400,
        chat_history_token_ratio=0.2,
        token_flush_size=40,
        memory_blocks=[DecayMemoryBlock(engine, name="decayed_memory", **block_options)],
    )


def test_memory_flushes_into_the_block_and_recalls_from_it(engine, clock):
    memory = block_memory(engine, max_tokens=120)
    replay(memory, clock)

    assert FACT not in texts(memory.get_all(status=MessageStatus.ACTIVE))  # flushed
    assert FACT in [t.content for t in engine.memory.turns("alice")]  # scoped by Memory's session
    llm = CapturingLLM()
    SimpleChatEngine.from_defaults(llm=llm, memory=memory).chat(QUESTION)
    system = llm.chats[-1][0]
    assert system.role == MessageRole.SYSTEM
    assert "<decayed_memory>" in system.content and FACT in system.content
    section = system.content.split("<decayed_memory>")[1].split("</decayed_memory>")[0]
    assert engine.token_counter.count(section.strip()) <= 120
    assert llm.chats[-1][-1].content == QUESTION


async def test_block_truncates_by_recalling_into_less(engine, clock):
    block = DecayMemoryBlock(engine, name="decayed_memory", max_tokens=200, session_id="zoe")
    await block.aput([ChatMessage(role=role, content=text) for role, text in CONVERSATION])
    content = await block.aget([ChatMessage(role="user", content=QUESTION)])
    shorter = await block.atruncate(content, engine.token_counter.count(content) - 40)
    assert FACT in content and FACT in shorter
    assert engine.token_counter.count(shorter) <= 40 < engine.token_counter.count(content)
    assert await block.atruncate(content, 10_000) is None
    assert await block.aget([]) == ""
    with pytest.raises(InvalidInputError):
        DecayMemoryBlock(engine, max_tokens=0)
