"""ContextEngineRetriever inside real LangChain objects: an LCEL RAG chain, a vector store
retriever as first stage, and LangChain's standard retriever tests."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_support import (
    RecordingListChatModel,
    langchain_documents,
    make_engine,
    raises_in_validation,
    received_text,
    received_tokens,
)
from langchain_tests.integration_tests import RetrieversIntegrationTests

from ctxengine.demo import SYSTEM_PROMPT
from ctxengine.errors import ConfigurationError, InvalidInputError, InvalidTypeError
from langchain_ctxengine import (
    ContextEngineEmbeddings,
    ContextEngineRetriever,
    LangChainFirstStage,
)
from langchain_ctxengine._convert import RESULT_KEYS

QUESTION = "How do embeddings compare to TF-IDF for retrieval?"


def _format(docs):
    return "\n\n".join(f"[{doc.id}] {doc.page_content}" for doc in docs)


def _rag_chain(retriever, model):
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM_PROMPT + "\n\nContext:\n{context}"), ("human", "{question}")]
    )
    return (
        {"context": retriever | _format, "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )


def test_lcel_rag_chain_model_receives_budgeted_compressed_documents():
    engine = make_engine(token_budget=450)
    model = RecordingListChatModel(responses=["Embeddings capture meaning; TF-IDF exact terms."])
    chain = _rag_chain(ContextEngineRetriever(engine=engine, k=3), model)

    answer = chain.invoke(QUESTION)

    assert answer.startswith("Embeddings capture meaning")
    (messages,) = model.received
    text = received_text(messages)
    assert "[emb-003]" in text and "[tfidf-004]" in text
    assert received_tokens(engine, messages) <= engine.budget.total
    # Without the engine the same two documents alone overflow what the budget leaves.
    full = engine.token_counter.count(
        "\n\n".join(
            doc.page_content for doc in langchain_documents() if doc.id in ("emb-003", "tfidf-004")
        )
    )
    assert full + engine.token_counter.count(SYSTEM_PROMPT) > engine.budget.total
    docs = ContextEngineRetriever(engine=engine, k=3).invoke(QUESTION)
    assert any(doc.metadata["ctxengine_compressed"] for doc in docs)


def test_results_carry_scores_and_provenance():
    engine = make_engine()
    docs = ContextEngineRetriever(engine=engine, k=2).invoke(QUESTION)
    packet = engine.build(QUESTION, k=2)
    assert [doc.id for doc in docs] == [doc.id for doc in packet.documents]
    for doc, scored in zip(docs, packet.documents):
        assert set(RESULT_KEYS) <= set(doc.metadata)
        assert doc.id == scored.id
        assert doc.metadata.get("source") == scored.document.source
        assert doc.metadata["ctxengine_score"] == pytest.approx(scored.score)
        assert "bm25" in doc.metadata["ctxengine_stage_scores"]
        assert doc.metadata["ctxengine_tokens"] == engine.token_counter.count(doc.page_content)
        assert doc.metadata["tags"]  # the document's own metadata is kept


def test_k_from_constructor_and_from_invoke():
    retriever = ContextEngineRetriever(engine=make_engine(), k=3)
    assert len(retriever.invoke("retrieval")) == 3
    assert len(retriever.invoke("retrieval", k=1)) == 1
    with pytest.raises(InvalidInputError):
        retriever.invoke("retrieval", k=0)


async def test_ainvoke_matches_invoke():
    retriever = ContextEngineRetriever(engine=make_engine(), k=3)
    sync = retriever.invoke(QUESTION)
    docs = await retriever.ainvoke(QUESTION)
    assert [(d.id, d.page_content) for d in docs] == [(d.id, d.page_content) for d in sync]
    assert len(await retriever.ainvoke("retrieval", k=2)) == 2


def test_wraps_a_vector_store_retriever_as_first_stage(embedder):
    store = InMemoryVectorStore(ContextEngineEmbeddings(embedder))
    store.add_documents(langchain_documents())
    base = store.as_retriever(search_kwargs={"k": 5})
    retriever = ContextEngineRetriever(
        base_retriever=base, k=2, token_budget=300, system_prompt="Answer briefly."
    )
    model = RecordingListChatModel(responses=["ok"])
    _rag_chain(retriever, model).invoke("Which model produces 384-dimensional vectors?")

    docs = retriever.invoke("Which model produces 384-dimensional vectors?")
    assert docs[0].id == "emb-003"
    assert len(docs) <= 2
    assert "first_stage" in docs[0].metadata["ctxengine_stage_scores"]
    assert sum(doc.metadata["ctxengine_tokens"] for doc in docs) < 300
    assert "[emb-003]" in received_text(model.received[0])


class _ScoringRetriever(BaseRetriever):
    """A retriever that reports its own scores, as many vector store integrations do."""

    def _get_relevant_documents(self, query, *, run_manager):
        scores = [0.1, 0.9, 0.5, 0.3, 0.2]
        return [
            LCDocument(
                page_content=d.page_content, id=d.id, metadata={**d.metadata, "relevance_score": s}
            )
            for d, s in zip(langchain_documents(), scores)
        ]


def test_first_stage_scores_come_from_metadata_else_from_rank(embedder):
    scored = LangChainFirstStage(_ScoringRetriever()).retrieve("anything", k=3)
    assert [(s.id, s.score) for s in scored] == [
        ("mem-001", 0.1),
        ("rag-002", 0.9),
        ("emb-003", 0.5),
    ]
    assert scored[0].metadata["tags"] == ["memory", "agents"]

    store = InMemoryVectorStore(ContextEngineEmbeddings(embedder))
    store.add_documents(langchain_documents())
    ranked = LangChainFirstStage(store.as_retriever(search_kwargs={"k": 2})).retrieve(
        "tf-idf", k=10
    )
    assert [s.score for s in ranked] == [1.0, 0.5]  # the wrapped retriever's own k holds
    with pytest.raises(InvalidTypeError):
        LangChainFirstStage(store)


def test_default_hybrid_engine_in_a_chain(embedder):
    engine = make_engine(retrieval="hybrid", embedder=embedder)
    model = RecordingListChatModel(responses=["ok"])
    # No shared words with the memory document: only the dense side can find it.
    _rag_chain(ContextEngineRetriever(engine=engine, k=2), model).invoke(
        "How can an assistant forget stale chat turns?"
    )
    assert "[mem-001]" in received_text(model.received[0])
    assert received_tokens(engine, model.received[0]) <= engine.budget.total


def test_bad_construction_raises_typed_errors():
    engine = make_engine()
    with raises_in_validation(ConfigurationError):
        ContextEngineRetriever()
    with raises_in_validation(ConfigurationError):
        ContextEngineRetriever(engine=engine, token_budget=100)
    with raises_in_validation(InvalidTypeError):
        ContextEngineRetriever(engine="not an engine")
    with pytest.raises(InvalidTypeError):
        ContextEngineRetriever(engine=engine, k="4")
    with raises_in_validation(InvalidInputError):
        ContextEngineRetriever(engine=engine, k=0)
    with pytest.raises(InvalidInputError):
        ContextEngineRetriever(engine=engine).invoke("   ")


_STANDARD_ENGINE = make_engine(token_budget=800)


class TestContextEngineRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's own retriever contract (langchain-tests)."""

    @property
    def retriever_constructor(self) -> type[ContextEngineRetriever]:
        return ContextEngineRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"engine": _STANDARD_ENGINE}

    @property
    def retriever_query_example(self) -> str:
        return "retrieval"
