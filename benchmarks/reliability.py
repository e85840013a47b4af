"""Linear time on hostile input: each step on the query path, timed on an input and on
the same input doubled. A linear step takes about twice as long (ratio ~2); a quadratic
one ~4. The peer row is ``unicodedata.normalize`` on the raw input, the step that was
quadratic on long runs of combining marks before ``ctxengine.text.stream_safe``.

    python -m benchmarks.reliability [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import unicodedata
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

INPUTS: dict[str, Callable[[int], str]] = {
    "alternating accents": lambda n: "a" + "\u0301\u0316" * (n // 2),
    "'<' + zero-width run": lambda n: ("<" + "\u200b" * 50) * (n // 51),
    "'<' + spaces": lambda n: "<" + " " * n,
    "dots and quotes": lambda n: '."' * (n // 2),
    "abbreviations": lambda n: "e.g. " * (n // 5),
    "one long word": lambda n: "a" * n,
    "CJK": lambda n: "猫" * n,
}


def _median(fn: Callable[[str], object], text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs (a smoke test)")
    args = parser.parse_args(argv)
    from ctxengine import formatting
    from ctxengine.embeddings import HashingEmbedder
    from ctxengine.engine import ContextEngine
    from ctxengine.text import analyze, sentences

    size = 20_000 if args.quick else 100_000
    repeats = 1 if args.quick else 3
    engine = ContextEngine.from_documents(
        ["Cats sleep a lot. Dogs bark.", "Parrots talk, e.g. they mimic."],
        embedder=HashingEmbedder(64),
    )
    steps: dict[str, Callable[[str], object]] = {
        "analyze": analyze,
        "sentences": sentences,
        "escape": formatting.escape,
        "engine.build": engine.build,
    }
    print(f"{'input':24} {'step':14} {'n (ms)':>10} {'2n (ms)':>10} {'ratio':>6}")
    for name, make in INPUTS.items():
        small, large = make(size), make(2 * size)
        for step, fn in steps.items():
            a = _median(fn, small, repeats)
            b = _median(fn, large, repeats)
            print(f"{name:24} {step:14} {a * 1000:10.1f} {b * 1000:10.1f} {b / a:6.2f}")
    # The peer: raw NFKC on the accent run (smaller sizes: it is quadratic).
    peer = 10_000 if args.quick else 20_000
    text = INPUTS["alternating accents"]
    nfkc = lambda value: unicodedata.normalize("NFKC", value)
    a = _median(nfkc, text(peer), 1)
    b = _median(nfkc, text(2 * peer), 1)
    print(
        f"{'alternating accents':24} {'raw NFKC':14} {a * 1000:10.1f} {b * 1000:10.1f} {b / a:6.2f}  (peer, n={peer})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
