"""The learn surface under hostile input: feedback logs at paths that are not logs,
training examples with gains that are not numbers, knot counts that would allocate the
machine, and models saved over files ctxengine did not write. Each is a
``CtxEngineError`` (or works), and no file the user owns changes."""

from __future__ import annotations

import hashlib
import json
import os
import signal

import pytest

from ctxengine import ContextEngine
from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import CtxEngineError, StoreError
from ctxengine.learn import FeedbackLog

ALARM_SECONDS = 20


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- feedback logs at paths that are not logs -----------------------------------------------


def _not_a_log(tmp_path, kind):
    path = tmp_path / "feedback.jsonl"
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link to a file":
        path.symlink_to(notes)
    elif kind == "directory":
        path.mkdir()
    elif kind == "text file":
        path = notes
    elif kind == "json lines of another application":
        path.write_text('{"event": "login", "user": "ann"}\n')
    return path, notes


@pytest.mark.parametrize(
    "kind", ["fifo", "link to a file", "directory", "text file", "json lines of another application"]
)
def test_a_feedback_log_path_that_is_not_a_log_is_refused_and_untouched(tmp_path, kind, alarm):
    path, notes = _not_a_log(tmp_path, kind)
    before = _digest(notes), (path.read_bytes() if path.is_file() and not path.is_symlink() else None)
    with pytest.raises(StoreError):
        FeedbackLog(path).record("q", "doc", True)  # a FIFO blocked here forever
    engine = ContextEngine.from_documents(
        [{"id": "doc", "text": "context"}], embedder=HashingEmbedder(32), feedback=path
    )
    with pytest.raises(StoreError):
        engine.record_feedback("q", "doc", useful=True)
    after = _digest(notes), (path.read_bytes() if path.is_file() and not path.is_symlink() else None)
    assert after == before


RECORD = {"time": 1.0, "session_id": "s", "query": "q", "item_id": "a", "useful": True, "kind": "document"}


def test_appending_after_a_torn_last_line_keeps_the_log_readable(tmp_path):
    path = tmp_path / "feedback.jsonl"
    line = json.dumps(RECORD).encode()
    path.write_bytes(line + b"\n" + line[:30])  # a crash mid-write
    FeedbackLog(path).record("q2", "b", True)  # joined the torn line: the log was unreadable
    assert [row["item_id"] for row in FeedbackLog(path).records()] == ["a", "b"]
    # a first write cut by a crash is a log too
    first = tmp_path / "first.jsonl"
    first.write_bytes(line[:20])
    FeedbackLog(first).record("q2", "b", True)
    assert [row["item_id"] for row in FeedbackLog(first).records()] == ["b"]


def test_appending_after_a_last_record_without_a_line_break_keeps_it(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(json.dumps(RECORD).encode())  # edited by hand, no final line break
    FeedbackLog(path).record("q2", "b", True)
    assert [row["item_id"] for row in FeedbackLog(path).records()] == ["a", "b"]
