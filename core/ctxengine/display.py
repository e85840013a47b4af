"""How user text is shown on a terminal: :meth:`ContextPacket.explain` and the CLI.

Documents, ids, turns, roles and queries are printed as they are, except for characters a
terminal acts on instead of showing: C0 and C1 control characters (``ESC`` starts the
sequences that clear the screen, recolour, retitle the window or plant a hyperlink
(OSC 8); U+009B is an 8-bit CSI) and the bidirectional controls (U+202E reverses what
follows, so a table row could read as something it is not). Each is shown as its Python
escape (``\\x1b``, ``\\u202e``), so the reader sees that it is there. Line feeds and tabs
stay: they only lay text out. The stored text, ``packet.text`` and ``packet.messages`` are
never changed; this is display only.
"""

from __future__ import annotations

import re

# C0 controls but tab and line feed, DEL, C1 controls, and the bidi controls (ALM, LRM,
# RLM, embeddings/overrides, isolates).
_ACTS_ON_TERMINAL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every character a terminal would act on shown as its escape
    (``"\\x1b[2J"`` prints as the six characters ``\\x1b[2J``). Linear; ordinary text is
    returned as it is."""
    return _ACTS_ON_TERMINAL.sub(_shown, text)


__all__ = ["visible"]
