"""Splitting files into passages on text with no sentence end for a long way: one 1 MB
line, a long list or table (lines without blank lines between them), a run of one
character, emoji ZWJ sequences, CJK. Every passage keeps to ``max_tokens`` (it was one
passage of up to 200,000 tokens, of which an embedding model reads the first 256), no
character is lost, and the work stays linear (sizes a quadratic path would not finish)."""

from __future__ import annotations

import pytest

from ctxengine.chunking import MarkdownSplitter
from ctxengine.tokens import default_token_counter

ALARM_SECONDS = 120

LONG = {
    "one line of words": "word " * 200_000,
    "a list": "- item of the list\n" * 20_000,
    "a table": "| key | value |\n" * 20_000,
    "one character": "a" * 1_000_000,
    "emoji ZWJ sequences": "👨\u200d👩\u200d👧\u200d👦 " * 20_000,
    "CJK": "日本語の文章" * 30_000,
    "lines of words": ("word " * 300 + "\n") * 300,
}


def _visible(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("name", LONG)
@pytest.mark.parametrize("max_tokens", [16, 256])
def test_passages_keep_to_their_size_on_text_without_sentence_ends(name, max_tokens, alarm):
    text = LONG[name]
    counter = default_token_counter()
    passages = MarkdownSplitter(max_tokens).split(f"# Title\n\n{text}")
    assert len(passages) > 1
    assert all(counter.count(p.text) <= max_tokens for p in passages)
    kept = "".join(p.text.removeprefix("Title\n\n") for p in passages)
    assert _visible(kept) == _visible(text)  # nothing lost, in order
    assert all(p.heading == "Title" for p in passages)


def test_ordinary_paragraphs_and_code_blocks_are_split_as_before():
    text = "# A\n\nOne sentence here. Another one there.\n\n```\n" + "code\n" * 400 + "```\n"
    passages = MarkdownSplitter(64).split(text)
    assert passages[0].text == "A\n\nOne sentence here. Another one there."
    assert passages[-1].text.startswith("A\n\n```") and passages[-1].text.count("code") == 400
