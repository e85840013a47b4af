"""The learn surface under hostile input: feedback logs at paths that are not logs,
training examples with gains that are not numbers, knot counts that would allocate the
machine, and models saved over files ctxengine did not write. Each is a
``CtxEngineError`` (or works), and no file the user owns changes."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
from test_reliability_surface_files import RECORD  # one feedback record, as bytes

from ctxengine import ContextEngine
from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import IndexFormatError, InvalidInputError, InvalidTypeError, StoreError
from ctxengine.learn import (
    FeedbackLog,
    LinearScorer,
    MemoryExample,
    RankingExample,
    coerce_examples,
)
from ctxengine.learn.model_format import MAX_KNOTS

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
    "kind",
    ["fifo", "link to a file", "directory", "text file", "json lines of another application"],
)
def test_a_feedback_log_path_that_is_not_a_log_is_refused_and_untouched(tmp_path, kind, alarm):
    path, notes = _not_a_log(tmp_path, kind)
    before = (
        _digest(notes),
        (path.read_bytes() if path.is_file() and not path.is_symlink() else None),
    )
    with pytest.raises(StoreError):
        FeedbackLog(path).record("q", "doc", True)  # a FIFO blocked here forever
    engine = ContextEngine.from_documents(
        [{"id": "doc", "text": "context"}], embedder=HashingEmbedder(32), feedback=path
    )
    with pytest.raises(StoreError):
        engine.record_feedback("q", "doc", useful=True)
    after = (
        _digest(notes),
        (path.read_bytes() if path.is_file() and not path.is_symlink() else None),
    )
    assert after == before


def test_appending_after_a_torn_last_line_keeps_the_log_readable(tmp_path):
    path = tmp_path / "feedback.jsonl"
    line = RECORD
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
    path.write_bytes(RECORD)  # edited by hand, no final line break
    FeedbackLog(path).record("q2", "b", True)
    assert [row["item_id"] for row in FeedbackLog(path).records()] == ["a", "b"]


# --- training examples and settings -----------------------------------------------------------


@pytest.mark.parametrize(
    "gains, error",
    [
        ({"a": float("nan")}, InvalidInputError),  # trained silently as "not relevant"
        ({"a": float("inf")}, InvalidInputError),
        ({"a": -1.0}, InvalidInputError),
        ({"a": 10**400}, InvalidInputError),  # was OverflowError
        ({"a": "1"}, InvalidTypeError),  # was ValueError
        ({"a": None}, InvalidTypeError),  # was TypeError
        ({b"a": 1.0}, InvalidTypeError),  # was the id "b'a'"
        ([None], InvalidTypeError),  # was the id "None"
    ],
)
def test_example_gains_that_are_not_numbers_are_typed_errors(gains, error):
    with pytest.raises(error):
        RankingExample("context", gains)
    with pytest.raises(error):
        MemoryExample("context", gains, "s")
    with pytest.raises(error):
        coerce_examples([{"query": "context", "relevant": gains}])


def test_example_gains_keep_reading_numbers_of_every_kind():
    relevant = RankingExample(
        "q", {"a": True, "b": np.int64(2), "c": np.float32(0.5), "d": 0, 7: 1}
    ).relevant
    assert relevant == {"a": 1.0, "b": 2.0, "c": 0.5, "d": 0.0, "7": 1.0}


@pytest.mark.parametrize("knots", [MAX_KNOTS + 1, 10**6])
def test_a_knot_count_that_would_exhaust_memory_is_refused(knots, alarm):
    with pytest.raises(InvalidInputError):
        LinearScorer(knots=knots)  # 10**6 asked numpy for a 1.4 TiB identity matrix
    engine = _engine()
    with pytest.raises(InvalidInputError):
        engine.fit([RankingExample("context", ["a"])], knots=knots)
    LinearScorer(knots=MAX_KNOTS)  # the largest accepted


def test_a_saved_model_with_too_many_knots_is_refused(tmp_path):
    engine = _engine()
    engine.fit([RankingExample("context", ["a"]), RankingExample("memory", ["b"])])
    data = engine.reranker.model.to_dict()
    data["knots"][0] = [float(i) for i in range(MAX_KNOTS + 1)]
    data["heights"][0] = [0.0] * (MAX_KNOTS + 1)
    with pytest.raises(IndexFormatError):
        LinearScorer.from_dict(data)


# --- models saved over files ctxengine did not write ------------------------------------------


def _engine() -> ContextEngine:
    return ContextEngine.from_documents(
        [
            {"id": "a", "text": "context engineering decides what a model sees"},
            {"id": "b", "text": "memory decay forgets old turns"},
            {"id": "c", "text": "context windows have a token budget"},
            {"id": "d", "text": "retrieval finds context for a question"},
        ],
        embedder=HashingEmbedder(32),
        retrieval="keyword",
    )


def _trained_ranker():
    engine = _engine()
    engine.fit([RankingExample("context", ["a"]), RankingExample("memory", ["b"])])
    return engine.reranker


def _occupy(tmp_path, kind):
    path = tmp_path / "model.json"
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    if kind == "text file":
        path.write_text("my notes\n")
    elif kind == "json of another application":
        path.write_text('{"settings": {"theme": "dark"}}')
    elif kind == "a model of another kind":
        path.write_text(json.dumps({"format": "ctxengine-query-adapter", "format_version": 1}))
    elif kind == "link to a file":
        path.symlink_to(notes)
    elif kind == "directory":
        path.mkdir()
        (path / "keep.txt").write_text("mine")
    elif kind == "fifo":
        os.mkfifo(path)
    return path, notes


def _snapshot(tmp_path):
    out = {}
    for entry in sorted(tmp_path.rglob("*")):
        if entry.is_symlink():
            out[str(entry)] = ("link", os.readlink(entry))
        elif entry.is_file():
            out[str(entry)] = ("file", _digest(entry))
        else:
            out[str(entry)] = ("other", None)
    return out


@pytest.mark.parametrize(
    "kind",
    [
        "text file",
        "json of another application",
        "a model of another kind",
        "link to a file",
        "directory",
        "fifo",
    ],
)
def test_saving_a_model_over_a_file_it_did_not_write_is_refused(tmp_path, kind, alarm):
    ranker = _trained_ranker()
    path, _ = _occupy(tmp_path, kind)
    before = _snapshot(tmp_path)
    with pytest.raises(IndexFormatError):
        ranker.save(path)  # replaced the user's file (a directory: a bare OSError)
    assert _snapshot(tmp_path) == before  # no temporary file left either


def test_saving_a_model_over_an_earlier_save_replaces_it(tmp_path):
    ranker = _trained_ranker()
    path = ranker.save(tmp_path / "model.json")
    os.chmod(path, 0o640)
    assert ranker.save(path) == path
    assert LinearScorer.load(path).to_dict() == ranker.model.to_dict()
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_saving_a_model_never_writes_through_a_link_at_the_temporary_name(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    (tmp_path / ".model.json.tmp").symlink_to(notes)  # the old fixed temporary name
    _trained_ranker().save(tmp_path / "model.json")
    assert notes.read_text() == "my notes\n"
    assert (tmp_path / ".model.json.tmp").is_symlink()


def test_numbers_beyond_float_range_in_a_log_or_a_model_file_are_typed_errors(tmp_path):
    # JSON ints have no size limit: 10**400 where a time or a weight belongs is as
    # non-finite as inf, a typed error naming the file (it was a bare OverflowError)
    huge = "1" + "0" * 400
    log = tmp_path / "feedback.jsonl"
    log.write_bytes(
        RECORD + b"\n" + RECORD.replace(b'"time": 1.0', b'"time": ' + huge.encode()) + b"\n"
    )
    with pytest.raises(StoreError, match="feedback.jsonl:2"):
        FeedbackLog(log).records()
    path = _trained_ranker().save(tmp_path / "model.json")
    data = json.loads(path.read_text())
    data["intercept"] = int(huge)
    path.write_text(json.dumps(data))
    with pytest.raises(IndexFormatError):
        LinearScorer.load(path)
