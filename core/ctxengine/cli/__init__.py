"""The ``ctxengine`` command: ``demo`` runs the design's scenario, ``build`` works on a folder,
``train`` fits the learned scorers of a saved index from a feedback log."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..errors import CtxEngineError
from .commands import run_build, run_demo, run_train


def default_cache_dir() -> Path:
    """Where the command keeps embeddings unless told otherwise: the user cache directory
    (``~/.cache/ctxengine/embeddings`` on Linux)."""
    from ..onnx_backend import user_cache_root

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
    from .._version import __version__

    epilog = EPILOG % {"cache": default_cache_dir()}
    parser = argparse.ArgumentParser(
        prog="ctxengine",
        description=__doc__,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ctxengine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from ..compress import STRATEGIES
    from ..onnx_backend import BACKENDS
    from ..retrieval import MODES

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
            from ..display import visible

            # the message may quote a path, an id or a query holding terminal controls
            print(f"ctxengine: error: {visible(str(exc))}", file=sys.stderr)
            return 2
