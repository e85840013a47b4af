"""The LlamaIndex guide (docs/guides/llamaindex.md): every ```python block runs as-is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

README = Path(__file__).resolve().parents[2] / "docs" / "guides" / "llamaindex.md"
ADAPTERS = (
    "ContextEnginePostprocessor",
    "ContextEngineChatMemory",
    "DecayMemoryBlock",
    "ContextEngineRetriever",
)


def section(text: str) -> str | None:
    """The guide's text (the whole page is the section)."""
    return text


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


SECTION = section(README.read_text(encoding="utf-8")) if README.exists() else None
BLOCKS = python_blocks(SECTION) if SECTION is not None else []
needs_section = pytest.mark.skipif(SECTION is None, reason="no LlamaIndex guide")


@needs_section
def test_section_shows_every_adapter():
    code = "\n".join(BLOCKS)
    assert all(name in code for name in ADAPTERS)


@needs_section
@pytest.mark.parametrize(
    "index", range(len(BLOCKS)) if BLOCKS else [pytest.param(0, marks=pytest.mark.skip)]
)
def test_example_runs(index, tmp_path, monkeypatch, capsys):
    # A fresh namespace per block: each example must run on its own, as pasted.
    monkeypatch.chdir(tmp_path)
    exec(  # noqa: S102 - the guide's own code, run as written
        compile(BLOCKS[index], f"docs/guides/llamaindex.md[{index}]", "exec"),
        {"__name__": "__main__"},
    )
    assert capsys.readouterr().out.strip()  # every example shows its result
