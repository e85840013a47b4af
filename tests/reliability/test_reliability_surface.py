"""The public surface under hostile values: every entry point either works or raises a
``CtxEngineError`` naming what was wrong (never an AttributeError, KeyError, OverflowError,
RecursionError, UnicodeEncodeError or a bare sqlite3 error from deep inside), and a packet
never exceeds the budget of the engine that built it.

The sweep below throws one list of hostile values at one list of entry points (the class
of failure), then single tests pin what each fixed defect did.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_support import scaled_examples

from ctxengine import ContextEngine, Document, ScoredDocument, ScoredTurn, TokenBudget, Turn
from ctxengine.agent import (
    AgentMessage,
    ToolCall,
    ToolResultStore,
    count_tools,
    fit_tool_messages,
    prepare_call,
    read_back,
)
from ctxengine.errors import (
    ConfigurationError,
    CtxEngineError,
    InvalidInputError,
    InvalidTypeError,
    ModelNotFoundError,
)
from ctxengine.memory.sqlite import SQLiteStore
from ctxengine.packet import MIN_EXPLAIN_WIDTH
from ctxengine.retrieval.filters import MAX_FILTER_DEPTH, Not, parse_filter

DOCS = [
    Document(id="emb", text="Embeddings map text to dense vectors that capture meaning."),
    Document(id="tfidf", text="TF-IDF weighs a term by how rare it is across documents."),
]
HOSTILE = [
    None,
    b"bytes",
    0,
    -1,
    2.5,
    float("nan"),
    10**400,
    True,
    {"a": 1},
    ["a"],
    object(),
    "",
    " \t",
    "a\x00b",
    "x\ud800y",
    "[bold]x[/] [link=file:///etc/passwd]y[/link]",
    "\u202eevil\u202c e\u0301\u0301",
]


def _engine(**options) -> ContextEngine:
    settings = {"retrieval": "keyword", "rerank": "tags", "token_budget": 300}
    settings.update(memory_options={"relevance": "lexical"}, **options)
    return ContextEngine.from_documents(DOCS, **settings)


def _step(result: str, call_id: str = "c1") -> list[AgentMessage]:
    call = AgentMessage("assistant", "", tool_calls=(ToolCall(call_id, "look", "{}"),))
    return [call, AgentMessage("tool", result, tool_call_id=call_id, name="look")]


ENGINE = _engine()
PACKET = ENGINE.build("embeddings")
STORE = ToolResultStore()
COUNTER = ENGINE.token_counter

# Entry points whose argument was passed on unchecked to code that failed with a bare
# AttributeError / KeyError / TypeError from rich or the standard library.
ENTRY_POINTS = {
    "build(ledger=)": lambda v: ENGINE.build("embeddings", ledger=v),
    "explain(width=)": lambda v: PACKET.explain(width=v),
    "ledger.fit_question": lambda v: ENGINE.budget.start("s").fit_question(v),
    "ledger.add_history": lambda v: ENGINE.budget.start("s").add_history([v]),
    "ledger.fit_documents(ranked=)": lambda v: ENGINE.budget.start("s").fit_documents(
        "q", [v], None
    ),
    "ledger.fit_documents(compressor=)": lambda v: ENGINE.budget.start("s").fit_documents(
        "q", [ScoredDocument(DOCS[0], 1.0)], v
    ),
    "filter $gt": lambda v: ENGINE.build("embeddings", filter={"year": {"$gt": v}}),
    "Document tags": lambda v: _engine().add_documents(
        [Document(id="t", text="tagged embeddings", metadata={"tags": v})]
    ),
    "document mapping id": lambda v: _engine().add_documents([{"id": v, "text": "hello"}]),
    "tool result": lambda v: fit_tool_messages(
        _step(v), 200, counter=COUNTER, store=STORE, session_id="s"
    ),
    "in-flight message": lambda v: fit_tool_messages(
        [v], 200, counter=COUNTER, store=STORE, session_id="s"
    ),
    "tool call id": lambda v: fit_tool_messages(
        [
            AgentMessage("assistant", "", tool_calls=(ToolCall(v, "look"),)),
            AgentMessage("tool", "result", tool_call_id=v),
        ],
        200,
        counter=COUNTER,
        store=STORE,
        session_id="s",
    ),
    "agent message role": lambda v: AgentMessage(v, "hello"),
    "prepare_call(system_prompt=)": lambda v: prepare_call(
        ENGINE, session_id="s", question=AgentMessage("user", "hi"), system_prompt=v, store=STORE
    ),
    "prepare_call(tools=)": lambda v: prepare_call(
        ENGINE, session_id="s", question=AgentMessage("user", "hi"), tools=[v], store=STORE
    ),
    "read_back(query=)": lambda v: read_back(
        ENGINE, STORE, "s", STORE.put("s", "c", "look", "{}", "stored text " * 50), query=v
    ),
    "tool store put": lambda v: STORE.put("s", "c", "look", "{}", v),
    "SQLiteStore path": lambda v: SQLiteStore(v),
}


@pytest.mark.parametrize("call", list(ENTRY_POINTS.values()), ids=list(ENTRY_POINTS))
def test_hostile_values_work_or_raise_a_ctxengine_error(call, alarm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a hostile str is a valid relative file name for SQLiteStore
    for value in HOSTILE:
        try:
            call(value)
        except CtxEngineError:
            pass  # anything else propagates and fails the test, with the value in the trace


def test_unknown_options_are_configuration_errors_naming_the_method_called(tmp_path):
    # was Python's TypeError about from_retriever(), a method the caller never called
    with pytest.raises(ConfigurationError, match=r"from_documents\(\) got unknown option"):
        ContextEngine.from_documents(DOCS, retrieval="keyword", token_buget=800)
    ENGINE.save(tmp_path / "index")
    with pytest.raises(ConfigurationError, match="fixed by the saved index"):
        ContextEngine.load(tmp_path / "index", retrieval="dense")
    assert ContextEngine.load(tmp_path / "index", k=2).k == 2


def test_an_embedder_path_the_file_system_refuses_is_a_missing_model():
    with pytest.raises(ModelNotFoundError):
        _engine(retrieval="dense", embedder="m" * 5000)  # was OSError: File name too long


# --- the budget: a packet never exceeds the engine's ----------------------------------------


def test_a_ledger_of_another_budget_is_refused():
    engine = _engine()
    # A 300-token engine built a 1746-token packet from a ledger opened by a larger budget.
    with pytest.raises(ConfigurationError, match="another budget"):
        engine.build("embeddings", ledger=TokenBudget(5000).start("sys"))
    with pytest.raises(ConfigurationError):
        engine.build("embeddings", ledger=TokenBudget(300).start(engine.system_prompt))


def test_a_ledger_is_used_once():
    engine = _engine()
    ledger = engine.budget.start(engine.system_prompt)
    ledger.reserve("tools", 20)  # what an agent reserves before handing the ledger over
    first = engine.build("embeddings", ledger=ledger)
    assert first.tokens_used <= engine.budget.total and first.usage["tools"] == 20
    # A second build from it charged the question twice and left less room, silently.
    with pytest.raises(InvalidInputError, match="already holds"):
        engine.build("embeddings", ledger=ledger)
    with pytest.raises(InvalidInputError, match="finished"):
        ledger.reserve("tools", 1)
    fresh = engine.build("embeddings", ledger=engine.budget.start(engine.system_prompt))
    assert fresh.usage == engine.build("embeddings").usage


def test_ledger_history_takes_scored_turns_only():
    ledger = TokenBudget(200).start("s")
    turn = ScoredTurn(Turn("user", "hello there", "s", 0.0, 1.0, 0.0), 1.0)
    assert ledger.add_history([turn]) == [turn]
    with pytest.raises(InvalidTypeError, match=r"turns\[0\]"):
        TokenBudget(200).start("s").add_history(["hello there"])


# --- display -----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [0, -5, MIN_EXPLAIN_WIDTH - 1])
def test_explain_refuses_a_width_it_cannot_render(width):
    # width 0 or -5 returned "", width 1 a column of single letters
    with pytest.raises(InvalidInputError, match="width"):
        PACKET.explain(width=width)
    assert "emb" in PACKET.explain(width=MIN_EXPLAIN_WIDTH)


# --- documents ---------------------------------------------------------------------------


@given(
    tags=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    )
)
@scaled_examples(40, 1.0)
def test_any_tags_metadata_is_read_as_strings(tags):
    document = Document(id="t", text="x", metadata={"tags": tags, "source": tags})
    assert all(isinstance(tag, str) for tag in document.tags)
    assert document.source is None or isinstance(document.source, str)


def test_odd_tags_do_not_break_tag_reranking():
    # metadata={"tags": 5} was a TypeError at build time, on every build, for every query
    engine = _engine()
    engine.add_documents([Document(id="n", text="numbered embeddings", metadata={"tags": 5})])
    assert {doc.id for doc in engine.build("embeddings").documents} >= {"n"}


def test_document_mapping_ids():
    assert Document.coerce({"id": 7, "text": "x"}).id == "7"
    assert Document.coerce({"id": None, "text": "x"}).id.startswith("doc-")
    with pytest.raises(InvalidTypeError, match="'id'"):
        Document.coerce({"id": b"abc", "text": "x"})  # was stored as the id "b'abc'"


# --- filters -----------------------------------------------------------------------------


def test_a_filter_bound_beyond_float_range_is_a_typed_error():
    with pytest.raises(InvalidInputError, match="finite"):
        parse_filter({"year": {"$gt": 10**400}})  # was an OverflowError


@pytest.mark.parametrize("op", ["$and", "$or", "$not"])
def test_deep_filters_are_refused_before_recursing(op):
    spec: dict = {"year": 1}
    for _ in range(5000):
        spec = {op: spec if op == "$not" else [spec]}
    with pytest.raises(InvalidInputError, match="nests deeper"):
        ENGINE.build("embeddings", filter=spec)  # was a RecursionError


def test_deep_filters_built_by_hand_are_refused():
    built = parse_filter({"year": 1})
    with pytest.raises(InvalidInputError, match="nests deeper"):
        for _ in range(MAX_FILTER_DEPTH + 1):
            built = Not(built)
    assert parse_filter({"$not": {"$or": [{"year": 1}]}}) is not None


# --- agents ------------------------------------------------------------------------------


def test_agent_messages_check_their_fields():
    with pytest.raises(InvalidTypeError):
        ToolCall(None, "look")  # None ids were a KeyError in fit_tool_messages
    with pytest.raises(ValueError):  # an UnknownStrategyError naming the four roles
        AgentMessage("narrator", "hello")
    assert AgentMessage("assistant", "", tool_calls=[ToolCall("c", "look")]).tool_calls == (
        ToolCall("c", "look"),
    )
    with pytest.raises(InvalidTypeError, match=r"tools\[0\]"):
        count_tools([None], COUNTER)  # was counted as the JSON "null"


def test_a_tool_result_that_cannot_be_stored_stores_nothing():
    store = ToolResultStore()
    with pytest.raises(InvalidInputError):
        prepare_call(
            ENGINE,
            session_id="agent",
            question=AgentMessage("user", "what did it say?"),
            in_flight=_step("fetched \udc80 page"),
            store=store,
        )
    assert store.handles("agent") == []


@pytest.mark.parametrize("result", [None, ["a str"], [{"page_content": "x"}]])
def test_a_langchain_retriever_returning_something_else_is_a_typed_error(result):
    from langchain_core.retrievers import BaseRetriever

    from langchain_ctxengine import LangChainFirstStage

    class Misbehaving(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager=None):
            return result

    engine = ContextEngine.from_retriever(LangChainFirstStage(Misbehaving()), rerank="tags")
    with pytest.raises(InvalidTypeError, match="Misbehaving"):
        engine.build("anything")  # was AttributeError: 'str' object has no attribute 'metadata'


@pytest.mark.parametrize("result", [None, ["a str"]])
def test_a_llamaindex_retriever_returning_something_else_is_a_typed_error(result):
    from llamaindex_ctxengine import LlamaIndexFirstStage

    class Misbehaving:
        def retrieve(self, query):
            return result

    engine = ContextEngine.from_retriever(LlamaIndexFirstStage(Misbehaving()), rerank="tags")
    with pytest.raises(InvalidTypeError, match="Misbehaving"):
        engine.build("anything")  # was TypeError from list(None) / AttributeError on .node


@pytest.mark.parametrize("result", [None, ["a str"]])
@pytest.mark.parametrize("stage", ["reranker", "compressor"])
def test_a_plug_in_stage_returning_something_else_is_a_typed_error(stage, result):
    class Misbehaving:
        def rerank(self, query, documents, k=5):
            return result

        def compress(self, query, documents, max_tokens):
            return result

    components = {"reranker": ENGINE.reranker, "compressor": ENGINE.compressor}
    components[stage] = Misbehaving()
    engine = ContextEngine(ENGINE.retriever, token_budget=300, **components)
    with pytest.raises(InvalidTypeError, match="Misbehaving"):
        engine.build("embeddings")  # were TypeError / AttributeError further on
