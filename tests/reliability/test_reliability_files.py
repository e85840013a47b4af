"""Files and stores under hostile conditions: a save never deletes what it did not write
and is never interrupted into nothing; foreign SQLite files stay byte-for-byte untouched;
special files and links are refused, never followed or blocked on; every number a
manifest carries is checked."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ctxengine.embeddings import HashingEmbedder
from ctxengine.engine import ContextEngine
from ctxengine.errors import (
    ConfigurationError,
    CtxEngineError,
    IndexFormatError,
    InvalidInputError,
    InvalidTypeError,
    StoreError,
)
from ctxengine.memory.sqlite import SQLiteStore
from ctxengine.types import Document

DOCS = [
    Document(id="a", text="Cats sleep most of the day in warm places."),
    Document(id="b", text="Dogs are loyal companions and enjoy long walks."),
    Document(id="c", text="Parrots can learn to mimic human speech."),
]


# a blocked FIFO or a followed link fails the test after this many seconds (conftest's alarm)
ALARM_SECONDS = 60


def _engine(**kwargs) -> ContextEngine:
    return ContextEngine.from_documents(DOCS, embedder=HashingEmbedder(64), **kwargs)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(path: Path) -> dict[str, str]:
    return {p.name: _digest(p) for p in sorted(path.iterdir()) if p.is_file()}


# --- 1. save never deletes what it did not write ------------------------------------------


def test_save_over_a_directory_holding_the_memory_database_keeps_every_turn(tmp_path):
    index = tmp_path / "kb-index"
    index.mkdir()
    url = f"sqlite:///{index / 'chat.db'}"
    engine = _engine(memory_url=url)
    engine.remember("user", "my locker code is 4512", session_id="s")
    with pytest.raises(IndexFormatError, match="not part of a ctxengine index"):
        engine.save(index)
    assert [t.content for t in SQLiteStore(index / "chat.db").turns("s")] == [
        "my locker code is 4512"
    ]


@pytest.mark.parametrize(
    "foreign",
    [
        pytest.param(lambda d: (d / "notes.txt").write_text("mine"), id="file"),
        pytest.param(lambda d: (d / "sub").mkdir(), id="subdirectory"),
        pytest.param(lambda d: (d / ".hidden").write_text("x"), id="hidden-file"),
        pytest.param(lambda d: os.symlink("/etc/hostname", d / "link"), id="symlink"),
        pytest.param(lambda d: os.mkfifo(d / "pipe"), id="fifo"),
        pytest.param(lambda d: (d / "documents.jsonl.bak").write_text("x"), id="index-like-name"),
    ],
)
def test_save_over_an_index_with_a_foreign_entry_is_refused_and_changes_nothing(tmp_path, foreign):
    index = tmp_path / "idx"
    _engine().save(index)
    foreign(index)
    before = sorted(os.listdir(index)), _tree(index)
    with pytest.raises(IndexFormatError):
        _engine().save(index)
    assert (sorted(os.listdir(index)), _tree(index)) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_save_to_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    _engine().save(real)
    os.symlink(real, tmp_path / "link")
    with pytest.raises(IndexFormatError, match="symbolic link"):
        _engine().save(tmp_path / "link")


def test_save_replaces_an_index_and_leaves_no_hidden_copies(tmp_path):
    _engine().save(tmp_path / "idx")
    bigger = _engine()
    bigger.add_documents([Document(id="d", text="Goldfish remember things for months.")])
    bigger.save(tmp_path / "idx")
    assert (
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64)).retriever.get("d").id
        == "d"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = {paths!r}
    import ctxengine.persist.saving as persist  # where the save calls the atomic swap
    from ctxengine.embeddings import HashingEmbedder
    from ctxengine.engine import ContextEngine
    from ctxengine.types import Document

    old = ContextEngine.from_documents(
        [Document(id=i, text=f"old document {{i}} about cats") for i in "abc"], embedder=HashingEmbedder(64))
    new = ContextEngine.from_documents(
        [Document(id=str(i), text=f"new document number {{i}} about owls") for i in range(5)],
        embedder=HashingEmbedder(64))
    root = sys.argv[1]

    def run(step):
        calls = [0]
        def tick():
            calls[0] += 1
            if calls[0] == step:
                os.kill(os.getpid(), signal.SIGKILL)
        def hook(real):
            def wrapped(*args, **kwargs):
                tick()
                return real(*args, **kwargs)
            return wrapped
        for name in ("rename", "replace", "unlink", "rmdir", "mkdir"):
            setattr(os, name, hook(getattr(os, name)))
        swap = getattr(persist, "exchange", None)  # the atomic swap, where there is one
        def exchange(a, b):
            tick()
            done = swap(a, b)
            tick()
            return done
        if swap is not None:
            persist.exchange = exchange
        new.save(os.path.join(root, f"idx{{step}}"))
        os._exit(0)

    # One import, then a forked child per step, killed at its step-th file operation.
    for step in range(1, 60):
        old.save(os.path.join(root, f"idx{{step}}"))
        pid = os.fork()
        if pid == 0:
            run(step)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            print("DONE", step)
            break
        print("KILLED", step)
    """
)


def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_index(tmp_path):
    script = tmp_path / "killer.py"
    script.write_text(_KILLER.format(paths=[p for p in sys.path if p]))
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, check=False
    )
    lines = run.stdout.split()
    assert "DONE" in lines, run.stderr[-1000:]
    steps = int(lines[-1])
    assert lines.count("KILLED") == steps - 1 >= 3  # killed before, during and after the swap
    seen = set()
    for step in range(1, steps + 1):
        loaded = ContextEngine.load(
            tmp_path / f"idx{step}", embedder=HashingEmbedder(64)
        )  # never nothing, never half
        ids = sorted(d.id for d in loaded.retriever.documents)
        assert ids in (["a", "b", "c"], ["0", "1", "2", "3", "4"])
        seen.add(tuple(ids))
    assert len(seen) == 2  # both outcomes were reached, so the kills hit the swap


# --- 2. a foreign SQLite file is refused and left byte for byte ----------------------------


def _foreign_db(path: Path, *, version: int = 0, application: int = 0) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    if version:
        conn.execute(f"PRAGMA user_version = {version}")
    if application:
        conn.execute(f"PRAGMA application_id = {application}")
    conn.commit()
    conn.close()


def _run_sql(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(statement)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: _foreign_db(p), id="users-table-version-0"),
        pytest.param(lambda p: _foreign_db(p, version=7), id="users-table-version-7"),
        pytest.param(lambda p: _foreign_db(p, version=2), id="users-table-our-version"),
        pytest.param(lambda p: _run_sql(p, "PRAGMA application_id = 42"), id="application-id-only"),
        pytest.param(lambda p: _run_sql(p, "CREATE VIEW v AS SELECT 1"), id="a-view"),
        pytest.param(
            lambda p: _run_sql(p, "CREATE TABLE t (x)"),
            id="one-empty-table",
        ),
    ],
)
def test_a_foreign_sqlite_file_is_refused_and_untouched(tmp_path, make):
    path = tmp_path / "app.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not modified|not a ctxengine"):
        SQLiteStore(path)
    with pytest.raises(StoreError):
        _engine(memory_url=f"sqlite:///{path}")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, no -shm


def test_an_empty_file_and_a_new_path_become_stores(tmp_path):
    (tmp_path / "empty.db").touch()
    for path in (tmp_path / "empty.db", tmp_path / "new.db"):
        with SQLiteStore(path) as store:
            assert store.count() == 0


# --- 3. every number a manifest or constructor carries is checked -------------------------


def _edit_manifest(path: Path, edit) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda m: m["embedder"].update(dimension=0, name="hashing-0"), id="dimension-0"
        ),
        pytest.param(
            lambda m: m["embedder"].update(dimension=-3, name="hashing--3"), id="dimension-negative"
        ),
        pytest.param(lambda m: m["embedder"].update(dimension=64.0), id="dimension-float"),
        pytest.param(lambda m: m["embedder"].update(dimension=True), id="dimension-bool"),
        pytest.param(lambda m: m["embedder"].update(dimension="64"), id="dimension-str"),
        pytest.param(lambda m: m["embedder"].update(dimension=10**400), id="dimension-huge"),
        pytest.param(lambda m: m.update(documents=-1), id="documents-negative"),
        pytest.param(lambda m: m.update(documents=3.0), id="documents-float"),
        pytest.param(lambda m: m.update(documents=None), id="documents-null"),
        pytest.param(lambda m: m["embedder"].update(name=5), id="embedder-name-number"),
    ],
)
def test_manifest_numbers_are_checked(tmp_path, edit):
    _engine().save(tmp_path / "idx")
    _edit_manifest(tmp_path / "idx", edit)
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "idx").build("cats")


def test_a_zero_dimension_index_with_valid_checksums_is_refused_in_a_subprocess(tmp_path):
    """The original crash was SIGFPE at the first build: run it where a crash is visible."""
    index = tmp_path / "idx"
    ContextEngine.from_documents(DOCS, embedder=HashingEmbedder(1)).save(index)
    _edit_manifest(index, lambda m: m["embedder"].update(dimension=0, name="hashing-0"))
    code = (
        "import sys; from ctxengine.engine import ContextEngine\n"
        "from ctxengine.errors import IndexFormatError\n"
        f"try: ContextEngine.load({str(index)!r}).build('cats')\n"
        "except IndexFormatError: sys.exit(3)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert run.returncode == 3, run.stderr[-500:]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, InvalidInputError),
        (-1, InvalidInputError),
        ("64x", InvalidTypeError),
        ("64", InvalidTypeError),
        (2.9, InvalidTypeError),
        (64.0, InvalidTypeError),
        (True, InvalidTypeError),
        (None, InvalidTypeError),
        (10**400, InvalidInputError),
        (float("nan"), InvalidTypeError),
    ],
)
def test_hashing_embedder_dimension_is_validated(value, error):
    with pytest.raises(error):
        HashingEmbedder(value)


# --- 4. FIFOs, devices and links are refused, never blocked on or followed -----------------


@pytest.mark.parametrize(
    "name", ["documents.jsonl", "tokens.jsonl", "embeddings.npy", "manifest.json"]
)
def test_a_fifo_in_an_index_is_refused_without_blocking(tmp_path, name, alarm):
    _engine().save(tmp_path / "idx")
    (tmp_path / "idx" / name).unlink()
    os.mkfifo(tmp_path / "idx" / name)
    with pytest.raises(IndexFormatError, match="regular file"):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64))


@pytest.mark.parametrize("name", ["documents.jsonl", "embeddings.npy", "manifest.json"])
def test_a_symlink_out_of_an_index_is_not_followed(tmp_path, name):
    _engine().save(tmp_path / "idx")
    outside = tmp_path / "outside"
    (tmp_path / "idx" / name).rename(outside)  # same bytes: checksums would pass if followed
    os.symlink(outside, tmp_path / "idx" / name)
    with pytest.raises(IndexFormatError, match="symbolic link"):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64))


def test_a_device_in_an_index_is_refused(tmp_path, alarm):
    _engine().save(tmp_path / "idx")
    (tmp_path / "idx" / "tokens.jsonl").unlink()
    os.symlink("/dev/zero", tmp_path / "idx" / "tokens.jsonl")
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64))


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_a_fifo_as_the_sqlite_path_is_refused_without_blocking(tmp_path, suffix, alarm):
    os.mkfifo(tmp_path / f"chat.db{suffix}")
    with pytest.raises(StoreError, match="regular file"):
        SQLiteStore(tmp_path / "chat.db")


def test_a_symlink_as_the_sqlite_path_is_refused(tmp_path):
    with SQLiteStore(tmp_path / "real.db"):
        pass
    before = _digest(tmp_path / "real.db")
    os.symlink(tmp_path / "real.db", tmp_path / "chat.db")
    with pytest.raises(StoreError, match="symbolic link"):
        _engine(memory_url=f"sqlite:///{tmp_path / 'chat.db'}")
    assert _digest(tmp_path / "real.db") == before


def test_a_directory_as_the_sqlite_path_is_refused(tmp_path):
    (tmp_path / "chat.db").mkdir()
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path / "chat.db")


# --- 11 (files). NUL bytes, deep JSON, huge .npy headers are typed errors -------------------


def test_nul_in_paths_and_urls_is_a_typed_error(tmp_path):
    with pytest.raises(ConfigurationError):
        _engine(memory_url=f"sqlite:///{tmp_path}/a\x00b.db")
    with pytest.raises(ConfigurationError):
        _engine(memory_url=f"sqlite:///{tmp_path}/a%00b.db")
    with pytest.raises(InvalidInputError):
        _engine().save(f"{tmp_path}/idx\x00x")
    with pytest.raises(InvalidInputError):
        ContextEngine.load(f"{tmp_path}/idx\x00x")


def test_a_huge_npy_header_is_an_index_format_error(tmp_path):
    _engine().save(tmp_path / "idx")
    path = tmp_path / "idx" / "embeddings.npy"
    raw = path.read_bytes()
    header = raw[: raw.index(b"\n") + 1]
    forged = header.replace(b"(3, 64)", b"(300000000000, 64)")
    forged = forged[:-1].ljust(len(header) - 1) + b"\n" if len(forged) < len(header) else forged
    path.write_bytes(forged + raw[len(header) :])
    _edit_manifest(tmp_path / "idx", lambda m: m["files"].update({"embeddings.npy": _digest(path)}))
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64))


def test_deeply_nested_json_in_a_loaded_index_is_an_index_format_error(tmp_path):
    _engine().save(tmp_path / "idx")
    path = tmp_path / "idx" / "documents.jsonl"
    row = '{"id": "z", "text": "t", "metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}\n"
    path.write_text(path.read_text() + row)
    _edit_manifest(
        tmp_path / "idx", lambda m: m["files"].update({"documents.jsonl": _digest(path)})
    )
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64))


def test_deeply_nested_metadata_is_refused_on_save(tmp_path):
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    engine = _engine()
    engine.add_documents([Document(id="deep", text="deep metadata", metadata={"x": nested})])
    with pytest.raises(CtxEngineError):
        engine.save(tmp_path / "idx")
    assert not (tmp_path / "idx").exists()
