"""The scaling guide's snippets run as written, in order, against the real PostgreSQL and
Chroma servers (``.ci/postgres.sh``, ``.ci/chroma.sh``)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("llama_index.vector_stores.chroma")

from llamaindex_support import offline_settings  # noqa: F401 - no hosted model defaults

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "scaling.md"
COLLECTIONS = ("handbook", "handbook_li")

pytestmark = pytest.mark.chroma
NO_TELEMETRY = chromadb.config.Settings(anonymized_telemetry=False)  # nothing leaves the machine


def _drop(client) -> None:
    existing = {getattr(c, "name", c) for c in client.list_collections()}
    for name in COLLECTIONS:
        if name in existing:
            client.delete_collection(name)


def test_scaling_guide_snippets_run(chroma_url, pg_url, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 5
    monkeypatch.setenv("CTXENGINE_POSTGRES_URL", pg_url)
    monkeypatch.setenv("CTXENGINE_CHROMA_URL", chroma_url)
    parsed = urlparse(chroma_url)
    client = chromadb.HttpClient(host=parsed.hostname, port=parsed.port, settings=NO_TELEMETRY)
    _drop(client)  # a run interrupted before its cleanup
    namespace: dict = {"__name__": "scaling_guide"}
    try:
        for number, block in enumerate(blocks):
            exec(compile(block, f"{GUIDE.name}[python block {number}]", "exec"), namespace)  # noqa: S102
    finally:
        _drop(client)
    assert namespace["packet"].tokens_used <= 800
