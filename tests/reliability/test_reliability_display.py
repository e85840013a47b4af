"""Display: what ``packet.explain()`` and the CLI print never drives the terminal. Text
holding escape sequences (clear screen, colours, OSC 8 hyperlinks, window titles), C1
controls or bidi overrides is shown with those characters as visible escapes, and the
report keeps its width; the packet itself keeps the text as it was given."""

from __future__ import annotations

import unicodedata

import pytest
from rich.cells import cell_len

from ctxengine.cli import main
from ctxengine.display import visible
from ctxengine.embeddings import HashingEmbedder
from ctxengine.engine import ContextEngine
from ctxengine.types import Document

CONTROLS = [
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "\x1b[31mred\x1b[0m",
    "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07",  # OSC 8 hyperlink
    "\x1b]0;new window title\x07",
    "\x9b2J",  # 8-bit CSI
    "\u202eevil\u202c",  # right-to-left override
    "\u2066isolate\u2069\u200f",
    "back\x08\x08space\rreturn\x7f",
]

# what a terminal acts on: every control but line feed and tab, and the bidi controls
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _acts_on_terminal(ch: str) -> bool:
    return ch in BIDI or (unicodedata.category(ch) == "Cc" and ch not in "\n\t")


def _engine(control: str) -> ContextEngine:
    engine = ContextEngine.from_documents(
        [
            Document(
                id=f"doc {control}",
                text=f"context engineering {control} decides what a model sees.",
                metadata={"tags": [control], "source": control},
            )
        ],
        embedder=HashingEmbedder(64),
    )
    engine.remember("user", f"context {control}", session_id="s")
    engine.remember(
        f"bob{control[-1]}" if control[-1].isalpha() else "bob", "context", session_id="s"
    )
    return engine


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("width", [40, 41, 110, 400])
def test_explain_never_prints_terminal_controls(control, width):
    engine = _engine(control)
    packet = engine.build(f"context engineering {control}", session_id="s")
    report = packet.explain(width=width)
    assert not [ch for ch in report if _acts_on_terminal(ch)]
    assert all(cell_len(line) <= width for line in report.splitlines())
    if width == 400:  # shown, not dropped (narrower, the cells are cut with an ellipsis)
        first = next(ch for ch in control if _acts_on_terminal(ch))
        assert visible(first) in report
    # the packet keeps the text as given (display only)
    assert control in packet.documents[0].text
    assert any(control in turn.content for turn in packet.memory_turns)


@pytest.mark.parametrize("control", CONTROLS)
def test_cli_never_prints_terminal_controls(control, tmp_path, capsys):
    (tmp_path / "a.md").write_text(f"Context engineering {control} decides what a model sees.")
    assert (
        main(
            [
                "build",
                "--docs",
                str(tmp_path),
                "--query",
                f"context {control}",
                "--retrieval",
                "keyword",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert not [ch for ch in captured.out + captured.err if _acts_on_terminal(ch)]
    assert "\\x1b" in captured.out or "\\u20" in captured.out or "\\x" in captured.out


def test_cli_error_lines_never_print_terminal_controls(tmp_path, capsys):
    assert main(["build", "--docs", str(tmp_path), "--query", "\x1b[2J\u202e"]) == 2
    err = capsys.readouterr().err
    assert not [ch for ch in err if _acts_on_terminal(ch)]
    assert err.startswith("ctxengine: error:") and err.count("\n") == 1


def test_visible_leaves_ordinary_text_alone():
    text = "Context 工程 👨‍👩‍👧 é\tand\nmore [bold]x[/]"
    assert visible(text) == text
    assert visible("\x1b[2J\u202e") == "\\x1b[2J\\u202e"
