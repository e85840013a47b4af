"""Real async and traces through ContextEngineRetriever: an async-only first stage awaited on
the event loop, the wrapped retriever's run nested under ours, and the packet's timings,
usage and notes on our run (tracer metadata and a custom event)."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    BaseCallbackHandler,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_support import (
    RecordingListChatModel,
    langchain_documents,
    make_engine,
    received_text,
)

from langchain_ctxengine import ContextEngineRetriever
from langchain_ctxengine._trace import EVENT_NAME

QUESTION = "How do embeddings compare to TF-IDF for retrieval?"


class AsyncOnlyRetriever(BaseRetriever):
    """A first stage with no sync path (an async database client, say)."""

    documents: list[LCDocument]
    threads: list[int]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        raise NotImplementedError("this retriever is async only")

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        self.threads.append(threading.get_ident())
        return list(self.documents)


class RetrieverRuns(BaseCallbackHandler):
    """Every retriever run started, with its parent, and every custom event."""

    def __init__(self) -> None:
        self.starts: list[tuple[UUID, UUID | None, str]] = []
        self.events: list[tuple[str, Any, UUID]] = []

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, **kwargs):
        self.starts.append(
            (run_id, parent_run_id, (serialized or {}).get("name") or kwargs.get("name", ""))
        )

    def on_custom_event(self, name, data, *, run_id, **kwargs):
        self.events.append((name, data, run_id))


def _async_only() -> AsyncOnlyRetriever:
    return AsyncOnlyRetriever(documents=langchain_documents(), threads=[])


async def test_async_only_first_stage_is_awaited_on_the_event_loop():
    base = _async_only()
    retriever = ContextEngineRetriever(base_retriever=base, k=2, token_budget=600)
    docs = await retriever.ainvoke(QUESTION)
    assert len(docs) == 2 and base.threads == [threading.get_ident()]  # no thread hop
    # in an async LCEL chain too
    model = RecordingListChatModel(responses=["ok"])
    prompt = ChatPromptTemplate.from_messages([("system", "{context}"), ("human", "{question}")])
    chain = (
        {
            "context": retriever | (lambda ds: "\n".join(d.page_content for d in ds)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | model
        | StrOutputParser()
    )
    assert await chain.ainvoke(QUESTION) == "ok"
    assert any(doc.page_content[:40] in received_text(model.received[0]) for doc in docs)
    assert len(await retriever.abatch([QUESTION, "What is a token budget?"])) == 2
    # the sync path of an async-only store fails as that store does
    with pytest.raises(NotImplementedError):
        retriever.invoke(QUESTION)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_wrapped_retriever_runs_as_our_child_and_our_run_carries_the_packet(mode):
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_ctxengine import ContextEngineEmbeddings

    store = InMemoryVectorStore(ContextEngineEmbeddings("hashing"))
    store.add_documents(langchain_documents())
    retriever = ContextEngineRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": 5}), k=2, token_budget=300
    )
    runs, collector = RetrieverRuns(), RunCollectorCallbackHandler()
    config = {"callbacks": [runs, collector]}
    docs = (
        retriever.invoke(QUESTION, config)
        if mode == "sync"
        else await retriever.ainvoke(QUESTION, config)
    )
    assert docs
    (ours, parent, _), (_, inner_parent, _) = runs.starts
    assert parent is None and inner_parent == ours  # nested, not a sibling nor missing
    (run,) = collector.traced_runs
    assert [child.run_type for child in run.child_runs] == ["retriever"]
    summary = run.extra["metadata"][EVENT_NAME]
    assert {"retrieve", "rerank", "memory", "compress", "assemble", "total"} <= set(
        summary["timings_ms"]
    )
    assert summary["token_budget"] == 300 and 0 < summary["tokens_used"] <= 300
    assert summary["documents"] == [doc.id for doc in docs]
    assert summary["usage"]["retrieved_docs"] > 0 and isinstance(summary["notes"], list)
    ((name, data, event_run),) = runs.events
    assert name == EVENT_NAME and event_run == ours and data == summary


async def test_notes_reach_the_trace_inside_a_chain():
    engine = make_engine(token_budget=260)
    retriever = ContextEngineRetriever(engine=engine, k=3)
    long_question = "Explain retrieval budgets in detail " + "please " * 120
    events = [
        event
        async for event in (retriever | (lambda docs: len(docs))).astream_events(
            long_question, version="v2"
        )
        if event["event"] == "on_custom_event"
    ]
    (event,) = events
    assert event["name"] == EVENT_NAME
    assert event["data"]["notes"]  # the question was truncated to fit, and the trace says so
    assert event["data"]["tokens_used"] <= 260
