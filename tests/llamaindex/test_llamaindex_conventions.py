"""LlamaIndex conventions: the counter from the chat engine's LLM, copies and serialization
of the components, the user's node metadata kept, and one default engine for both frameworks."""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.schema import NodeWithScore, TextNode
from llamaindex_support import CapturingLLM, offline_settings  # noqa: F401

from ctxengine.errors import ConfigurationError
from ctxengine.integration import RESULT_KEYS
from langchain_ctxengine import ContextEngineCompressor
from llamaindex_ctxengine import ContextEngineChatMemory, ContextEnginePostprocessor


class GPT4oLike(CapturingLLM):
    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="gpt-4o-2024-08-06")


def test_chat_engine_memory_counts_with_the_llm_s_tokenizer():
    llm = GPT4oLike()
    memory = ContextEngineChatMemory.from_defaults(llm=llm, token_limit=300)
    assert memory.engine.token_counter.name == "o200k_base"
    SimpleChatEngine.from_defaults(llm=llm, memory=memory).chat("Hello there")
    assert [m.content for m in memory.get_all()] == ["Hello there", "Noted."]
    plain = ContextEngineChatMemory.from_defaults(llm=CapturingLLM())
    assert plain.engine.token_counter.name == "cl100k_base"  # MockLLM: an unknown model


def test_copies_share_the_engine_and_settings_serialize():
    post = ContextEnginePostprocessor(token_budget=300, top_n=2, filters={"lang": "en"})
    clone = copy.deepcopy(post)
    assert clone.engine is post.engine and (clone.token_budget, clone.top_n) == (300, 2)
    # the engine is a live object: loading asks for it rather than running another one
    with pytest.raises(ConfigurationError, match="engine="):
        ContextEnginePostprocessor.from_json(post.to_json())
    loaded = ContextEnginePostprocessor.from_json(post.to_json(), engine=post.engine)
    assert (loaded.token_budget, loaded.top_n, loaded.engine) == (300, 2, post.engine)
    memory = ContextEngineChatMemory(token_limit=200, session_id="s1")
    assert copy.deepcopy(memory).engine is memory.engine
    with pytest.raises(ConfigurationError, match="engine="):
        ContextEngineChatMemory.from_json(memory.to_json())
    again = ContextEngineChatMemory.from_json(memory.to_json(), engine=memory.engine)
    assert (again.token_limit, again.session_id, again.engine) == (200, "s1", memory.engine)


def test_node_metadata_of_the_user_is_kept():
    own = {"id": "user-7", "score": "A+", "tokens": 12345, "compressed": "gzip"}
    nodes = [
        NodeWithScore(
            node=TextNode(
                id_=f"n{i}", text=f"Token budgets keep context small, note {i}.", metadata=own
            ),
            score=1.0,
        )
        for i in range(3)
    ]
    out = ContextEnginePostprocessor(token_budget=200).postprocess_nodes(
        nodes, query_str="token budgets"
    )
    assert out
    for item in out:
        assert {key: item.node.metadata[key] for key in own} == own
        assert set(RESULT_KEYS) <= set(item.node.metadata)
        assert set(RESULT_KEYS) <= set(
            item.node.excluded_llm_metadata_keys
        )  # explanations stay out of prompts


def test_both_frameworks_get_the_same_default_engine():
    langchain = ContextEngineCompressor().engine
    llamaindex = ContextEnginePostprocessor().engine
    assert repr(langchain) == repr(llamaindex)
    assert langchain.system_prompt == llamaindex.system_prompt and langchain.k == llamaindex.k
