"""The engine's hot path over an external first stage (re-ranking with near-duplicate
removal, compression, budget, rendering) chooses exactly what it chose before it was made
faster: the same documents, kept sentences, token counts, scores and packet text.

``packet_selection.json`` holds a digest of every packet built here by the code before
the overhead work (commit f4c08bd). Cases are real: SciFact claims over 30 candidate
abstracts (the cited ones first) and LoCoMo questions over 30 consecutive turns, each with
a near-copy of its best candidate planted among them (so near-duplicate removal has
something to remove), at the default budget and a tight one, with and without the vectors
a vector store returns with its hits. Any difference in what a packet holds fails.

Re-record (only when a change of selection is intended, and say so in the commit)::

    PYTHONPATH=core python -m tests.engine.test_packet_selection --record
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ctxengine import ContextEngine
from ctxengine.embeddings import HashingEmbedder
from ctxengine.packet import ContextPacket
from ctxengine.tokens import default_token_counter
from ctxengine.types import Document, ScoredDocument

GOLDEN = Path(__file__).with_name("packet_selection.json")
BUDGETS = (800, 300)


class FixedStage:
    """A first stage that returns given candidates, optionally with their vectors."""

    def __init__(self, texts: Sequence[str], prefix: str, vectors: np.ndarray | None) -> None:
        self.hits = [
            ScoredDocument(
                Document(text, id=f"{prefix}-{i}"),
                1.0 - i / len(texts),
                {"first_stage": 1.0 - i / len(texts)},
                vector=None if vectors is None else vectors[i],
            )
            for i, text in enumerate(texts)
        ]

    def retrieve(self, query: str, k: int = 10) -> list[ScoredDocument]:
        return list(self.hits)


def _with_copy(texts: list[str]) -> list[str]:
    """``texts`` with a near-copy of the first planted fourth (a mirrored page)."""
    return texts[:3] + [texts[0] + " (mirror)"] + texts[3:29]


def cases(data: Path) -> list[tuple[str, str, list[str]]]:
    """``(case name, query, 30 candidate texts)`` from SciFact and LoCoMo."""
    from benchmarks.data import load_locomo, load_scifact_claims, load_scifact_sentences

    abstracts = load_scifact_sentences(data / "scifact")
    texts = {doc_id: " ".join(sentences) for doc_id, (_, sentences) in abstracts.items()}
    ids = sorted(texts)
    out = []
    for n, claim in enumerate(load_scifact_claims(data / "scifact")[::20][:30]):
        cited = [texts[d] for d in claim.cited_doc_ids if d in texts]
        fillers = [texts[ids[(n * 97 + k * 31) % len(ids)]] for k in range(30 - len(cited))]
        out.append((f"scifact-{n}", claim.claim, _with_copy(cited + fillers)))
    for c, conversation in enumerate(load_locomo(data / "locomo" / "locomo_dev5.json")[:2]):
        turns = [t.document_text for t in conversation.turns]
        for n, question in enumerate(conversation.answerable()[::25][:8]):
            start = (n * 53) % (len(turns) - 30)
            out.append(
                (f"locomo-{c}-{n}", question.question, _with_copy(turns[start : start + 30]))
            )
    return out


def fingerprint(packet: ContextPacket) -> dict[str, object]:
    """What a packet holds (everything but timings), scores rounded to 1e-9."""
    documents = [
        {
            "id": doc.id,
            "score": round(doc.score, 9),
            "stage_scores": {k: round(v, 9) for k, v in sorted(doc.stage_scores.items())},
            "tokens": doc.tokens,
            "kept": None
            if doc.kept is None
            else [(s.sentence_index, s.start, s.end, s.text) for s in doc.kept],
        }
        for doc in packet.documents
    ]
    whole = {
        "documents": documents,
        "text": packet.text,
        "messages": packet.messages,
        "usage": dict(packet.usage),
        "tokens_used": packet.tokens_used,
        "notes": list(packet.notes),
        "candidates": [doc.id for doc in packet.candidates],
    }
    digest = hashlib.sha1(json.dumps(whole, sort_keys=True).encode()).hexdigest()
    return {
        "ids": [doc.id for doc in packet.documents],
        "tokens": [doc.tokens for doc in packet.documents],
        "tokens_used": packet.tokens_used,
        "digest": digest,
    }


def packets(data: Path) -> dict[str, dict[str, object]]:
    embedder = HashingEmbedder(384)
    out = {}
    for name, query, texts in cases(data):
        vectors = embedder.embed(texts)
        for carried, label in ((vectors, "vectors"), (None, "lexical")):
            for budget in BUDGETS:
                engine = ContextEngine.from_retriever(
                    FixedStage(texts, name, carried), token_budget=budget
                )
                out[f"{name}/{label}/{budget}"] = fingerprint(engine.build(query))
    return out


@pytest.fixture(scope="module")
def built(shared_data):
    return packets(shared_data)


def test_packets_are_the_ones_recorded_before_the_overhead_work(built):
    golden = json.loads(GOLDEN.read_text())
    assert set(built) == set(golden)
    differ = [key for key in golden if built[key] != golden[key]]
    assert not differ, [(key, golden[key], built[key]) for key in differ[:3]]


def test_the_cases_exercise_dedup_and_compression(built, shared_data):
    """The recorded cases are not trivial: planted copies are removed and text is cut."""
    assert len(built) >= 4 * 40
    assert all(
        f"{name}-3" not in built[f"{name}/{label}/800"]["ids"]
        for name, _, _ in cases(shared_data)[:10]
        for label in ("vectors", "lexical")
    )
    assert any(t is not None and t > 0 for v in built.values() for t in v["tokens"])
    # text is cut: some kept document holds fewer tokens than its whole text (a positive
    # count alone holds for any packet with documents, cut or not)
    counter = default_token_counter()
    whole = {
        f"{name}-{i}": counter.count(text)
        for name, _, texts in cases(shared_data)[:10]
        for i, text in enumerate(texts)
    }
    assert any(
        tokens < whole[doc_id]
        for name, _, _ in cases(shared_data)[:10]
        for packet in [built[f"{name}/lexical/{min(BUDGETS)}"]]
        for doc_id, tokens in zip(packet["ids"], packet["tokens"])
    )


if __name__ == "__main__" and "--record" in sys.argv:
    from benchmarks.data import data_root

    root = data_root()
    assert root is not None, "no benchmark data (set CTXENGINE_DATA)"
    GOLDEN.write_text(json.dumps(packets(root), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
