"""The framework adapters' options: pydantic ignores a keyword a model does not have, so a
misspelt option (``token_buget=300``) was dropped without a word and the adapter ran with
the default. Each pydantic-based adapter now refuses it with a ``ConfigurationError``
naming the adapter, the option and what it takes (``ctxengine.integration.check_adapter_options``)."""

from __future__ import annotations

import contextlib

import pytest

from ctxengine.embeddings import HashingEmbedder
from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")


def _engine() -> ContextEngine:
    return ContextEngine.from_documents(
        [{"id": "a", "text": "context engineering"}], embedder=HashingEmbedder(32)
    )


def _adapters():
    import langchain_ctxengine as lc
    import llamaindex_ctxengine as li

    out = [lc.ContextEngineRetriever, lc.ContextEngineCompressor]
    out += [li.ContextEnginePostprocessor, li.ContextEngineChatMemory, li.DecayMemoryBlock]
    from ctxengine.errors import DependencyMissingError

    with contextlib.suppress(DependencyMissingError):  # needs langchain-classic
        out.append(lc.ContextEngineMemory)
    return out


@pytest.mark.parametrize("option", ["token_buget", "sesion_id", "topn"])
def test_a_misspelt_adapter_option_is_a_configuration_error(option):
    for adapter in _adapters():
        with pytest.raises(ConfigurationError, match=f"{adapter.__name__}.*'{option}'"):
            adapter(engine=_engine(), **{option: 5})


def test_a_misspelt_embedding_option_is_a_configuration_error():
    from llamaindex_ctxengine import ContextEngineEmbedding

    with pytest.raises(ConfigurationError, match="'embed_batch'"):
        ContextEngineEmbedding("hashing", embed_batch=8)
    assert ContextEngineEmbedding("hashing", embed_batch_size=8).embed_batch_size == 8


def test_the_frameworks_own_options_still_work():
    import langchain_ctxengine as lc
    import llamaindex_ctxengine as li

    engine = _engine()
    retriever = lc.ContextEngineRetriever(engine=engine, tags=["t"], metadata={"m": 1}, k=2)
    assert retriever.tags == ["t"] and len(retriever.invoke("context")) == 1
    block = li.DecayMemoryBlock(engine=engine, priority=1)
    assert block.priority == 1
    post = li.ContextEnginePostprocessor(engine=engine)
    assert type(post).from_dict(post.to_dict(), engine=engine).token_budget == 800
