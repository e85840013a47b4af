"""ContextEngineCompressor inside LangChain's ContextualCompressionRetriever and
DocumentCompressorPipeline."""

from __future__ import annotations

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
from langchain_core.documents import BaseDocumentTransformer
from langchain_core.documents import Document as LCDocument
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_support import (
    RecordingListChatModel,
    langchain_documents,
    make_engine,
    raises_in_validation,
)

from ctxengine.errors import InvalidInputError, InvalidTypeError
from langchain_ctxengine import ContextEngineCompressor, ContextEngineEmbeddings

QUESTION = "How do embeddings compare to TF-IDF for retrieval?"


def _rendered_tokens(engine, docs):
    """Tokens of the documents' texts (LangChain formats documents itself, so the
    compressor budgets the texts, not ctxengine's headers)."""
    return sum(engine.token_counter.count(d.page_content) for d in docs)


@pytest.fixture(scope="module")
def vector_retriever(embedder):
    store = InMemoryVectorStore(ContextEngineEmbeddings(embedder))
    store.add_documents(langchain_documents())
    return store.as_retriever(search_kwargs={"k": 5})


def test_contextual_compression_retriever_fits_the_budget(vector_retriever):
    compressor = ContextEngineCompressor(token_budget=250)
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=vector_retriever
    )
    raw = vector_retriever.invoke(QUESTION)
    docs = retriever.invoke(QUESTION)

    assert _rendered_tokens(compressor.engine, raw) > 250  # the raw hits do not fit
    assert docs and _rendered_tokens(compressor.engine, docs) <= 250
    assert {"emb-003", "tfidf-004"} <= {doc.id for doc in docs}
    assert any(doc.metadata["ctxengine_compressed"] for doc in docs)
    for doc in docs:  # compression keeps sentences of the original, in order
        original = next(d for d in raw if d.id == doc.id).page_content
        assert all(part in original for part in doc.page_content.split(". ") if part)


def test_in_a_rag_chain_the_model_sees_the_compressed_documents(vector_retriever):
    retriever = ContextualCompressionRetriever(
        base_compressor=ContextEngineCompressor(token_budget=200), base_retriever=vector_retriever
    )
    model = RecordingListChatModel(responses=["ok"])
    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n\nQuestion: {question}")])
    chain = (
        {
            "context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | model
    )
    chain.invoke(QUESTION)
    seen = model.received[0][0].text
    assert "TF-IDF" in seen and "Embeddings" in seen
    assert model.received[0][0].text.count("\n") < 10
    assert len(seen) < sum(len(d.page_content) for d in vector_retriever.invoke(QUESTION))


class _Lowercase(BaseDocumentTransformer):
    """Another stage of the pipeline (LangChain's own transformers need models)."""

    def transform_documents(self, documents, **kwargs):
        return [
            LCDocument(page_content=d.page_content.lower(), id=d.id, metadata=d.metadata)
            for d in documents
        ]


def test_document_compressor_pipeline(vector_retriever):
    pipeline = DocumentCompressorPipeline(
        transformers=[_Lowercase(), ContextEngineCompressor(token_budget=150, top_n=2)]
    )
    docs = pipeline.compress_documents(vector_retriever.invoke(QUESTION), QUESTION)
    assert 1 <= len(docs) <= 2
    assert all(doc.page_content == doc.page_content.lower() for doc in docs)
    assert _rendered_tokens(make_engine(), docs) <= 150


async def test_async_compression_with_the_engine_budget(vector_retriever):
    engine = make_engine(token_budget=500)
    compressor = ContextEngineCompressor(engine=engine, token_budget=None)
    found = vector_retriever.invoke(QUESTION)
    docs = await compressor.acompress_documents(found, QUESTION)
    room = engine.budget.total - engine.token_counter.count(engine.system_prompt)
    assert docs and _rendered_tokens(engine, docs) <= room
    assert _rendered_tokens(engine, found) > room
    assert {docs[0].id, docs[1].id} == {found[0].id, found[1].id} == {"emb-003", "tfidf-004"}


def test_near_duplicates_are_removed():
    docs = langchain_documents()
    copy = LCDocument(page_content=docs[3].page_content, id="tfidf-copy", metadata=docs[3].metadata)
    kept = ContextEngineCompressor(token_budget=800).compress_documents([*docs, copy], QUESTION)
    assert not {"tfidf-004", "tfidf-copy"} <= {doc.id for doc in kept}


def test_bad_input():
    with raises_in_validation(InvalidInputError):
        ContextEngineCompressor(token_budget=0)
    with pytest.raises(InvalidTypeError):
        ContextEngineCompressor(token_budget="800")
    with raises_in_validation(InvalidTypeError):
        ContextEngineCompressor(engine=object())
    with pytest.raises(InvalidInputError):
        ContextEngineCompressor().compress_documents(langchain_documents(), " ")
    assert ContextEngineCompressor().compress_documents([], QUESTION) == []
