"""LangChain conventions on ContextEngineRetriever: configurable fields, with_config, batch,
serialization, deepcopy, the user's metadata keys, the counter from a chat model, and
LangChain's standard retriever tests over the store-wrapping retriever."""

from __future__ import annotations

import copy
import json

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.load import dumps, loads
from langchain_core.runnables import ConfigurableField
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_support import RecordingListChatModel, langchain_documents, make_engine
from langchain_tests.integration_tests import RetrieversIntegrationTests

from ctxengine.integration import RESULT_KEYS
from langchain_ctxengine import (
    ContextEngineCompressor,
    ContextEngineEmbeddings,
    ContextEngineRetriever,
    counter_for_chat_model,
)
from langchain_ctxengine._trace import EVENT_NAME

QUESTION = "How do embeddings compare to TF-IDF for retrieval?"


def store_retriever(**settings) -> ContextEngineRetriever:
    store = InMemoryVectorStore(ContextEngineEmbeddings("hashing"))
    store.add_documents(langchain_documents())
    return ContextEngineRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": 5}),
        **{"k": 3, "token_budget": 700, **settings},
    )


def test_configurable_k_and_session_id_over_a_wrapped_store():
    retriever = store_retriever()
    engine = retriever.engine
    engine.remember(
        "user",
        "Remember that my favourite retrieval method is BM25 with tuned k1.",
        session_id="ann",
    )
    configurable = retriever.configurable_fields(
        k=ConfigurableField(id="k"), session_id=ConfigurableField(id="session_id")
    )
    assert len(configurable.invoke(QUESTION)) == 3
    collector = RunCollectorCallbackHandler()
    docs = configurable.invoke(
        QUESTION, config={"configurable": {"k": 1, "session_id": "ann"}, "callbacks": [collector]}
    )
    assert len(docs) == 1
    # the configured copy runs the same engine (same memory): ann's turn shares the budget
    (run,) = collector.traced_runs
    assert run.extra["metadata"][EVENT_NAME]["memory_turns"] == 1
    assert retriever.engine is engine and retriever.k == 3  # the original is untouched


def test_with_config_batch_and_bind():
    retriever = store_retriever()
    tagged = retriever.with_config(tags=["ctx"], run_name="context")
    collector = RunCollectorCallbackHandler()
    tagged.invoke(QUESTION, config={"callbacks": [collector]})
    assert collector.traced_runs[0].name == "context" and "ctx" in collector.traced_runs[0].tags
    batches = retriever.batch([QUESTION, "What is a token budget?", "How does memory decay?"])
    assert [len(docs) for docs in batches] == [3, 3, 3]
    assert len(retriever.bind(k=2).invoke(QUESTION)) == 2


def test_serialization_keeps_settings_or_fails_clearly():
    retriever = store_retriever(filter=None, search_kwargs={"fetch_k": 9})
    dumped = json.loads(retriever.model_dump_json())
    assert dumped["k"] == 3 and dumped["engine_settings"] == {"token_budget": 700}
    assert dumped["search_kwargs"] == {"fetch_k": 9}
    # LangChain's own serializer: the engine and the store are live objects, so loading
    # says so instead of returning a retriever without them
    with pytest.raises(NotImplementedError, match="doesn't implement serialization"):
        loads(dumps(retriever))
    # the pydantic round trip without the live parts is refused with the reason
    with pytest.raises(ValueError, match="give an engine, or a base retriever"):
        ContextEngineRetriever.model_validate_json(retriever.model_dump_json())


def test_deepcopy_copies_settings_and_shares_the_engine():
    retriever = store_retriever(search_kwargs={"fetch_k": 9})
    clone = copy.deepcopy(retriever)
    assert clone.engine is retriever.engine and clone.base_retriever is retriever.base_retriever
    assert (
        clone.search_kwargs == retriever.search_kwargs
        and clone.search_kwargs is not retriever.search_kwargs
    )
    assert [d.id for d in clone.invoke(QUESTION)] == [d.id for d in retriever.invoke(QUESTION)]
    compressor = ContextEngineCompressor(token_budget=300)
    assert copy.deepcopy(compressor).engine is compressor.engine


def test_the_user_s_metadata_keys_are_never_overwritten():
    own = {"id": "user-7", "score": "A+", "tokens": 12345, "compressed": "gzip", "source": "crm"}
    docs = [
        LCDocument(page_content=doc.page_content, id=doc.id, metadata={**doc.metadata, **own})
        for doc in langchain_documents()
    ]
    store = InMemoryVectorStore(ContextEngineEmbeddings("hashing"))
    store.add_documents(docs)
    wrapped = ContextEngineRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": 5}), k=3, token_budget=500
    )
    fitted = ContextEngineCompressor(token_budget=300).compress_documents(docs, QUESTION)
    for result in [*wrapped.invoke(QUESTION), *fitted]:
        assert {key: result.metadata[key] for key in own} == own
        assert set(RESULT_KEYS) <= set(result.metadata)
        assert result.id in {doc.id for doc in docs}


def test_counter_from_the_chat_model():
    class ChatOpenAILike(RecordingListChatModel):
        model_name: str = "gpt-4o-mini"

    assert counter_for_chat_model(ChatOpenAILike(responses=["x"])).name == "o200k_base"
    assert counter_for_chat_model(RecordingListChatModel(responses=["x"])).name == "cl100k_base"
    retriever = ContextEngineRetriever(
        engine=make_engine(token_counter=counter_for_chat_model(ChatOpenAILike(responses=["x"])))
    )
    assert retriever.engine.token_counter.name == "o200k_base"


class TestStoreWrappingRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's own retriever contract, over a vector store as the first stage."""

    @property
    def retriever_constructor(self) -> type[ContextEngineRetriever]:
        return ContextEngineRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        store = InMemoryVectorStore(ContextEngineEmbeddings("hashing"))
        store.add_documents(langchain_documents())
        return {"base_retriever": store.as_retriever(search_kwargs={"k": 5}), "token_budget": 800}

    @property
    def retriever_query_example(self) -> str:
        return "retrieval"
