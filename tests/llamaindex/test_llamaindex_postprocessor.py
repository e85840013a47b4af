"""ContextEnginePostprocessor on its own and inside LlamaIndex query engines (offline):
what reached the LLM fits the budget, holds the relevant nodes, and not the duplicate."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document as LIDocument
from llama_index.core import VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import (
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    RelatedNodeInfo,
    TextNode,
)
from llamaindex_support import CapturingLLM, knowledge_base, offline_settings  # noqa: F401

from ctxengine import ContextEngine
from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.errors import InvalidInputError, InvalidTypeError
from llamaindex_ctxengine import ContextEngineEmbedding, ContextEnginePostprocessor
from llamaindex_ctxengine._convert import SCORE_KEYS

QUERY = "How do embeddings and TF-IDF compare for memory in agents?"
# A near-copy of the embeddings document, as a second source or an overlapping chunk makes.
NEAR_DUPLICATE = KNOWLEDGE_BASE[2].text.replace("Embeddings map", "Embedding models map")


@pytest.fixture(scope="module")
def postprocessor() -> ContextEnginePostprocessor:
    return ContextEnginePostprocessor(token_budget=300)


def kb_nodes() -> list[NodeWithScore]:
    nodes = [
        NodeWithScore(
            node=TextNode(
                id_=doc.id,
                text=doc.text,
                metadata=dict(doc.metadata),
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"file-{doc.id}")},
            ),
            score=0.8 - 0.1 * i,
        )
        for i, doc in enumerate(KNOWLEDGE_BASE)
    ]
    nodes.insert(3, NodeWithScore(node=TextNode(id_="emb-copy", text=NEAR_DUPLICATE), score=0.55))
    return nodes


def snapshot(nodes: list[NodeWithScore]) -> list[tuple]:
    return [
        (n.node.node_id, n.node.text, dict(n.node.metadata), n.score, id(n.node)) for n in nodes
    ]


def test_returns_new_nodes_within_budget_and_leaves_the_input_alone(postprocessor):
    nodes = kb_nodes()
    before = snapshot(nodes)
    out = postprocessor.postprocess_nodes(nodes, query_str=QUERY)

    assert snapshot(nodes) == before  # LlamaIndex's own optimizer edits node text in place
    assert out and not {id(n.node) for n in out} & {id(n.node) for n in nodes}
    counter = postprocessor.engine.token_counter
    assert sum(counter.count(n.node.text) for n in out) <= 300
    assert any(n.node.metadata["ctxengine_compressed"] for n in out)  # 5 documents of ~150 tokens
    by_id = {n.node.node_id: n.node for n in nodes}
    for item in out:
        original = by_id[item.node.node_id]
        meta = item.node.metadata
        assert item.score == meta["ctxengine_score"]
        assert meta["ctxengine_tokens"] == counter.count(item.node.text)
        assert set(meta["ctxengine_stage_scores"]) >= {
            "input",
            "dedup",
        }  # the default chain: tags + dedup
        # What compression kept is taken from the node, in the node's own order.
        assert all(sentence.strip(" .") in original.text for sentence in item.node.text.split(". "))
        assert item.node.relationships == original.relationships
        assert {k: v for k, v in meta.items() if k not in SCORE_KEYS} == original.metadata
        # The explanation stays out of the prompt.
        assert "ctxengine_score" not in item.node.get_content(metadata_mode=MetadataMode.LLM)


def test_near_duplicate_node_is_dropped(postprocessor):
    ids = [n.node.node_id for n in postprocessor.postprocess_nodes(kb_nodes(), query_str=QUERY)]
    assert len({"emb-003", "emb-copy"} & set(ids)) == 1
    assert len(ids) == len(set(ids))


def test_engine_settings_are_the_engine_s():
    engine = ContextEngine.from_documents([], compression="truncate", rerank="none")
    pp = ContextEnginePostprocessor(token_budget=120, engine=engine)
    assert pp.engine is engine
    out = pp.postprocess_nodes(kb_nodes(), query_str=QUERY)
    # "none" keeps the incoming order; truncation keeps a prefix of the best node.
    assert out[0].node.node_id == "mem-001"
    assert KNOWLEDGE_BASE[0].text.startswith(out[0].node.text.rstrip(". …"))


def test_edge_cases_and_bad_input(postprocessor):
    assert postprocessor.postprocess_nodes([], query_str=QUERY) == []
    assert (
        len(
            ContextEnginePostprocessor(
                token_budget=2000, top_n=2, engine=postprocessor.engine
            ).postprocess_nodes(kb_nodes(), query_str=QUERY)
        )
        == 2
    )
    # Retrievers without scores (summary, keyword-table) give None: ranked as equals.
    unscored = [NodeWithScore(node=n.node) for n in kb_nodes()]
    out = postprocessor.postprocess_nodes(unscored, query_str=QUERY)
    assert out and all("input" not in n.node.metadata["ctxengine_stage_scores"] for n in out)
    with pytest.raises(InvalidInputError):
        postprocessor.postprocess_nodes(kb_nodes())  # no query
    with pytest.raises(InvalidInputError):
        ContextEnginePostprocessor(token_budget=0)
    with pytest.raises(InvalidTypeError):
        ContextEnginePostprocessor(token_budget="800")
    with pytest.raises(InvalidTypeError):
        ContextEnginePostprocessor(engine=object())


def context_of(prompt: str, nodes: list[NodeWithScore]) -> None:
    """Every returned node reached the prompt as LlamaIndex renders it."""
    for item in nodes:
        assert item.node.get_content(metadata_mode=MetadataMode.LLM) in prompt


@pytest.fixture(scope="module")
def index(embedder) -> VectorStoreIndex:
    documents = [*knowledge_base(), LIDocument(text=NEAR_DUPLICATE, id_="emb-copy")]
    return VectorStoreIndex.from_documents(documents, embed_model=ContextEngineEmbedding(embedder))


def test_retriever_query_engine_sends_the_fitted_nodes_to_the_llm(index, postprocessor):
    llm = CapturingLLM()
    engine = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=6), node_postprocessors=[postprocessor], llm=llm
    )
    response = engine.query(QUERY)

    assert len(llm.prompts) == 1
    prompt, sources = llm.prompts[0], response.source_nodes
    context_of(prompt, sources)
    counter = postprocessor.engine.token_counter
    assert sum(counter.count(n.node.text) for n in sources) <= 300
    source_files = {n.node.ref_doc_id for n in sources}  # relationships survived
    assert {"emb-003", "tfidf-004"} <= source_files
    assert len({"emb-003", "emb-copy"} & source_files) == 1
    assert "ctxengine_score" not in prompt
    # Without the postprocessor the same engine sends all six chunks, whole.
    plain_llm = CapturingLLM()
    RetrieverQueryEngine.from_args(index.as_retriever(similarity_top_k=6), llm=plain_llm).query(
        QUERY
    )
    assert counter.count(plain_llm.prompts[0]) > counter.count(prompt) + 300


async def test_as_query_engine_async_path(index, postprocessor):
    llm = CapturingLLM()
    query_engine = index.as_query_engine(
        similarity_top_k=6, node_postprocessors=[postprocessor], llm=llm
    )
    response = await query_engine.aquery(QUERY)
    context_of(llm.prompts[0], response.source_nodes)
    assert (
        sum(postprocessor.engine.token_counter.count(n.node.text) for n in response.source_nodes)
        <= 300
    )
    assert {n.node.ref_doc_id for n in response.source_nodes} >= {"emb-003", "tfidf-004"}
