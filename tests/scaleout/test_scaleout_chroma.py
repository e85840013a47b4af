"""A real Chroma server (``.ci/chroma.sh``) as the engine's first stage, reached through
``chromadb.HttpClient``: LangChain's ``Chroma`` vector store and LlamaIndex's
``ChromaVectorStore`` wrapped by the adapters, in real chains and query engines; Chroma's own
``where`` filters through the wrapper; the async paths; the packet budget held; memory shared
by two engines (two workers) through PostgreSQL while the documents live in the server."""

from __future__ import annotations

import inspect
import uuid
from urllib.parse import urlparse

import pytest

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("langchain_chroma")
pytest.importorskip("llama_index.vector_stores.chroma")

from langchain_chroma import Chroma
from langchain_core.documents import Document as LCDocument
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_support import RecordingListChatModel, received_text, received_tokens
from langchain_tests.integration_tests import RetrieversIntegrationTests
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.vector_stores.chroma import ChromaVectorStore
from llamaindex_support import CapturingLLM, offline_settings  # noqa: F401

from benchmarks.data import load_scifact_corpus, load_scifact_queries
from ctxengine import ContextEngine
from langchain_ctxengine import ContextEngineEmbeddings, LangChainFirstStage
from langchain_ctxengine import ContextEngineRetriever as LCRetriever
from llamaindex_ctxengine import ContextEngineEmbedding, LlamaIndexFirstStage
from llamaindex_ctxengine import ContextEngineRetriever as LIRetriever

pytestmark = pytest.mark.chroma
NO_TELEMETRY = chromadb.config.Settings(anonymized_telemetry=False)  # nothing leaves the machine

SYSTEM = "Answer from the context only; say which abstract you used."
CLAIMS = 6  # claims whose cited abstract is in the collection
FILLER = 54  # further abstracts, so the filters have something to exclude
# The per-call filter (issue 17, item 1) lands with the adapters' filter passing.
PER_CALL_FILTERS = "filter" in inspect.signature(ContextEngine.build).parameters
needs_per_call_filters = pytest.mark.skipif(
    not PER_CALL_FILTERS,
    reason="per-call filters (ContextEngine.build(filter=...)) are not in this tree yet",
)


# --- data and servers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact(shared_data):
    """``(claims, rows)``: a few train claims with their cited abstract, and the collection's
    rows ``(id, text, metadata)``. Cited abstracts are ``group="cited"``; ``rank`` is the
    row's position, for numeric range filters."""
    queries, qrels = load_scifact_queries(shared_data / "scifact")
    corpus = {doc.id: doc for doc in load_scifact_corpus(shared_data / "scifact")}
    claims: list[tuple[str, str]] = []
    for qid, text in queries.items():
        cited = [doc_id for doc_id, score in qrels[qid].items() if score > 0 and doc_id in corpus]
        if len(cited) == 1 and cited[0] not in {doc_id for _, doc_id in claims}:
            claims.append((text, cited[0]))
        if len(claims) == CLAIMS:
            break
    cited_ids = {doc_id for _, doc_id in claims}
    filler = [doc_id for doc_id in corpus if doc_id not in cited_ids][:FILLER]
    rows = [
        (
            doc_id,
            corpus[doc_id].document_text,
            {"group": "cited" if doc_id in cited_ids else "other", "rank": rank},
        )
        for rank, doc_id in enumerate([doc_id for _, doc_id in claims] + filler)
    ]
    return claims, rows


@pytest.fixture(scope="module")
def client(chroma_url):
    parsed = urlparse(chroma_url)
    return chromadb.HttpClient(host=parsed.hostname, port=parsed.port, settings=NO_TELEMETRY)


@pytest.fixture(scope="module")
def lc_store(client, scifact, embedder):
    """A LangChain ``Chroma`` store on the server, in a collection dropped afterwards."""
    _, rows = scifact
    name = f"ctx_lc_{uuid.uuid4().hex[:10]}"
    store = Chroma(
        collection_name=name, embedding_function=ContextEngineEmbeddings(embedder), client=client
    )
    store.add_documents(
        [LCDocument(page_content=text, id=doc_id, metadata=meta) for doc_id, text, meta in rows],
        ids=[doc_id for doc_id, _, _ in rows],
    )
    yield store
    client.delete_collection(name)


@pytest.fixture(scope="module")
def li_index(client, scifact, embedder):
    """A LlamaIndex ``VectorStoreIndex`` over a ``ChromaVectorStore`` on the server."""
    _, rows = scifact
    name = f"ctx_li_{uuid.uuid4().hex[:10]}"
    store = ChromaVectorStore(chroma_collection=client.create_collection(name))
    nodes = [TextNode(id_=doc_id, text=text, metadata=meta) for doc_id, text, meta in rows]
    index = VectorStoreIndex(
        nodes,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=ContextEngineEmbedding(embedder),
    )
    yield index
    client.delete_collection(name)


def _chain(retriever, model):
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM + "\n\nContext:\n{context}"), ("human", "{q}")]
    )
    context = retriever | (lambda docs: "\n\n".join(f"[{d.id}] {d.page_content}" for d in docs))
    return {"context": context, "q": RunnablePassthrough()} | prompt | model | StrOutputParser()


def _assert_within_budget(engine: ContextEngine, packet) -> None:
    assert packet.tokens_used <= engine.budget.total
    assert packet.tokens_used == engine.token_counter.count(packet.text)


# --- LangChain: Chroma store -> ContextEngineRetriever ---------------------------------


def test_langchain_chroma_store_is_the_first_stage_of_a_chain(client, lc_store, scifact):
    claims, rows = scifact
    assert client.get_collection(lc_store._collection.name).count() == len(rows)  # on the server
    retriever = LCRetriever(
        base_retriever=lc_store.as_retriever(search_kwargs={"k": 12}),
        k=3,
        token_budget=350,
        system_prompt=SYSTEM,
    )
    found = 0
    for claim, cited in claims:
        model = RecordingListChatModel(responses=["ok"])
        _chain(retriever, model).invoke(claim)
        (messages,) = model.received
        assert received_tokens(retriever.engine, messages) <= 350
        packet = retriever.engine.build(claim, k=3)
        _assert_within_budget(retriever.engine, packet)
        assert {doc.id for doc in packet.candidates} <= {doc_id for doc_id, _, _ in rows}
        found += f"[{cited}]" in received_text(messages)
    # MiniLM through the server finds the cited abstract for most claims; the engine keeps it.
    assert found >= CLAIMS - 1


def test_langchain_where_filters_through_the_wrapper(lc_store, scifact):
    claims, _ = scifact
    claim, cited = claims[0]
    equality = LCRetriever(
        base_retriever=lc_store.as_retriever(search_kwargs={"k": 8, "filter": {"group": "other"}}),
        k=4,
    )
    docs = equality.invoke(claim)
    assert docs and all(doc.metadata["group"] == "other" for doc in docs)
    assert cited not in {doc.id for doc in docs}
    assert cited in {
        doc.id for doc in LCRetriever(base_retriever=lc_store.as_retriever(), k=4).invoke(claim)
    }

    combined = {"$and": [{"group": {"$in": ["other", "cited"]}}, {"rank": {"$gte": 30}}]}
    ranged = LCRetriever(
        base_retriever=lc_store.as_retriever(search_kwargs={"k": 8, "filter": combined}), k=4
    )
    docs = ranged.invoke(claim)
    assert docs and all(doc.metadata["rank"] >= 30 for doc in docs)


@needs_per_call_filters
def test_langchain_per_call_filter_reaches_the_server(lc_store, scifact):
    claims, _ = scifact
    claim, cited = claims[0]
    retriever = LCRetriever(base_retriever=lc_store.as_retriever(search_kwargs={"k": 8}), k=4)
    docs = retriever.invoke(claim, filter={"group": "other"})
    assert (
        docs
        and all(doc.metadata["group"] == "other" for doc in docs)
        and cited not in {d.id for d in docs}
    )
    packet = retriever.engine.build(claim, filter={"rank": {"$gte": 40}})
    assert packet.documents and all(doc.metadata["rank"] >= 40 for doc in packet.documents)
    assert cited in {doc.id for doc in retriever.invoke(claim)}  # the filter was for that call only


async def test_langchain_async_paths_through_the_server(lc_store, scifact):
    claims, _ = scifact
    retriever = LCRetriever(
        base_retriever=lc_store.as_retriever(search_kwargs={"k": 12}), k=3, token_budget=300
    )
    for claim, _ in claims[:3]:
        sync = retriever.invoke(claim)
        docs = await retriever.ainvoke(claim)
        assert [(d.id, d.page_content) for d in docs] == [(d.id, d.page_content) for d in sync]
        packet = await retriever.engine.abuild(claim, k=3)
        _assert_within_budget(retriever.engine, packet)
        assert [doc.id for doc in packet.documents] == [d.id for d in sync]


def test_budget_holds_with_history_over_the_server(lc_store, scifact):
    claims, _ = scifact
    engine = ContextEngine.from_retriever(
        LangChainFirstStage(lc_store.as_retriever(search_kwargs={"k": 15})),
        token_budget=260,
        system_prompt=SYSTEM,
    )
    for claim, _ in claims:
        engine.remember("user", claim, session_id="s")
        engine.remember("assistant", "I will check the abstracts about: " + claim, session_id="s")
    for budget_k in (1, 3, 8):
        for claim, _ in claims:
            packet = engine.build(claim, session_id="s", k=budget_k)
            _assert_within_budget(engine, packet)
            assert len(packet.documents) <= budget_k and packet.memory_turns
    # The abstracts alone overflow it: the budget, not a small corpus, keeps the packet small.
    packet = engine.build(claims[0][0], session_id="s", k=8)
    full = sum(engine.token_counter.count(doc.document.text) for doc in packet.candidates[:8])
    assert full > engine.budget.total


class TestChromaWrappingRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's own retriever contract (langchain-tests) for the retriever that wraps the
    Chroma store."""

    @pytest.fixture(autouse=True)
    def _store(self, lc_store):
        type(self).base = lc_store.as_retriever(search_kwargs={"k": 12})

    @property
    def retriever_constructor(self) -> type[LCRetriever]:
        return LCRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"base_retriever": self.base, "token_budget": 800}

    @property
    def retriever_query_example(self) -> str:
        return "prion protein positivity in the UK population"


# --- LlamaIndex: ChromaVectorStore -> ContextEngineRetriever -----------------------------


def test_llamaindex_chroma_index_in_a_query_engine(li_index, scifact):
    claims, rows = scifact
    retriever = LIRetriever(
        base_retriever=li_index.as_retriever(similarity_top_k=12),
        k=3,
        token_budget=350,
        system_prompt=SYSTEM,
    )
    llm = CapturingLLM()
    query_engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    found = 0
    for claim, cited in claims:
        response = query_engine.query(claim)
        ids = [item.node.node_id for item in response.source_nodes]
        assert 0 < len(ids) <= 3 and set(ids) <= {doc_id for doc_id, _, _ in rows}
        # the original nodes come back, with their metadata from the server
        assert all("group" in item.node.metadata for item in response.source_nodes)
        _assert_within_budget(retriever.engine, retriever.engine.build(claim, k=3))
        found += (
            cited in ids and response.source_nodes[ids.index(cited)].node.text in llm.prompts[-1]
        )
    assert found >= CLAIMS - 1


def test_llamaindex_metadata_filters_through_the_wrapper(li_index, scifact):
    claims, _ = scifact
    claim, cited = claims[0]
    other = MetadataFilters(filters=[MetadataFilter(key="group", value="other")])
    docs = LIRetriever(
        base_retriever=li_index.as_retriever(similarity_top_k=8, filters=other), k=4
    ).retrieve(claim)
    assert docs and all(item.node.metadata["group"] == "other" for item in docs)
    assert cited not in {item.node.node_id for item in docs}

    either = MetadataFilters(
        filters=[
            MetadataFilter(key="rank", value=50, operator=FilterOperator.GTE),
            MetadataFilter(key="group", value="cited"),
        ],
        condition=FilterCondition.OR,
    )
    retriever = LIRetriever(
        base_retriever=li_index.as_retriever(similarity_top_k=8, filters=either), k=4
    )
    docs = retriever.retrieve(claim)
    assert docs and all(
        item.node.metadata["rank"] >= 50 or item.node.metadata["group"] == "cited" for item in docs
    )
    assert cited in {item.node.node_id for item in docs}


@needs_per_call_filters
def test_llamaindex_per_call_metadata_filters_reach_the_server(li_index, scifact):
    claims, _ = scifact
    claim, cited = claims[0]
    engine = ContextEngine.from_retriever(
        LlamaIndexFirstStage(li_index.as_retriever(similarity_top_k=8))
    )
    other = MetadataFilters(filters=[MetadataFilter(key="group", value="other")])
    packet = engine.build(claim, k=4, filter=other)
    assert packet.documents and all(doc.metadata["group"] == "other" for doc in packet.documents)
    assert cited not in {doc.id for doc in packet.documents}
    assert cited in {doc.id for doc in engine.build(claim, k=4).documents}


@pytest.mark.skipif(
    "filters" not in inspect.signature(LIRetriever.__init__).parameters,
    reason="the LlamaIndex retriever takes no filters= in this tree yet",
)
def test_llamaindex_retriever_filters_join_the_stores_own(li_index, scifact):
    claims, _ = scifact
    claim, _ = claims[0]
    own = MetadataFilters(filters=[MetadataFilter(key="group", value="other")])
    extra = MetadataFilters(
        filters=[MetadataFilter(key="rank", value=30, operator=FilterOperator.GTE)]
    )
    retriever = LIRetriever(
        base_retriever=li_index.as_retriever(similarity_top_k=8, filters=own), k=4, filters=extra
    )
    docs = retriever.retrieve(claim)
    assert docs and all(
        item.node.metadata["group"] == "other" and item.node.metadata["rank"] >= 30 for item in docs
    )


async def test_llamaindex_async_paths_through_the_server(li_index, scifact):
    claims, _ = scifact
    retriever = LIRetriever(
        base_retriever=li_index.as_retriever(similarity_top_k=12), k=3, token_budget=300
    )
    query_engine = RetrieverQueryEngine.from_args(retriever, llm=CapturingLLM())
    for claim, _ in claims[:3]:
        sync = [item.node.node_id for item in retriever.retrieve(claim)]
        assert [item.node.node_id for item in await retriever.aretrieve(claim)] == sync
        response = await query_engine.aquery(claim)
        assert [item.node.node_id for item in response.source_nodes] == sync
        _assert_within_budget(retriever.engine, await retriever.engine.abuild(claim, k=3))


# --- many workers: documents in the server, memory in PostgreSQL -------------------------


def test_two_workers_share_documents_and_memory(lc_store, li_index, scifact, pg_url):
    """Two engines, as two worker processes would build them: one over LangChain, one over
    LlamaIndex, the same Chroma server behind both and one PostgreSQL memory."""
    claims, _ = scifact
    claim, cited = claims[1]
    first = ContextEngine.from_retriever(
        LangChainFirstStage(lc_store.as_retriever(search_kwargs={"k": 12})),
        memory_url=pg_url,
        token_budget=500,
    )
    second = ContextEngine.from_retriever(
        LlamaIndexFirstStage(li_index.as_retriever(similarity_top_k=12)),
        memory_url=pg_url,
        token_budget=500,
    )
    first.remember("user", "I study prion disease screening in the UK.", session_id="alice")
    first.remember("assistant", "Noted: prion screening, UK population.", session_id="alice")

    packet = second.build(claim, session_id="alice", k=3)
    _assert_within_budget(second, packet)
    assert "prion screening" in packet.text  # written by the other worker
    assert cited in {doc.id for doc in packet.documents}
    assert cited in {doc.id for doc in first.build(claim, session_id="alice", k=3).documents}
    assert not second.build(claim, session_id="bob", k=3).memory_turns
