"""The extractive compressor counts tokens lazily (only what decides a choice near the budget
edge; where counts add up, from each sentence's remembered counts) and still keeps exactly
the sentences the count-everything implementation kept, with either ledger.

``reference_extractive`` below is the selection ``ExtractiveCompressor`` made before
counting became lazy (commit ff687c6), copied here unchanged in behaviour: every sentence
and every document is counted up front. SciFact claims over 30 candidate abstracts and
LoCoMo questions over 30 turns then ask both for the same budgets; any difference in what
is kept fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from ctxengine.compress import ExtractiveCompressor
from ctxengine.compress.base import _keep_fences_whole
from ctxengine.scoring import idf_recall
from ctxengine.text import analyze, split_sentences
from ctxengine.tokens import TiktokenCounter, joins_add_up, token_bounds
from ctxengine.types import Document, ScoredDocument

SLACK = 2  # the compressor's _JOIN_SLACK


def reference_extractive(counter, query, docs, max_tokens, *, rank_weight=0.1, whole_below=96):
    """``{document position: [(sentence index, text), ...]}`` and each kept text's count."""
    count = counter.count
    docs = [d for d in docs if d.document.text.strip()]
    if not docs:
        return {}, {}
    whole = [count(d.document.text) for d in docs]
    if sum(whole) <= max_tokens:
        return {i: None for i in range(len(docs))}, dict(enumerate(whole))
    units = []  # (doc, index, text, tokens, terms, parts)
    for position, doc in enumerate(docs):
        text = doc.document.text
        spans = _keep_fences_whole(text, split_sentences(text))
        sentences = [
            (position, index, text[s:e], count(text[s:e]), frozenset(analyze(text[s:e])), ())
            for index, (s, e) in enumerate(spans)
        ]
        if len(sentences) > 1 and whole[position] < whole_below and whole[position] <= max_tokens:
            joined = " ".join(u[2] for u in sentences)
            terms = frozenset().union(*(u[4] for u in sentences))
            sentences = [(position, sentences[0][1], joined, count(joined), terms, sentences)]
        units += sentences
    scores = idf_recall(frozenset(analyze(query)), [u[4] for u in units])
    scores = scores + np.array([rank_weight / (1 + u[0]) for u in units])
    order = sorted(range(len(units)), key=lambda i: (-scores[i], units[i][0], units[i][1]))
    chosen, doc_tokens, used = {}, {}, 0
    for i in order:
        room = max_tokens - used
        if room <= 0:
            break
        unit = units[i]
        if unit[3] <= room + SLACK:
            candidate = sorted([*chosen.get(unit[0], []), unit], key=lambda u: u[1])
            tokens = count(" ".join(u[2] for u in candidate))
            delta = tokens - doc_tokens.get(unit[0], 0)
            if delta <= room:
                chosen[unit[0]] = candidate
                doc_tokens[unit[0]] = tokens
                used += delta
    kept = {d: [(p[1], p[2]) for u in us for p in (u[5] or (u,))] for d, us in chosen.items() if us}
    counts = {d: count(" ".join(t for _, t in spans)) for d, spans in kept.items()}
    return kept, counts


def _got(compressor, query, docs, budget):
    out = compressor.compress(query, docs, budget)
    positions = {d.id: i for i, d in enumerate(docs)}
    kept = {
        positions[d.id]: None if d.kept is None else [(s.sentence_index, s.text) for s in d.kept]
        for d in out
    }
    return kept, {positions[d.id]: d.tokens for d in out}


def _scored(texts, prefix):
    return [
        ScoredDocument(Document(text, id=f"{prefix}-{i}"), 1.0 - i / len(texts))
        for i, text in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def scifact_cases(shared_data):
    from benchmarks.data import load_scifact_claims, load_scifact_sentences

    abstracts = load_scifact_sentences(shared_data / "scifact")
    texts = {doc_id: " ".join(sentences) for doc_id, (_, sentences) in abstracts.items()}
    ids = sorted(texts)
    claims = load_scifact_claims(shared_data / "scifact")[::20][:30]
    cases = []
    for n, claim in enumerate(claims):
        cited = [texts[d] for d in claim.cited_doc_ids if d in texts]
        fillers = [texts[ids[(n * 97 + k * 31) % len(ids)]] for k in range(30 - len(cited))]
        cases.append((claim.claim, _scored(cited + fillers, f"c{n}")))
    return cases


@pytest.fixture(scope="module")
def locomo_cases(locomo):
    cases = []
    for conversation in locomo[:2]:
        turns = [t.document_text for t in conversation.turns]
        for n, question in enumerate(conversation.answerable()[::25][:8]):
            start = (n * 53) % (len(turns) - 30)
            cases.append((question.question, _scored(turns[start : start + 30], f"l{n}")))
    return cases


class WholeCountCounter(TiktokenCounter):
    """cl100k_base under another name: the same counts and bounds, but joins are not
    known to add up, so the compressor takes the lazy ledger (bounds first) instead of
    the exact one."""

    def __init__(self) -> None:
        super().__init__("cl100k_base")
        self.name = "cl100k_base, counted whole"


class MixedCountCompressor(ExtractiveCompressor):
    """Counts add up, but a third of the sentences (by length) answer as if theirs did
    not: the exact ledger then counts those documents' joined texts instead of summing."""

    def _unit_counts(self, unit):
        return None if len(unit.text) % 3 == 0 else super()._unit_counts(unit)


@pytest.mark.parametrize("budget", [60, 200, 700])
@pytest.mark.parametrize(
    ("counter_class", "compressor_class"),
    [
        (TiktokenCounter, ExtractiveCompressor),
        (WholeCountCounter, ExtractiveCompressor),
        (TiktokenCounter, MixedCountCompressor),
    ],
)
def test_extractive_keeps_the_same_sentences_as_counting_everything(
    budget, counter_class, compressor_class, scifact_cases, locomo_cases
):
    counter = counter_class()
    assert joins_add_up(counter) == (counter_class is TiktokenCounter)
    compressor = compressor_class(counter)
    compared = 0
    for query, docs in scifact_cases + locomo_cases:
        want = reference_extractive(counter, query, docs, budget)
        assert _got(compressor, query, docs, budget) == want, (query, budget)
        compared += 1
    assert compared >= 40


def test_token_bounds_hold_on_real_text(scifact_cases, locomo_cases):
    """The cheap bounds the lazy count relies on: words <= tokens <= UTF-8 bytes."""
    for name in ("cl100k_base", "o200k_base"):
        counter = TiktokenCounter(name)
        texts = [d.document.text for _, docs in scifact_cases + locomo_cases for d in docs[:8]]
        texts += [s for t in texts for s in t.split(". ")]
        texts += ["naïve café — 東京 🎉", "a\n\n  b\t\tc", "x" * 300, "<|endoftext|> hi", ""]
        for text in texts:
            low, high = token_bounds(counter, text)
            assert low <= counter.count(text) <= high, (name, text)
