"""How retrieved text and remembered turns are written into the prompt.

Every piece of untrusted text (documents, turns, the question) is placed inside a
delimited section, and anything in it that imitates the engine's own markers is
neutralised. :func:`escape` is the one escaping, used by every rendering (``packet.text``
and ``packet.messages`` alike):

* section markers are ``<ctx:NAME ...>`` / ``</ctx:NAME>`` tags. Content is compared with
  them on a *normalized view*: each character is NFKD-decomposed and case-folded (so
  full-width, small, circled, mathematical and Roman-numeral forms read as their letter,
  and U+FE13 as ``:``), mapped through the look-alike table :data:`CONFUSABLES`, and
  dropped if a reader would not see it (whitespace, combining marks, zero-width and bidi
  format characters, fillers). Wherever that view reads ``<ctx:`` or ``</ctx:``, the
  character that produced the ``<`` is replaced by ``‹``, so the text can never open or
  close a section;
* the confusables policy: the marker alphabet is fixed (``<``, ``/``, ``c``, ``t``, ``x``,
  ``:``), so :data:`CONFUSABLES` holds, for each of these, look-alikes picked by hand
  from Unicode's confusables list (UTS #39) that NFKD does not already fold, e.g.
  Cyrillic ``с`` / ``х`` / ``т``, Greek ``τ`` / ``χ``, fraction and division slashes,
  ``∶`` (U+2236), ``‹`` and ``˂``. Escaping a look-alike that was not meant as a marker
  costs one changed character; missing one would let text forge structure, so the table
  errs wide;
* a turn is one ``role: text`` entry whose continuation lines are indented, so a line in
  the content that starts with ``assistant:`` or ``system:`` cannot pass for a new turn.
  Every Unicode line break counts (``\r``, ``\v``, ``\f``, NEL, U+2028/9...), not only
  ``\n``, and a role or document id is kept on one line, without control characters.

Memory and compression count tokens with these same functions, so what they budget is
exactly what the engine writes. Every step is linear in the text's length.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from ._validation import invisible
from .types import ScoredDocument, Turn

#: Look-alikes of the marker characters that NFKD + case folding leave apart, mapped to
#: the character they imitate (see the module docstring for the policy).
CONFUSABLES: dict[str, str] = {
    **dict.fromkeys(
        "\u2039\u276e\u02c2\u1438\u16b2\u3008\u27e8\u2329\u29fc\u276c\u2770\U0001d236", "<"
    ),
    **dict.fromkeys(
        "\u2044\u2215\u29f8\u2571\u27cb\u1735\u2cc6\u30ce\u4e3f\u31d3\U0001d23a\u2f03\u3033\u2cc7",
        "/",
    ),
    **dict.fromkeys(
        "\u0441\u03f2\u1d04\u2ca5\uabaf\u13df\U0001043d\ua4da\u0421\u03f9\u2ca4\U000118f2\U000118e9",
        "c",
    ),
    **dict.fromkeys(
        "\u0442\u03c4\u1d1b\u2ca7\u13a2\uab72\ua4d4\u22a4\u27d9\u0422\u03a4\u2ca6\U0001f768", "t"
    ),
    **dict.fromkeys(
        "\u0445\u03c7\u00d7\u2573\u166e\u292b\u292c\u2a2f\u157d\u1541\u2cad\ua4eb\u0425\u03a7\u2cac\u1d61",
        "x",
    ),
    **dict.fromkeys(
        "\u2236\u0589\u05c3\u0703\u0704\u16ec\u1803\u1809\u205a\u2e2c\ua789\ua6f4\u02f8\u02d0\u1361\u0903\u0a83\ufe30",
        ":",
    ),
}
# What can start a marker on the normalized view: any character whose view begins with "<".
_OPENERS = frozenset("<\ufe64\uff1c\u226e") | {ch for ch, to in CONFUSABLES.items() if to == "<"}
_OPENER_RE = re.compile("[" + "".join(sorted(_OPENERS)) + "]")
_TARGETS = ("ctx:", "/ctx:")
_NEUTRAL_OPEN = "\u2039"  # ‹


@lru_cache(maxsize=4096)
def _view(ch: str) -> str:
    """What ``ch`` reads as on the normalized view ("" if invisible)."""
    if invisible(ch):
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", ch).casefold():
        part = CONFUSABLES.get(part, part)
        if not invisible(part):
            out.append(part)
    return "".join(out)


def _reads_as_marker(text: str, start: int) -> bool:
    """Whether the text after the opener at ``start`` reads as ``ctx:`` or ``/ctx:``."""
    seen = ""
    for index in range(start + 1, len(text)):
        seen += _view(text[index])
        if len(seen) >= 5 or not any(target.startswith(seen) for target in _TARGETS):
            break
    return any(seen.startswith(target) for target in _TARGETS)


def escape(text: str) -> str:
    """Neutralise section markers (and their look-alikes) inside untrusted text.

    Only characters that can read as ``<`` start the check, found by a C-speed scan, and
    each check stops at the fifth visible character, so escaping is linear.
    """
    hits = [m.start() for m in _OPENER_RE.finditer(text) if _reads_as_marker(text, m.start())]
    if not hits:
        return text
    chars = list(text)
    for index in hits:
        chars[index] = _NEUTRAL_OPEN
    return "".join(chars)


def label(value: str) -> str:
    """A role or id as it appears in the prompt: escaped, on one line, no control or
    format characters, double quotes made single (ids sit inside an attribute)."""
    if value.isascii() and value.isprintable():  # the usual id: nothing to clean
        cleaned = value
    else:
        cleaned = "".join(
            " " if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in value
        )
    return " ".join(escape(cleaned).replace('"', "'").split())


def render_turn(role: str, content: str) -> str:
    """One history entry: ``role: content`` with indented continuation lines."""
    body = "\n  ".join(escape(content).splitlines())
    return f"{label(role)}: {body}"


def render_turns(turns: list[Turn]) -> str:
    return TURN_SEPARATOR.join(render_turn(turn.role, turn.content) for turn in turns)


def render_document(document: ScoredDocument) -> str:
    """One retrieved document (its kept text) inside its own tag."""
    return f'<ctx:document id="{label(document.id)}">\n{escape(document.text)}\n</ctx:document>'


def document_overhead(document_id: str) -> str:
    """The part of :func:`render_document` that is not content (for budgeting)."""
    return f'<ctx:document id="{label(document_id)}">\n\n</ctx:document>'


TURN_SEPARATOR = "\n"
DOCUMENT_SEPARATOR = "\n"
SECTION_SEPARATOR = "\n\n"
HISTORY_OPEN, HISTORY_CLOSE = "<ctx:history>", "</ctx:history>"
CONTEXT_OPEN, CONTEXT_CLOSE = "<ctx:context>", "</ctx:context>"
QUERY_OPEN, QUERY_CLOSE = "<ctx:question>", "</ctx:question>"


def wrap(open_tag: str, body: str, close_tag: str) -> str:
    return f"{open_tag}\n{body}\n{close_tag}"


__all__ = [
    "CONFUSABLES",
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
    "label",
    "render_document",
    "render_turn",
    "render_turns",
    "wrap",
]
