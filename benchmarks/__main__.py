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
import contextlib
import importlib
import io
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def _configure(data: str | None, torch_threads: int | None) -> None:
    # Before anything imports ctxengine: the default embedder reads these once.
    # The cache and offline defaults are set by importing the package (benchmarks/__init__.py).
    os.environ.setdefault("MPLBACKEND", "Agg")
    # One OpenBLAS thread for every system alike (torch keeps its own threads): on a shared
    # 2-core machine a threaded mat-vec spins for tens of ms, and numpy-based peers (vector
    # stores) would pay it while ctxengine's einsum path does not.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if torch_threads:  # torch reads it at import, here and in build_latency's subprocesses
        os.environ["OMP_NUM_THREADS"] = str(torch_threads)
    if data:
        os.environ["CTXENGINE_DATA"] = str(Path(data).resolve())
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]


class _Tee(io.TextIOBase):
    """Print as usual and keep a copy for the report."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.buffer = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.stream.flush()
        return self.buffer.write(text)


def _run(module: str, argv: Sequence[str]) -> tuple[Any, str]:
    """``benchmarks.<module>.main(argv)`` with its printed output captured."""
    main = importlib.import_module(f"benchmarks.{module}").main
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        value = main(list(argv))
    return value, tee.buffer.getvalue()


def _command(module: str, argv: Sequence[str]) -> str:
    return " ".join(["python -m", f"benchmarks.{module}", *argv])


# --- sections: each returns (tables, plots, headlines, notes, output) in a dict ----------


def retrieval(quick: bool) -> dict[str, Any]:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("peers", argv)
    tables, panels, headlines = [], [], []
    for dataset, result in value.items():
        rows = result["rows"]
        hybrid = next(r for r in rows if r["system"] == "ctxengine hybrid")
        tables.append(table(
            f"{dataset}: {result['queries']} queries",
            ["system", "nDCG@10", "Recall@5", "Recall@10", "Recall@100", "ms/query", "× hybrid", "index s"],
            [[r["system"], r["ndcg@10"], r["recall@5"], r["recall@10"], r["recall@100"], r["median_ms"],
              r["median_ms"] / hybrid["median_ms"], r["index_s"]] for r in rows],
            ["", ".4f", ".3f", ".3f", ".3f", ".1f", ".2f", ".1f"],
            result["notes"] + [_margin_note(result["margins"]), _latency_note(result)],
        ))  # fmt: skip
        panels.append({"title": f"{dataset} ({result['queries']} queries)", "xlabel": "nDCG@10",
                       "series": {r["system"]: r["ndcg@10"] for r in rows},
                       "highlight": [r["system"] for r in rows if r["group"] == "ctxengine"]})  # fmt: skip
        # peers as shipped (the "peer variant" row runs a peer with ctxengine's analyzer)
        best = max((r for r in rows if r["group"] == "peer"), key=lambda r: r["ndcg@10"])
        m = result["margins"][best["system"]]
        verdict = "beats every peer" if m["margin"] > 0 else "does NOT beat every peer"
        headlines.append(
            f"{dataset}: ctxengine hybrid nDCG@10 {hybrid['ndcg@10']:.4f} {verdict}: best peer "
            f"{best['system']} {best['ndcg@10']:.4f}, margin {m['margin']:+.4f} (95% CI "
            f"{m['ci95'][0]:+.4f} to {m['ci95'][1]:+.4f}); {hybrid['median_ms']:.1f} vs "
            f"{best['median_ms']:.1f} ms/query"
        )
    plot = {"file": "retrieval_ndcg.png", "title": "nDCG@10, ctxengine (blue) vs peers (grey)",
            "kind": "bar", "panels": panels}  # fmt: skip
    return {"tables": tables, "plots": [plot], "headlines": headlines, "output": output,
            "command": _command("peers", argv)}  # fmt: skip


def _latency_note(result: dict[str, Any]) -> str:
    return (f"ms/query: median of retrieve(query, k=100) with every query embedding read from the "
            f"same warm cache, so it is the retrieval work itself; a live query adds one MiniLM call, "
            f"{result['model_query_ms']:.1f} ms in this run, to every row that embeds (all but the BM25 "
            f"and TF-IDF rows). index s: building the system over the corpus (document vectors cached).")


def _margin_note(margins: dict[str, dict]) -> str:
    parts = [f"{name} {m['margin']:+.4f} (95% CI {m['ci95'][0]:+.4f} to {m['ci95'][1]:+.4f}; better on "
             f"{m['wins']}, worse on {m['losses']} queries)" for name, m in margins.items()]  # fmt: skip
    return ("nDCG@10 margin of ctxengine hybrid over each peer (paired bootstrap over queries): "
            + "; ".join(parts) + ".")  # fmt: skip


def memory(quick: bool) -> dict[str, Any]:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("memory_quality", argv)
    budgets = sorted({b for row in value.values() for b in row})
    # indented names are variants of the default (one ingredient changed)
    rows = [[f"default, {name.strip()}" if name.startswith(" ") else name, *(row[b] for b in budgets)]
            for name, row in value.items()]  # fmt: skip
    main_rows = [n for n in value if not n.startswith(" ")]
    plot = {"file": "memory_budget.png", "title": "LoCoMo: evidence turns kept in a history slot of B tokens",
            "kind": "line", "panels": [{"xlabel": "history budget B (tokens)", "ylabel": "evidence recall",
                                        "xlog": True, "series": {n: [[b, value[n][b]] for b in budgets]
                                                                 for n in main_rows}}]}  # fmt: skip
    ours, window = value.get("ctxengine default", {}), value.get("token window (last turns)", {})
    headlines = []
    if ours and window:
        headlines.append("evidence recall at B=256/512/1024: ctxengine default "
                         + "/".join(f"{ours[b]:.1%}" for b in budgets) + ", token window "
                         + "/".join(f"{window[b]:.1%}" for b in budgets))  # fmt: skip
    return {"tables": [table("share of evidence turns in the history slot (weighted by questions)",
                             ["system", *(f"B={b}" for b in budgets)], rows, ["", *(".1%" for _ in budgets)])],
            "plots": [plot], "headlines": headlines, "output": output,
            "command": _command("memory_quality", argv)}  # fmt: skip


def compression(quick: bool) -> dict[str, Any]:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("compression_quality", argv)
    tables, panels, headlines = [], [], []
    for dataset, (title, kept, unit) in COMPRESSION_DATASETS.items():
        rows_of = [r for r in value if r["dataset"] == dataset]
        if not rows_of:
            continue
        shares = sorted({r["budget"] for r in rows_of})
        by_name: dict[str, dict[float, dict]] = {}
        for r in rows_of:
            by_name.setdefault(r["strategy"], {})[r["budget"]] = r
        rows = [[name, *(v[s]["kept"] for s in shares), *(v[s]["used"] for s in shares),
                 sum(v[s]["over"] for s in shares), v[shares[0]]["ms"]] for name, v in by_name.items()]  # fmt: skip
        columns = ["strategy", *(f"kept @{s:.0%}" for s in shares), *(f"tokens/budget @{s:.0%}" for s in shares),
                   "over budget", f"ms/{unit} @{shares[0]:.0%}"]  # fmt: skip
        formats = ["", *(".3f" for _ in shares), *(".2f" for _ in shares), "", ".1f"]
        tables.append(table(f"{title} ({rows_of[0]['cases']} {unit}s)", columns, rows, formats))
        panels.append({"title": title, "xlabel": "budget (share of the texts' tokens)", "ylabel": f"{kept} kept",
                       "series": {n: [[s, v[s]["kept"]] for s in shares] for n, v in by_name.items()}})  # fmt: skip
        peer = tuple(n for n in by_name if n.startswith(("llamaindex", "langchain")))
        at = {n: v[shares[0]]["kept"] for n, v in by_name.items()}
        best_ours = max((n for n in by_name if n not in peer), key=at.__getitem__)
        best_peer = max(peer, key=at.__getitem__, default=None)
        headline = f"{title}: at {shares[0]:.0%} of the tokens, {best_ours} keeps {at[best_ours]:.1%}"
        headline += f" of {kept}"
        if best_peer:
            headline += f" vs {at[best_peer]:.1%} for the best peer ({best_peer})"
        headlines.append(headline)
    plot = {"file": "compression_budget.png", "title": "Evidence kept vs token budget", "kind": "line",
            "panels": panels}  # fmt: skip
    return {"tables": tables, "plots": [plot], "headlines": headlines, "output": output,
            "command": _command("compression_quality", argv)}  # fmt: skip


# dataset key in compression_quality's rows: (title, what is kept, what a case is)
COMPRESSION_DATASETS = {
    "scifact": ("SciFact rationales", "rationale sentences", "claim"),
    "locomo": ("LoCoMo evidence turns", "evidence turns", "question"),
}


def latency(quick: bool) -> dict[str, Any]:
    from benchmarks.build_latency import LEXICAL
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("build_latency", argv)
    rows = [[r["docs"], r["mode"], r["median_ms"], r["p95_ms"],
             r["new_query_median_ms"],
             r["stage_ms"]["retrieve"], r["stage_ms"]["rerank"], r["stage_ms"]["memory"],
             r["stage_ms"]["compress"], r["stage_ms"]["assemble"], r["docs_per_s"],
             r["rss_before_mb"], r["peak_rss_mb"]] for r in value]  # fmt: skip
    columns = ["docs", "mode", "build() median ms", "p95 ms", "new query median ms", "retrieve", "rerank",
               "memory", "compress", "assemble", "index docs/s", "RSS before MB", "peak RSS MB"]  # fmt: skip
    formats = [",", "", ".2f", ".2f", ".1f", ".2f", ".2f", ".2f", ".2f", ".2f", ",.0f", ".0f", ".0f"]
    modes = list(dict.fromkeys(r["mode"] for r in value))
    series = {m: [[r["docs"], r["median_ms"]] for r in value if r["mode"] == m] for m in modes}
    memory_series = {m: [[r["docs"], r["peak_rss_mb"]] for r in value if r["mode"] == m] for m in modes}
    plot = {"file": "build_latency.png", "title": "engine.build() vs corpus size", "kind": "line",
            "panels": [{"title": "median build() latency", "xlabel": "documents", "ylabel": "ms",
                        "xlog": True, "ylog": True, "series": series},
                       {"title": "peak RSS of the process", "xlabel": "documents", "ylabel": "MB",
                        "xlog": True, "series": memory_series}]}  # fmt: skip
    headlines = []
    for target_docs in (10_000,):
        cells = {r["mode"]: r for r in value if r["docs"] == target_docs}
        if "hybrid" in cells:
            h = cells["hybrid"]
            headlines.append(f"hybrid build() at {target_docs:,} docs, cached embeddings: median "
                             f"{h['median_ms']:.1f} ms (target < 20 ms: {'met' if h['median_ms'] < 20 else 'MISSED'}); "
                             f"{h['new_query_median_ms']:.1f} ms when the query is new (one model call)")  # fmt: skip
        lexical = [cells[m] for m in LEXICAL if m in cells]
        if lexical:
            headlines.append(", ".join(f"{r['mode']} {r['median_ms']:.1f} ms" for r in lexical)
                             + f" at {target_docs:,} docs (target < 5 ms: "
                             + ("met" if all(r["median_ms"] < 5 for r in lexical) else "MISSED") + ")")  # fmt: skip
    notes = [importlib.import_module("benchmarks.build_latency").__doc__.split("\n\n", 1)[1].split("\n\n    python")[0]]
    return {"tables": [table("", columns, rows, formats)], "plots": [plot], "headlines": headlines,
            "notes": notes, "output": output, "command": _command("build_latency", argv)}  # fmt: skip


def query_latency(quick: bool) -> dict[str, Any]:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("retrieval_latency", argv)
    rows = [[size, label, median, p95] for (size, label), (median, p95) in value.items()]
    return {"tables": [table("retrieve(q, k=10), new query embedded by the model each time",
                             ["docs", "mode", "median ms", "p95 ms"], rows, [",", "", ".2f", ".2f"])],
            "output": output, "command": _command("retrieval_latency", argv)}  # fmt: skip


def rerank(quick: bool) -> dict[str, Any]:
    from benchmarks.report import table

    tables, outputs, commands = [], [], []
    # quick: LoCoMo only (the SciFact first stage needs every abstract embedded)
    runs = [("locomo", "30")] if quick else [("scifact", "100"), ("locomo", "50")]
    for dataset, top in runs:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "rerank.json"
            argv = ["--dataset", dataset, "--top", top, "--json", str(path)]
            argv += ["--limit", "30"] if quick else []
            _, output = _run("rerank_quality", argv)
            rows = json.loads(path.read_text())["results"][dataset]
        columns = list(dict.fromkeys(c for r in rows for c in r))
        tables.append(table(f"{dataset}: first stage hybrid, top {top} re-ranked", columns,
                            [[r.get(c) for c in columns] for r in rows],
                            ["" if c in ("strategy", "better/worse queries") else ".4f" for c in columns]))  # fmt: skip
        outputs.append(output)
        commands.append(_command("rerank_quality", [a for a in argv if a != str(path) and a != "--json"]))
    return {"tables": tables, "output": "\n".join(outputs), "command": "; ".join(commands)}


def learned(quick: bool) -> dict[str, Any]:
    """Context modeling: the trained scorers against the hand-set rules, cross-validated."""
    import statistics

    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("learned_ranker", argv)

    def spread(values: Sequence[float], spec: str) -> str:
        return f"{statistics.fmean(values):{spec}} ± {statistics.pstdev(values):{spec}}"

    tables, headlines = [], []
    for key, title in (("scifact", "SciFact train claims, 5-fold cross-validation over claims"),
                       ("locomo", "LoCoMo dev, turns as documents, leave-one-conversation-out")):  # fmt: skip
        if key not in value:
            continue
        per, summaries = value[key]["folds"], value[key]["summary"]
        notes = [f"{s['learned_row']} vs the best hand-set row on the same signals ({s['best_handset']}, chosen "
                 f"on the test folds): {s['margin_mean']:+.4f} ± {s['margin_std']:.4f} nDCG@10, wins "
                 f"{s['folds_won']}/{s['folds']} folds" for s in summaries]  # fmt: skip
        tables.append(table(f"{title}: nDCG@10 (mean ± std over {len(next(iter(per.values())))} folds)",
                            ["system", "nDCG@10", "per fold"],
                            [[name, spread(v, ".4f"), " ".join(f"{x:.3f}" for x in v)] for name, v in per.items()],
                            notes=notes))  # fmt: skip
        s = summaries[0]
        headlines.append(f"{key}: learned ranker nDCG@10 {s['learned']:.4f} vs best hand-set {s['best']:.4f} "
                         f"({s['best_handset']}): {s['margin_mean']:+.4f} ± {s['margin_std']:.4f}, wins "
                         f"{s['folds_won']}/{s['folds']} folds")  # fmt: skip
    if "latency" in value:
        tables.append(table("Re-ranking 100 candidates (median ms)", ["what", "median ms"],
                            list(value["latency"].items()), ["", ".3f"]))  # fmt: skip
    if "memory" in value:
        per, summary = value["memory"]["per"], value["memory"]["summary"]
        budgets = sorted(int(b) for b in summary)
        sessions = list(next(iter(per.values())))
        rows = [[name, *(spread([by_conv[s][b] for s in sessions], ".1%") for b in budgets)]
                for name, by_conv in per.items()]  # fmt: skip
        rows.append(["tuned hand-set (best row on the other conversations)",
                     *(f"{summary[b]['tuned']:.1%}" for b in budgets)])  # fmt: skip
        notes = [f"B={b}: learned {summary[b]['learned']:.1%} vs the best hand-set memory "
                 f"({summary[b]['best_handset']}, {summary[b]['best']:.1%}): {summary[b]['margin_mean']:+.1%} ± "
                 f"{summary[b]['margin_std']:.1%}, wins {summary[b]['folds_won']}/{len(sessions)} conversations"
                 for b in budgets]  # fmt: skip
        tables.append(table(f"LoCoMo memory, evidence recall in the history slot, leave-one-conversation-out "
                            f"({len(sessions)} conversations, mean ± std)",
                            ["system", *(f"B={b}" for b in budgets)], rows, notes=notes))  # fmt: skip
        tables.append(table("Memory recall, B=512 (median ms)", ["what", "median ms"],
                            list(value["memory"]["latency_ms"].items()), ["", ".2f"]))  # fmt: skip
        headlines.append("memory: learned evidence recall at B=" + "/".join(map(str, budgets)) + " "
                         + "/".join(f"{summary[b]['learned']:.1%}" for b in budgets) + " vs best hand-set "
                         + "/".join(f"{summary[b]['best']:.1%}" for b in budgets))  # fmt: skip
    notes = [importlib.import_module("benchmarks.learned_ranker").__doc__.split("\n\n    python")[0]]
    return {"tables": tables, "headlines": headlines, "notes": notes, "output": output,
            "command": _command("learned_ranker", argv)}  # fmt: skip


def store(quick: bool) -> dict[str, Any]:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("store_throughput", argv)
    rows = [[name, adds, reads] for name, (adds, reads) in value.items()]
    headlines = []
    for backend in ("SQLite", "PostgreSQL"):
        peer = value.get(f"LangChain {backend}")
        ours = next((v for n, v in value.items() if n.startswith(backend)), None)
        name = next((n for n in value if n.startswith(backend)), "")
        if peer and ours:
            headlines.append(f"{name}: {ours[0]:,.0f} adds/s, {ours[1]:,.0f} session reads/s, "
                             f"{ours[0] / peer[0]:.1f}x / {ours[1] / peer[1]:.1f}x LangChain "
                             f"SQLChatMessageHistory on {backend}")  # fmt: skip
    return {"tables": [table("", ["store", "adds/s", "session reads/s"], rows, ["", ",.0f", ",.0f"])],
            "headlines": headlines, "output": output, "command": _command("store_throughput", argv)}  # fmt: skip


def _generic(module: str) -> Callable[[bool], dict[str, Any]]:
    """A benchmark without its own adapter: its printed output, plus a table when ``main``
    returns a list of flat dicts."""

    def run(quick: bool) -> dict[str, Any]:
        from benchmarks.report import table

        argv = ["--quick"] if quick else []
        value, output = _run(module, argv)
        tables = []
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            columns = [c for c in dict.fromkeys(c for r in value for c in r)
                       if all(not isinstance(r.get(c), (dict, list)) for r in value)]  # fmt: skip
            formats = [".4g" if any(isinstance(r.get(c), float) for r in value) else "" for c in columns]
            tables.append(table("", columns, [[r.get(c) for c in columns] for r in value], formats))
        return {"tables": tables, "output": output, "command": _command(module, argv)}

    return run


class Spec(NamedTuple):
    title: str
    runner: Callable[[bool], dict[str, Any]]
    needs: tuple[str, ...]  # data folders
    default: bool  # in the ~15-minute default run (every section runs with --quick or --all)


SECTIONS: dict[str, Spec] = {
    "retrieval": Spec("Retrieval quality: ctxengine vs peers", retrieval, ("scifact", "locomo"), True),
    "memory": Spec("Memory under a token budget (LoCoMo)", memory, ("locomo",), True),
    "compression": Spec("Compression (SciFact rationales, LoCoMo evidence turns)", compression,
                        ("scifact", "locomo"), True),
    "latency": Spec("Speed and scale: engine.build()", latency, ("locomo",), True),
    "store": Spec("Memory store throughput", store, ("locomo",), True),
    "learned": Spec("Context modeling: learned scorers vs hand-set rules", learned, ("scifact", "locomo"), True),
    "rerank": Spec("Re-ranking on top of hybrid retrieval", rerank, ("scifact", "locomo"), False),
    "query_latency": Spec("Speed: per-query retrieval latency", query_latency, ("locomo",), False),
    "resource_bounds": Spec("Resource bounds (peak memory, time)", _generic("resource_bounds"), ("locomo",), False),
}


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
    started, cpu = time.perf_counter(), _cpu_seconds()
    try:
        result = runner(quick)
        result["script"] = result.pop("command")
        section |= result | {"status": "ok"}
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
        traceback.print_exc()
        section |= {"status": "failed", "message": f"{type(exc).__name__}: {exc}"[:500]}
    section["seconds"] = time.perf_counter() - started
    section["cpu_seconds"] = _cpu_seconds() - cpu
    return section


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small slice of everything (smoke test)")
    parser.add_argument("--only", action="append", choices=list(SECTIONS), help="run this section (repeatable)")
    parser.add_argument("--all", action="store_true", help="also the sections left out of the default run: "
                        + ", ".join(n for n, spec in SECTIONS.items() if not spec.default))  # fmt: skip
    parser.add_argument("--data", default=None, help="folder holding locomo/ and scifact/")
    parser.add_argument("--out", type=Path, default=None, help="where RESULTS.md, PNGs and results.json go")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (OMP_NUM_THREADS); on a shared, loaded machine 1 "
                        "thread embeds one query ~10x faster than torch's default of one per core")  # fmt: skip
    args = parser.parse_args(argv)
    if args.data is not None and not Path(args.data).is_dir():
        parser.error(f"--data {args.data!r} is not a folder")
    saved = os.environ.get("CTXENGINE_DATA")
    _configure(args.data, args.torch_threads)
    try:
        return _run_all(args)
    finally:  # main() may run inside another process (the smoke test): restore its data path
        if saved is None:
            os.environ.pop("CTXENGINE_DATA", None)
        else:
            os.environ["CTXENGINE_DATA"] = saved


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (build_latency's)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_all(args: argparse.Namespace) -> int:
    from benchmarks import report

    out = args.out or (ROOT / ".cache" / "benchmarks-quick" if args.quick else HERE)
    names = args.only or [n for n, spec in SECTIONS.items() if spec.default or args.all or args.quick]
    command = "python -m benchmarks" + (" --quick" if args.quick else "") + (" --all" if args.all else "")
    command += f" --torch-threads {args.torch_threads}" if args.torch_threads else ""
    command += "".join(f" --only {name}" for name in args.only or ())
    previous = out / "results.json"
    results: dict[str, Any] = {"sections": {}}
    if args.only and previous.exists():  # a partial run updates its sections in place
        results = json.loads(previous.read_text())
        if results.get("quick") != args.quick:
            results = {"sections": {}}
        elif set(results["sections"]) - set(names):
            command = f"{results['command']}; then {command}"
    load_start = os.getloadavg()[0]
    for name in names:
        results["sections"][name] = run_section(name, args.quick)
    results["sections"] = {n: results["sections"][n] for n in SECTIONS if n in results["sections"]}
    elapsed = sum(section.get("seconds", 0.0) for section in results["sections"].values())
    results["cpu_seconds"] = sum(section.get("cpu_seconds", 0.0) for section in results["sections"].values())
    results["not_run"] = {n: spec.title for n, spec in SECTIONS.items() if n not in results["sections"]}
    results |= {"command": command, "quick": args.quick, "seconds": elapsed,
                "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "environment": report.environment(ROOT) | {"load": [load_start, os.getloadavg()[0]]}}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    previous.write_text(json.dumps(results, indent=1, default=str))
    path = report.write(results, out)
    print(f"\nwrote {path} ({elapsed / 60:.1f} min)")
    return 1 if any(s["status"] == "failed" for s in results["sections"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
