import json
import re
import subprocess
import sys
from pathlib import Path

from ctxengine.cli import main
from ctxengine.demo import HISTORY


def test_demo_prints_both_turns_within_budget(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "turn 1" in out and "turn 2" in out
    totals = [int(used) for used, budget in re.findall(r"total\s*│\s*(\d+) / (\d+)", out)]
    assert len(totals) >= 2 and all(0 < used <= 800 for used in totals)
    assert "history" in out  # memory shows up on turn 2
    # the re-ranking stages as the default chain names them, not "mmr"
    assert (
        re.search(r"\bdedup\b", out)
        and re.search(r"\btags\b", out)
        and not re.search(r"\bmmr\b", out)
    )
    assert not re.search(
        r"sentences \d+,\d+", out
    )  # no list of sentence numbers for documents kept whole
    # decay is visible: the six-day-old off-topic turn is dropped, the day-old relevant one is in
    memory = out.split("Memory: every stored turn", 1)[1]
    rows = [line for line in memory.splitlines() if re.match(r"^\W*\d+\.\d (d|h)\b", line)]
    assert len(rows) == len(HISTORY)
    assert any("6.0 d" in row and "dropped" in row and "Unrelated" in row for row in rows)
    assert any("1.1 d" in row and "yes" in row and "Explain" in row for row in rows)


def test_build_over_a_folder_as_json(tmp_path, capsys):
    (tmp_path / "a.md").write_text(
        "# Embeddings\nEmbeddings map text to vectors. Cosine ranks by meaning."
    )
    (tmp_path / "b.txt").write_text("TF-IDF weighs rare terms. BM25 saturates term frequency.")
    (tmp_path / "skip.py").write_text("print('not a document')")
    code = main(
        [
            "build",
            "--docs",
            str(tmp_path),
            "--query",
            "What does TF-IDF weigh?",
            "--budget",
            "120",
            "--retrieval",
            "keyword",
            "--json",
        ]
    )
    assert code == 0
    packet = json.loads(capsys.readouterr().out)
    assert packet["tokens_used"] <= 120
    assert packet["documents"][0]["id"] == "b.txt"


def test_build_errors_are_clean(tmp_path, capsys):
    code = main(["build", "--docs", str(tmp_path / "missing"), "--query", "x"])
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_entry_point_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "ctxengine", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "demo" in out.stdout


def test_version_and_help_document_the_cache():
    from ctxengine import __version__

    out = subprocess.run(
        [sys.executable, "-m", "ctxengine", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == f"ctxengine {__version__}"
    # the version the package reports is the one it is distributed as
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'\nversion = "{__version__}"\n' in pyproject
    helped = subprocess.run(
        [sys.executable, "-m", "ctxengine", "build", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "CTXENGINE_EMBED_CACHE" in helped.stdout and "--embed-cache" in helped.stdout


GUIDE = """# Operations

## Deploying

Deploy with one command. It builds the image first and then rolls it out.

## Rotating keys

Rotate the API keys every ninety days. Old keys stop working a day later.

```bash
ops keys rotate --all
```
"""


def test_build_splits_files_and_cites_file_and_heading(tmp_path, capsys):
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "runbook.md").write_text(GUIDE)
    (tmp_path / "lunch.txt").write_text("Lunch is served at noon in the canteen.")
    code = main(
        [
            "build",
            "--docs",
            str(tmp_path),
            "--query",
            "How often do we rotate the API keys?",
            "--retrieval",
            "keyword",
            "--budget",
            "300",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert re.search(r"indexed 3 passages from 2 files in [\d.]+ s", out)
    assert "ops/runbook.md#Operations > Rotating keys" in out
    assert "ninety days" in out and "ops keys rotate --all" in out  # the code block came whole

    main(
        [
            "build",
            "--docs",
            str(tmp_path),
            "--query",
            "rotate keys",
            "--retrieval",
            "keyword",
            "--whole-files",
            "--json",
        ]
    )
    assert json.loads(capsys.readouterr().out)["documents"][0]["id"] == "ops/runbook.md"


def test_embedding_cache_defaults_to_the_user_cache_directory(tmp_path, monkeypatch, capsys):
    import os

    from ctxengine.cli import _embed_environment, _parser, default_cache_dir

    (tmp_path / "a.md").write_text("Some text about caching.")
    argv = ["build", "--docs", str(tmp_path), "--query", "caching", "--retrieval", "keyword"]

    def cache_for(extra: list[str]) -> str | None:
        return _embed_environment(_parser().parse_args([*argv, *extra]))["CTXENGINE_EMBED_CACHE"]

    monkeypatch.delenv("CTXENGINE_EMBED_CACHE", raising=False)
    assert cache_for([]) == str(default_cache_dir())
    assert cache_for(["--embed-cache", str(tmp_path / "flag")]) == str(tmp_path / "flag")
    assert cache_for(["--no-embed-cache"]) is None
    monkeypatch.setenv("CTXENGINE_EMBED_CACHE", str(tmp_path / "from-env"))
    # the variable wins over the default: nothing to change
    assert "CTXENGINE_EMBED_CACHE" not in _embed_environment(_parser().parse_args(argv))
    assert cache_for(["--embed-cache", str(tmp_path / "flag")]) == str(tmp_path / "flag")
    # a command run from Python leaves the caller's environment as it was
    before = dict(os.environ)
    for extra in ([], ["--embed-cache", str(tmp_path / "flag")], ["--no-embed-cache"]):
        assert main([*argv, *extra, "--json"]) == 0
        assert dict(os.environ) == before


def test_hybrid_build_fills_the_disk_cache_and_reports_the_time(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text(GUIDE)
    cache = tmp_path / "cache"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctxengine",
            "build",
            "--docs",
            str(docs),
            "--query",
            "rotate keys",
            "--embed-cache",
            str(cache),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert re.search(r"indexed 2 passages from 1 files in [\d.]+ s \(hybrid\)", run.stdout)
    assert list(cache.glob("*.sqlite*")) or list(cache.rglob("*")), "nothing was cached on disk"
    assert "Loading weights" not in run.stderr + run.stdout
