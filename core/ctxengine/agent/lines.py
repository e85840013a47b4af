"""Compressing a tool output by its lines, when it is made of lines.

Tool outputs are mostly not prose: logs, tables, CSV, code, JSON. The compressor's units
are sentences, and a sentence ends at a full stop or a blank line, so a 2,000-line log is
one "sentence" that either fits whole or is lost: a fact asked for in an early result
survived in ~5% of generated log, JSON, table and code traces. Here such an output is cut
into its lines (JSON is first laid out one value a line) and each line is a unit the
engine's compressor scores against the query; the kept lines are served in their order,
the first line (a table's header, a log's first entry) always kept, with a marker where
lines were left out.
"""

from __future__ import annotations

import json

from .._validation import is_blank
from ..compress import Compressor
from ..tokens import TokenCounter
from ..types import Document, ScoredDocument

#: An output of at least this many lines is compressed line by line.
MIN_LINES = 8
#: The most units one compression scores (longer outputs are scored by runs of lines).
MAX_UNITS = 2000
# Compressions tried, each with the room the markers took off.
_ATTEMPTS = 4


def output_lines(text: str) -> list[str] | None:
    """The output's lines, when it is line-structured (JSON laid out a value a line);
    ``None`` for prose, which the compressor splits into sentences itself."""
    stripped = text.strip()
    if stripped[:1] in "[{" and "\n" not in stripped[:200]:
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, (dict, list)):
            lines = json.dumps(parsed, ensure_ascii=False, indent=1).split("\n")
            return lines if len(lines) >= MIN_LINES else None
    lines = text.split("\n")
    return lines if len(lines) >= MIN_LINES else None


def line_units(lines: list[str], start: int, most: int, prefix: str = "") -> list[ScoredDocument]:
    """``lines[start:]`` as compressor units (id: ``prefix`` + first line index), runs of
    consecutive lines joined so there are at most ``most`` (a 20,000-line output is
    scored by runs, not line by line: the compressor's cost grows with its units)."""
    size = max(1, -(-(len(lines) - start) // max(most, 1)))
    units = []
    for first in range(start, len(lines), size):
        text = "\n".join(lines[first : first + size])
        if not is_blank(text):
            units.append(ScoredDocument(Document(text=text, id=f"{prefix}{first}"), 1.0))
    return units


def _spans(
    units: list[ScoredDocument], kept: list[ScoredDocument], prefix: str
) -> dict[int, tuple[int, str]]:
    """Kept units as ``first line -> (end line, kept text)``."""
    ends = {}
    for unit in units:
        first = int(unit.id[len(prefix) :])
        ends[first] = first + unit.text.count("\n") + 1
    return {int(d.id[len(prefix) :]): (ends[int(d.id[len(prefix) :])], d.text) for d in kept}


def compress_lines(
    lines: list[str], query: str, budget: int, counter: TokenCounter, compressor: Compressor
) -> str:
    """The lines that matter most for ``query`` within ``budget`` tokens, in order, the
    first line always kept."""
    units = line_units(lines, 1, MAX_UNITS)
    room = budget - counter.count(lines[0])
    text = lines[0]
    for _attempt in range(_ATTEMPTS):  # the markers' cost is known once lines are chosen
        kept = compressor.compress(query, units, room) if room > 0 and units else []
        text = _assemble(lines, {0: (1, lines[0]), **_spans(units, kept, "")})
        over = counter.count(text) - budget
        if over <= 0:
            break
        room -= max(over, 8)
    return text


def pooled_selection(
    texts: dict[str, str], query: str, room: int, compressor: Compressor
) -> dict[str, str]:
    """One selection across several outputs (``handle -> text``, most important first):
    their lines (or, for prose, their sentences) compete for ``room`` in one compressor
    call, so the room goes to what matters for ``query`` wherever it is, not to the
    filler of whichever output came first. Returns the kept part of each output that
    kept anything, lines in order with markers where lines were left out."""
    docs: list[ScoredDocument] = []
    layout: dict[str, tuple[list[str], list[ScoredDocument]]] = {}
    for handle, text in texts.items():
        lines = output_lines(text)
        if lines is None:
            docs.append(ScoredDocument(Document(text=text, id=f"{handle}\x00p"), 1.0))
            continue
        units = line_units(lines, 0, MAX_UNITS // max(len(texts), 1), f"{handle}\x00")
        layout[handle] = (lines, units)
        docs += units
    kept = compressor.compress(query, docs, room) if room > 0 and docs else []
    out: dict[str, str] = {}
    by_handle: dict[str, list[ScoredDocument]] = {}
    for doc in kept:
        handle, _, where = doc.id.partition("\x00")
        if where == "p":
            out[handle] = doc.text
        else:
            by_handle.setdefault(handle, []).append(doc)
    for handle, picked in by_handle.items():
        lines, units = layout[handle]
        out[handle] = _assemble(lines, _spans(units, picked, f"{handle}\x00"))
    return out


def _assemble(lines: list[str], chosen: dict[int, tuple[int, str]]) -> str:
    """The chosen runs (``first line -> (end, text)``) in order, a marker where lines
    with text were left out."""
    out: list[str] = []
    previous = 0  # the first line not yet accounted for
    for first in [*sorted(chosen), len(lines)]:
        # Blank lines cost a marker nothing: only left-out lines with text are told.
        left_out = sum(1 for line in lines[previous:first] if not is_blank(line))
        if left_out:
            out.append(f"[... {left_out} lines ...]")
        elif first > previous:
            out.append("")
        if first < len(lines):
            end, text = chosen[first]
            out.append(text)
            previous = end
    return "\n".join(out)


__all__ = [
    "MAX_UNITS",
    "MIN_LINES",
    "compress_lines",
    "line_units",
    "output_lines",
    "pooled_selection",
]
