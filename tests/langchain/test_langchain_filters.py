"""Metadata filters through ContextEngineRetriever in real LangChain chains: over the
engine's own index, and passed per call to a wrapped vector store."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_support import RecordingListChatModel, received_text

from ctxengine import ContextEngine
from ctxengine.errors import ConfigurationError, InvalidInputError
from ctxengine.retrieval.filters import Eq, Range
from langchain_ctxengine import ContextEngineEmbeddings, ContextEngineRetriever

REPORTS = [
    (
        f"r{i}",
        f"Solar output report {i}: panels on site {i} produced power in spring. Notes follow.",
        year,
        lang,
    )
    for i, (year, lang) in enumerate(
        [(2018, "en"), (2019, "fr"), (2021, "en"), (2022, "fr"), (2023, "de"), (2024, "en")]
    )
]


def engine() -> ContextEngine:
    docs = [
        {"id": i, "text": t, "metadata": {"year": y, "lang": lang}} for i, t, y, lang in REPORTS
    ]
    return ContextEngine.from_documents(
        docs, retrieval="keyword", rerank="none", token_budget=1500, k=6
    )


def _chain(retriever: Any, model: RecordingListChatModel) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Context:\n{context}"), ("human", "{question}")]
    )

    def fmt(docs: list[LCDocument]) -> str:
        return "\n".join(f"[{doc.id}] {doc.page_content}" for doc in docs)

    return (
        {"context": retriever | fmt, "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )


def test_filter_per_call_on_the_engine_s_own_index():
    retriever = ContextEngineRetriever(engine=engine(), k=6)
    spec = {"$and": [{"year": {"$gte": 2020}}, {"lang": {"$in": ["en", "fr"]}}]}
    assert {d.id for d in retriever.invoke("solar power report", filter=spec)} == {"r2", "r3", "r5"}
    assert {d.id for d in retriever.invoke("solar power report", filter=Eq("lang", "de"))} == {"r4"}
    assert len(retriever.invoke("solar power report")) == 6  # no filter: everything
    # a default filter on the retriever, overridden per call
    recent = ContextEngineRetriever(engine=engine(), k=6, filter={"year": {"$gt": 2022}})
    assert {d.id for d in recent.invoke("solar power report")} == {"r4", "r5"}
    assert {d.id for d in recent.invoke("solar power report", filter={"lang": "fr"})} == {
        "r1",
        "r3",
    }


def test_filter_bound_into_an_lcel_chain_reaches_the_model():
    model = RecordingListChatModel(responses=["ok"])
    chain = _chain(ContextEngineRetriever(engine=engine(), k=6).bind(filter={"lang": "fr"}), model)
    chain.invoke("Which solar report covers spring output?")
    sent = received_text(model.received[0])
    assert "[r1]" in sent and "[r3]" in sent
    assert not any(f"[{doc_id}]" in sent for doc_id in ("r0", "r2", "r4", "r5"))


def test_bad_filter_and_stray_search_kwargs_on_the_own_index():
    retriever = ContextEngineRetriever(engine=engine())
    with pytest.raises(InvalidInputError):
        retriever.invoke("solar", filter={"year": {"$near": 2020}})
    with pytest.raises(ConfigurationError):
        retriever.invoke("solar", fetch_k=40)  # a store's search kwarg, but there is no store


class RecordingStore(InMemoryVectorStore):
    """The in-memory store, keeping the search kwargs of every call."""

    def __init__(self, embedding: Any) -> None:
        super().__init__(embedding)
        self.calls = []

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[LCDocument]:
        self.calls.append({"k": k, **kwargs})
        return super().similarity_search(query, k=k, **kwargs)


@pytest.fixture(scope="module")
def store(embedder) -> RecordingStore:
    store = RecordingStore(ContextEngineEmbeddings(embedder))
    store.add_documents(
        [
            LCDocument(page_content=t, id=i, metadata={"year": y, "lang": lang})
            for i, t, y, lang in REPORTS
        ]
    )
    return store


def test_filter_and_search_kwargs_go_to_the_wrapped_store_per_call(store):
    retriever = ContextEngineRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": 6}),
        k=6,
        rerank="none",
        token_budget=1500,
    )
    # InMemoryVectorStore filters with a callable: the store's own format passes untouched
    docs = retriever.invoke("solar power report", filter=lambda doc: doc.metadata["lang"] == "en")
    assert {d.id for d in docs} == {"r0", "r2", "r5"}
    assert callable(store.calls[-1]["filter"]) and store.calls[-1]["k"] == 6
    docs = retriever.invoke("solar power report", k=2, fetch_k=3, filter=lambda doc: True)
    assert len(docs) == 2 and store.calls[-1]["fetch_k"] == 3
    # a ctxengine filter is written in the Chroma/LangChain dict dialect for the store
    with pytest.raises(TypeError):  # ...which the in-memory store cannot read (it wants a callable)
        retriever.invoke("solar", filter=Range("year", gte=2021))
    assert store.calls[-1]["filter"] == {"year": {"$gte": 2021}}
    retriever.invoke("solar")
    assert "filter" not in store.calls[-1]  # nothing leaks into the next call


def test_store_retriever_in_a_chain_with_a_per_call_filter(store):
    retriever = ContextEngineRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": 6}), k=6, rerank="none"
    )
    model = RecordingListChatModel(responses=["ok"])
    chain = _chain(retriever.bind(filter=lambda doc: doc.metadata["year"] < 2020), model)
    chain.invoke("solar output in spring")
    sent = received_text(model.received[0])
    assert "[r0]" in sent and "[r1]" in sent and "[r2]" not in sent
