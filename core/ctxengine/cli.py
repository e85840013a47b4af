"""The ``ctxengine`` command: ``demo`` runs the design's scenario, ``build`` works on a folder,
``train`` fits the learned scorers of a saved index from a feedback log."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import CtxEngineError


def _console():  # imported lazily: ``ctxengine --help`` should be instant
    from rich.console import Console

    # Everything printed comes from the user (queries, documents, turns, paths): shown
    # literally, never read as markup ("[/i]") or emoji codes (":vampire:").
    return Console(markup=False, emoji=False, highlight=False)


def _print_packet(console, packet, title: str) -> None:
    from rich.panel import Panel
    from rich.text import Text

    console.rule(Text(title, style="bold"))
    console.print(Panel(Text(packet.text), title="packet.text", expand=True))
    for renderable in packet.renderables():
        console.print(renderable)


def _side_by_side(console, packets, titles) -> None:
    from rich.columns import Columns
    from rich.table import Table
    from rich.text import Text

    tables = []
    for packet, title in zip(packets, titles):
        table = Table(title=Text(title), title_justify="left")
        table.add_column("slot")
        table.add_column("tokens", justify="right")
        for slot, tokens in packet.usage.items():
            table.add_row(slot, str(tokens))
        table.add_row("total", f"{packet.tokens_used} / {packet.token_budget}", style="bold")
        table.add_row("documents", Text(", ".join(d.id for d in packet.documents)))
        table.add_row("memory turns", str(len(packet.memory_turns)))
        table.add_row("build ms", f"{packet.timings['total'] * 1000:.1f}")
        tables.append(table)
    console.rule(Text("turn 1 vs turn 2", style="bold"))
    console.print(Columns(tables))


def run_demo(args: argparse.Namespace) -> int:
    from . import ContextEngine
    from .demo import CONVERSATION, KNOWLEDGE_BASE, QUERY, SYSTEM_PROMPT, TOKEN_BUDGET

    console = _console()
    engine = ContextEngine.from_documents(
        KNOWLEDGE_BASE,
        system_prompt=SYSTEM_PROMPT,
        token_budget=TOKEN_BUDGET,
        retrieval=args.retrieval,
        compression=args.compression,
    )
    session = "demo"
    # Turn 1: the user's first question, nothing remembered yet.
    first_question = CONVERSATION[0][1]
    first = engine.build(first_question, session_id=session)
    for role, text in CONVERSATION:
        engine.remember(role, text, session_id=session)
    # Turn 2: the design's query, with the conversation in memory.
    second = engine.build(QUERY, session_id=session)
    _print_packet(console, first, f"turn 1: {first_question}")
    _print_packet(console, second, f"turn 2: {QUERY}")
    _side_by_side(console, [first, second], ["turn 1", "turn 2"])
    return 0


def _read_folder(folder: Path) -> list:
    from .types import Document

    if not folder.is_dir():
        raise CtxEngineError(f"--docs must be a folder, got {str(folder)!r}")
    documents = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in (".md", ".txt") and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if text.strip():
                rel = str(path.relative_to(folder))
                documents.append(Document(text=text, id=rel, metadata={"source": str(path)}))
    if not documents:
        raise CtxEngineError(f"no .md or .txt files under {str(folder)!r}")
    return documents


def run_build(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from . import ContextEngine
    from .embeddings import default_embedder

    console = _console()
    documents = _read_folder(Path(args.docs))
    if args.retrieval in ("dense", "hybrid", "adaptive"):
        embedder = default_embedder()
        # Embed in batches up front so the user sees progress; the cache makes the
        # retriever's own embedding step free afterwards.
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("embedding", total=len(documents))
            for start in range(0, len(documents), 64):
                batch = documents[start : start + 64]
                embedder.embed([doc.text for doc in batch])
                progress.advance(task, len(batch))
    kwargs = {}
    if args.system_prompt is not None:
        kwargs["system_prompt"] = args.system_prompt
    engine = ContextEngine.from_documents(
        documents,
        token_budget=args.budget,
        retrieval=args.retrieval,
        compression=args.compression,
        k=args.k,
        **kwargs,
    )
    packet = engine.build(args.query)
    if args.json:
        import json

        print(json.dumps(packet.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_packet(console, packet, args.query)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from . import ContextEngine
    from .learn import FeedbackLog, MemoryExample

    console = _console()
    if not Path(args.feedback).is_file():
        raise CtxEngineError(f"--feedback must be a feedback log (JSONL), got {args.feedback!r}")
    examples = FeedbackLog(args.feedback).examples()
    if args.memory_url is None:
        skipped = sum(isinstance(e, MemoryExample) for e in examples)
        examples = [e for e in examples if not isinstance(e, MemoryExample)]
        if skipped:
            console.print(f"{skipped} turn example(s) skipped: pass --memory-url to train the memory scorer")
    if not examples:
        raise CtxEngineError(f"{args.feedback} holds no query with an item marked useful")
    engine = ContextEngine.load(args.index, memory_url=args.memory_url, candidates=args.candidates)
    # only the options given: the rest are LinearScorer's own defaults
    options = {name: value for name, value in (("objective", args.objective), ("C", args.C), ("knots", args.knots))
               if value is not None}  # fmt: skip
    report = engine.fit(examples, **options)
    target = engine.save(args.out or args.index)
    for kind, figures in report.items():
        used = sorted(figures["importance"].items(), key=lambda kv: -kv[1])[:5]
        console.print(
            f"{kind}: {figures['examples']} examples ({figures['queries']} usable), "
            f"features used most " + ", ".join(f"{n} ({w:.2f})" for n, w in used)
        )
    console.print(f"saved with the index in {target}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctxengine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--retrieval", default="hybrid", help="keyword|tfidf|dense|hybrid|adaptive")
        p.add_argument("--compression", default="extractive", help="truncate|sentence|extractive|semantic")

    demo = sub.add_parser("demo", help="run the design's 5-document, two-turn scenario")
    common(demo)
    demo.set_defaults(func=run_demo)

    build = sub.add_parser("build", help="build a packet over a folder of .md/.txt files")
    build.add_argument("--docs", required=True, help="folder of .md / .txt files")
    build.add_argument("--query", required=True)
    build.add_argument("--budget", type=int, default=800, help="token budget (default 800)")
    build.add_argument("--k", type=int, default=5, help="documents at most (default 5)")
    build.add_argument("--system-prompt", default=None)
    build.add_argument("--json", action="store_true", help="print the packet as JSON")
    common(build)
    build.set_defaults(func=run_build)

    train = sub.add_parser("train", help="fit the learned scorers of a saved index from a feedback log")
    train.add_argument("--index", required=True, help="index directory (saved by engine.save)")
    train.add_argument("--feedback", required=True, help="JSONL log written by engine.record_feedback")
    train.add_argument("--memory-url", default=None, help="memory store holding the sessions (turn feedback)")
    train.add_argument("--candidates", type=int, default=30, help="candidates per query, as at query time")
    train.add_argument("--objective", default=None, help="pointwise (default) | pairwise")
    train.add_argument("--knots", type=int, default=None, help="knots per feature shape (0: linear; default 4)")
    train.add_argument("--C", type=float, default=None, help="inverse regularisation strength (default 1.0)")
    train.add_argument("--out", default=None, help="save here instead of over --index")
    train.set_defaults(func=run_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CtxEngineError as exc:
        print(f"ctxengine: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
