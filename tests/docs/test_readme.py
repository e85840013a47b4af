"""The README's code runs as written: the Quickstart, every other ```python block, and the
context-modeling example it links to (docs/concepts/context-model.md)."""

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONTEXT_MODEL = ROOT / "docs" / "concepts" / "context-model.md"
BLOCKS = re.findall(
    r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE
)


def test_readme_fits_a_few_screens():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300
    # the two fresh-machine commands come first, and CI runs the test one
    assert "make demo" in "\n".join(lines[:6]) and "make test" in "\n".join(lines[:6])
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("index", range(1, len(BLOCKS)))
def test_every_other_readme_block_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        exec(compile(BLOCKS[index], f"README.md[{index}]", "exec"), {"__name__": "__main__"})  # noqa: S102 - the README's own code, run as written
    assert capsys.readouterr().out.strip()  # every example shows its result


def test_quickstart_block_runs_and_fits(capsys):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README quickstart", "exec"), namespace)  # noqa: S102 - the README's own code, run as written
    packet = namespace["packet"]
    assert packet.tokens_used <= 800 and packet.documents
    assert "Timings" in capsys.readouterr().out


def test_context_modeling_section_runs(tmp_path, monkeypatch, capsys):
    """The documented learned-ranker example trains, explains, saves and reloads as written."""
    section = CONTEXT_MODEL.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)  # the example saves "support-index" in the working directory
    namespace: dict = {}
    exec(compile(code, "docs/concepts/context-model.md", "exec"), namespace)  # noqa: S102 - the README's own code, run as written
    engine, packet = namespace["engine"], namespace["packet"]
    assert namespace["report"]["documents"]["examples"] == 6
    assert packet.contributions and set(packet.contributions) <= {d.id for d in packet.documents}
    assert (tmp_path / "support-index" / "learned_ranker.json").exists()
    assert engine.reranker is namespace["rules"]  # the example's last line restores the rules
    assert "refund" in capsys.readouterr().out
