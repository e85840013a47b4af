"""Splitting files into passages by their structure, for indexing real folders.

A file indexed whole is one vector and one BM25 row for pages about many things: the
answer to a question sits in one section, and the rest of the file dilutes it (on the
docs shipped with installed packages, whole files put the right file in the top 5 far
less often than passages do: ``python -m benchmarks.chunking``). :class:`MarkdownSplitter`
cuts a Markdown or plain-text file at its headings, then packs its paragraphs into
passages of at most ``max_tokens`` real tokens. Fenced code blocks are never cut, and every
passage keeps the heading path it sits under, so a packet can cite file and section.

Examples
--------
>>> from ctxengine.chunking import MarkdownSplitter
>>> text = "# Install\\n\\nRun pip.\\n\\n## On Linux\\n\\nUse a venv.\\n\\n```bash\\npython -m venv .venv\\n```\\n"
>>> for passage in MarkdownSplitter(max_tokens=50).split(text):
...     print(repr(passage.heading), repr(passage.text))
'Install' 'Install\\n\\nRun pip.'
'Install > On Linux' 'Install > On Linux\\n\\nUse a venv.\\n\\n```bash\\npython -m venv .venv\\n```'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ._validation import check_positive_int
from .errors import InvalidInputError, InvalidTypeError
from .text import split_sentences
from .tokens import TokenCounter, get_token_counter
from .types import Document

__all__ = ["MarkdownSplitter", "Passage", "fence_spans", "read_folder"]

_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
# A Markdown setext underline (= or -) or a reStructuredText one (any of these, repeated).
_UNDERLINE = re.compile(r"^(=+|-+|~+|\^+|\*+|\++|#+|\"+)[ \t]*$")
SUFFIXES = (".md", ".markdown", ".txt", ".rst")


def fence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the fenced code blocks in ``text`` (a fence left open runs to the
    end), so that a caller can keep each block whole.

    Examples
    --------
    >>> text = "Intro.\\n```\\ncode\\n```\\nAfter."
    >>> [text[s:e] for s, e in fence_spans(text)]
    ['```\\ncode\\n```']
    """
    spans = []
    start = None
    marker = ""
    offset = 0
    for line in text.splitlines(keepends=True):
        match = _FENCE.match(line)
        if match:
            fence = match.group(1)
            if start is None:
                start, marker = offset, fence
            elif (
                fence[0] == marker[0]
                and len(fence) >= len(marker)
                and not line.strip()[len(fence) :]
            ):
                spans.append((start, offset + len(line.rstrip("\r\n"))))
                start = None
        offset += len(line)
    if start is not None:
        spans.append((start, len(text.rstrip())))
    return spans


@dataclass(frozen=True)
class Passage:
    """A piece of a file: its text (headed by the section's heading path), the heading
    path (``"Install > On Linux"``, ``""`` before the first heading), and its position."""

    text: str
    heading: str
    index: int


@dataclass(frozen=True)
class _Block:
    text: str
    heading: str
    code: bool


class MarkdownSplitter:
    """Split Markdown or plain text into passages by structure, within a token size.

    Parameters
    ----------
    max_tokens:
        A passage's size in real tokens (the heading line included). Paragraphs are packed
        together up to it; a longer paragraph is split at sentence ends. A fenced code
        block longer than this stays one passage: half a code block misleads more than a
        long one costs.
    token_counter:
        How tokens are counted (default: the engine's tiktoken ``cl100k_base``).

    Examples
    --------
    >>> splitter = MarkdownSplitter(max_tokens=64)
    >>> [p.heading for p in splitter.split("# A\\n\\nOne.\\n\\n## B\\n\\nTwo.\\n\\n# C\\n\\nThree.")]
    ['A', 'A > B', 'C']
    """

    def __init__(
        self, max_tokens: int = 256, *, token_counter: TokenCounter | str | None = None
    ) -> None:
        self.max_tokens = check_positive_int(max_tokens, "max_tokens")
        self.token_counter = get_token_counter(token_counter)

    def split(self, text: str) -> list[Passage]:
        """The passages of ``text``, in order; blank text gives ``[]``."""
        if not isinstance(text, str):
            raise InvalidTypeError(f"text must be a str, got {type(text).__name__}")
        passages: list[Passage] = []
        current: list[str] = []
        heading = ""
        count = self.token_counter.count

        def flush() -> None:
            if current:
                body = "\n\n".join(current)
                passages.append(
                    Passage(f"{heading}\n\n{body}" if heading else body, heading, len(passages))
                )
                current.clear()

        for block in self._blocks(text):
            if block.heading != heading:
                flush()
                heading = block.heading
            head = count(heading) + 2 if heading else 0
            for piece in (
                [block.text] if block.code else self._pieces(block.text, self.max_tokens - head)
            ):
                if current and count("\n\n".join([*current, piece])) + head > self.max_tokens:
                    flush()
                current.append(piece)
        flush()
        return passages

    def _pieces(self, paragraph: str, room: int) -> Iterator[str]:
        """A paragraph as it is when it fits, else runs of its sentences that fit."""
        count = self.token_counter.count
        if count(paragraph) <= room:
            yield paragraph
            return
        run: list[str] = []
        for start, end in split_sentences(paragraph):
            sentence = paragraph[start:end]
            if count(sentence) > room:  # no sentence end for that long: cut it apart
                if run:
                    yield " ".join(run)
                    run = []
                yield from self._cut(sentence, room)
                continue
            if run and count(" ".join([*run, sentence])) > room:
                yield " ".join(run)
                run = []
            run.append(sentence)
        if run:
            yield " ".join(run)

    def _cut(self, text: str, room: int, separators: str = "\n ") -> Iterator[str]:
        """Runs of ``text`` of at most ``room`` tokens: cut at line breaks (list items,
        table rows), else at spaces, else every ``room`` tokens. A 1 MB line without a
        sentence end was one passage of 200,000 tokens (of which an embedding model reads
        the first 256). Linear: parts are packed on the sum of their own counts (a join
        is never counted longer than that sum's run), each run checked once."""
        count = self.token_counter.count
        if count(text) <= room:
            yield text
            return
        if not separators:
            # each cut reads a window of a few times ``room`` characters (doubled while it
            # holds fewer than ``room`` tokens), never the rest of the text: linear
            room, window, start = max(room, 1), 4 * max(room, 1), 0
            while start < len(text):
                piece = text[start : start + window]
                head = self.token_counter.truncate(piece, room)
                if len(head) == len(piece) and start + window < len(text):
                    window *= 2
                    continue
                head = head or piece[:1]
                yield head
                start += len(head)
            return
        separator, rest = separators[0], separators[1:]
        run: list[str] = []
        size = 0
        for part in text.split(separator):
            cost = count(separator + part)  # what the part adds to a run (" word": 1)
            if run and size + cost > room:
                yield from self._cut(separator.join(run), room, rest)
                run, size = [], 0
            run.append(part)
            size += cost
        if run:
            yield from self._cut(separator.join(run), room, rest)

    @staticmethod
    def _blocks(text: str) -> Iterator[_Block]:
        """Paragraphs and code blocks, each with the heading path it sits under."""
        path: list[tuple[int, str]] = []
        paragraph: list[str] = []
        code: list[str] | None = None
        marker = ""

        def heading() -> str:
            return " > ".join(title for _, title in path)

        def set_heading(level: int, title: str) -> None:
            while path and path[-1][0] >= level:
                path.pop()
            if title:
                path.append((level, title))

        def end_paragraph() -> Iterator[_Block]:
            if paragraph:
                joined = "\n".join(paragraph).strip()
                paragraph.clear()
                if joined:
                    yield _Block(joined, heading(), False)

        levels: dict[str, int] = {"=": 1, "-": 2}  # reStructuredText: by order of first use
        for line in text.splitlines():
            # an underline under a one-line paragraph is a heading (checked before fences:
            # in reStructuredText "~~~~" under a title is an underline, not a code fence)
            if (
                code is None
                and len(paragraph) == 1
                and paragraph[0].strip()
                and _UNDERLINE.match(line.strip())
            ):
                char = line.strip()[0]
                level = levels.setdefault(char, len(levels) + 1)
                set_heading(level, paragraph.pop().strip())
                continue
            if code is not None:
                code.append(line)
                fence = _FENCE.match(line)
                if fence and fence.group(1)[0] == marker[0] and len(fence.group(1)) >= len(marker):
                    yield _Block("\n".join(code), heading(), True)
                    code = None
                continue
            fence = _FENCE.match(line)
            if fence:
                yield from end_paragraph()
                code, marker = [line], fence.group(1)
                continue
            atx = _ATX.match(line)
            if atx:
                yield from end_paragraph()
                set_heading(len(atx.group(1)), atx.group(2).strip())
                continue
            if line.strip():
                paragraph.append(line)
            else:
                yield from end_paragraph()
        yield from end_paragraph()
        if code is not None:  # an unclosed fence: keep what there is, as one block
            yield _Block("\n".join(code), heading(), True)


def _readable(name: str) -> str:
    """A file name as valid Unicode: bytes that are not UTF-8 (kept by Python as lone
    surrogates, which no store or model API accepts) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_folder(
    folder: str | Path,
    *,
    splitter: MarkdownSplitter | None = None,
    suffixes: Iterable[str] = SUFFIXES,
) -> list[Document]:
    """Every text file under ``folder`` as documents: one per passage, or one per file
    when ``splitter`` is ``None``.

    Each document's id is ``"relative/path.md"`` (whole files) or
    ``"relative/path.md#Heading > Sub"`` (passages; ``"... (2)"`` when a section has several,
    ``"relative/path.md#(2)"`` before the first heading),
    and its metadata holds ``source`` (the file's path), ``heading`` and ``passage``.

    A symbolic link whose target lies outside ``folder`` is not read (a link in a shared
    docs folder must not put, say, ``/etc/passwd`` into an index); links within the folder
    are read like the files they point to.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"not a folder: {str(root)!r}")
    inside = root.resolve()
    wanted = tuple(s.lower() for s in suffixes)
    documents: list[Document] = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in wanted or not path.is_file():
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(inside):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:  # unreadable, or removed since the listing
            raise InvalidInputError(f"cannot read {_readable(str(path))!r}: {exc}") from exc
        if not text.strip():
            continue
        rel, source = _readable(path.relative_to(root).as_posix()), _readable(str(path))
        if splitter is None:
            documents.append(Document(id=rel, text=text, metadata={"source": source}))
            continue
        passages = splitter.split(text)
        per_heading: dict[str, int] = {}
        for passage in passages:
            per_heading[passage.heading] = per_heading.get(passage.heading, 0) + 1
        seen: dict[str, int] = {}
        for passage in passages:
            seen[passage.heading] = seen.get(passage.heading, 0) + 1
            number = f"({seen[passage.heading]})" if per_heading[passage.heading] > 1 else ""
            anchor = (
                f"#{passage.heading} {number}".rstrip()
                if passage.heading
                else (f"#{number}" if number else "")
            )
            documents.append(
                Document(
                    id=f"{rel}{anchor}",
                    text=passage.text,
                    metadata={
                        "source": source,
                        "heading": passage.heading,
                        "passage": passage.index,
                    },
                )
            )
    return documents
