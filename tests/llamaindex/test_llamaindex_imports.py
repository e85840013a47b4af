"""The package boundaries: ``ctxengine`` needs no LlamaIndex, the LlamaIndex adapters need no
LangChain. Each check runs in a fresh interpreter with the other framework made unimportable."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "llamaindex_ctxengine"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "IS_TESTING": "1"},
    )


def test_ctxengine_works_without_llama_index():
    result = run(
        """
        import sys
        for name in ("llama_index", "llama_index.core"):
            sys.modules[name] = None  # any import of it now raises ImportError
        import ctxengine
        from ctxengine import ContextEngine
        engine = ContextEngine.from_documents(["Decay keeps memory small."], retrieval="keyword", rerank="tags")
        assert engine.build("What keeps memory small?").documents
        try:
            import llamaindex_ctxengine
        except ctxengine.errors.DependencyMissingError as error:
            assert "ctxengine[llamaindex]" in str(error)
        else:
            raise AssertionError("llamaindex_ctxengine imported without llama_index")
        assert not any(name.startswith("llama_index") and sys.modules[name] for name in sys.modules)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_adapters_run_without_langchain():
    result = run(
        """
        import sys
        for name in ("langchain", "langchain_core", "langchain_community", "langchain_classic"):
            sys.modules[name] = None
        from llama_index.core.llms import ChatMessage
        from llama_index.core.schema import NodeWithScore, TextNode
        from ctxengine import ContextEngine
        from llamaindex_ctxengine import ContextEngineChatMemory, ContextEnginePostprocessor
        engine = ContextEngine.from_documents(
            [], retrieval="keyword", rerank="tags", memory_options={"relevance": "lexical"})
        nodes = [NodeWithScore(node=TextNode(text="Decay keeps agent memory small."), score=1.0)]
        assert ContextEnginePostprocessor(engine=engine).postprocess_nodes(nodes, query_str="memory")
        memory = ContextEngineChatMemory.from_defaults(engine=engine, session_id="s")
        memory.put(ChatMessage(role="user", content="hello"))
        assert memory.get()[-1].content == "hello"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize("path", sorted(ADAPTER.glob("*.py")), ids=lambda p: p.name)
def test_no_module_imports_langchain(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0].startswith("langchain")]
