"""MetadataFilters through the LlamaIndex adapters: translated to ctxengine's filters for the
engine's own index, added to a wrapped VectorIndexRetriever's own, applied by the
postprocessor; inside real query engines with a MockLLM."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document as LIDocument
from llama_index.core import VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llamaindex_support import CapturingLLM, offline_settings  # noqa: F401

from ctxengine import ContextEngine
from ctxengine.errors import ConfigurationError
from ctxengine.retrieval.filters import And, Eq, In, Not, Or, Range, parse_filter
from llamaindex_ctxengine import (
    ContextEngineEmbedding,
    ContextEnginePostprocessor,
    ContextEngineRetriever,
)
from llamaindex_ctxengine._convert import to_core_filter, to_metadata_filters

REPORTS = [
    (f"r{i}", f"Solar output report {i}: panels on site {i} produced power in spring.", year, lang)
    for i, (year, lang) in enumerate(
        [(2018, "en"), (2019, "fr"), (2021, "en"), (2022, "fr"), (2023, "de"), (2024, "en")]
    )
]
RECENT_EN_FR = MetadataFilters(
    filters=[
        MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
        MetadataFilter(key="lang", value=["en", "fr"], operator=FilterOperator.IN),
    ]
)


def documents() -> list[LIDocument]:
    return [
        LIDocument(text=t, id_=i, metadata={"year": y, "lang": lang}) for i, t, y, lang in REPORTS
    ]


@pytest.fixture(scope="module")
def own_engine() -> ContextEngine:
    docs = [
        {"id": i, "text": t, "metadata": {"year": y, "lang": lang}} for i, t, y, lang in REPORTS
    ]
    return ContextEngine.from_documents(
        docs, retrieval="keyword", rerank="none", token_budget=1500, k=6
    )


@pytest.fixture(scope="module")
def index(embedder) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        documents(), embed_model=ContextEngineEmbedding(embedder)
    )


def test_metadata_filters_translate_both_ways():
    assert to_core_filter(RECENT_EN_FR) == And((Range("year", gte=2020), In("lang", ("en", "fr"))))
    nested = MetadataFilters(
        filters=[
            MetadataFilter(key="lang", value="de", operator=FilterOperator.NE),
            MetadataFilters(
                filters=[MetadataFilter(key="year", value=2019, operator=FilterOperator.LT)],
                condition=FilterCondition.NOT,
            ),
        ],
        condition=FilterCondition.OR,
    )
    assert to_core_filter(nested) == Or((Not(Eq("lang", "de")), Not(Range("year", lt=2019))))
    for spec in (
        to_core_filter(RECENT_EN_FR),
        to_core_filter(nested),
        parse_filter({"lang": {"$nin": ["en"]}}),
    ):
        assert to_core_filter(to_metadata_filters(spec)) == spec
    with pytest.raises(ConfigurationError):
        to_core_filter(
            MetadataFilters(
                filters=[MetadataFilter(key="t", value="x", operator=FilterOperator.TEXT_MATCH)]
            )
        )


def test_own_index_filtered_in_a_query_engine(own_engine):
    llm = CapturingLLM()
    retriever = ContextEngineRetriever(engine=own_engine, k=6, filters=RECENT_EN_FR)
    assert {n.node.node_id for n in retriever.retrieve("solar power report")} == {"r2", "r3", "r5"}
    RetrieverQueryEngine.from_args(retriever, llm=llm).query("Which report covers spring output?")
    prompt = llm.prompts[-1]
    assert "report 2:" in prompt and "report 5:" in prompt
    assert "report 4:" not in prompt and "report 0:" not in prompt
    # a Chroma-style dict or a ctxengine filter works too
    by_dict = ContextEngineRetriever(engine=own_engine, k=6, filters={"lang": "de"})
    assert [n.node.node_id for n in by_dict.retrieve("solar")] == ["r4"]


def test_filters_added_to_a_wrapped_vector_index_retriever(index):
    base = index.as_retriever(similarity_top_k=6)
    retriever = ContextEngineRetriever(
        base_retriever=base, k=6, rerank="none", filters=RECENT_EN_FR
    )
    assert {n.node.ref_doc_id for n in retriever.retrieve("solar power report")} == {
        "r2",
        "r3",
        "r5",
    }
    assert base._filters is None  # the caller's retriever is not changed
    # its own filters and ours together
    own = index.as_retriever(
        similarity_top_k=6,
        filters=MetadataFilters(filters=[MetadataFilter(key="lang", value="en")]),
    )
    both = ContextEngineRetriever(
        base_retriever=own, k=6, rerank="none", filters={"year": {"$gt": 2020}}
    )
    assert {n.node.ref_doc_id for n in both.retrieve("solar power report")} == {"r2", "r5"}


async def test_filters_on_the_async_path(index, own_engine):
    retriever = ContextEngineRetriever(
        base_retriever=index.as_retriever(similarity_top_k=6), k=6, filters=RECENT_EN_FR
    )
    assert {n.node.ref_doc_id for n in await retriever.aretrieve("solar power report")} <= {
        "r2",
        "r3",
        "r5",
    }
    own = ContextEngineRetriever(engine=own_engine, k=6, filters=RECENT_EN_FR)
    assert {n.node.node_id for n in await own.aretrieve("solar power report")} == {"r2", "r3", "r5"}


def test_postprocessor_drops_nodes_that_fail_its_filters(index):
    llm = CapturingLLM()
    post = ContextEnginePostprocessor(token_budget=400, filters=RECENT_EN_FR)
    engine = index.as_query_engine(similarity_top_k=6, node_postprocessors=[post], llm=llm)
    response = engine.query("Which report covers spring output?")
    kept = {n.node.ref_doc_id for n in response.source_nodes}
    assert kept and kept <= {"r2", "r3", "r5"}
    assert "report 0:" not in llm.prompts[-1] and "report 4:" not in llm.prompts[-1]


def test_a_retriever_without_filters_says_so(own_engine):
    from llama_index.core.retrievers import BaseRetriever

    class Plain(BaseRetriever):
        def _retrieve(self, query_bundle):
            return []

    retriever = ContextEngineRetriever(base_retriever=Plain(), filters={"lang": "en"})
    with pytest.raises(ConfigurationError):
        retriever.retrieve("solar")
