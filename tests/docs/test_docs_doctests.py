"""The ``Examples`` sections of the public classes' docstrings run as doctests, and the
classes a user meets first each have one (they are what the API reference shows)."""

from __future__ import annotations

import doctest
import importlib

import pytest

# module -> the public classes in it that must carry an Examples section
REQUIRED = {
    "ctxengine.engine.context": ["ContextEngine"],
    "ctxengine.retrieval.hybrid": ["HybridRetriever"],
    "ctxengine.retrieval.ann": ["AnnIndex"],
    "ctxengine.memory.decay": ["DecayMemory"],
    "ctxengine.compress.strategies": ["ExtractiveCompressor"],
    "ctxengine.embeddings.base": ["HashingEmbedder"],
    "ctxengine.embeddings.sentence": ["SentenceTransformerEmbedder"],
    "ctxengine.embeddings.resolve": ["LazyEmbedder"],
    "ctxengine.tokens": ["TiktokenCounter"],
    "ctxengine.chunking": ["MarkdownSplitter"],
}
# every core module with examples runs, not only the ones above
MODULES = sorted(
    {*REQUIRED, "ctxengine.types", "ctxengine.packet", "ctxengine.budget", "ctxengine.rerank.tags"}
)


def _tests(name: str) -> list[doctest.DocTest]:
    try:
        module = importlib.import_module(name)
    except ImportError:  # a module the lead's restructuring moved away
        return []
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _tests(name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest example(s) failed in {name}"


@pytest.mark.parametrize(("name", "classes"), REQUIRED.items())
def test_public_classes_have_examples(name: str, classes: list[str]):
    documented = {test.name.rsplit(".", 1)[-1] for test in _tests(name)}
    assert set(classes) <= documented, f"{name}: no Examples section in {set(classes) - documented}"
