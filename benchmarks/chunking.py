"""Does splitting files into passages find the right file more often than indexing whole files?

A real folder this project did not write: the reStructuredText documentation that ships
inside the installed ``awscli`` package (its topic guides and the command examples of s3,
s3api, configure, sts and iam: ~290 files). Fourteen questions, each with the file(s) that
answer it, identified by reading them. For each question the engine retrieves passages
(or whole files), and the files are ranked by their best passage; hit@k is the share of
questions whose answer file is among the first k files.

    python -m benchmarks.chunking            # keyword and hybrid, whole files vs passages
    python -m benchmarks.chunking --quick    # keyword only (seconds)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import replace
from pathlib import Path

from ctxengine import ContextEngine
from ctxengine.chunking import MarkdownSplitter, read_folder

SUBFOLDERS = (
    "topics",
    "examples/s3",
    "examples/s3api",
    "examples/configure",
    "examples/sts",
    "examples/iam",
)

# question -> the files (relative to the awscli package) that answer it, found by reading them
QUESTIONS: dict[str, tuple[str, ...]] = {
    "How do I limit the bandwidth used by S3 transfers?": ("topics/s3-config.rst",),
    "What exit code does the CLI return when the process receives Ctrl-C?": (
        "topics/return-codes.rst",
    ),
    "How do I change the part size used for multipart uploads?": ("topics/s3-config.rst",),
    "Which environment variable selects the named profile?": ("topics/config-vars.rst",),
    "How do I configure the retry mode and the maximum number of attempts?": (
        "topics/config-vars.rst",
    ),
    "Does the CLI validate checksums when it downloads objects from S3?": ("topics/s3-faq.rst",),
    "How can credentials come from an external process?": ("topics/config-vars.rst",),
    "How do I create a pre-signed URL for an object?": ("examples/s3/presign.rst",),
    "How do I find out which account and identity my credentials belong to?": (
        "examples/sts/get-caller-identity.rst",
    ),
    "What happens when two object keys differ only in letter case on a case-insensitive filesystem?": (
        "topics/s3-case-insensitivity.rst",
    ),
    "How do I turn on S3 Transfer Acceleration for transfers?": ("topics/s3-config.rst",),
    "How do I assume a role with a web identity token?": (
        "topics/config-vars.rst",
        "examples/sts/assume-role-with-web-identity.rst",
    ),
    "How do I delete every object under a prefix?": ("examples/s3/rm.rst",),
    "How do I configure a bucket as a static website?": (
        "examples/s3/website.rst",
        "examples/s3api/put-bucket-website.rst",
    ),
}
KS = (1, 3, 5)


def awscli_root() -> Path | None:
    spec = importlib.util.find_spec("awscli")
    return Path(spec.origin).parent if spec and spec.origin else None


def load(root: Path, splitter: MarkdownSplitter | None) -> list:
    documents = []
    for sub in SUBFOLDERS:
        for doc in read_folder(root / sub, splitter=splitter):
            file = f"{sub}/{doc.id.split('#', 1)[0]}"
            documents.append(
                replace(doc, id=f"{sub}/{doc.id}", metadata={**doc.metadata, "file": file})
            )
    return documents


def file_ranking(engine: ContextEngine, question: str, candidates: int) -> list[str]:
    files: list[str] = []
    for hit in engine.retriever.retrieve(question, k=candidates):
        name = hit.document.metadata["file"]
        if name not in files:
            files.append(name)
    return files


def run(mode: str, root: Path, splitter: MarkdownSplitter | None) -> dict[str, float]:
    documents = load(root, splitter)
    started = time.perf_counter()
    engine = ContextEngine.from_documents(documents, retrieval=mode, rerank="none")
    index_s = time.perf_counter() - started
    hits = dict.fromkeys(KS, 0)
    for question, answers in QUESTIONS.items():
        ranking = file_ranking(engine, question, candidates=50)
        for k in KS:
            hits[k] += any(name in ranking[:k] for name in answers)
    n = len(QUESTIONS)
    return {
        "documents": len(documents),
        "index_s": index_s,
        **{f"hit@{k}": hits[k] / n for k in KS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="keyword mode only")
    parser.add_argument("--chunk-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    root = awscli_root()
    if root is None:
        print("awscli is not installed: nothing to measure (pip install awscli)")
        return 0
    modes = ("keyword",) if args.quick else ("keyword", "hybrid")
    print(f"folder: {root} ({', '.join(SUBFOLDERS)}); {len(QUESTIONS)} questions")
    print(f"| mode | indexing | documents | {' | '.join(f'hit@{k}' for k in KS)} | index s |")
    print("|---|---|---:|" + "---:|" * len(KS) + "---:|")
    for mode in modes:
        for label, splitter in (
            ("whole files", None),
            ("passages", MarkdownSplitter(args.chunk_tokens)),
        ):
            row = run(mode, root, splitter)
            cells = " | ".join(f"{row[f'hit@{k}']:.2f}" for k in KS)
            print(f"| {mode} | {label} | {row['documents']} | {cells} | {row['index_s']:.1f} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
