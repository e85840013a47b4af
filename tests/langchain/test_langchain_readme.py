"""The LangChain guide's examples (docs/guides/langchain.md) run as-is, and the package boundaries hold: the core never
imports LangChain, the LangChain adapters never import LlamaIndex."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = REPO_ROOT / "docs" / "guides" / "langchain.md"


def python_blocks(markdown: str) -> list[str]:
    """The page's ```python blocks."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


README_BLOCKS = python_blocks(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_has_its_examples():
    assert len(README_BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(README_BLOCKS)))
def test_readme_langchain_example_runs(index, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy APIs, on purpose
        exec(compile(README_BLOCKS[index], f"docs/guides/langchain.md[{index}]", "exec"), {})  # noqa: S102 - the README's own code, run as written
    assert capsys.readouterr().out.strip()  # every example shows its result


def _run_blocked(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where the ``blocked`` top-level packages cannot
    be imported (as if they were not installed)."""
    blocker = textwrap.dedent(
        f"""
        import sys
        from importlib.abc import MetaPathFinder

        class _Blocker(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, _Blocker())
        """
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )


LANGCHAIN = ("langchain", "langchain_core", "langchain_classic", "langgraph", "langchain_ctxengine")


def test_core_imports_and_builds_without_langchain():
    result = _run_blocked(
        LANGCHAIN,
        """
        import importlib, pkgutil
        import ctxengine
        for module in pkgutil.walk_packages(ctxengine.__path__, "ctxengine."):
            if not module.name.endswith("__main__"):  # runs the CLI
                importlib.import_module(module.name)
        from ctxengine import ContextEngine
        from ctxengine.demo import KNOWLEDGE_BASE
        engine = ContextEngine.from_documents(
            KNOWLEDGE_BASE, retrieval="keyword", rerank="tags", memory_options={"relevance": "lexical"}
        )
        engine.remember("user", "What is BM25?")
        packet = engine.build("How does BM25 rank documents?")
        assert packet.documents and packet.tokens_used <= 800
        assert not any(name.startswith(("langchain", "langgraph")) for name in sys.modules)
        print("ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_langchain_adapters_import_nothing_from_llamaindex():
    result = _run_blocked(
        ("llama_index", "llamaindex_ctxengine"),
        """
        import langchain_ctxengine
        from langchain_ctxengine import ContextEngineMemory, ContextEngineMiddleware
        print("ok")
        """,
    )
    assert result.returncode == 0, result.stderr


def test_optional_langchain_packages_load_lazily():
    result = _run_blocked(
        ("langchain", "langchain_classic"),
        """
        from ctxengine.errors import DependencyMissingError
        from langchain_ctxengine import ContextEngineChatHistory, ContextEngineRetriever
        for name in ("ContextEngineMemory", "ContextEngineMiddleware"):
            try:
                getattr(__import__("langchain_ctxengine"), name)
            except DependencyMissingError as exc:
                assert "ctxengine[langchain]" in str(exc)
            else:
                raise AssertionError(name + " imported without its dependency")
        print("ok")
        """,
    )
    assert result.returncode == 0, result.stderr
