"""The ``ctxengine`` subcommands: ``demo``, ``build`` and ``train`` (each takes the parsed
arguments and returns the exit status)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CtxEngineError
from .show import console, documents_table, memory_table, print_packet, side_by_side


def run_demo(args: argparse.Namespace) -> int:
    from rich.panel import Panel
    from rich.text import Text

    from .. import ContextEngine, ManualClock
    from ..demo import (
        FIRST_QUESTION,
        FIRST_QUESTION_HOURS_AGO,
        HISTORY,
        KNOWLEDGE_BASE,
        QUERY,
        SYSTEM_PROMPT,
        TOKEN_BUDGET,
    )

    out = console()
    now = 1_750_000_000.0
    clock = ManualClock(now - FIRST_QUESTION_HOURS_AGO * 3600)
    engine = ContextEngine.from_documents(
        KNOWLEDGE_BASE,
        system_prompt=SYSTEM_PROMPT,
        token_budget=TOKEN_BUDGET,
        retrieval=args.retrieval,
        compression=args.compression,
        clock=clock,
    )
    session = "demo"
    # Turn 1, three days ago: the user's first question, nothing remembered yet.
    first = engine.build(FIRST_QUESTION, session_id=session)
    for hours, role, text in HISTORY:
        engine.remember(role, text, session_id=session, timestamp=now - hours * 3600)
    clock.set(now)
    # Turn 2, now: the history has aged; the question is about agents' memory.
    second = engine.build(QUERY, session_id=session)
    for packet, title in (
        (first, f"turn 1 (3 days ago): {FIRST_QUESTION}"),
        (second, f"turn 2 (now): {QUERY}"),
    ):
        out.rule(Text(title, style="bold"))
        out.print(Panel(packet.text, title="packet.text", expand=True))
        out.print(documents_table(packet, "Documents (best first)"))
    out.print(memory_table(engine, QUERY, session, second, now))
    side_by_side(out, [first, second], ["turn 1", "turn 2"])
    return 0


def _read_folder(args: argparse.Namespace) -> list:
    from ..chunking import MarkdownSplitter, read_folder

    folder = Path(args.docs)
    if not folder.is_dir():
        raise CtxEngineError(f"--docs must be a folder, got {str(folder)!r}")
    splitter = None if args.whole_files else MarkdownSplitter(args.chunk_tokens)
    documents = read_folder(folder, splitter=splitter)
    if not documents:
        raise CtxEngineError(f"no .md, .txt or .rst files under {str(folder)!r}")
    return documents


class _ProgressEmbedder:
    """Feeds an embedder in batches and advances one progress display, so every embedding
    phase of indexing (documents, then sentence windows, in whatever calls the retriever
    makes) shows on the same bar, with its rate."""

    def __init__(self, inner, progress, task, batch_size: int = 64) -> None:
        self.inner, self.progress, self.task, self.batch_size = inner, progress, task, batch_size
        self.name, self.dimension = inner.name, inner.dimension

    def embed(self, texts):
        import numpy as np

        texts = list(texts)
        self.progress.update(
            self.task, total=(self.progress.tasks[self.task].total or 0) + len(texts)
        )
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            parts.append(self.inner.embed(batch))
            self.progress.advance(self.task, len(batch))
        return np.concatenate(parts) if parts else self.inner.embed([])


def run_build(args: argparse.Namespace) -> int:
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    from .. import ContextEngine
    from ..embeddings import default_embedder

    out = console()
    started = time.perf_counter()
    documents = _read_folder(args)
    files = len({d.metadata["source"] for d in documents})
    kwargs = {}
    if args.system_prompt is not None:
        kwargs["system_prompt"] = args.system_prompt

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} texts/s" if task.speed else "")

    columns = (
        TextColumn("embedding", style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=True, disable=args.json) as progress:
        embedder = None
        if args.retrieval in ("dense", "hybrid", "adaptive") or args.compression == "semantic":
            task = progress.add_task("embedding", total=0)
            embedder = _ProgressEmbedder(default_embedder(), progress, task)
        engine = ContextEngine.from_documents(
            documents,
            token_budget=args.budget,
            retrieval=args.retrieval,
            compression=args.compression,
            k=args.k,
            embedder=embedder,
            **kwargs,
        )
    indexed = time.perf_counter() - started
    packet = engine.build(args.query)
    if args.json:
        import json

        print(json.dumps(packet.to_dict(), indent=2, ensure_ascii=False))
        return 0
    unit = "files" if args.whole_files else f"passages from {files} files"
    out.print(f"indexed {len(documents)} {unit} in {indexed:.1f} s ({args.retrieval})")
    print_packet(out, packet, args.query)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from .. import ContextEngine
    from ..learn import FeedbackLog, MemoryExample

    out = console()
    if not Path(args.feedback).is_file():
        raise CtxEngineError(f"--feedback must be a feedback log (JSONL), got {args.feedback!r}")
    examples = FeedbackLog(args.feedback).examples()
    if args.memory_url is None:
        skipped = sum(isinstance(e, MemoryExample) for e in examples)
        examples = [e for e in examples if not isinstance(e, MemoryExample)]
        if skipped:
            out.print(
                f"{skipped} turn example(s) skipped: pass --memory-url to train the memory scorer"
            )
    if not examples:
        raise CtxEngineError(f"{args.feedback} holds no query with an item marked useful")
    engine = ContextEngine.load(args.index, memory_url=args.memory_url, candidates=args.candidates)
    # only the options given: the rest are LinearScorer's own defaults
    options = {
        name: value
        for name, value in (("objective", args.objective), ("C", args.C), ("knots", args.knots))
        if value is not None
    }
    report = engine.fit(examples, **options)
    target = engine.save(args.out or args.index)
    for kind, figures in report.items():
        used = sorted(figures["importance"].items(), key=lambda kv: -kv[1])[:5]
        out.print(
            f"{kind}: {figures['examples']} examples ({figures['queries']} usable), "
            f"features used most " + ", ".join(f"{n} ({w:.2f})" for n, w in used)
        )
    out.print(f"saved with the index in {target}")
    return 0
