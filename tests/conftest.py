"""Shared fixtures. Embeddings of real data are cached under ``.cache/embeddings`` so a
second run (and CI after the first) does not re-embed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CTXENGINE_EMBED_CACHE", str(REPO_ROOT / ".cache" / "embeddings"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks.data import data_root  # noqa: E402
from ctxengine.clock import ManualClock  # noqa: E402


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
