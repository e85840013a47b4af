"""Files split into passages by their structure, and compression that keeps code fences
closed."""

from __future__ import annotations

import pytest

from ctxengine import ContextEngine
from ctxengine.chunking import MarkdownSplitter, fence_spans, read_folder
from ctxengine.compress import get_compressor
from ctxengine.errors import InvalidInputError, InvalidTypeError
from ctxengine.tokens import get_token_counter
from ctxengine.types import Document, ScoredDocument

GUIDE = """# Deploying

Deploy with one command. It builds the image first.

## Configuration

Settings come from the environment. The port defaults to 8080.

```python
import os

# a comment that must stay with its code

PORT = int(os.environ.get("PORT", 8080))
```

Setext heading
--------------

Body under the setext heading.

### Rotating keys

Rotate the API keys every ninety days. Old keys stop working a day later.
"""


def test_headings_become_the_heading_path_of_their_passages():
    passages = MarkdownSplitter(max_tokens=200).split(GUIDE)
    assert [p.heading for p in passages] == [
        "Deploying",
        "Deploying > Configuration",
        "Deploying > Setext heading",
        "Deploying > Setext heading > Rotating keys",
    ]
    assert passages[-1].text.startswith("Deploying > Setext heading > Rotating keys\n\n")
    assert "ninety days" in passages[-1].text and "ninety days" not in passages[0].text


def test_code_blocks_are_kept_whole_even_when_larger_than_a_passage():
    passages = MarkdownSplitter(max_tokens=12).split(GUIDE)
    code = [p for p in passages if "```python" in p.text]
    assert len(code) == 1
    assert code[0].text.count("```") == 2 and "# a comment that must stay" in code[0].text
    assert "PORT = int" in code[0].text  # the blank line inside the block did not split it
    # a "# comment" inside code is not a heading
    assert all("a comment" not in p.heading for p in passages)


def test_passages_stay_within_max_tokens_apart_from_code():
    counter = get_token_counter(None)
    text = "# Long\n\n" + " ".join(
        f"Sentence number {i} says something different." for i in range(200)
    )
    passages = MarkdownSplitter(max_tokens=60).split(text)
    assert len(passages) > 5
    assert all(counter.count(p.text) <= 60 for p in passages)
    # nothing is lost: every sentence lands in exactly one passage
    assert sum(p.text.count("Sentence number") for p in passages) == 200


def test_plain_text_splits_at_paragraphs():
    passages = MarkdownSplitter(max_tokens=5).split(
        "First paragraph here.\n\nSecond paragraph here.\n"
    )
    assert [p.text for p in passages] == ["First paragraph here.", "Second paragraph here."]
    assert MarkdownSplitter().split("  \n\n ") == []


def test_bad_parameters_raise_typed_errors(tmp_path):
    with pytest.raises(InvalidInputError):
        MarkdownSplitter(max_tokens=0)
    with pytest.raises(InvalidTypeError):
        MarkdownSplitter().split(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        read_folder(tmp_path / "missing")


def test_read_folder_cites_file_and_heading(tmp_path):
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "deploy.md").write_text(GUIDE, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("Lunch is at noon.\n", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    docs = read_folder(tmp_path, splitter=MarkdownSplitter(max_tokens=200))
    ids = [d.id for d in docs]
    assert "notes.txt" in ids and "ops/deploy.md#Deploying > Setext heading > Rotating keys" in ids
    rotating = next(d for d in docs if d.id.endswith("Rotating keys"))
    assert rotating.metadata["source"] == str(tmp_path / "ops" / "deploy.md")
    assert rotating.metadata["heading"] == "Deploying > Setext heading > Rotating keys"
    assert [d.id for d in read_folder(tmp_path)] == ["notes.txt", "ops/deploy.md"]  # whole files

    engine = ContextEngine.from_documents(
        docs, retrieval="keyword", rerank="tags", token_budget=400
    )
    packet = engine.build("How often should I rotate the API keys?")
    assert packet.documents[0].id == "ops/deploy.md#Deploying > Setext heading > Rotating keys"
    assert 'id="ops/deploy.md#Deploying &gt; Setext heading &gt; Rotating keys"' in packet.text or (
        "ops/deploy.md#Deploying" in packet.text
    )


def test_fence_spans_close_at_the_matching_fence():
    text = "a\n````\n```\ninner\n```\n````\nb\n~~~\nopen to the end"
    spans = fence_spans(text)
    assert [text[s:e] for s, e in spans] == ["````\n```\ninner\n```\n````", "~~~\nopen to the end"]


@pytest.mark.parametrize("strategy", ["truncate", "sentence", "extractive"])
@pytest.mark.parametrize("budget", [15, 25, 40, 60, 90])
def test_compression_never_leaves_a_code_fence_open(strategy, budget):
    text = (
        "Install the client first. It needs Python 3.10.\n"
        "```python\nfrom client import Client. Client.connect(). print('ready'). x = 1. y = 2.\n```\n"
        "Then call connect. The call returns a session. Close it when done."
    )
    doc = ScoredDocument(Document(id="d", text=text), 1.0)
    compressor = (
        get_compressor(strategy, whole_below=0)
        if strategy == "extractive"
        else get_compressor(strategy)
    )
    for out in compressor.compress("how do I connect the client session", [doc], max_tokens=budget):
        assert out.text.count("```") % 2 == 0, out.text
        assert out.tokens <= budget


def test_read_folder_does_not_follow_links_out_of_the_folder(tmp_path):
    docs_dir, outside = tmp_path / "docs", tmp_path / "private"
    docs_dir.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\nThe vault code is 4711.\n")
    (docs_dir / "guide.md").write_text("# Guide\nHow to deploy.\n")
    (docs_dir / "leak.md").symlink_to(outside / "secret.md")
    (docs_dir / "alias.md").symlink_to(docs_dir / "guide.md")  # a link within the folder
    docs = read_folder(docs_dir)
    assert sorted(d.id for d in docs) == ["alias.md", "guide.md"]
    assert not any("4711" in d.text for d in docs)
