"""Shared fixtures. Embeddings of real data are cached under ``.cache/embeddings`` (ONNX
exports under ``.cache/onnx``) so a second run (and CI after the first) does not re-embed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CTXENGINE_EMBED_CACHE", str(REPO_ROOT / ".cache" / "embeddings"))
# ONNX graphs exported by the encoder-backend tests: beside the embeddings, not in the home.
os.environ.setdefault("CTXENGINE_ONNX_CACHE", str(REPO_ROOT / ".cache" / "onnx"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks.data import data_root
from ctxengine import ContextEngine
from ctxengine.clock import ManualClock
from ctxengine.demo import KNOWLEDGE_BASE

POSTGRES_ENV = "CTXENGINE_TEST_POSTGRES_URL"
CHROMA_ENV = "CTXENGINE_TEST_CHROMA_URL"


@pytest.fixture(scope="session")
def token_counter():
    from ctxengine.tokens import TiktokenCounter

    return TiktokenCounter("cl100k_base")


@pytest.fixture(scope="session")
def embedder():
    """The bundled MiniLM behind the on-disk cache (the process-wide default)."""
    from ctxengine.embeddings import default_embedder

    return default_embedder()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("../shared/data is absent (set CTXENGINE_DATA)")
    return root


@pytest.fixture(scope="session")
def locomo(shared_data):
    from benchmarks.data import load_locomo

    return load_locomo(shared_data / "locomo" / "locomo_dev5.json")


# --- memory stores ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = f'{POSTGRES_ENV} is not set; start a server with: export {POSTGRES_ENV}="$(.ci/postgres.sh)"'
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must not skip the PostgreSQL store)")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def chroma_url() -> str:
    url = os.environ.get(CHROMA_ENV)
    if not url:
        message = (
            f'{CHROMA_ENV} is not set; start a server with: export {CHROMA_ENV}="$(.ci/chroma.sh)"'
        )
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must not skip the Chroma first stage)")
        pytest.skip(message)
    return url


@pytest.fixture
def pg_url(postgres_url):
    """A URL whose tables live in a fresh schema, dropped afterwards."""
    import psycopg
    from psycopg import sql

    schema = f"ctx_test_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def memory_url(request, tmp_path) -> str | None:
    """An engine's ``memory_url`` for each store: in-process (None), SQLite, PostgreSQL."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def engines():
    """Engines over the demo knowledge base by budget, built once per budget (the agent
    suites)."""
    cache: dict[int, ContextEngine] = {}

    def get(budget: int) -> ContextEngine:
        if budget not in cache:
            cache[budget] = ContextEngine.from_documents(
                KNOWLEDGE_BASE,
                retrieval="keyword",
                token_budget=budget,
                compression="sentence",
                memory_options={"relevance": "lexical"},
            )
        return cache[budget]

    return get
