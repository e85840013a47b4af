"""Training data the user already has: labelled examples and logged feedback.

* :class:`RankingExample` -- a query and the ids of the documents that answer it;
* :class:`MemoryExample` -- a question, the session, and the ids of the turns that hold
  its evidence (``Turn.id``, or ``metadata["id"]`` when the application keeps its own ids);
* :class:`FeedbackLog` -- ``(time, session, query, item id, useful, kind)`` records that
  :meth:`ContextEngine.record_feedback` appends, in memory or to a JSONL file, and that
  :meth:`FeedbackLog.examples` turns into the two kinds of examples above
  (``ctxengine train --feedback FILE`` does this).

:func:`fit_ranker` and :func:`fit_memory` compute the features exactly as the engine will
at query time (same first stage and candidate count, same memory scoring) and fit a
:class:`~ctxengine.learn.model.LinearScorer`.
"""

from __future__ import annotations

import json
import numbers
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: appends are not serialized across processes
    fcntl = None  # type: ignore[assignment]

from .._files import json_loads, open_append, open_regular
from .._validation import check_finite, check_positive_int, check_text, is_finite_number
from ..clock import to_seconds
from ..errors import IndexFormatError, InvalidInputError, InvalidTypeError, StoreError
from .features import DocumentFeatures, MemoryFeatures
from .model import LinearScorer
from .scorers import LearnedMemory, LearnedRanker

KINDS = ("document", "turn")


def _gains(relevant: Any) -> dict[str, float]:
    """``{id: gain}`` from ids or a mapping: ids are str (an int reads as its digits), a
    gain a finite number >= 0 (a bool or numpy number is read as its value). A NaN gain
    trained silently as "not relevant", a string or ``10**400`` raised bare Python errors."""
    if isinstance(relevant, str):
        relevant = [relevant]
    if isinstance(relevant, Mapping):
        out = {_item_id(k): _gain(k, v) for k, v in relevant.items()}
    elif isinstance(relevant, Iterable):
        out = {_item_id(item): 1.0 for item in relevant}
    else:
        raise InvalidTypeError(
            f"relevant must be ids or {{id: gain}}, got {type(relevant).__name__}"
        )
    if not out:
        raise InvalidInputError("an example needs at least one relevant id")
    return out


def _item_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidTypeError(f"a relevant id must be a str, got {type(value).__name__}")
    return str(value)


def _gain(item: Any, value: Any) -> float:
    if (isinstance(value, numbers.Real) and not isinstance(value, int)) or isinstance(value, bool):
        value = float(value)  # numpy scalars and bools by value; an int may overflow below
    return check_finite(value, f"the gain of {item!r}", low=0.0)


@dataclass(frozen=True)
class RankingExample:
    """``query`` and the documents that answer it (ids, or ``{id: graded gain}``)."""

    query: str
    relevant: Mapping[str, float]  # ids are accepted too: {id: 1.0} each

    def __post_init__(self) -> None:
        check_text(self.query, "query")
        object.__setattr__(self, "relevant", _gains(self.relevant))


@dataclass(frozen=True)
class MemoryExample:
    """A question asked in ``session_id`` at time ``now`` (None: the memory's clock) and
    the turns holding its evidence."""

    query: str
    relevant: Mapping[str, float]  # ids are accepted too: {id: 1.0} each
    session_id: str = "default"
    now: float | None = None

    def __post_init__(self) -> None:
        check_text(self.query, "query")
        check_text(self.session_id, "session_id")
        object.__setattr__(self, "relevant", _gains(self.relevant))
        if self.now is not None:
            object.__setattr__(self, "now", to_seconds(self.now))


def coerce_examples(examples: Iterable[Any]) -> tuple[list[RankingExample], list[MemoryExample]]:
    """Split examples by kind. Mappings are accepted: ``{"query", "relevant"}`` is a
    ranking example, with ``"session_id"`` (and optionally ``"now"``) a memory example."""
    if isinstance(examples, (str, bytes, Mapping)) or not isinstance(examples, Iterable):
        raise InvalidTypeError("examples must be an iterable of examples")
    ranking: list[RankingExample] = []
    memory: list[MemoryExample] = []
    for item in examples:
        if isinstance(item, Mapping):
            if "query" not in item or "relevant" not in item:
                raise InvalidInputError("an example mapping needs 'query' and 'relevant'")
            if "session_id" in item:
                item = MemoryExample(
                    item["query"], item["relevant"], item["session_id"], item.get("now")
                )
            else:
                item = RankingExample(item["query"], item["relevant"])
        if isinstance(item, RankingExample):
            ranking.append(item)
        elif isinstance(item, MemoryExample):
            memory.append(item)
        else:
            raise InvalidTypeError(f"not a training example: {type(item).__name__}")
    return ranking, memory


def fit_ranker(
    examples: Sequence[RankingExample],
    retriever: Any,
    *,
    candidates: int = 30,
    features: DocumentFeatures | None = None,
    model: LinearScorer | None = None,
    embedder: Any | None = None,
) -> LearnedRanker:
    """Train a document ranker: the first ``candidates`` of ``retriever.retrieve`` per
    query, featurized, labelled by the example's relevant ids. ``embedder`` embeds the
    passage features when ``features`` is not given (None: the process-wide default); it
    must be the one the ranker will score with."""
    check_positive_int(candidates, "candidates")
    features = features or DocumentFeatures(
        retriever if hasattr(retriever, "score_all") else None, embedder=embedder
    )
    groups = ranking_groups(examples, retriever, features, candidates)
    scorer = (model or LinearScorer()).fit(groups, features)
    return LearnedRanker(scorer, features)


def ranking_groups(
    examples: Sequence[RankingExample], retriever: Any, features: DocumentFeatures, candidates: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A ranker's training groups: per example, the first ``candidates`` of
    ``retriever.retrieve`` featurized and labelled by its relevant ids (``(features,
    gains)``; an empty pool gives no group)."""
    groups = []
    for example in examples:
        pool = retriever.retrieve(example.query, k=candidates)
        if pool:
            gains = np.array([example.relevant.get(doc.id, 0.0) for doc in pool])
            groups.append((features.transform(example.query, pool), gains))
    return groups


def turn_keys(turn: Any) -> tuple[str, ...]:
    """The ids an example may use for a turn: its ``id`` and ``metadata["id"]`` if any."""
    extra = turn.metadata.get("id") if turn.metadata else None
    return (turn.id,) if extra is None else (turn.id, str(extra))


def memory_gains(scored: Sequence[Any], relevant: Mapping[str, float]) -> np.ndarray:
    return np.array(
        [max((relevant.get(key, 0.0) for key in turn_keys(s.turn)), default=0.0) for s in scored]
    )


def fit_memory(
    examples: Sequence[MemoryExample],
    memory: Any,
    *,
    model: LinearScorer | None = None,
) -> LearnedMemory:
    """Train a memory scorer on the sessions' turns as ``memory.score`` sees them at each
    example's ``now``."""
    features = MemoryFeatures()
    groups = []
    for example in examples:
        at = to_seconds(example.now, memory.clock)
        scored = list(memory.score(example.query, session_id=example.session_id, now=at))
        if scored:
            groups.append(
                (
                    features.transform(example.query, scored, at),
                    memory_gains(scored, example.relevant),
                )
            )
    scorer = (model or LinearScorer()).fit(groups, features)
    return LearnedMemory(scorer, features)


def _is_record(row: Any) -> bool:
    """Whether ``row`` has what :meth:`FeedbackLog.examples` reads, of the types it reads
    (a str ``time`` or a list ``query`` in a hand-edited log was a bare error there)."""
    if not isinstance(row, dict) or not {"query", "item_id", "useful", "kind"} <= row.keys():
        return False
    time = row.get("time", 0.0)
    return (
        isinstance(row["query"], str)
        and isinstance(row["item_id"], str)
        and isinstance(row["useful"], bool)
        and row["kind"] in KINDS
        and isinstance(row.get("session_id", "default"), str)
        and is_finite_number(time)
    )


def _starts_a_log(first: bytes, path: Path) -> bool:
    """Whether ``first`` (a file's first line) is a feedback record, or the torn start of
    one (the file's first write cut by a crash: what :meth:`FeedbackLog.record` writes
    begins with the ``time`` key)."""
    return _is_line_record(first, path) or (
        not first.endswith(b"\n") and first.startswith(b'{"time": ')
    )


def _is_line_record(line: bytes, path: Path) -> bool:
    try:
        return _is_record(json_loads(line.decode("utf-8"), path))
    except (UnicodeDecodeError, IndexFormatError):
        return False


@dataclass
class FeedbackLog:
    """Implicit feedback, one record per judgement: appended to the JSONL file ``path``
    (created if missing; ``None`` keeps records in memory only). Each line is
    ``{"time", "session_id", "query", "item_id", "useful", "kind"}``; ``kind`` is
    ``"document"`` or ``"turn"``. ``path`` must be a new or empty file or a feedback log:
    a link, FIFO or another file is a :class:`~ctxengine.errors.StoreError`, untouched."""

    path: str | os.PathLike[str] | None = None
    _records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self,
        query: str,
        item_id: str,
        useful: bool,
        *,
        session_id: str = "default",
        kind: str = "document",
        time: float | datetime | None = None,
    ) -> dict[str, Any]:
        check_text(query, "query")
        check_text(item_id, "item_id")
        check_text(session_id, "session_id")
        if not isinstance(useful, bool):
            raise InvalidTypeError(f"useful must be a bool, got {type(useful).__name__}")
        if kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {KINDS}, got {kind!r}")
        row = {
            "time": to_seconds(time),
            "session_id": session_id,
            "query": query,
            "item_id": item_id,
            "useful": useful,
            "kind": kind,
        }
        with self._lock:
            if self.path is None:
                self._records.append(row)
            else:
                self._append((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        return row

    def _append(self, line: bytes) -> None:
        """Append ``line`` to the log file: a regular file (no link followed, no FIFO
        blocked on) that is empty or already a feedback log; another file is a
        :class:`~ctxengine.errors.StoreError` and stays as it was. A torn last line (a
        crash mid-write, which :meth:`records` skips) is cut first, so the new record
        does not join it into a line that is not a record."""
        path = Path(self.path)  # type: ignore[arg-type]
        try:
            with open_append(path) as handle:
                if fcntl is not None:  # another process's record is never taken for torn
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                size = os.fstat(handle.fileno()).st_size
                if size:
                    handle.seek(0)
                    first = handle.readline()
                    if not _starts_a_log(first, path):
                        raise StoreError(
                            f"{path} is not a feedback log (its first line is not a record); "
                            "give a new path"
                        )
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":
                        handle.seek(0)
                        text = handle.read()
                        kept = text.rfind(b"\n") + 1
                        if _is_line_record(text[kept:], path):  # a hand-edited last line
                            handle.write(b"\n")
                        else:
                            handle.truncate(kept)
                handle.write(line)
        except IndexFormatError as exc:
            raise StoreError(f"cannot append to the feedback log: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot append to the feedback log {path}: {exc}") from exc

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (a torn last line from a crash is skipped; any other
        line that is not a record is a :class:`~ctxengine.errors.StoreError` naming it,
        never silently left out of training)."""
        if self.path is None:
            with self._lock:
                return list(self._records)
        path = Path(self.path)
        if not path.exists():
            return []
        try:
            with open_regular(path) as handle:  # no FIFO blocks, no link is followed
                lines = handle.read().splitlines()
        except IndexFormatError as exc:
            raise StoreError(f"cannot read the feedback log: {exc}") from None
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                row = json_loads(line.decode("utf-8"), path)  # bounded nesting
            except (UnicodeDecodeError, IndexFormatError) as exc:
                if number == len(lines):
                    continue
                raise StoreError(f"{path}:{number} is not a feedback record: {exc}") from None
            if not _is_record(row):
                raise StoreError(f"{path}:{number} is not a feedback record")
            rows.append(row)
        return rows

    def examples(self) -> list[RankingExample | MemoryExample]:
        """One example per (kind, session, query) with at least one useful item; the last
        judgement of an item wins. Turn examples take the time of their last record as
        ``now``, so ages are what they were when the feedback was given."""
        verdicts: dict[tuple[str, str, str], dict[str, bool]] = {}
        times: dict[tuple[str, str, str], float] = {}
        for row in self.records():
            key = (row["kind"], row.get("session_id", "default"), row["query"])
            verdicts.setdefault(key, {})[row["item_id"]] = bool(row["useful"])
            times[key] = float(row.get("time", 0.0))
        out: list[RankingExample | MemoryExample] = []
        for (kind, session, query), items in verdicts.items():
            useful = {item: 1.0 for item, ok in items.items() if ok}
            if not useful:
                continue
            if kind == "turn":
                out.append(MemoryExample(query, useful, session, times[(kind, session, query)]))
            else:
                out.append(RankingExample(query, useful))
        return out

    def __len__(self) -> int:
        return len(self.records())


__all__ = [
    "FeedbackLog",
    "MemoryExample",
    "RankingExample",
    "coerce_examples",
    "fit_memory",
    "fit_ranker",
    "memory_gains",
    "ranking_groups",
    "turn_keys",
]
