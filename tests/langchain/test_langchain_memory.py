"""ContextEngineChatHistory in RunnableWithMessageHistory and ContextEngineMemory in a
legacy chain: what the model receives is the decayed, budgeted history."""

from __future__ import annotations

import warnings

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_support import (
    LONG_TURNS,
    RecordingListChatModel,
    make_engine,
    raises_in_validation,
    received_text,
    received_tokens,
)

from ctxengine.demo import SYSTEM_PROMPT
from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError, InvalidInputError, InvalidTypeError
from langchain_ctxengine import ContextEngineChatHistory, ContextEngineMemory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # deprecated APIs, on purpose

DAY = 86_400.0


def _history_chain(engine, model):
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM_PROMPT), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    return RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: ContextEngineChatHistory(engine=engine, session_id=session_id),
        input_messages_key="question",
        history_messages_key="history",
    )


def test_runnable_with_message_history_stays_in_budget(clock):
    engine = make_engine(clock=clock)
    model = RecordingListChatModel(
        responses=[text for role, text in LONG_TURNS if role == "assistant"]
    )
    chain = _history_chain(engine, model)
    config = {"configurable": {"session_id": "alice"}}
    questions = [text for role, text in LONG_TURNS if role == "user"]
    for question in questions:
        chain.invoke({"question": question}, config)
        clock.advance(600)

    assert len(engine.memory.turns("alice")) == 6  # everything stored, user and assistant
    last = model.received[-1]
    assert received_tokens(engine, last) <= engine.budget.total
    history = last[1:-1]  # between the system prompt and the new question
    assert 0 < len(history) < 4  # the full history would not fit
    assert history[-1].text == LONG_TURNS[3][1]  # the latest answer is always kept
    assert isinstance(history[-1], AIMessage)
    assert last[-1].text == questions[-1]
    # another session sees nothing of alice's
    chain.invoke({"question": "Hello?"}, {"configurable": {"session_id": "bob"}})
    assert len(model.received[-1]) == 2


def test_history_decays_with_time(clock):
    engine = make_engine(clock=clock)
    history = ContextEngineChatHistory(engine=engine, session_id="s")
    history.add_messages(
        [HumanMessage("Tell me about tomato watering schedules."), AIMessage("At dawn.")]
    )
    assert [m.text for m in history.messages] == [
        "Tell me about tomato watering schedules.",
        "At dawn.",
    ]
    clock.advance(30 * DAY)
    history.add_message(HumanMessage("What about bread?"))
    # A month later the old exchange has decayed below the threshold; the record remains.
    assert [m.text for m in history.messages] == ["What about bread?"]
    assert len(engine.memory.turns("s")) == 3


def test_chat_history_translation_and_clear():
    engine = make_engine()
    history = ContextEngineChatHistory(engine=engine, session_id="t", max_tokens=200)
    history.add_messages(
        [
            HumanMessage("Look up BM25 for me.", id="h1"),
            AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "bm25"}, "id": "c1"}]),
            ToolMessage("BM25 is a ranking function.", tool_call_id="c1"),
            AIMessage("BM25 ranks documents by term frequency.", id="a1"),
        ]
    )
    turns = engine.memory.turns("t")
    assert [(t.role, t.metadata.get("message_id")) for t in turns] == [
        ("user", "h1"),
        ("assistant", "a1"),
    ]
    assert [type(m) for m in history.messages] == [HumanMessage, AIMessage]
    history.clear()
    assert history.messages == [] and engine.memory.turns("t") == []


def test_turns_stored_by_other_code_keep_their_speaker():
    engine = make_engine()
    engine.remember("Caroline", "I went to a support group yesterday.", session_id="locomo")
    engine.remember("tool", "lookup returned 3 rows", session_id="locomo")
    messages = ContextEngineChatHistory(engine=engine, session_id="locomo").messages
    # A remembered tool turn has no call to answer: like a named speaker it is a labelled
    # user-side turn (issue 16), and consecutive user-side turns share one message.
    assert [(type(m), m.text) for m in messages] == [
        (
            HumanMessage,
            "Caroline: I went to a support group yesterday.\n\ntool: lookup returned 3 rows",
        ),
    ]


def test_memory_and_history_share_one_session():
    engine = make_engine()
    memory = ContextEngineMemory(engine=engine, session_id="shared", return_messages=True)
    memory.save_context({"input": "What is BM25?"}, {"output": "A lexical ranking function."})
    history = ContextEngineChatHistory(engine=engine, session_id="shared")
    assert [m.text for m in history.messages] == ["What is BM25?", "A lexical ranking function."]
    loaded = memory.load_memory_variables({"input": "lexical ranking"})["history"]
    assert [type(m) for m in loaded] == [HumanMessage, AIMessage]


def test_legacy_conversation_chain_with_base_memory(clock):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_classic.chains import ConversationChain

    engine = make_engine(clock=clock, token_budget=800)
    memory = ContextEngineMemory(engine=engine, session_id="legacy")
    model = RecordingListChatModel(
        responses=[text for role, text in LONG_TURNS if role == "assistant"] + ["ok"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chain = ConversationChain(llm=model, memory=memory)
        for role, text in LONG_TURNS:
            if role == "user":
                chain.invoke({"input": text})
                clock.advance(600)
        chain.invoke({"input": "Remind me: how long should sourdough proof in the cold?"})

    prompt = received_text(model.received[-1])
    assert received_tokens(engine, model.received[-1]) <= engine.budget.total
    # Relevance to the question revives the sourdough exchange; not everything fits: the
    # whole exchange does not (the last reply is kept), so its question comes alone, never
    # its answer without it.
    assert "My sourdough rises slowly" in prompt
    assert "Cold proofing is fine" not in prompt
    assert prompt.count("assistant: ") < 3
    assert "Tomatoes in my garden" not in prompt
    assert len(engine.memory.turns("legacy")) == 8


def test_memory_variables_and_string_rendering():
    engine = make_engine()
    memory = ContextEngineMemory(engine=engine, memory_key="chat", input_key="q", output_key="a")
    assert memory.memory_variables == ["chat"]
    memory.save_context({"q": "Hi there", "other": 1}, {"a": "Hello!", "extra": "x"})
    assert memory.load_memory_variables({"q": "greeting"}) == {
        "chat": "user: Hi there\nassistant: Hello!"
    }
    assert memory.load_memory_variables({}) == {"chat": "user: Hi there\nassistant: Hello!"}
    memory.clear()
    assert memory.load_memory_variables({"q": "greeting"}) == {"chat": ""}


def test_bad_input():
    engine = make_engine()
    with pytest.raises(InvalidTypeError):
        ContextEngineChatHistory(engine=None)
    with pytest.raises(ConfigurationError):
        ContextEngineChatHistory(engine=ContextEngine())  # no memory
    with pytest.raises(InvalidInputError):
        ContextEngineChatHistory(engine=engine, session_id=" ")
    with raises_in_validation(InvalidInputError):
        ContextEngineMemory(engine=engine, max_tokens=0)
    memory = ContextEngineMemory(engine=engine)
    with pytest.raises(InvalidInputError):
        memory.save_context({"a": "x", "b": "y"}, {"output": "z"})
    with pytest.raises(InvalidInputError):
        memory.save_context({"input": "x"}, {"o1": "y", "o2": "z"})
