"""The documentation's code runs, and its configuration reference is complete.

A page opts in to execution with the line ``<!-- docs-test: run -->``: its ```python blocks
then run in order in one namespace (a page reads as one session), from a temporary working
directory. Blocks fenced as ```py are shown, not run (they need a network service).
"""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
MARKER = "<!-- docs-test: run -->"
PAGES = sorted(p for p in DOCS.rglob("*.md") if MARKER in p.read_text(encoding="utf-8"))


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def test_pages_opt_in():
    assert {p.name for p in PAGES} >= {"getting-started.md", "chunking.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_runs(page: Path, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    assert blocks, f"{page} opts in but has no python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for index, code in enumerate(blocks):
            exec(compile(code, f"{page.name}[{index}]", "exec"), namespace)  # noqa: S102 - the page's own code, run as written
    assert capsys.readouterr().out.strip()


def _parameters(obj) -> set[str]:
    return {
        name
        for name, p in inspect.signature(obj).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def test_configuration_reference_lists_every_option():
    from ctxengine import ContextEngine, TokenBudget
    from ctxengine.compress import ExtractiveCompressor, SemanticCompressor, SentenceCompressor
    from ctxengine.embeddings import CachedEmbedder, SentenceTransformerEmbedder
    from ctxengine.learn import (
        EncoderFineTuner,
        OnlineLearner,
        SwitchRule,
        fine_tune_encoder,
        fit_stacked,
    )
    from ctxengine.memory import DecayMemory
    from ctxengine.retrieval import HybridRetriever

    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    listed = {
        name
        for span in re.findall(r"`([^`]+)`", page)
        for name in re.findall(r"[a-z_][a-z_0-9]*", span)
    }
    missing = {}
    for obj in (
        ContextEngine.from_documents,
        ContextEngine.from_retriever,
        ContextEngine.__init__,
        TokenBudget.__init__,
        HybridRetriever.__init__,
        DecayMemory.__init__,
        ExtractiveCompressor.__init__,
        SemanticCompressor.__init__,
        SentenceCompressor.__init__,
        CachedEmbedder.__init__,
        SentenceTransformerEmbedder.__init__,
        EncoderFineTuner.__init__,
        fine_tune_encoder,
        ContextEngine.fit,
        fit_stacked,
        OnlineLearner.__init__,
        SwitchRule.__init__,
    ):
        absent = _parameters(obj) - listed
        if absent:
            missing[obj.__qualname__] = sorted(absent)
    assert not missing, f"options missing from docs/reference/configuration.md: {missing}"


def test_configuration_reference_lists_every_environment_variable():
    root = DOCS.parent
    used = set()
    for path in [
        *root.glob("core/**/*.py"),
        *root.glob("benchmarks/*.py"),
        *root.glob("tests/**/*.py"),
        *root.glob(".ci/*.sh"),
    ]:
        used |= set(re.findall(r"CTXENGINE_[A-Z_]+[A-Z]", path.read_text(encoding="utf-8")))
    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    assert used and not {name for name in used if name not in page}
