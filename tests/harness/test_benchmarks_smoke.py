"""The benchmark harness cannot rot: every section runs on a tiny slice and the report is
written (to a temporary folder, never over the committed ``benchmarks/RESULTS.md``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.__main__ import main
from benchmarks.sections import SECTIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = REPO_ROOT / "benchmarks" / "RESULTS.md"


def _digest(path: Path) -> str | None:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture
def keep_env(monkeypatch):
    # the harness points CTXENGINE_DATA at --data for the scripts it runs; undo that after.
    # setenv first so monkeypatch records the original state (absent) and restores it.
    monkeypatch.setenv("CTXENGINE_DATA", "")
    monkeypatch.delenv("CTXENGINE_DATA")


def test_report_renders_tables_and_plots(tmp_path):
    results = {
        "command": "python -m benchmarks",
        "quick": False,
        "seconds": 61.0,
        "finished": "today",
        "environment": report.environment(REPO_ROOT),
        "sections": {
            "demo": {
                "name": "demo",
                "title": "Demo section",
                "command": "python -m benchmarks --only demo",
                "status": "ok",
                "seconds": 1.0,
                "headlines": ["hybrid wins by +0.0100"],
                "tables": [
                    report.table(
                        "t", ["system", "nDCG@10"], [["a|b", 0.51234], ["c", None]], ["", ".3f"]
                    )
                ],
                "plots": [
                    {
                        "file": "demo_line.png",
                        "kind": "line",
                        "panels": [{"xlog": True, "series": {"a": [[256, 0.5], [512, 0.6]]}}],
                    },
                    {
                        "file": "demo_bar.png",
                        "kind": "bar",
                        "panels": [{"series": {"a": 0.5, "b": 0.4}, "highlight": ["a"]}],
                    },
                ],
            }
        },
    }
    path = report.write(results, tmp_path)
    text = path.read_text()
    assert "| a\\|b | 0.512 |" in text  # pipes escaped, numbers formatted
    assert "| c | – |" in text
    assert "- **Demo section**: hybrid wins by +0.0100" in text
    assert "![demo_line.png](demo_line.png)" in text and "![demo_bar.png](demo_bar.png)" in text
    for name in ("demo_line.png", "demo_bar.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sentence-transformers" in text and "logical CPUs" in text


def test_sections_outside_the_default_run_have_runnable_scripts():
    """The quick smoke run covers the default sections; the others (slow, or needing a
    server) must at least import and expose main()."""
    import importlib

    for script in ("scaleout", "filters", "reliability", "chunking", "agent_loop", "finetune"):
        assert callable(importlib.import_module(f"benchmarks.{script}").main), script


def test_missing_data_skips_with_a_message(tmp_path, keep_env):
    empty = tmp_path / "no-data"
    empty.mkdir()
    assert (
        main(["--quick", "--only", "memory", "--data", str(empty), "--out", str(tmp_path / "out")])
        == 0
    )
    section = json.loads((tmp_path / "out" / "results.json").read_text())["sections"]["memory"]
    assert section["status"] == "skipped" and "locomo" in section["message"]
    assert "data not found: locomo" in (tmp_path / "out" / "RESULTS.md").read_text()


@pytest.mark.slow
def test_quick_harness_runs_every_section(tmp_path, shared_data, keep_env):
    before = _digest(COMMITTED)
    out = tmp_path / "bench"
    assert main(["--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["sections"]) == [n for n, spec in SECTIONS.items() if spec.default]
    text = (out / "RESULTS.md").read_text()
    for name, section in results["sections"].items():
        assert section["status"] == "ok", (name, section.get("message"))
        assert section["tables"] and all(t["rows"] for t in section["tables"]), name
        assert f"## {section['title']}" in text
    for retrieval_table in results["sections"]["retrieval"]["tables"]:  # SciFact, LoCoMo
        systems = {row[0] for row in retrieval_table["rows"]}
        assert {
            "ctxengine hybrid",
            "LangChain EnsembleRetriever (BM25 + MiniLM, RRF)",
            "LlamaIndex QueryFusion relative_score",
        } <= systems
    for png in (
        "retrieval_ndcg.png",
        "memory_budget.png",
        "compression_budget.png",
        "build_latency.png",
    ):
        assert (out / png).stat().st_size > 1000, png
    # --only reruns one section and keeps the others
    assert main(["--quick", "--only", "store", "--out", str(out)]) == 0
    assert list(json.loads((out / "results.json").read_text())["sections"]) == [
        n for n, spec in SECTIONS.items() if spec.default
    ]
    assert _digest(COMMITTED) == before
