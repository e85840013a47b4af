"""ContextEngineMiddleware in a real ``create_agent`` graph with an ``InMemorySaver``:
the model sees the engine's packet, the checkpoint keeps the whole conversation."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_support import (
    LONG_TURNS,
    RecordingToolChatModel,
    make_engine,
    received_text,
    received_tokens,
)
from langgraph.checkpoint.memory import InMemorySaver

from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError, InvalidInputError, InvalidTypeError
from langchain_ctxengine import ContextEngineMiddleware

USER_TURNS = [text for role, text in LONG_TURNS if role == "user"]
ANSWERS = [text for role, text in LONG_TURNS if role == "assistant"]
FINAL_QUESTION = "How do embeddings compare to TF-IDF for agent memory?"


@tool
def lookup(term: str) -> str:
    """Look a term up in the glossary."""
    return f"{term}: Okapi BM25, a lexical ranking function."


def _agent(engine, model, checkpointer="memory", **middleware_options):
    return create_agent(
        model,
        tools=[lookup],
        system_prompt="The agent's own prompt, composed with the engine's.",
        middleware=[ContextEngineMiddleware(engine, **middleware_options)],
        checkpointer=InMemorySaver() if checkpointer == "memory" else checkpointer,
    )


def test_model_sees_the_packet_and_the_checkpoint_keeps_everything(clock):
    engine = make_engine(clock=clock, token_budget=800)  # the tool schemas are counted too
    model = RecordingToolChatModel(messages=iter([*ANSWERS, "Embeddings match meaning."]))
    agent = _agent(engine, model)
    config = {"configurable": {"thread_id": "thread-1"}}
    for question in [*USER_TURNS, FINAL_QUESTION]:
        agent.invoke({"messages": [{"role": "user", "content": question}]}, config)
        clock.advance(120)

    state = agent.get_state(config).values["messages"]
    assert len(state) == 8  # every turn is still in the checkpoint
    assert [m.text for m in state if isinstance(m, HumanMessage)] == [*USER_TURNS, FINAL_QUESTION]

    last = model.received[-1]
    assert received_tokens(engine, last) <= engine.budget.total
    assert received_tokens(engine, state) > engine.budget.total - engine.token_counter.count(
        engine.system_prompt
    )
    assert isinstance(last[0], SystemMessage)
    assert last[0].text.startswith("The agent's own prompt, composed with the engine's.")
    assert engine.system_prompt in last[0].text
    assert '<ctx:document id="emb-003">' in last[0].text  # retrieved context
    assert isinstance(last[-1], HumanMessage) and last[-1].text == FINAL_QUESTION
    assert 1 <= len(last) - 2 < 6  # some history, not all of it
    assert last[-2].text == ANSWERS[-1]  # the latest answer is kept

    turns = engine.memory.turns("thread-1")  # the thread id is the memory session
    assert [t.content for t in turns] == [
        text
        for pair in zip([*USER_TURNS, FINAL_QUESTION], [*ANSWERS, "Embeddings match meaning."])
        for text in pair
    ]
    assert {t.metadata["message_id"] for t in turns} == {m.id for m in state}


def test_tool_loop_passes_this_turns_tool_traffic_and_stores_only_the_answer():
    engine = make_engine()
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {"term": "BM25"}, "id": "call-1"}])
    model = RecordingToolChatModel(messages=iter([call, "BM25 is lexical ranking."]))
    agent = _agent(engine, model, session_id="fixed")
    result = agent.invoke(
        {"messages": [{"role": "user", "content": "What is BM25?"}]},
        {"configurable": {"thread_id": "ignored"}},
    )
    assert result["messages"][-1].text == "BM25 is lexical ranking."
    first, second = model.received
    assert [type(m) for m in first] == [SystemMessage, HumanMessage]
    assert [type(m) for m in second] == [SystemMessage, HumanMessage, AIMessage, ToolMessage]
    assert second[-1].text.startswith("BM25: Okapi BM25")
    assert [(t.role, t.content) for t in engine.memory.turns("fixed")] == [
        ("user", "What is BM25?"),
        ("assistant", "BM25 is lexical ranking."),
    ]
    assert engine.memory.turns("ignored") == []


def test_history_from_before_the_middleware_is_remembered_once():
    engine = make_engine()
    earlier = [
        HumanMessage("Do you know what BM25 is?", id="h0"),
        AIMessage("Yes, a lexical ranking function.", id="a0"),
        HumanMessage("And what is TF-IDF?", id="h1"),
    ]
    model = RecordingToolChatModel(messages=iter(["TF-IDF weighs rare terms up."]))
    _agent(engine, model, session_id="s", checkpointer=None).invoke({"messages": earlier})
    ids = [t.metadata["message_id"] for t in engine.memory.turns("s")]
    assert ids[:3] == ["h0", "a0", "h1"] and len(ids) == 4
    assert "Yes, a lexical ranking function." in received_text(model.received[0])

    # A fresh middleware (another process) replaying the same conversation stores only
    # the new turn.
    replay = [
        *earlier,
        AIMessage("TF-IDF weighs rare terms up.", id=ids[3]),
        HumanMessage("Thanks!", id="h2"),
    ]
    other = RecordingToolChatModel(messages=iter(["You are welcome."]))
    _agent(engine, other, session_id="s", checkpointer=None).invoke({"messages": replay})
    turns = engine.memory.turns("s")
    assert [t.metadata["message_id"] for t in turns][:5] == [*ids, "h2"]
    assert [t.content for t in turns][4:] == ["Thanks!", "You are welcome."]


async def test_async_agent():
    engine = make_engine()
    model = RecordingToolChatModel(messages=iter(["Decay fades old turns."]))
    agent = _agent(engine, model)
    config = {"configurable": {"thread_id": "async"}}
    result = await agent.ainvoke(
        {
            "messages": [
                {"role": "user", "content": "Explain how memory decay prevents context bloat."}
            ]
        },
        config,
    )
    assert result["messages"][-1].text == "Decay fades old turns."
    (received,) = model.received
    assert '<ctx:document id="mem-001">' in received[0].text
    assert received_tokens(engine, received) <= engine.budget.total
    assert [t.role for t in engine.memory.turns("async")] == ["user", "assistant"]


def test_bad_construction():
    with pytest.raises(InvalidTypeError):
        ContextEngineMiddleware("engine")
    with pytest.raises(ConfigurationError):
        ContextEngineMiddleware(ContextEngine())
    with pytest.raises(InvalidInputError):
        ContextEngineMiddleware(make_engine(), session_id="")
