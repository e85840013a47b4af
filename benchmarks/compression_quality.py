"""Compression quality: how much of the evidence survives a token budget.

* SciFact: for every train claim that has evidence, its cited abstracts (sentences joined
  with " ", best-cited first) are compressed together; metric: the share of the claim's
  rationale sentences still in the kept text.
* LoCoMo dev: for every question of categories 1-4, the top 10 turns ("Speaker: text")
  that ``HybridRetriever`` (default hybrid mode, one index per conversation) returns are
  compressed together; metric: the share of the question's evidence turns among those 10
  that are still kept, over the questions with at least one evidence turn retrieved. This
  is the engine's own path (retrieve, then compress) on chat turns, short documents already
  ranked. LoCoMo's evidence is whole turns (3.4 sentences on average among those
  retrieved), so the metric rewards keeping a turn whole: the sentence-level strategies
  keep part of most evidence turns, all of few.

Budgets: 25% and 50% of the texts' tokens (cl100k_base). A rationale sentence or an
evidence turn counts as kept when >= 90% of its characters are; scores average over
claims / questions.

Peers, both on the same bundled MiniLM and disk cache (wrapped as in benchmarks/peers.py):

* LlamaIndex ``SentenceEmbeddingOptimizer`` per abstract / turn, ``percentile_cutoff`` =
  the budget share, its default punkt splitter; once with its default one-sentence context
  on each side, once with none (it keeps every sentence when share x sentences < 1);
* LangChain ``CharacterTextSplitter(chunk_size=300, separator=". ")`` then
  ``EmbeddingsFilter(k = budget share of the chunks)`` over all abstracts / turns at once.

Neither takes a token budget, so their output (in the order they return it) is cut to the
budget afterwards, the last piece with the token counter: that cut is ours, not theirs.

    python -m benchmarks.compression_quality [--dataset scifact|locomo|both] [--limit N]
                                             [--quick] [--variants]
    python -m benchmarks.compression_quality --splitter   # sentence boundaries vs SciFact's
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ROOT first: an unrelated 'benchmarks' package in site-packages must not shadow ours
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.data import load_scifact_claims, load_scifact_sentences
from benchmarks.peers import langchain_embeddings, llamaindex_embedding
from benchmarks.retrieval_quality import locomo
from ctxengine.compress import (
    ExtractiveCompressor,
    SemanticCompressor,
    SentenceCompressor,
    TruncateCompressor,
)
from ctxengine.embeddings import default_embedder
from ctxengine.retrieval import HybridRetriever
from ctxengine.tokens import default_token_counter
from ctxengine.types import Document, ScoredDocument

KEPT_SHARE = 0.9  # a gold sentence / evidence turn is kept when this share of its characters is
RETRIEVED = 10  # LoCoMo: turns retrieved per question, then compressed
Ranges = list[list[tuple[int, int]]]  # per text: kept character ranges


@dataclass
class Case:
    """One query and the texts compressed together for it (SciFact: cited abstracts;
    LoCoMo: retrieved turns, each one gold span)."""

    query: str
    texts: list[str]  # the cited abstracts, sentences joined with " " / the retrieved turns
    sentence_spans: list[list[tuple[int, int]]]  # per text: each gold sentence's offsets
    rationale: list[tuple[int, int]]  # (text position, gold sentence index)
    tokens: int  # all texts together


def scifact_cases(quick: bool = False, limit: int | None = None) -> list[Case]:
    """Claims with evidence, their cited abstracts and rationale sentences, in file order."""
    limit = 40 if quick and limit is None else limit
    counter = default_token_counter()
    abstracts = load_scifact_sentences()
    cases = []
    for claim in load_scifact_claims():
        if not any(claim.evidence.values()):
            continue
        texts, spans, rationale = [], [], []
        for doc_id in claim.cited_doc_ids:
            if doc_id not in abstracts:
                continue
            sentences = [s.strip() for s in abstracts[doc_id][1]]
            offsets, position = [], 0
            for sentence in sentences:
                offsets.append((position, position + len(sentence)))
                position += len(sentence) + 1
            rationale += [
                (len(texts), i) for i in claim.evidence.get(doc_id, []) if i < len(sentences)
            ]
            texts.append(" ".join(sentences))
            spans.append(offsets)
        if rationale:
            tokens = sum(counter.count(text) for text in texts)
            cases.append(Case(claim.claim, texts, spans, rationale, tokens))
        if limit is not None and len(cases) >= limit:
            break
    print(
        f"SciFact train claims with evidence: {len(cases)}, "
        f"{sum(len(c.rationale) for c in cases)} rationale sentences, "
        f"{sum(len(c.texts) for c in cases)} abstracts",
        flush=True,
    )
    return cases


def locomo_cases(
    quick: bool = False, limit: int | None = None, passage_window: int | None = None
) -> list[Case]:
    """Per answerable question (the slice retrieval_quality evaluates; ``limit``: the first
    N in all), its top turns; questions whose evidence was not retrieved are left out.
    ``passage_window``: the retriever's (None: its default; 0: whole-document vectors)."""
    options = {} if passage_window is None else {"passage_window": passage_window}
    counter = default_token_counter()
    cases, asked = [], 0
    for collection in locomo(quick):
        queries = collection.queries[: None if limit is None else max(0, limit - asked)]
        asked += len(queries)
        if not queries:
            break
        retriever = HybridRetriever(collection.documents, embedder=default_embedder(), **options)
        for question, relevant in queries:
            hits = retriever.retrieve(question, RETRIEVED)
            texts = [hit.document.text for hit in hits]
            evidence = [(i, 0) for i, hit in enumerate(hits) if hit.id in relevant]
            if evidence:
                spans = [[(0, len(text))] for text in texts]
                cases.append(Case(question, texts, spans, evidence, sum(map(counter.count, texts))))
    retrieved = sum(len(c.rationale) for c in cases)
    print(
        f"LoCoMo dev questions: {asked}, {len(cases)} with an evidence turn in the top "
        f"{RETRIEVED} ({retrieved} evidence turns retrieved)",
        flush=True,
    )
    return cases


def rationale_kept(case: Case, ranges: Ranges) -> float:
    kept = 0
    for doc, index in case.rationale:
        start, end = case.sentence_spans[doc][index]
        covered = sum(max(0, min(end, e) - max(start, s)) for s, e in ranges[doc])
        kept += covered >= KEPT_SHARE * (end - start)
    return kept / len(case.rationale)


def cover(piece: str, text: str) -> list[tuple[int, int]]:
    """Where ``piece`` (text a peer returned, re-joined its own way) sits in ``text``:
    longest runs that occur verbatim, left to right."""
    ranges, pos = [], 0
    while pos < len(piece):
        if piece[pos].isspace():
            pos += 1
            continue
        low, high = 0, len(piece) - pos  # a prefix of a substring is a substring: bisect
        while low < high:
            mid = (low + high + 1) // 2
            if piece[pos : pos + mid] in text:
                low = mid
            else:
                high = mid - 1
        if low == 0:
            pos += 1
            continue
        start = text.find(piece[pos : pos + low])
        ranges.append((start, start + low))
        pos += low
    return ranges


def fit_to_budget(
    pieces: Sequence[tuple[int, str]], budget: int
) -> tuple[list[tuple[int, str]], int]:
    """Peer output ``(abstract, text)`` in the peer's order, cut to ``budget`` tokens the
    way the engine would: whole pieces while they fit, then one truncated piece."""
    counter = default_token_counter()
    kept, used = [], 0
    for doc, text in pieces:
        tokens = counter.count(text)
        if used + tokens <= budget:
            kept.append((doc, text))
            used += tokens
            continue
        cut = counter.truncate(text, budget - used)
        if cut.strip():
            kept.append((doc, cut))
            used += counter.count(cut)
        break
    return kept, used


# --- runners: (case, budget, share) -> (ranges per abstract, tokens used) ---------------


def ours(compressor: object) -> Callable[[Case, int, float], tuple[Ranges, int]]:
    def run(case: Case, budget: int, share: float) -> tuple[Ranges, int]:
        docs = [
            ScoredDocument(Document(text, id=f"d{i}"), 1.0 / (1 + i))
            for i, text in enumerate(case.texts)
        ]
        out = compressor.compress(case.query, docs, budget)  # type: ignore[attr-defined]
        ranges: Ranges = [[] for _ in case.texts]
        for doc in out:
            position = int(doc.id[1:])
            spans = doc.kept or []
            ranges[position] = (
                [(0, len(doc.document.text))]
                if doc.kept is None
                else [(s.start, s.end) for s in spans]
            )
        return ranges, sum(doc.tokens or 0 for doc in out)

    return run


def llamaindex(context: int) -> Callable[[Case, int, float], tuple[Ranges, int]]:
    from llama_index.core.postprocessor.optimizer import SentenceEmbeddingOptimizer
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    model = llamaindex_embedding()

    def run(case: Case, budget: int, share: float) -> tuple[Ranges, int]:
        optimizer = SentenceEmbeddingOptimizer(
            embed_model=model,
            percentile_cutoff=share,
            context_before=context,
            context_after=context,
        )
        nodes = [NodeWithScore(node=TextNode(text=text), score=1.0) for text in case.texts]
        pieces = []
        for doc, node in enumerate(nodes):
            try:
                out = optimizer.postprocess_nodes([node], query_bundle=QueryBundle(case.query))
                pieces.append((doc, out[0].node.get_content()))
            except ValueError:  # "Optimizer returned zero sentences" (short abstract)
                continue
        return _ranges(case, *fit_to_budget(pieces, budget))

    return run


def langchain() -> Callable[[Case, int, float], tuple[Ranges, int]]:
    from langchain_classic.retrievers.document_compressors import EmbeddingsFilter
    from langchain_core.documents import Document as LCDocument
    from langchain_text_splitters import CharacterTextSplitter

    embeddings = langchain_embeddings()
    # it warns for every chunk longer than chunk_size (a sentence longer than 300 chars)
    logging.getLogger("langchain_text_splitters.base").setLevel(logging.ERROR)
    splitter = CharacterTextSplitter(chunk_size=300, chunk_overlap=0, separator=". ")

    def run(case: Case, budget: int, share: float) -> tuple[Ranges, int]:
        chunks = splitter.split_documents(
            [
                LCDocument(page_content=text, metadata={"doc": i})
                for i, text in enumerate(case.texts)
            ]
        )
        keep = max(1, math.ceil(share * len(chunks)))
        out = EmbeddingsFilter(embeddings=embeddings, k=keep).compress_documents(chunks, case.query)
        return _ranges(
            case, *fit_to_budget([(d.metadata["doc"], d.page_content) for d in out], budget)
        )

    return run


def _ranges(case: Case, pieces: list[tuple[int, str]], used: int) -> tuple[Ranges, int]:
    ranges: Ranges = [[] for _ in case.texts]
    for doc, text in pieces:
        ranges[doc] += cover(text, case.texts[doc])
    return ranges, used


# --- sentence splitting against SciFact's own sentences -----------------------------------


def splitter_agreement() -> list[dict]:
    """Boundary precision/recall of sentence splitters on all 5,183 abstracts, joined with
    " " as above, against the dataset's sentence list (which has its own odd splits)."""
    from llama_index.core.utils import globals_helper

    from ctxengine.text import split_sentences

    punkt = globals_helper.punkt_tokenizer
    splitters = {
        "ctxengine split_sentences": lambda text: [end for _, end in split_sentences(text)],
        "nltk punkt (LlamaIndex default)": lambda text: [
            s + len(p) for s, p in _find_all(text, punkt.tokenize(text))
        ],
    }
    rows = []
    abstracts = load_scifact_sentences()
    for name, ends in splitters.items():
        hits = found = gold_total = exact = 0
        started = time.perf_counter()
        for _title, sentences in abstracts.values():
            sentences = [s.strip() for s in sentences if s.strip()]
            text = " ".join(sentences)
            gold = set(itertools.accumulate(len(s) + 1 for s in sentences[:-1]))
            gold = {g - 1 for g in gold}  # end offsets of all but the last sentence
            predicted = set(ends(text)[:-1])
            hits += len(gold & predicted)
            found += len(predicted)
            gold_total += len(gold)
            exact += gold == predicted
        rows.append(
            {
                "splitter": name,
                "precision": hits / max(1, found),
                "recall": hits / max(1, gold_total),
                "exact": exact / len(abstracts),
                "seconds": time.perf_counter() - started,
            }
        )
    print(f"{'splitter':32} {'precision':>9} {'recall':>7} {'abstracts exact':>15} {'seconds':>7}")
    for row in rows:
        print(
            f"{row['splitter']:32} {row['precision']:>9.3f} {row['recall']:>7.3f} "
            f"{row['exact']:>15.3f} {row['seconds']:>7.2f}"
        )
    return rows


def _find_all(text: str, pieces: list[str]) -> list[tuple[int, str]]:
    out, pos = [], 0
    for piece in pieces:
        pos = text.find(piece, pos)
        out.append((pos, piece))
        pos += len(piece)
    return out


# --- the table ---------------------------------------------------------------------------


def runners(variants: bool) -> list[tuple[str, Callable[[Case, int, float], tuple[Ranges, int]]]]:
    rows = [
        ("truncate", ours(TruncateCompressor())),
        ("sentence", ours(SentenceCompressor())),
        ("extractive", ours(ExtractiveCompressor())),
        ("semantic", ours(SemanticCompressor())),
    ]
    if variants:
        rows += [
            ("sentence fill=False", ours(SentenceCompressor(fill=False))),
            ("extractive density", ours(ExtractiveCompressor(selection="density"))),
            ("extractive rank_weight=0", ours(ExtractiveCompressor(rank_weight=0.0))),
            ("extractive rank_weight=0.3", ours(ExtractiveCompressor(rank_weight=0.3))),
            ("semantic lexical=0", ours(SemanticCompressor(lexical_weight=0.0))),
            ("semantic lexical=0.3", ours(SemanticCompressor(lexical_weight=0.3))),
            ("semantic density", ours(SemanticCompressor(selection="density"))),
            *(
                (f"extractive whole_below={n}", ours(ExtractiveCompressor(whole_below=n)))
                for n in (0, 64, 128)
            ),
            *(
                (f"semantic whole_below={n}", ours(SemanticCompressor(whole_below=n)))
                for n in (0, 64, 128)
            ),
        ]
    rows += [
        ("llamaindex optimizer ctx=1", llamaindex(1)),
        ("llamaindex optimizer ctx=0", llamaindex(0)),
        ("langchain embeddings filter", langchain()),
    ]
    return rows


# dataset: (its cases, what is kept, what a case is)
DATASETS: dict[str, tuple[Callable[[bool, int | None], list[Case]], str, str]] = {
    "scifact": (scifact_cases, "rationale kept", "claim"),
    "locomo": (locomo_cases, "evidence kept", "question"),
}


def evaluate(
    dataset: str, cases: list[Case], shares: Sequence[float], variants: bool = False
) -> list[dict]:
    """One row per strategy and budget share: mean share kept, tokens used / budget, cases
    over budget, median ms per case."""
    _, kept_label, unit = DATASETS[dataset]
    results = []
    print(
        f"{'strategy':30} {'budget':>6} {kept_label:>14} {'tokens/budget':>13} "
        f"{'over':>4} {'ms/' + unit:>11}"
    )
    for name, run in runners(variants):
        for share in shares:
            kept, used, budgets, times, over = [], [], [], [], 0
            for case in cases:
                budget = int(share * case.tokens)
                started = time.perf_counter()
                ranges, tokens = run(case, budget, share)
                times.append(time.perf_counter() - started)
                kept.append(rationale_kept(case, ranges))
                used.append(tokens)
                budgets.append(budget)
                over += tokens > budget
            row = {
                "dataset": dataset,
                "cases": len(cases),
                "strategy": name,
                "budget": share,
                "kept": statistics.fmean(kept),
                "used": sum(used) / max(1, sum(budgets)),
                "over": over,
                "ms": 1000 * statistics.median(times),
            }
            results.append(row)
            print(
                f"{row['strategy']:30} {row['budget']:>6.0%} {row['kept']:>14.3f} "
                f"{row['used']:>13.2f} {row['over']:>4} {row['ms']:>11.2f}",
                flush=True,
            )
    return results


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=(*DATASETS, "both"), default="both")
    parser.add_argument(
        "--limit", type=int, default=None, help="first N claims with evidence / LoCoMo questions"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="40 claims / one conversation's first 40 questions, 25%% budget only",
    )
    parser.add_argument("--variants", action="store_true", help="also the tuning variants")
    parser.add_argument(
        "--passage-window",
        type=int,
        default=None,
        help="LoCoMo: the retriever's passage_window (0: whole-document vectors)",
    )
    parser.add_argument(
        "--splitter",
        action="store_true",
        help="only: sentence boundaries vs SciFact's own sentences",
    )
    args = parser.parse_args(argv)
    if args.splitter:
        return splitter_agreement()
    shares = (0.25,) if args.quick else (0.25, 0.5)
    default_embedder().embed(["warm-up"])  # load the model outside the timings
    rows = []
    for dataset, (load, _, _) in DATASETS.items():
        if args.dataset in (dataset, "both"):
            counter = default_token_counter().name
            print(f"\n{dataset}: budget = share of the texts' tokens ({counter})")
            cases = (
                load(args.quick, args.limit, args.passage_window)
                if dataset == "locomo"
                else load(args.quick, args.limit)
            )
            rows += evaluate(dataset, cases, shares, args.variants)
    return rows


if __name__ == "__main__":
    main()
