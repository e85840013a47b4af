"""Saving where the file system says no: a parent that is a file, a folder on a file
system that refuses new entries, a write cut short (a full disk, a file-size quota). Each
is a ``StoreError`` naming the path, never a bare ``OSError``; what was saved before is
still there and still loads, and no staging file is left behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ctxengine import ContextEngine
from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import InvalidInputError, StoreError
from ctxengine.learn import LinearScorer, RankingExample

DOCS = [
    {"id": "a", "text": "context engineering decides what a model sees"},
    {"id": "b", "text": "memory decay forgets old turns"},
    {"id": "c", "text": "context windows have a token budget"},
]


def _engine() -> ContextEngine:
    return ContextEngine.from_documents(DOCS, embedder=HashingEmbedder(32), retrieval="keyword")


def _unwritable(tmp_path, kind):
    if kind == "parent is a file":
        (tmp_path / "notes.txt").write_text("mine")
        return tmp_path / "notes.txt" / "out"
    return Path("/proc/ctxengine-cannot-be-here")  # procfs: no new entries


@pytest.mark.parametrize("kind", ["parent is a file", "procfs"])
def test_saving_where_nothing_can_be_written_is_a_store_error(tmp_path, kind):
    engine = _engine()
    target = _unwritable(tmp_path, kind)
    with pytest.raises(StoreError, match="cannot"):
        engine.save(target)  # was FileNotFoundError / FileExistsError
    engine.fit([RankingExample("context", ["a"]), RankingExample("memory", ["b"])])
    with pytest.raises(StoreError, match="cannot"):
        engine.reranker.save(target)
    if kind == "parent is a file":
        assert (tmp_path / "notes.txt").read_text() == "mine"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# In a child process: a file-size limit makes every write past 2 KB fail with EFBIG, as
# a full disk fails with ENOSPC (SIGXFSZ ignored, so the write returns the error).
CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from ctxengine import ContextEngine
    from ctxengine.embeddings import HashingEmbedder
    from ctxengine.errors import StoreError
    from ctxengine.learn import LinearScorer

    index, model = sys.argv[1], sys.argv[2]
    docs = [{"id": f"d{i}", "text": "a long document about context " * 40} for i in range(20)]
    engine = ContextEngine.from_documents(docs, embedder=HashingEmbedder(32), retrieval="keyword")
    scorer = LinearScorer.load(model)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    out = []
    for save in (lambda: engine.save(index), lambda: scorer.save(model)):
        try:
            save()
            out.append("saved")
        except StoreError as exc:
            out.append("StoreError")
        except BaseException as exc:
            out.append(type(exc).__name__)
    print(json.dumps(out))
    """
)


def test_a_save_cut_short_by_the_file_system_keeps_the_old_index_and_model(tmp_path):
    old = _engine()
    old.fit([RankingExample("context", ["a"]), RankingExample("memory", ["b"])])
    index = old.save(tmp_path / "index")
    model = old.reranker.save(tmp_path / "model.json")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(index), str(model)],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == '["StoreError", "StoreError"]'
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no staging left
    loaded = ContextEngine.load(index, embedder=HashingEmbedder(32))
    assert sorted(d.id for d in loaded.retrieve("context", k=5)) == ["a", "c"]
    assert LinearScorer.load(model).to_dict() == old.reranker.model.to_dict()


def test_a_save_without_the_atomic_swap_cut_short_midway_puts_the_old_index_back(
    tmp_path, monkeypatch
):
    # Where renameat2(RENAME_EXCHANGE) is missing a save is two renames (old index aside,
    # new one in); if the second fails, the path must not be left empty.
    from ctxengine.persist import saving

    index = _engine().save(tmp_path / "index")
    new = ContextEngine.from_documents(
        ["owls hunt at night", "owls nest in trees"], embedder=HashingEmbedder(32)
    )
    monkeypatch.setattr(saving, "exchange", lambda staging, target: False)
    real = Path.rename

    def rename(self, target):
        if Path(target) == index and ".old-" not in self.name:  # the new index going in
            raise OSError(28, "No space left on device")
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(StoreError, match="No space"):
        new.save(index)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # nothing aside, no staging
    loaded = ContextEngine.load(index, embedder=HashingEmbedder(32))
    assert sorted(d.id for d in loaded.retrieve("context", k=5)) == ["a", "c"]


# --- an index gives back the metadata it was given -------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [{1: "x"}, {True: "x"}, {"nested": {2: "y"}}, {"n": float("nan")}, {"s": "x\ud800"}],
    ids=["int key", "bool key", "nested int key", "nan", "lone surrogate"],
)
def test_saving_metadata_json_would_change_is_refused(tmp_path, metadata):
    engine = ContextEngine.from_documents(
        [{"id": "a", "text": "context", "metadata": metadata}],
        embedder=HashingEmbedder(32),
        retrieval="keyword",
    )
    with pytest.raises(InvalidInputError, match="document 'a'"):
        engine.save(tmp_path / "index")  # {1: "x"} loaded back as {"1": "x"}
    assert not (tmp_path / "index").exists() and list(tmp_path.iterdir()) == []


def test_saved_metadata_loads_back_equal(tmp_path):
    metadata = {"year": 2020, "tags": ["a", "b"], "deep": {"k": [1.5, None, True]}, "é": "ü"}
    engine = ContextEngine.from_documents(
        [{"id": "a", "text": "context", "metadata": metadata}],
        embedder=HashingEmbedder(32),
        retrieval="keyword",
    )
    loaded = ContextEngine.load(engine.save(tmp_path / "index"), embedder=HashingEmbedder(32))
    assert loaded.retrieve("context")[0].document.metadata == metadata
