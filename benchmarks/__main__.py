"""``python -m benchmarks``: every benchmark, one command, one report.

Runs each section (a benchmark script's ``main``; the slower extras only with ``--all``
or ``--only``), prints its tables as it goes, and writes ``RESULTS.md`` with PNG plots,
the machine and the package versions, plus ``results.json`` (the raw figures) into ``--out``. ``--only NAME`` (repeatable) runs some
sections and merges them into the ``results.json`` already in ``--out``. ``--quick`` runs a
small slice of each (a smoke test; its figures are not comparable) and writes to
``.cache/benchmarks-quick`` unless ``--out`` says otherwise, so it never overwrites the
committed report. Data comes from ``--data``, ``$CTXENGINE_DATA`` or ``../shared/data``;
sections whose data is missing are skipped with a message.

    python -m benchmarks [--quick | --all] [--only retrieval --only latency] [--data PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def _configure(torch_threads: int | None) -> None:
    # Before anything imports ctxengine: the default embedder reads these once.
    # The cache and offline defaults are set by importing the package (benchmarks/__init__.py).
    os.environ.setdefault("MPLBACKEND", "Agg")
    # One OpenBLAS thread for every system alike (torch keeps its own threads): on a shared
    # 2-core machine a threaded mat-vec spins for tens of ms, and numpy-based peers (vector
    # stores) would pay it while ctxengine's einsum path does not.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if torch_threads:  # torch reads it at import, here and in build_latency's subprocesses
        os.environ["OMP_NUM_THREADS"] = str(torch_threads)
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]


from benchmarks.data import data_folder
from benchmarks.sections import SECTIONS


def run_section(name: str, quick: bool) -> dict[str, Any]:
    from benchmarks.data import data_root

    title, runner, needs, _ = SECTIONS[name]
    command = f"python -m benchmarks --only {name}" + (" --quick" if quick else "")
    section: dict[str, Any] = {"name": name, "title": title, "command": command}
    root = data_root()
    missing = [d for d in needs if root is None or not (root / d).is_dir()]
    if missing:
        message = f"data not found: {', '.join(missing)} (pass --data or set CTXENGINE_DATA)"
        print(f"[{name}] skipped: {message}", flush=True)
        return section | {"status": "skipped", "message": message}
    print(f"\n=== {title} ===", flush=True)
    section["commit"] = _commit()
    started, cpu = time.perf_counter(), _cpu_seconds()
    try:
        result = dict(runner(quick))
        result["script"] = result.pop("command")  # "command" is the harness's own line
        section |= result | {"status": "ok"}
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
        traceback.print_exc()
        section |= {"status": "failed", "message": f"{type(exc).__name__}: {exc}"[:500]}
    section["seconds"] = time.perf_counter() - started
    section["cpu_seconds"] = _cpu_seconds() - cpu
    section["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return section


def _commit() -> str:
    """The commit a section measured (``+dirty``: with uncommitted changes to tracked files)."""
    from benchmarks.report import _git

    dirty = bool(_git(ROOT, "status", "--porcelain", "--untracked-files=no"))
    return _git(ROOT, "rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small slice of each section it runs (a smoke test; with --all, every section)",
    )
    parser.add_argument(
        "--only", action="append", choices=list(SECTIONS), help="run this section (repeatable)"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="also the sections left out of the default run: "
        + ", ".join(n for n, spec in SECTIONS.items() if not spec.default),
    )
    parser.add_argument(
        "--merge",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="fold the sections of another run's --out folder (its results.json and plots) "
        "into this report, each keeping its own command and commit (repeatable)",
    )
    parser.add_argument("--data", default=None, help="folder holding locomo/ and scifact/")
    parser.add_argument(
        "--out", type=Path, default=None, help="where RESULTS.md, PNGs and results.json go"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads (OMP_NUM_THREADS); on a shared, loaded machine 1 "
        "thread embeds one query ~10x faster than torch's default of one per core",
    )
    args = parser.parse_args(argv)
    for folder in args.merge:
        if not (folder / "results.json").is_file():
            parser.error(f"--merge {str(folder)!r} holds no results.json")
    if args.data is not None and not Path(args.data).is_dir():
        parser.error(f"--data {args.data!r} is not a folder")
    _configure(args.torch_threads)
    # main() may run inside another process (the smoke test): its data path is restored
    with data_folder(args.data):
        return _run_all(args)


def _merge(results: dict[str, Any], folder: Path, out: Path) -> list[str]:
    """Copy the sections (and their plots) of the run in ``folder`` into ``results``."""
    import shutil

    other = json.loads((folder / "results.json").read_text())
    if other.get("quick") != results.get("quick", other.get("quick")):
        raise SystemExit(f"--merge {folder}: a --quick run and a full run do not mix")
    names = [n for n in other["sections"] if n in SECTIONS]
    for name in names:
        section = other["sections"][name]
        section.setdefault("commit", other.get("environment", {}).get("commit", "?"))
        section.setdefault("finished", other.get("finished", "?"))
        results["sections"][name] = section
        for plot in section.get("plots", []):
            source = folder / plot["file"]
            if source.is_file() and source.resolve() != (out / plot["file"]).resolve():
                out.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, out / plot["file"])
    return names


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (build_latency's)."""
    import resource

    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_all(args: argparse.Namespace) -> int:
    from benchmarks import report

    out = args.out or (ROOT / ".cache" / "benchmarks-quick" if args.quick else HERE)
    names = args.only or (
        [] if args.merge else [n for n, spec in SECTIONS.items() if spec.default or args.all]
    )
    command = (
        "python -m benchmarks" + (" --quick" if args.quick else "") + (" --all" if args.all else "")
    )
    command += f" --torch-threads {args.torch_threads}" if args.torch_threads else ""
    command += "".join(f" --only {name}" for name in args.only or ())
    previous = out / "results.json"
    results: dict[str, Any] = {"sections": {}}
    if (args.only or args.merge) and previous.exists():  # update its sections in place
        results = json.loads(previous.read_text())
        for section in results["sections"].values():  # recorded before sections kept theirs
            section.setdefault("commit", results.get("environment", {}).get("commit"))
            section.setdefault("finished", results.get("finished"))
        if results.get("quick") != args.quick:
            results = {"sections": {}}
        elif not names:  # only merging: the report's own command stands
            command = results["command"]
        elif set(results["sections"]) - set(names):
            command = f"{results['command']}; then {command}"
    load_start = os.getloadavg()[0]
    for name in names:
        results["sections"][name] = run_section(name, args.quick)
    for folder in args.merge:
        merged = _merge(results, folder, out)
        command += f"; merged {', '.join(merged)} from another run"
    results["sections"] = {n: results["sections"][n] for n in SECTIONS if n in results["sections"]}
    elapsed = sum(section.get("seconds", 0.0) for section in results["sections"].values())
    results["cpu_seconds"] = sum(
        section.get("cpu_seconds", 0.0) for section in results["sections"].values()
    )
    results["not_run"] = {
        n: spec.title for n, spec in SECTIONS.items() if n not in results["sections"]
    }
    results |= {
        "command": command,
        "quick": args.quick,
        "seconds": elapsed,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": report.environment(ROOT) | {"load": [load_start, os.getloadavg()[0]]},
    }
    out.mkdir(parents=True, exist_ok=True)
    previous.write_text(json.dumps(results, indent=1, default=str))
    path = report.write(results, out)
    print(f"\nwrote {path} ({elapsed / 60:.1f} min)")
    return 1 if any(s["status"] == "failed" for s in results["sections"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
