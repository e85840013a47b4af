"""The value types every component shares: documents, scored documents, conversation turns."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ._validation import check_text
from .errors import InvalidInputError, InvalidTypeError

if TYPE_CHECKING:
    import numpy as np


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
        """``metadata["tags"]`` as strings: a list, tuple or set of tags, or one tag (any
        other value, e.g. ``5``, is one tag: metadata may hold anything, and a document
        from a framework loader must not break re-ranking because of it)."""
        raw = self.metadata.get("tags")
        if raw is None:
            return ()
        if isinstance(raw, str):
            return (raw,) if raw else ()
        if isinstance(raw, (list, tuple, set, frozenset)):
            return tuple(str(tag) for tag in raw)
        return (str(raw),)

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
            raw_id = value.get("id")
            # An int id (from JSON or a database row) reads as its digits; anything else
            # that is not a str (bytes, a dict) is refused rather than turned into its repr.
            if isinstance(raw_id, int) and not isinstance(raw_id, bool):
                raw_id = str(raw_id)
            elif raw_id is None:
                raw_id = ""
            elif not isinstance(raw_id, str):
                raise InvalidTypeError(
                    f"a document mapping's 'id' must be a str or an int, got {type(raw_id).__name__}"
                )
            metadata = value.get("metadata")
            return cls(text=value["text"], id=raw_id, metadata={} if metadata is None else metadata)
        raise InvalidTypeError(f"expected a Document, str or mapping, got {type(value).__name__}")


# what every document-taking method accepts (``Document.coerce`` turns it into a Document)
DocumentLike = Document | str | Mapping[str, Any]


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
    # The document's embedding when the first stage had one at hand (index-time vectors, or
    # what an external store returned with its hit); lets near-duplicate removal skip the model.
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)

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
        return self.with_scores({stage: float(score)}, float(score) if final else None)

    def with_scores(self, stages: Mapping[str, float], final: float | None) -> ScoredDocument:
        """A copy with ``stages`` recorded, in order, and ``final`` as its score (``None``:
        the score stays)."""
        recorded = {**self.stage_scores, **stages}
        return self._copy(score=self.score if final is None else final, stage_scores=recorded)

    def _copy(self, **changes: Any) -> ScoredDocument:
        """``dataclasses.replace(self, **changes)`` for fields whose values need no check.

        A re-ranker copies every candidate once or twice per query and a compressor each
        document it keeps: for a plain ScoredDocument an attribute copy is ~5x cheaper than
        ``replace`` (which re-runs ``__init__``), same fields.
        """
        if type(self) is not ScoredDocument:  # a subclass may check its fields
            return replace(self, **changes)
        copy = object.__new__(ScoredDocument)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy


#: The roles a turn can have, and what each becomes in ``packet.messages``. Any other
#: role is a speaker's name (LoCoMo's "Caroline", a bot's name) and is kept as a label on
#: a user message. ``system`` and ``tool`` turns are remembered text, never instructions:
#: they too become labelled user messages, never a second system message or a tool
#: message without the tool call it would answer.
ROLES: dict[str, str] = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "system": "user",
    "tool": "user",
}
#: Longest role (speaker name) accepted, in characters.
MAX_ROLE_LENGTH = 64


def chat_role(role: str) -> str:
    """The ``packet.messages`` role of a stored turn: ``assistant`` for assistant turns,
    ``user`` for everything else (see :data:`ctxengine.types.ROLES`). A remembered turn is
    never a system or tool message, whatever its role says."""
    return ROLES.get(role.strip().lower(), "user")


def check_role(role: Any) -> str:
    """``role`` as stored: a known role (:data:`ROLES`) case- and space-normalized
    (``" System "`` -> ``"system"``), or a speaker name, stripped.

    A name is one line of visible text without ``:`` (which would read as a new
    ``role: text`` entry) and without control or format characters.
    """
    import unicodedata

    check_text(role, "role")
    name = role.strip()
    if name.lower() in ROLES:
        return name.lower()
    if len(name) > MAX_ROLE_LENGTH:
        raise InvalidInputError(
            f"role must be at most {MAX_ROLE_LENGTH} characters, got {len(name)}"
        )
    for ch in name:
        if (
            ch == ":"
            or (ch.isspace() and ch != " ")
            or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        ):
            raise InvalidInputError(
                f"role {role!r} contains {ch!r}: a role is a known role ({', '.join(ROLES)}) or a "
                "speaker's name on one line, without ':' or control characters"
            )
    return name


def check_candidates(items: Any, source: str) -> list[ScoredDocument]:
    """A first stage's result, checked: a sequence of :class:`ScoredDocument` with real
    number scores (NaN and infinities are allowed: the re-rankers read them as "no
    information"). Blank documents (nothing visible) are dropped here, so they never take
    a slot that a real document could fill."""
    import numbers

    from ._validation import is_blank

    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise InvalidTypeError(
            f"{source}.retrieve must return a list of ScoredDocument, got {type(items).__name__}"
        )
    out: list[ScoredDocument] = []
    for item in items:
        if not isinstance(item, ScoredDocument):
            raise InvalidTypeError(
                f"{source}.retrieve returned a {type(item).__name__}, not a ScoredDocument"
            )
        score = item.score
        # a float is the usual score: one type test, not the slower ABC check
        if type(score) is not float and (
            isinstance(score, bool) or not isinstance(score, numbers.Real)
        ):
            raise InvalidTypeError(
                f"{source}.retrieve returned document {item.id!r} with a non-numeric score {score!r}"
            )
        if not is_blank(item.text):
            out.append(item)
    return out


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
    # The rendered turn's token count and the name of the counter that made it, computed
    # once when the turn is remembered and persisted with it, so that a restart reads the
    # count instead of re-tokenizing the history; a memory with another counter recounts.
    tokens: int | None = field(default=None, compare=False, repr=False)
    tokens_counter: str | None = field(default=None, compare=False, repr=False)

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
