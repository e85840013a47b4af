"""Loaders for the benchmark data in ``../shared/data`` (LoCoMo, SciFact).

Nothing here is shipped in the package; the data stays where it is and its licenses
(CC BY-NC) allow benchmarking. Every loader takes an explicit path or finds the default
one relative to the repository, and :func:`data_root` returns None when it is absent so
callers can skip with a message.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The data folder: ``explicit``, ``$CTXENGINE_DATA``, or ``../shared/data``."""
    for candidate in (
        explicit,
        os.environ.get("CTXENGINE_DATA"),
        REPO_ROOT.parent / "shared" / "data",
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@contextlib.contextmanager
def data_folder(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """``$CTXENGINE_DATA`` set to ``path`` (None: left as it is) for the block, then put
    back: a script's ``--data`` reaches every loader, and a caller that runs the script's
    ``main()`` in its own process (the smoke test) keeps its own data path."""
    saved = os.environ.get("CTXENGINE_DATA")
    if path is not None:
        os.environ["CTXENGINE_DATA"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CTXENGINE_DATA", None)
        else:
            os.environ["CTXENGINE_DATA"] = saved


# --- LoCoMo ------------------------------------------------------------------------------


@dataclass
class LocomoTurn:
    dia_id: str
    speaker: str
    text: str
    timestamp: float  # POSIX seconds: session start + a few seconds per turn
    session: int

    @property
    def document_text(self) -> str:
        """Speaker name + text, as the issue defines a turn document."""
        return f"{self.speaker}: {self.text}"


@dataclass
class LocomoQuestion:
    question: str
    answer: str
    evidence: list[str]
    category: int


@dataclass
class LocomoConversation:
    sample_id: str
    speaker_a: str
    speaker_b: str
    turns: list[LocomoTurn] = field(default_factory=list)
    questions: list[LocomoQuestion] = field(default_factory=list)

    def answerable(self) -> list[LocomoQuestion]:
        """Categories 1-4 whose evidence points at turns that exist (5 is adversarial)."""
        ids = {turn.dia_id for turn in self.turns}
        return [
            q
            for q in self.questions
            if q.category in (1, 2, 3, 4) and any(e in ids for e in q.evidence)
        ]


def _parse_locomo_date(value: str) -> datetime:
    # e.g. "1:56 pm on 8 May, 2023"
    return datetime.strptime(value.strip(), "%I:%M %p on %d %B, %Y")


def _normalise_evidence(raw: list[str]) -> list[str]:
    out: list[str] = []
    for item in raw:
        # a few entries hold several ids in one string ("D8:6; D9:17")
        for part in str(item).replace(";", ",").split(","):
            part = part.strip()
            if part:
                out.append(part)
    return out


def load_locomo(
    path: str | os.PathLike[str] | None = None, *, seconds_per_turn: float = 30.0
) -> list[LocomoConversation]:
    """Load ``locomo_dev5.json`` (or any file of that format) with real session timestamps."""
    if path is None:
        root = data_root()
        if root is None:
            raise FileNotFoundError("LoCoMo data not found (set CTXENGINE_DATA or pass a path)")
        path = root / "locomo" / "locomo_dev5.json"
    items = json.loads(Path(path).read_text(encoding="utf-8"))
    conversations: list[LocomoConversation] = []
    for item in items:
        conv = item["conversation"]
        out = LocomoConversation(item.get("sample_id", ""), conv["speaker_a"], conv["speaker_b"])
        session = 1
        while f"session_{session}" in conv:
            start = _parse_locomo_date(conv[f"session_{session}_date_time"]).timestamp()
            for index, turn in enumerate(conv[f"session_{session}"]):
                text = turn.get("text", "")
                if turn.get("blip_caption"):
                    text = f"{text} [shares a photo: {turn['blip_caption']}]"
                out.turns.append(
                    LocomoTurn(
                        turn["dia_id"],
                        turn["speaker"],
                        text,
                        start + index * seconds_per_turn,
                        session,
                    )
                )
            session += 1
        for qa in item.get("qa", []):
            out.questions.append(
                LocomoQuestion(
                    str(qa.get("question", "")),
                    str(qa.get("answer", qa.get("adversarial_answer", ""))),
                    _normalise_evidence(qa.get("evidence", [])),
                    int(qa.get("category", 0)),
                )
            )
        conversations.append(out)
    return conversations


# --- SciFact -----------------------------------------------------------------------------


@dataclass
class SciFactDoc:
    id: str
    title: str
    text: str

    @property
    def document_text(self) -> str:
        return f"{self.title}. {self.text}" if self.title else self.text


def _scifact_dir(path: str | os.PathLike[str] | None) -> Path:
    if path is not None:
        return Path(path)
    root = data_root()
    if root is None:
        raise FileNotFoundError("SciFact data not found (set CTXENGINE_DATA or pass a path)")
    return root / "scifact"


def load_scifact_corpus(path: str | os.PathLike[str] | None = None) -> list[SciFactDoc]:
    folder = _scifact_dir(path)
    docs = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            docs.append(SciFactDoc(str(row["_id"]), row.get("title", ""), row.get("text", "")))
    return docs


def load_scifact_queries(
    path: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Train claims and their qrels: ``({query_id: text}, {query_id: {doc_id: score}})``."""
    folder = _scifact_dir(path)
    queries: dict[str, str] = {}
    with open(folder / "queries_train.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(folder / "qrels_train.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels[str(row["query-id"])][str(row["corpus-id"])] = int(row["score"])
    return {qid: text for qid, text in queries.items() if qid in qrels}, dict(qrels)


@dataclass
class SciFactClaim:
    id: str
    claim: str
    evidence: dict[str, list[int]]  # doc_id -> rationale sentence indices
    cited_doc_ids: list[str]


def load_scifact_sentences(
    path: str | os.PathLike[str] | None = None,
) -> dict[str, tuple[str, list[str]]]:
    """``{doc_id: (title, [sentences])}`` from the original (sentence-split) form."""
    folder = _scifact_dir(path)
    out: dict[str, tuple[str, list[str]]] = {}
    with open(folder / "corpus_sentences.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            out[str(row["doc_id"])] = (row.get("title", ""), list(row["abstract"]))
    return out


def load_scifact_claims(path: str | os.PathLike[str] | None = None) -> list[SciFactClaim]:
    folder = _scifact_dir(path)
    claims = []
    with open(folder / "claims_train.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            evidence: dict[str, list[int]] = {}
            for doc_id, entries in (row.get("evidence") or {}).items():
                indices = sorted({i for entry in entries for i in entry.get("sentences", [])})
                evidence[str(doc_id)] = indices
            claims.append(
                SciFactClaim(
                    str(row["id"]),
                    row["claim"],
                    evidence,
                    [str(d) for d in row.get("cited_doc_ids", [])],
                )
            )
    return claims
