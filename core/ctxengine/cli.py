"""The ``ctxengine`` command: ``demo`` runs the design's scenario, ``build`` works on a folder,
``train`` fits the learned scorers of a saved index from a feedback log."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
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


def _kept(doc) -> str:
    """What compression kept, readable: "whole", or how many of the sentences."""
    from .text import split_sentences

    if doc.kept is None:
        return "whole"
    total = len(split_sentences(doc.document.text))
    if len(doc.kept) >= total and all(span.sentence_index >= 0 for span in doc.kept):
        return f"whole ({total} sentences)"
    return f"{len(doc.kept)} of {total} sentences"


def _documents_table(packet, title: str):
    from rich.table import Table

    hidden = {"alpha", "tag_importance"}  # inputs of a stage, not a stage's score
    stages: list[str] = []
    for doc in packet.documents:
        stages += [name for name in doc.stage_scores if name not in hidden and name not in stages]
    table = Table(title=title, title_justify="left", caption=_DOC_CAPTION, caption_justify="left")
    for column in ("#", "id", *stages, "kept", "tokens"):
        table.add_column(column, justify="left" if column in ("id", "kept") else "right")
    for rank, doc in enumerate(packet.documents, 1):
        cells = [f"{doc.stage_scores[s]:.2f}" if s in doc.stage_scores else "" for s in stages]
        table.add_row(str(rank), doc.id, *cells, _kept(doc), str(doc.tokens or ""))
    return table


_DOC_CAPTION = (
    "bm25: raw BM25; dense: cosine of MiniLM vectors (unrelated texts score ~0.2); hybrid: "
    "0.65 x dense + 0.35 x bm25, each scaled 0-1 over this query's candidates (so the last "
    "candidate scores 0); tags, dedup: the re-ranking chain's stages, in order"
)


def _memory_table(engine, query: str, session: str, packet, now: float):
    from rich.table import Table
    from rich.text import Text

    chosen = {turn.turn.id for turn in packet.memory_turns}
    scored = sorted(
        engine.memory.score(query, session_id=session), key=lambda s: (s.turn.timestamp, s.turn.seq)
    )
    table = Table(
        title="Memory: every stored turn, scored for this question (chronological)",
        title_justify="left",
        caption="effective = importance x recency x freshness + boost (40 x relevance to the "
        "question); recency halves every day; under 0.1 a turn is dropped. Columns: age, role, "
        "importance, recency, boost, effective, in packet, content",
        caption_justify="left",
    )
    for column, width in (
        ("age", 5),
        ("role", 9),
        ("importance", 5),
        ("recency", 7),
        ("boost", 5),
        ("effective", 5),
        ("in packet", 7),
    ):
        table.add_column(
            column,
            justify="left" if column in ("role", "in packet") else "right",
            no_wrap=True,
            min_width=width,
            overflow="ellipsis",
        )
    table.add_column("content", no_wrap=True, overflow="ellipsis", max_width=40)
    for item in scored:
        parts = item.components
        hours = (now - item.turn.timestamp) / 3600
        age = f"{hours / 24:.1f} d" if hours >= 24 else f"{hours:.1f} h"
        # styled Text, not markup: the console reads every string literally
        if item.turn.id in chosen:
            status = Text("yes", style="green")
        elif item.effective < engine.memory.drop_threshold:
            status = Text("dropped", style="red")
        else:
            status = Text("no room", style="yellow")
        table.add_row(
            age,
            item.role,
            f"{parts.get('importance', 0):.2f}",
            f"{parts.get('recency', 0):.3f}",
            f"{parts.get('boost', 0):.2f}",
            f"{item.effective:.2f}",
            status,
            item.content,
        )
    return table


def run_demo(args: argparse.Namespace) -> int:
    from rich.panel import Panel
    from rich.text import Text

    from . import ContextEngine, ManualClock
    from .demo import (
        FIRST_QUESTION,
        FIRST_QUESTION_HOURS_AGO,
        HISTORY,
        KNOWLEDGE_BASE,
        QUERY,
        SYSTEM_PROMPT,
        TOKEN_BUDGET,
    )

    console = _console()
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
        console.rule(Text(title, style="bold"))
        console.print(Panel(packet.text, title="packet.text", expand=True))
        console.print(_documents_table(packet, "Documents (best first)"))
    console.print(_memory_table(engine, QUERY, session, second, now))
    _side_by_side(console, [first, second], ["turn 1", "turn 2"])
    return 0


def _read_folder(args: argparse.Namespace) -> list:
    from .chunking import MarkdownSplitter, read_folder

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

    from . import ContextEngine
    from .embeddings import default_embedder

    console = _console()
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
    with Progress(*columns, console=console, transient=True, disable=args.json) as progress:
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
    console.print(f"indexed {len(documents)} {unit} in {indexed:.1f} s ({args.retrieval})")
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
            console.print(
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
        console.print(
            f"{kind}: {figures['examples']} examples ({figures['queries']} usable), "
            f"features used most " + ", ".join(f"{n} ({w:.2f})" for n, w in used)
        )
    console.print(f"saved with the index in {target}")
    return 0


def default_cache_dir() -> Path:
    """Where the command keeps embeddings unless told otherwise: the user cache directory
    (``~/.cache/ctxengine/embeddings`` on Linux)."""
    from .onnx_backend import user_cache_root

    return user_cache_root() / "embeddings"


EPILOG = """embedding cache:
  Embeddings are kept on disk (an SQLite file per model, keyed by text) so a second run
  embeds nothing it has seen. Default: the user cache directory (%(cache)s);
  CTXENGINE_EMBED_CACHE=DIR or --embed-cache DIR moves it, --no-embed-cache turns it off.

environment:
  CTXENGINE_EMBED_CACHE  the embedding cache directory (see above)
  CTXENGINE_EMBED_BACKEND  torch | onnx | onnx-int8 (what --embed-backend sets)
  CTXENGINE_ONNX_CACHE   where ONNX graphs exported from the model are kept
  HF_HUB_OFFLINE         set to 1 by this command: models load from local folders only
"""


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    epilog = EPILOG % {"cache": default_cache_dir()}
    parser = argparse.ArgumentParser(
        prog="ctxengine",
        description=__doc__,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ctxengine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from .compress import STRATEGIES
    from .onnx_backend import BACKENDS
    from .retrieval import MODES

    def common(p: argparse.ArgumentParser) -> None:
        # the names come from the registries, so the CLI never lists a strategy twice
        p.add_argument(
            "--retrieval", default="hybrid", choices=MODES, help="first stage (default hybrid)"
        )
        p.add_argument(
            "--compression",
            default="extractive",
            choices=STRATEGIES,
            help="compression strategy (default extractive)",
        )
        cache = p.add_mutually_exclusive_group()
        cache.add_argument(
            "--embed-cache",
            metavar="DIR",
            default=None,
            help=f"embedding cache directory (default: $CTXENGINE_EMBED_CACHE, else {default_cache_dir()})",
        )
        cache.add_argument(
            "--no-embed-cache", action="store_true", help="keep embeddings in memory only"
        )
        p.add_argument(
            "--embed-backend",
            default=None,
            choices=BACKENDS,
            help="what the embedding model runs on (default: $CTXENGINE_EMBED_BACKEND, else torch)",
        )

    demo = sub.add_parser(
        "demo",
        help="five documents, turns of different ages, two packets side by side",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(demo)
    demo.set_defaults(func=run_demo)

    build = sub.add_parser(
        "build",
        help="index a folder of .md/.txt/.rst files and build a packet for a query",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument(
        "--docs", required=True, help="folder of .md / .txt / .rst files (searched recursively)"
    )
    build.add_argument("--query", required=True)
    build.add_argument("--budget", type=int, default=800, help="token budget (default 800)")
    build.add_argument("--k", type=int, default=5, help="documents at most (default 5)")
    build.add_argument("--system-prompt", default=None)
    build.add_argument("--json", action="store_true", help="print the packet as JSON")
    build.add_argument(
        "--chunk-tokens",
        type=int,
        default=256,
        help="passage size in tokens when splitting files (default 256)",
    )
    build.add_argument(
        "--whole-files",
        action="store_true",
        help="index each file as one document instead of splitting it",
    )
    common(build)
    build.set_defaults(func=run_build)

    train = sub.add_parser(
        "train", help="fit the learned scorers of a saved index from a feedback log"
    )
    train.add_argument("--index", required=True, help="index directory (saved by engine.save)")
    train.add_argument(
        "--feedback", required=True, help="JSONL log written by engine.record_feedback"
    )
    train.add_argument(
        "--memory-url", default=None, help="memory store holding the sessions (turn feedback)"
    )
    train.add_argument(
        "--candidates", type=int, default=30, help="candidates per query, as at query time"
    )
    train.add_argument("--objective", default=None, help="pointwise (default) | pairwise")
    train.add_argument(
        "--knots", type=int, default=None, help="knots per feature shape (0: linear; default 4)"
    )
    train.add_argument(
        "--C", type=float, default=None, help="inverse regularisation strength (default 1.0)"
    )
    train.add_argument("--out", default=None, help="save here instead of over --index")
    train.set_defaults(func=run_train)
    return parser


def _embed_environment(args: argparse.Namespace) -> dict[str, str | None]:
    """The variables the default embedder reads, as this command sets them:
    CTXENGINE_EMBED_CACHE is the flag's directory, else the variable's, else the user cache
    directory; CTXENGINE_EMBED_BACKEND the flag's backend when given (None: unset)."""
    changes: dict[str, str | None] = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    if getattr(args, "no_embed_cache", False):
        changes["CTXENGINE_EMBED_CACHE"] = None
    elif getattr(args, "embed_cache", None):
        changes["CTXENGINE_EMBED_CACHE"] = args.embed_cache
    elif not os.environ.get("CTXENGINE_EMBED_CACHE"):
        changes["CTXENGINE_EMBED_CACHE"] = str(default_cache_dir())
    if getattr(args, "embed_backend", None):
        changes["CTXENGINE_EMBED_BACKEND"] = args.embed_backend
    return changes


@contextlib.contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Set (None: unset) ``changes`` for the command's duration, then restore what was
    there: ``main()`` called from Python leaves the caller's environment as it found it."""
    saved = {name: os.environ.get(name) for name in changes}
    try:
        _apply(changes)
        yield
    finally:
        _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _environment(_embed_environment(args)):
        try:
            return int(args.func(args))
        except CtxEngineError as exc:
            print(f"ctxengine: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
