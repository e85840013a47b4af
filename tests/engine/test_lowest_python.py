"""What must hold on the lowest Python the package claims (run there by
``.ci/lowest_python.sh``, and here with the rest): the stores open, write and read back,
and an engine without the embedding model builds a packet within its budget."""

from __future__ import annotations

import pytest

from ctxengine import ContextEngine
from ctxengine.memory import store_from_url

DOCS = [
    {
        "id": "bm25",
        "text": "BM25 ranks documents by term frequency and inverse document frequency.",
    },
    {"id": "decay", "text": "Memory decay lowers the weight of old conversation turns over time."},
]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    return request.getfixturevalue("pg_url")


def test_a_store_keeps_what_it_is_given(store_url):
    engine = ContextEngine.from_documents(
        DOCS,
        retrieval="keyword",
        rerank="tags",
        token_budget=300,
        memory_url=store_url,
        memory_options={"relevance": "lexical"},
    )
    engine.remember("user", "My favourite ranking function is BM25.", session_id="ana")
    engine.remember("assistant", "Noted: BM25 it is.", session_id="ana")
    packet = engine.build("How does BM25 rank documents?", session_id="ana")
    assert packet.tokens_used <= 300
    assert packet.documents[0].id == "bm25"
    assert [t.content for t in packet.memory_turns] == [
        "My favourite ranking function is BM25.",
        "Noted: BM25 it is.",
    ]
    if store_url is not None:  # a new connection reads what the first one stored
        reopened = store_from_url(store_url)
        assert [t.content for t in reopened.turns("ana")] == [
            t.content for t in packet.memory_turns
        ]
        reopened.close()
        engine.memory.store.close()
