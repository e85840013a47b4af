"""The value types every component shares: documents, scored documents, conversation turns."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._validation import check_text
from .errors import InvalidInputError, InvalidTypeError


def content_id(text: str) -> str:
    """A stable id derived from content (used when a document is given as a plain string)."""
    return "doc-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Document:
    """A unit of retrievable text.

    ``metadata`` may hold anything; ``tags`` (a list of str) and ``source`` (str) are read
    by the re-ranker and shown in explanations.
    """

    text: str
    id: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_text(self.text, "Document.text", allow_empty=True)
        check_text(self.id, "Document.id", allow_empty=True)
        if not self.id:
            object.__setattr__(self, "id", content_id(self.text))
        if not isinstance(self.metadata, Mapping):
            raise InvalidTypeError(
                f"Document.metadata must be a mapping, got {type(self.metadata).__name__}"
            )
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def tags(self) -> tuple[str, ...]:
        raw = self.metadata.get("tags") or ()
        if isinstance(raw, str):
            return (raw,)
        return tuple(str(tag) for tag in raw)

    @property
    def source(self) -> str | None:
        source = self.metadata.get("source")
        return None if source is None else str(source)

    @classmethod
    def coerce(cls, value: Document | str | Mapping[str, Any]) -> Document:
        """Accept a Document, a plain string, or a mapping with ``text`` (and ``id``, ``metadata``)."""
        if isinstance(value, Document):
            return value
        if isinstance(value, str):
            return cls(text=value)
        if isinstance(value, Mapping):
            if "text" not in value:
                raise InvalidInputError("a document mapping needs a 'text' key")
            return cls(
                text=value["text"],
                id=str(value.get("id") or ""),
                metadata=value.get("metadata") or {},
            )
        raise InvalidTypeError(
            f"expected a Document, str or mapping, got {type(value).__name__}"
        )


@dataclass(frozen=True)
class KeptSpan:
    """One piece of a document that compression kept, with where it came from."""

    text: str
    sentence_index: int  # index of the sentence in the document (-1: a truncated prefix)
    start: int  # character offsets into the original document text
    end: int


@dataclass
class ScoredDocument:
    """A document with its final score and the per-stage scores that explain it.

    ``stage_scores`` maps stage names (``"bm25"``, ``"dense"``, ``"hybrid"``, ``"rerank"``,
    ``"mmr"``...) to that stage's score, so a user can see why it ranked where it did.
    After compression, ``kept`` lists what was kept and ``text`` returns only that.
    """

    document: Document
    score: float
    stage_scores: dict[str, float] = field(default_factory=dict)
    kept: list[KeptSpan] | None = None
    tokens: int | None = None
    # feature -> its share of a learned score (set when a trained scorer ranked it)
    contributions: Mapping[str, float] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.document.id

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.document.metadata

    @property
    def compressed(self) -> bool:
        """True when compression removed part of the document."""
        return self.kept is not None and self.text != self.document.text

    @property
    def text(self) -> str:
        """The text that goes into the prompt: what compression kept, else the whole document."""
        if self.kept is None:
            return self.document.text
        return " ".join(span.text for span in self.kept)

    def with_score(self, stage: str, score: float, *, final: bool = True) -> ScoredDocument:
        """A copy with ``stage`` recorded (and made the final score unless ``final=False``)."""
        stages = {**self.stage_scores, stage: float(score)}
        return replace(self, score=float(score) if final else self.score, stage_scores=stages)


def now_seconds() -> float:
    return time.time()


@dataclass(frozen=True)
class Turn:
    """One stored conversation turn.

    ``timestamp`` and ``last_access`` are POSIX seconds. ``importance`` is the weight the
    decay multiplies (auto-scored when not given).
    """

    role: str
    content: str
    session_id: str
    timestamp: float
    importance: float
    last_access: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0  # position in the session, assigned by the store
    # The rendered turn's embedding and the model that made it (``name:dimension``), computed
    # once when the turn is remembered and persisted with it; not part of the turn's identity.
    vector: Any = field(default=None, compare=False, repr=False)
    vector_model: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.timestamp) or not math.isfinite(self.importance):
            raise InvalidInputError("Turn timestamp and importance must be finite")


@dataclass(frozen=True)
class ScoredTurn:
    """A turn with its effective score and the parts it was computed from."""

    turn: Turn
    effective: float
    components: Mapping[str, float] = field(default_factory=dict)
    tokens: int | None = None
    # feature -> its share of a learned score (set when a trained scorer chose it)
    contributions: Mapping[str, float] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return self.turn.role

    @property
    def content(self) -> str:
        return self.turn.content
