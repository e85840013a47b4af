"""How retrieved text and remembered turns are written into the prompt.

Every piece of untrusted text (documents, turns) is placed inside a delimited section,
and anything in it that imitates the engine's own markers is neutralised:

* section markers are ``<ctx:NAME ...>`` / ``</ctx:NAME>`` tags; an occurrence of
  ``<ctx:`` or ``</ctx:`` inside content has its ``<`` replaced by ``‹`` so it can never
  close or open a section. Look-alikes a reader would take for a marker are caught too:
  case, spaces, invisible format characters (zero-width, bidi controls) between the
  parts, and full-width or small forms of ``<``, ``/``, ``ctx`` and ``:``;
* a turn is one ``role: text`` entry whose continuation lines are indented, so a line in
  the content that starts with ``assistant:`` or ``system:`` cannot pass for a new turn.
  Every Unicode line break counts (``\r``, ``\v``, ``\f``, NEL, U+2028/9...), not only
  ``\n``, and a role or document id is kept on one line.

Memory and compression count tokens with these same functions, so what they budget is
exactly what the engine writes.
"""

from __future__ import annotations

import re

from .types import ScoredDocument, Turn

# Whitespace and invisible format characters a reader would not see between the parts.
_GAP = r"[\s\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]*"
# One gap before an optional "/" and one after it, never two gaps side by side: adjacent
# gaps make "<" + a long run of spaces quadratic to reject.
_MARKER_RE = re.compile(
    rf"[<\ufe64\uff1c](?={_GAP}(?:[/\uff0f]{_GAP})?[c\uff43]{_GAP}[t\uff54]{_GAP}[x\uff58]{_GAP}[:\ufe55\uff1a])",
    re.IGNORECASE,
)
_NEUTRAL_OPEN = "\u2039"  # ‹


def escape(text: str) -> str:
    """Neutralise section markers inside untrusted text."""
    return _MARKER_RE.sub(_NEUTRAL_OPEN, text)


def _attribute(value: str) -> str:
    return " ".join(escape(value).replace('"', "'").splitlines())


def render_turn(role: str, content: str) -> str:
    """One history entry: ``role: content`` with indented continuation lines."""
    body = "\n  ".join(escape(content).splitlines())
    return f"{_attribute(role)}: {body}"


def render_turns(turns: list[Turn]) -> str:
    return TURN_SEPARATOR.join(render_turn(turn.role, turn.content) for turn in turns)


def render_document(document: ScoredDocument) -> str:
    """One retrieved document (its kept text) inside its own tag."""
    return f'<ctx:document id="{_attribute(document.id)}">\n{escape(document.text)}\n</ctx:document>'


def document_overhead(document_id: str) -> str:
    """The part of :func:`render_document` that is not content (for budgeting)."""
    return f'<ctx:document id="{_attribute(document_id)}">\n\n</ctx:document>'


TURN_SEPARATOR = "\n"
DOCUMENT_SEPARATOR = "\n"
SECTION_SEPARATOR = "\n\n"
HISTORY_OPEN, HISTORY_CLOSE = "<ctx:history>", "</ctx:history>"
CONTEXT_OPEN, CONTEXT_CLOSE = "<ctx:context>", "</ctx:context>"
QUERY_OPEN, QUERY_CLOSE = "<ctx:question>", "</ctx:question>"


def wrap(open_tag: str, body: str, close_tag: str) -> str:
    return f"{open_tag}\n{body}\n{close_tag}"


__all__ = [
    "CONTEXT_CLOSE",
    "CONTEXT_OPEN",
    "DOCUMENT_SEPARATOR",
    "HISTORY_CLOSE",
    "HISTORY_OPEN",
    "QUERY_CLOSE",
    "QUERY_OPEN",
    "SECTION_SEPARATOR",
    "TURN_SEPARATOR",
    "document_overhead",
    "escape",
    "render_document",
    "render_turn",
    "render_turns",
    "wrap",
]
