import json
import re
import subprocess
import sys

from ctxengine.cli import main


def test_demo_prints_both_turns_within_budget(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "turn 1" in out and "turn 2" in out
    totals = [int(used) for used, budget in re.findall(r"total\s*│\s*(\d+) / (\d+)", out)]
    assert len(totals) >= 2 and all(0 < used <= 800 for used in totals)
    assert "history" in out  # memory shows up on turn 2


def test_build_over_a_folder_as_json(tmp_path, capsys):
    (tmp_path / "a.md").write_text("# Embeddings\nEmbeddings map text to vectors. Cosine ranks by meaning.")
    (tmp_path / "b.txt").write_text("TF-IDF weighs rare terms. BM25 saturates term frequency.")
    (tmp_path / "skip.py").write_text("print('not a document')")
    code = main(["build", "--docs", str(tmp_path), "--query", "What does TF-IDF weigh?",
                 "--budget", "120", "--retrieval", "keyword", "--json"])
    assert code == 0
    packet = json.loads(capsys.readouterr().out)
    assert packet["tokens_used"] <= 120
    assert packet["documents"][0]["id"] == "b.txt"


def test_build_errors_are_clean(tmp_path, capsys):
    code = main(["build", "--docs", str(tmp_path / "missing"), "--query", "x"])
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_entry_point_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "ctxengine", "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "demo" in out.stdout
