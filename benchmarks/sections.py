"""The benchmark sections: each runs one script and turns what it returns into a typed
:class:`~benchmarks.report.SectionResult` (tables, plots, headlines, notes, its printed
output and the command that reproduces it). :data:`SECTIONS` is the registry the harness
(``python -m benchmarks``) runs; a new benchmark adds one function and one entry here.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.report import SectionResult, Tee


def _run(module: str, argv: Sequence[str]) -> tuple[Any, str]:
    """``benchmarks.<module>.main(argv)`` with its printed output captured."""
    main = importlib.import_module(f"benchmarks.{module}").main
    tee = Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        value = main(list(argv))
    return value, tee.buffer.getvalue()


def _doc(module: str) -> str:
    return importlib.import_module(f"benchmarks.{module}").__doc__ or ""


def _command(module: str, argv: Sequence[str]) -> str:
    return " ".join(["python -m", f"benchmarks.{module}", *argv])


def retrieval(quick: bool) -> SectionResult:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("peers", argv)
    tables, panels, headlines = [], [], []
    for dataset, result in value.items():
        rows = result["rows"]
        hybrid = next(r for r in rows if r["system"] == "ctxengine hybrid")
        tables.append(
            table(
                f"{dataset}: {result['queries']} queries",
                [
                    "system",
                    "nDCG@10",
                    "Recall@5",
                    "Recall@10",
                    "Recall@100",
                    "ms/query",
                    "× hybrid",
                    "index s",
                ],
                [
                    [
                        r["system"],
                        r["ndcg@10"],
                        r["recall@5"],
                        r["recall@10"],
                        r["recall@100"],
                        r["median_ms"],
                        r["median_ms"] / hybrid["median_ms"],
                        r["index_s"],
                    ]
                    for r in rows
                ],
                ["", ".4f", ".3f", ".3f", ".3f", ".1f", ".2f", ".1f"],
                result["notes"] + [_margin_note(result["margins"]), _latency_note(result)],
            )
        )
        panels.append(
            {
                "title": f"{dataset} ({result['queries']} queries)",
                "xlabel": "nDCG@10",
                "series": {r["system"]: r["ndcg@10"] for r in rows},
                "highlight": [r["system"] for r in rows if r["group"] == "ctxengine"],
            }
        )
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
    plot = {
        "file": "retrieval_ndcg.png",
        "title": "nDCG@10, ctxengine (blue) vs peers (grey)",
        "kind": "bar",
        "panels": panels,
    }
    return {
        "tables": tables,
        "plots": [plot],
        "headlines": headlines,
        "output": output,
        "command": _command("peers", argv),
    }


def _latency_note(result: dict[str, Any]) -> str:
    return (
        f"ms/query: median of retrieve(query, k=100) with every query embedding read from the "
        f"same warm cache, so it is the retrieval work itself; a live query adds one MiniLM call, "
        f"{result['model_query_ms']:.1f} ms in this run, to every row that embeds (all but the BM25 "
        f"and TF-IDF rows). index s: building the system over the corpus (document vectors cached)."
    )


def _margin_note(margins: dict[str, dict]) -> str:
    parts = [
        f"{name} {m['margin']:+.4f} (95% CI {m['ci95'][0]:+.4f} to {m['ci95'][1]:+.4f}; better on "
        f"{m['wins']}, worse on {m['losses']} queries)"
        for name, m in margins.items()
    ]
    return (
        "nDCG@10 margin of ctxengine hybrid over each peer (paired bootstrap over queries): "
        + "; ".join(parts)
        + "."
    )


def memory(quick: bool) -> SectionResult:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("memory_quality", argv)
    budgets = sorted({b for row in value.values() for b in row})
    # indented names are variants of the default (one ingredient changed)
    rows = [
        [f"default, {name.strip()}" if name.startswith(" ") else name, *(row[b] for b in budgets)]
        for name, row in value.items()
    ]
    main_rows = [n for n in value if not n.startswith(" ")]
    plot = {
        "file": "memory_budget.png",
        "title": "LoCoMo: evidence turns kept in a history slot of B tokens",
        "kind": "line",
        "panels": [
            {
                "xlabel": "history budget B (tokens)",
                "ylabel": "evidence recall",
                "xlog": True,
                "series": {n: [[b, value[n][b]] for b in budgets] for n in main_rows},
            }
        ],
    }
    ours, window = value.get("ctxengine default", {}), value.get("token window (last turns)", {})
    headlines = []
    if ours and window:
        headlines.append(
            "evidence recall at B=256/512/1024: ctxengine default "
            + "/".join(f"{ours[b]:.1%}" for b in budgets)
            + ", token window "
            + "/".join(f"{window[b]:.1%}" for b in budgets)
        )
    return {
        "tables": [
            table(
                "share of evidence turns in the history slot (weighted by questions)",
                ["system", *(f"B={b}" for b in budgets)],
                rows,
                ["", *(".1%" for _ in budgets)],
            )
        ],
        "plots": [plot],
        "headlines": headlines,
        "output": output,
        "command": _command("memory_quality", argv),
    }


def compression(quick: bool) -> SectionResult:
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
        rows = [
            [
                name,
                *(v[s]["kept"] for s in shares),
                *(v[s]["used"] for s in shares),
                sum(v[s]["over"] for s in shares),
                v[shares[0]]["ms"],
            ]
            for name, v in by_name.items()
        ]
        columns = [
            "strategy",
            *(f"kept @{s:.0%}" for s in shares),
            *(f"tokens/budget @{s:.0%}" for s in shares),
            "over budget",
            f"ms/{unit} @{shares[0]:.0%}",
        ]
        formats = ["", *(".3f" for _ in shares), *(".2f" for _ in shares), "", ".1f"]
        tables.append(table(f"{title} ({rows_of[0]['cases']} {unit}s)", columns, rows, formats))
        panels.append(
            {
                "title": title,
                "xlabel": "budget (share of the texts' tokens)",
                "ylabel": f"{kept} kept",
                "series": {n: [[s, v[s]["kept"]] for s in shares] for n, v in by_name.items()},
            }
        )
        peer = tuple(n for n in by_name if n.startswith(("llamaindex", "langchain")))
        at = {n: v[shares[0]]["kept"] for n, v in by_name.items()}
        best_ours = max((n for n in by_name if n not in peer), key=at.__getitem__)
        best_peer = max(peer, key=at.__getitem__, default=None)
        headline = (
            f"{title}: at {shares[0]:.0%} of the tokens, {best_ours} keeps {at[best_ours]:.1%}"
        )
        headline += f" of {kept}"
        if best_peer:
            headline += f" vs {at[best_peer]:.1%} for the best peer ({best_peer})"
        headlines.append(headline)
    plot = {
        "file": "compression_budget.png",
        "title": "Evidence kept vs token budget",
        "kind": "line",
        "panels": panels,
    }
    return {
        "tables": tables,
        "plots": [plot],
        "headlines": headlines,
        "output": output,
        "command": _command("compression_quality", argv),
    }


# dataset key in compression_quality's rows: (title, what is kept, what a case is)
COMPRESSION_DATASETS = {
    "scifact": ("SciFact rationales", "rationale sentences", "claim"),
    "locomo": ("LoCoMo evidence turns", "evidence turns", "question"),
}


def latency(quick: bool) -> SectionResult:
    from benchmarks.build_latency import LEXICAL
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("build_latency", argv)
    rows = [
        [
            r["docs"],
            r["mode"],
            r["median_ms"],
            r["p95_ms"],
            r["new_query_median_ms"],
            r["stage_ms"]["retrieve"],
            r["stage_ms"]["rerank"],
            r["stage_ms"]["memory"],
            r["stage_ms"]["compress"],
            r["stage_ms"]["assemble"],
            r["docs_per_s"],
            r["rss_before_mb"],
            r["peak_rss_mb"],
        ]
        for r in value
    ]
    columns = [
        "docs",
        "mode",
        "build() median ms",
        "p95 ms",
        "new query median ms",
        "retrieve",
        "rerank",
        "memory",
        "compress",
        "assemble",
        "index docs/s",
        "RSS before MB",
        "peak RSS MB",
    ]
    formats = [
        ",",
        "",
        ".2f",
        ".2f",
        ".1f",
        ".2f",
        ".2f",
        ".2f",
        ".2f",
        ".2f",
        ",.0f",
        ".0f",
        ".0f",
    ]
    modes = list(dict.fromkeys(r["mode"] for r in value))
    series = {m: [[r["docs"], r["median_ms"]] for r in value if r["mode"] == m] for m in modes}
    memory_series = {
        m: [[r["docs"], r["peak_rss_mb"]] for r in value if r["mode"] == m] for m in modes
    }
    plot = {
        "file": "build_latency.png",
        "title": "engine.build() vs corpus size",
        "kind": "line",
        "panels": [
            {
                "title": "median build() latency",
                "xlabel": "documents",
                "ylabel": "ms",
                "xlog": True,
                "ylog": True,
                "series": series,
            },
            {
                "title": "peak RSS of the process",
                "xlabel": "documents",
                "ylabel": "MB",
                "xlog": True,
                "series": memory_series,
            },
        ],
    }
    headlines = []
    for target_docs in (10_000,):
        cells = {r["mode"]: r for r in value if r["docs"] == target_docs}
        if "hybrid" in cells:
            h = cells["hybrid"]
            headlines.append(
                f"hybrid build() at {target_docs:,} docs, cached embeddings: median "
                f"{h['median_ms']:.1f} ms (target < 20 ms: {'met' if h['median_ms'] < 20 else 'MISSED'}); "
                f"{h['new_query_median_ms']:.1f} ms when the query is new (one model call)"
            )
        lexical = [cells[m] for m in LEXICAL if m in cells]
        if lexical:
            headlines.append(
                ", ".join(f"{r['mode']} {r['median_ms']:.1f} ms" for r in lexical)
                + f" at {target_docs:,} docs (target < 5 ms: "
                + ("met" if all(r["median_ms"] < 5 for r in lexical) else "MISSED")
                + ")"
            )
    notes = [_doc("build_latency").split("\n\n", 1)[1].split("\n\n    python")[0]]
    return {
        "tables": [table("", columns, rows, formats)],
        "plots": [plot],
        "headlines": headlines,
        "notes": notes,
        "output": output,
        "command": _command("build_latency", argv),
    }


def query_latency(quick: bool) -> SectionResult:
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("retrieval_latency", argv)
    rows = [[size, label, median, p95] for (size, label), (median, p95) in value.items()]
    return {
        "tables": [
            table(
                "retrieve(q, k=10), new query embedded by the model each time",
                ["docs", "mode", "median ms", "p95 ms"],
                rows,
                [",", "", ".2f", ".2f"],
            )
        ],
        "output": output,
        "command": _command("retrieval_latency", argv),
    }


def rerank(quick: bool) -> SectionResult:
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
        tables.append(
            table(
                f"{dataset}: first stage hybrid, top {top} re-ranked",
                columns,
                [[r.get(c) for c in columns] for r in rows],
                ["" if c in ("strategy", "better/worse queries") else ".4f" for c in columns],
            )
        )
        outputs.append(output)
        commands.append(
            _command("rerank_quality", [a for a in argv if a != str(path) and a != "--json"])
        )
    return {"tables": tables, "output": "\n".join(outputs), "command": "; ".join(commands)}


def learned(quick: bool) -> SectionResult:
    """Context modeling: the trained scorers against the hand-set rules, cross-validated."""
    import statistics

    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("learned_ranker", argv)

    def spread(values: Sequence[float], spec: str) -> str:
        return f"{statistics.fmean(values):{spec}} ± {statistics.pstdev(values):{spec}}"

    tables, headlines = [], []
    for key, title in (
        ("scifact", "SciFact train claims, 5-fold cross-validation over claims"),
        ("locomo", "LoCoMo dev, turns as documents, leave-one-conversation-out"),
    ):
        if key not in value:
            continue
        per, summaries = value[key]["folds"], value[key]["summary"]
        notes = [
            f"{s['learned_row']} vs the best hand-set row on the same signals ({s['best_handset']}, chosen "
            f"on the test folds): {s['margin_mean']:+.4f} ± {s['margin_std']:.4f} nDCG@10, wins "
            f"{s['folds_won']}/{s['folds']} folds"
            for s in summaries
        ]
        tables.append(
            table(
                f"{title}: nDCG@10 (mean ± std over {len(next(iter(per.values())))} folds)",
                ["system", "nDCG@10", "per fold"],
                [
                    [name, spread(v, ".4f"), " ".join(f"{x:.3f}" for x in v)]
                    for name, v in per.items()
                ],
                notes=notes,
            )
        )
        s = summaries[0]
        headlines.append(
            f"{key}: learned ranker nDCG@10 {s['learned']:.4f} vs best hand-set {s['best']:.4f} "
            f"({s['best_handset']}): {s['margin_mean']:+.4f} ± {s['margin_std']:.4f}, wins "
            f"{s['folds_won']}/{s['folds']} folds"
        )
    if "latency" in value:
        tables.append(
            table(
                "Re-ranking 100 candidates (median ms)",
                ["what", "median ms"],
                list(value["latency"].items()),
                ["", ".3f"],
            )
        )
    if "memory" in value:
        per, summary = value["memory"]["per"], value["memory"]["summary"]
        budgets = sorted(int(b) for b in summary)
        sessions = list(next(iter(per.values())))
        rows = [
            [name, *(spread([by_conv[s][b] for s in sessions], ".1%") for b in budgets)]
            for name, by_conv in per.items()
        ]
        rows.append(
            [
                "tuned hand-set (best row on the other conversations)",
                *(f"{summary[b]['tuned']:.1%}" for b in budgets),
            ]
        )
        notes = [
            f"B={b}: learned {summary[b]['learned']:.1%} vs the best hand-set memory "
            f"({summary[b]['best_handset']}, {summary[b]['best']:.1%}): {summary[b]['margin_mean']:+.1%} ± "
            f"{summary[b]['margin_std']:.1%}, wins {summary[b]['folds_won']}/{len(sessions)} conversations"
            for b in budgets
        ]
        tables.append(
            table(
                f"LoCoMo memory, evidence recall in the history slot, leave-one-conversation-out "
                f"({len(sessions)} conversations, mean ± std)",
                ["system", *(f"B={b}" for b in budgets)],
                rows,
                notes=notes,
            )
        )
        tables.append(
            table(
                "Memory recall, B=512 (median ms)",
                ["what", "median ms"],
                list(value["memory"]["latency_ms"].items()),
                ["", ".2f"],
            )
        )
        headlines.append(
            "memory: learned evidence recall at B="
            + "/".join(map(str, budgets))
            + " "
            + "/".join(f"{summary[b]['learned']:.1%}" for b in budgets)
            + " vs best hand-set "
            + "/".join(f"{summary[b]['best']:.1%}" for b in budgets)
        )
    notes = [_doc("learned_ranker").split("\n\n    python")[0]]
    return {
        "tables": tables,
        "headlines": headlines,
        "notes": notes,
        "output": output,
        "command": _command("learned_ranker", argv),
    }


def _spread(values: Sequence[float], spec: str = ".4f") -> str:
    import statistics

    return f"{statistics.fmean(values):{spec}} ± {statistics.pstdev(values):{spec}}"


def learned_adapter(quick: bool) -> SectionResult:
    """The query adapter: LoCoMo leave-one-conversation-out, memory recall, latency."""
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("learned_adapter", argv)
    tables = [
        table(
            "Adapter latency per query (median ms)",
            ["what", "ms"],
            list(value["latency"].items()),
            ["", ".4f"],
        )
    ]
    per = value.get("documents", {}).get("per", {})
    if per:
        tables.append(
            table(
                "LoCoMo dev, turns as documents, leave-one-conversation-out: nDCG@10",
                ["system", "nDCG@10", "per conversation"],
                [[k, _spread(v), " ".join(f"{x:.3f}" for x in v)] for k, v in per.items()],
            )
        )
    return {"tables": tables, "output": output, "command": _command("learned_adapter", argv)}


def learning_curves(quick: bool) -> SectionResult:
    """nDCG@10 against the number of labelled queries, per model type, vs the rules."""
    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("learning_curves", argv)
    labels = list(dict.fromkeys(n for by_n in value.values() for n in by_n))
    rows = [
        [name, *(_spread(by_n[n], ".3f") if n in by_n else "" for n in labels)]
        for name, by_n in value.items()
    ]
    return {
        "tables": [
            table(
                "LoCoMo dev, nDCG@10 vs labelled queries, leave-one-conversation-out",
                ["model", *labels],
                rows,
            )
        ],
        "output": output,
        "command": _command("learning_curves", argv),
    }


def learned_targets(quick: bool) -> SectionResult:
    """Issue 19's targets for the context model, each held out, with whether it is met."""
    import statistics

    from benchmarks.report import table

    argv = ["--quick"] if quick else []
    value, output = _run("learned_targets", argv)

    def spread(values: Sequence[float], spec: str) -> str:
        return f"{statistics.fmean(values):{spec}} ± {statistics.pstdev(values):{spec}}"

    verdicts = value["verdicts"]
    tables = [
        table(
            "Targets (mean ± std over held-out folds or conversations)",
            ["target", "measured", "goal", "status"],
            verdicts,
        )
    ]
    for key, title in (
        ("locomo", "LoCoMo dev, turns as documents, leave-one-conversation-out: nDCG@10"),
        (
            "scifact",
            "SciFact train claims, cross-validation over claims, sentence windows: nDCG@10",
        ),
    ):
        per = {k: v for k, v in value.get(key, {}).items() if not k.startswith("_")}
        if per:
            tables.append(
                table(
                    title,
                    ["system", "nDCG@10", "per fold"],
                    [
                        [name, spread(v, ".4f"), " ".join(f"{x:.3f}" for x in v)]
                        for name, v in per.items()
                    ],
                )
            )
    if "memory" in value:
        per = value["memory"]["per"]
        tables.append(
            table(
                "LoCoMo memory, evidence recall, leave-one-conversation-out",
                ["system", "B=256", "B=512", "B=1024"],
                [
                    [name, *(spread([v[b] for v in by.values()], ".1%") for b in (256, 512, 1024))]
                    for name, by in per.items()
                ],
            )
        )
    if "speed" in value:
        tables.append(
            table(
                "engine.build() at 10,000 documents (median ms, interleaved)",
                ["seated", "median ms"],
                list(value["speed"]["medians"].items())
                + [
                    [
                        "added by the context model (median paired difference)",
                        value["speed"]["added_ms"],
                    ]
                ],
                ["", ".2f"],
            )
        )
    return {
        "tables": tables,
        "headlines": [f"{v[0]}: {v[1]} (goal {v[2]}: {v[3]})" for v in verdicts],
        "notes": [_doc("learned_targets").split("\n\n    python")[0]],
        "output": output,
        "command": _command("learned_targets", argv),
    }


def store(quick: bool) -> SectionResult:
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
            headlines.append(
                f"{name}: {ours[0]:,.0f} adds/s, {ours[1]:,.0f} session reads/s, "
                f"{ours[0] / peer[0]:.1f}x / {ours[1] / peer[1]:.1f}x LangChain "
                f"SQLChatMessageHistory on {backend}"
            )
    return {
        "tables": [table("", ["store", "adds/s", "session reads/s"], rows, ["", ",.0f", ",.0f"])],
        "headlines": headlines,
        "output": output,
        "command": _command("store_throughput", argv),
    }


def _generic(module: str) -> Callable[[bool], SectionResult]:
    """A benchmark without its own adapter: its printed output, plus a table when ``main``
    returns a list of flat dicts."""

    def run(quick: bool) -> SectionResult:
        from benchmarks.report import table

        argv = ["--quick"] if quick else []
        value, output = _run(module, argv)
        tables = []
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            columns = [
                c
                for c in dict.fromkeys(c for r in value for c in r)
                if all(not isinstance(r.get(c), (dict, list)) for r in value)
            ]
            formats = [
                ".4g" if any(isinstance(r.get(c), float) for r in value) else "" for c in columns
            ]
            tables.append(table("", columns, [[r.get(c) for c in columns] for r in value], formats))
        return {"tables": tables, "output": output, "command": _command(module, argv)}

    return run


class Spec(NamedTuple):
    title: str
    runner: Callable[[bool], SectionResult]
    needs: tuple[str, ...]  # data folders
    default: bool  # in the ~15-minute default run (every section runs with --quick or --all)


SECTIONS: dict[str, Spec] = {
    "retrieval": Spec(
        "Retrieval quality: ctxengine vs peers", retrieval, ("scifact", "locomo"), True
    ),
    "memory": Spec("Memory under a token budget (LoCoMo)", memory, ("locomo",), True),
    "compression": Spec(
        "Compression (SciFact rationales, LoCoMo evidence turns)",
        compression,
        ("scifact", "locomo"),
        True,
    ),
    "latency": Spec("Speed and scale: engine.build()", latency, ("locomo",), True),
    "store": Spec("Memory store throughput", store, ("locomo",), True),
    "learned": Spec(
        "Context modeling: learned scorers vs hand-set rules", learned, ("scifact", "locomo"), True
    ),
    "learned_targets": Spec(
        "Context model: issue 19's targets, held out",
        learned_targets,
        ("scifact", "locomo"),
        False,
    ),
    "learned_adapter": Spec(
        "Query adapter (learned map on query vectors)",
        learned_adapter,
        ("scifact", "locomo"),
        False,
    ),
    "learning_curves": Spec(
        "Learning curves: when does training pay?", learning_curves, ("locomo",), False
    ),
    "rerank": Spec("Re-ranking on top of hybrid retrieval", rerank, ("scifact", "locomo"), False),
    "query_latency": Spec("Speed: per-query retrieval latency", query_latency, ("locomo",), False),
    "resource_bounds": Spec(
        "Resource bounds (peak memory, time)", _generic("resource_bounds"), ("locomo",), False
    ),
    "scaleout": Spec(
        "Scale-out: ctxengine over a Chroma server",
        _generic("scaleout"),
        ("scifact", "locomo"),
        False,
    ),
    "filters": Spec("Metadata filters", _generic("filters"), ("scifact",), False),
    "reliability": Spec(
        "Reliability: linear time on hostile input", _generic("reliability"), (), False
    ),
    "chunking": Spec(
        "Chunking: passages vs whole files on a real folder", _generic("chunking"), (), False
    ),
    "quality_aims": Spec(
        "Retrieval quality: BM25 length normalisation in hybrid, chosen out of sample",
        _generic("quality_aims"),
        ("scifact", "locomo"),
        False,
    ),
    "feedback": Spec(
        "Retrieval quality: pseudo-relevance feedback (Rocchio, RM3), chosen out of sample",
        _generic("feedback"),
        ("scifact", "locomo"),
        False,
    ),
    "encoders": Spec(
        "Encoder backends: torch, ONNX Runtime, ONNX int8 (speed and nDCG@10)",
        _generic("encoders"),
        ("scifact", "locomo"),
        False,
    ),
    "ann": Spec(
        "Dense search at scale: exact scan vs ANN index (10k-1M rows)",
        _generic("ann"),
        ("scifact",),
        False,
    ),
    "agent_loop": Spec(
        "Agent loop: every model call within budget",
        _generic("agent_loop"),
        ("scifact", "locomo"),
        False,
    ),
    "agent_traces": Spec(
        "Agent traces of generated shapes: facts from early tool outputs kept",
        _generic("agent_traces"),
        (),
        False,
    ),
    "finetune": Spec(
        "Encoder fine-tuning vs the base model and the query adapter (SciFact)",
        _generic("finetune"),
        ("scifact",),
        False,
    ),
    "memory_speed": Spec(
        "Memory selection speed (recall at 1k/10k/100k turns, cold and warm)",
        _generic("memory_speed"),
        ("locomo",),
        False,
    ),
    "speed": Spec(
        "Where users wait: query-time model calls, overhead over an external first stage",
        _generic("speed"),
        ("scifact",),
        False,
    ),
    "indexing": Spec(
        "Indexing at the model's pace: hybrid index vs one plain encode",
        _generic("indexing"),
        ("scifact", "locomo"),
        False,
    ),
}
