"""The README's quickstart runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


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
    """The README's learned-ranker example trains, explains, saves and reloads as written."""
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- learn:start -->", 1)[1].split("<!-- learn:end -->", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)  # the example saves "support-index" in the working directory
    namespace: dict = {}
    exec(compile(code, "README context modeling", "exec"), namespace)  # noqa: S102 - the README's own code, run as written
    engine, packet = namespace["engine"], namespace["packet"]
    assert namespace["report"]["documents"]["examples"] == 6
    assert packet.contributions and set(packet.contributions) <= {d.id for d in packet.documents}
    assert (tmp_path / "support-index" / "learned_ranker.json").exists()
    assert engine.reranker is namespace["rules"]  # the example's last line restores the rules
    assert "refund" in capsys.readouterr().out
