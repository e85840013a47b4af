"""Files and stores a user names under hostile conditions (another application's
database, a text file, a FIFO, a link, a damaged cache, undecodable names, a corrupt
feedback log): a ``CtxEngineError`` naming the file, which is left as it was; see
``test_reliability_surface.py`` for the entry-point sweep."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import pytest

from ctxengine import ContextEngine
from ctxengine.agent import ToolResultStore
from ctxengine.chunking import read_folder
from ctxengine.embeddings import CachedEmbedder, HashingEmbedder
from ctxengine.errors import ConfigurationError, InvalidInputError, StoreError
from ctxengine.learn import FeedbackLog
from ctxengine.memory.sqlite import SQLiteStore

# --- files the user names ----------------------------------------------------------------


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_tool_store_refuses_another_applications_database(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    db.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="not a tool-result store"):
        ToolResultStore(path)  # created its table inside the other database
    assert _digest(path) == before


@pytest.mark.parametrize("make", ["text", "directory", "fifo", "symlink"])
def test_a_tool_store_refuses_what_is_not_an_sqlite_file(tmp_path, make, alarm):
    path = tmp_path / "tools.db"
    if make == "text":
        path.write_text("my notes")
    elif make == "directory":
        path.mkdir()
    elif make == "fifo":
        os.mkfifo(path)  # sqlite3.connect blocked on it
    else:
        (tmp_path / "real.db").write_bytes(b"")
        path.symlink_to(tmp_path / "real.db")
    with pytest.raises(StoreError):
        ToolResultStore(path)
    if make == "text":
        assert path.read_text() == "my notes"


def test_a_tool_store_keeps_its_outputs_across_opens(tmp_path):
    store = ToolResultStore(tmp_path / "tools.db")
    handle = store.put("s", "c1", "look", "{}", "the output")
    with pytest.raises(InvalidInputError, match="tool result text"):
        store.put("s", "c2", "look", "{}", "bad \ud800 output")  # was UnicodeEncodeError
    store.close()
    again = ToolResultStore(tmp_path / "tools.db")
    assert again.handles("s") == [handle] and again.get("s", handle).text == "the output"


def test_an_embedding_cache_path_that_cannot_be_a_directory_is_a_store_error(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("precious")
    with pytest.raises(StoreError, match="embedding cache"):
        CachedEmbedder(HashingEmbedder(16), taken)  # was FileExistsError
    assert taken.read_text() == "precious"


def test_a_damaged_embedding_cache_is_a_store_error_and_is_left_alone(tmp_path):
    CachedEmbedder(HashingEmbedder(16), tmp_path).embed(["a text"])
    (cache,) = tmp_path.glob("embeddings-*.sqlite")
    for extra in tmp_path.glob("embeddings-*.sqlite-*"):
        extra.unlink()
    cache.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)  # a header, then nothing
    with pytest.raises(StoreError, match="embedding cache"):
        CachedEmbedder(HashingEmbedder(16), tmp_path).embed(["b text"])
    cache.write_bytes(b"not a database")
    with pytest.raises(StoreError, match="not a SQLite database"):
        CachedEmbedder(HashingEmbedder(16), tmp_path)
    assert cache.read_bytes() == b"not a database"


def test_an_sqlite_path_sqlite_cannot_encode_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="UTF-8"):
        SQLiteStore(f"{tmp_path}/chat\udcff.db")  # was UnicodeEncodeError


def test_a_folder_with_an_undecodable_file_name_is_indexed(tmp_path):
    # One such name made `ctxengine build` refuse the whole folder (a lone surrogate id).
    (tmp_path / "plain.md").write_text("Rotate the API keys monthly.")
    name = os.fsdecode(b"k\xffy.md")
    (tmp_path / name).write_text("Keys rotate every month.")
    documents = read_folder(tmp_path)
    assert sorted(doc.id for doc in documents) == ["k\ufffdy.md", "plain.md"]
    engine = ContextEngine.from_documents(documents, retrieval="keyword")
    json.dumps(engine.build("rotate keys").to_dict())


# --- feedback logs ------------------------------------------------------------------


RECORD = json.dumps(
    {
        "time": 1.0,
        "session_id": "s",
        "query": "q",
        "item_id": "a",
        "useful": True,
        "kind": "document",
    }
).encode()


@pytest.mark.parametrize(
    "bad",
    [
        b"{" * 100_000,  # was a RecursionError
        b"\xff\xfe not utf-8",  # was a UnicodeDecodeError
        b'{"torn',  # was skipped silently although later lines follow
        RECORD.replace(b"1.0", b'"yesterday"'),  # a str time was a ValueError in examples()
    ],
    ids=["deep", "not-utf8", "bad-json-mid-file", "str-time"],
)
def test_a_feedback_log_line_that_is_not_a_record_is_a_store_error(tmp_path, bad):
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(bad + b"\n" + RECORD + b"\n")
    with pytest.raises(StoreError, match=":1 is not a feedback record"):
        FeedbackLog(path).examples()


def test_a_torn_last_feedback_line_is_skipped(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(RECORD + b"\n" + RECORD[:30])  # a crash mid-write
    assert [row["item_id"] for row in FeedbackLog(path).records()] == ["a"]
