"""ContextEngineRetriever over an engine's documents and around a LlamaIndex retriever,
alone and inside a RetrieverQueryEngine (offline)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode
from llamaindex_support import CapturingLLM, knowledge_base, offline_settings  # noqa: F401

from ctxengine import ContextEngine
from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.errors import ConfigurationError, InvalidInputError, InvalidTypeError
from ctxengine.rerank import get_reranker
from llamaindex_ctxengine import (
    ContextEngineEmbedding,
    ContextEnginePostprocessor,
    ContextEngineRetriever,
    LlamaIndexFirstStage,
)
from llamaindex_ctxengine._convert import node_to_scored


@pytest.fixture(scope="module")
def kb_engine(embedder) -> ContextEngine:
    return ContextEngine.from_documents(KNOWLEDGE_BASE, embedder=embedder)


@pytest.fixture(scope="module")
def index(embedder) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        knowledge_base(), embed_model=ContextEngineEmbedding(embedder)
    )


def test_returns_the_packet_documents_as_nodes(kb_engine):
    retriever = ContextEngineRetriever(engine=kb_engine, k=2)
    query = "How does exponential decay keep agent memory small?"
    nodes = retriever.retrieve(query)
    expected = kb_engine.build(query, k=2).documents

    assert [n.node.node_id for n in nodes] == [d.id for d in expected] and nodes[
        0
    ].node.node_id == "mem-001"
    for item, doc in zip(nodes, expected):
        assert item.score == pytest.approx(doc.score) == item.node.metadata["ctxengine_score"]
        assert item.node.text == doc.text  # what compression kept
        assert item.node.metadata["ctxengine_compressed"] == doc.compressed
        assert item.node.metadata["tags"] == list(doc.document.tags)
        assert set(item.node.metadata["ctxengine_stage_scores"]) == set(doc.stage_scores)


async def test_async_retrieve_matches(kb_engine):
    retriever = ContextEngineRetriever(engine=kb_engine, k=3)
    query = "TF-IDF versus embeddings"
    assert [n.node.node_id for n in await retriever.aretrieve(query)] == [
        n.node.node_id for n in retriever.retrieve(query)
    ]


def test_wraps_a_llamaindex_retriever_as_first_stage(index):
    base = index.as_retriever(similarity_top_k=5)
    query = "Which retrieval handles rare exact terms like product codes?"
    retriever = ContextEngineRetriever(
        base_retriever=base, k=3, rerank=["tags"], candidates=5, token_budget=300
    )
    nodes = retriever.retrieve(query)
    base_nodes = {n.node.node_id: n for n in base.retrieve(query)}

    assert isinstance(retriever.engine.retriever, LlamaIndexFirstStage)
    assert retriever.engine.budget.total == 300
    assert sum(n.node.metadata["ctxengine_tokens"] for n in nodes) <= 300
    for item in nodes:
        original = base_nodes[item.node.node_id]
        assert item.node is not original.node
        assert item.node.ref_doc_id == original.node.ref_doc_id  # the copy keeps its source link
        assert item.node.metadata["ctxengine_stage_scores"]["input"] == pytest.approx(
            original.score
        )
        assert set(item.node.text.split()) <= set(original.node.text.split())
    # The order and scores are the engine's re-ranking of what the base retriever found.
    reranked = get_reranker(["tags"]).rerank(
        query, [node_to_scored(n) for n in base.retrieve(query)], k=3
    )
    assert [(n.node.node_id, n.score) for n in nodes] == [(d.id, d.score) for d in reranked]


def test_inside_a_query_engine_with_the_postprocessor(kb_engine):
    llm = CapturingLLM()
    query_engine = RetrieverQueryEngine.from_args(
        ContextEngineRetriever(engine=kb_engine, k=4),
        node_postprocessors=[ContextEnginePostprocessor(token_budget=200, engine=kb_engine)],
        llm=llm,
    )
    response = query_engine.query("How do embeddings and TF-IDF compare?")
    sources = response.source_nodes
    assert {"emb-003", "tfidf-004"} <= {n.node.node_id for n in sources}
    assert sum(kb_engine.token_counter.count(n.node.text) for n in sources) <= 200
    assert all(
        n.node.get_content(metadata_mode=MetadataMode.LLM) in llm.prompts[0] for n in sources
    )


def test_first_stage_alone_and_bad_input(index, kb_engine):
    base = index.as_retriever(similarity_top_k=4)
    stage = LlamaIndexFirstStage(base, keep_nodes=2)
    docs = stage.retrieve("dense vectors and cosine similarity", k=3)
    found = base.retrieve("dense vectors and cosine similarity")[:3]
    assert [(d.id, d.score, d.text) for d in docs] == [
        (n.node.node_id, n.score, n.node.text) for n in found
    ]
    assert len(stage.source_nodes([d.id for d in docs])) == 2  # only the last two are kept
    engine = ContextEngine.from_retriever(stage)  # the first stage drives a whole packet
    assert engine.build("How are dense vectors compared?").documents

    with pytest.raises(ConfigurationError):
        ContextEngineRetriever()
    with pytest.raises(ConfigurationError):
        ContextEngineRetriever(engine=kb_engine, base_retriever=index.as_retriever())
    with pytest.raises(ConfigurationError):
        ContextEngineRetriever(engine=kb_engine, rerank="none")
    with pytest.raises(ConfigurationError):
        ContextEngineRetriever(base_retriever=index.as_retriever(), no_such_setting=1)
    with pytest.raises(InvalidInputError):
        ContextEngineRetriever(engine=kb_engine, k=0)
    with pytest.raises(InvalidTypeError):
        LlamaIndexFirstStage(object())
    with pytest.raises(InvalidTypeError):
        ContextEngineRetriever(engine=object())


def test_embedding_model_is_the_engine_s(embedder):
    model = ContextEngineEmbedding(embedder)
    texts = [d.text for d in KNOWLEDGE_BASE[:2]]
    assert model.get_text_embedding_batch(texts) == embedder.embed(texts).tolist()
    assert (
        model.get_query_embedding("dense vectors") == embedder.embed(["dense vectors"])[0].tolist()
    )
    assert ContextEngineEmbedding("hashing").embedder.name != embedder.name
    with pytest.raises(InvalidTypeError):
        ContextEngineEmbedding(42)
