"""What the SQLite and PostgreSQL stores share: the turn columns, the row <-> Turn mapping,
argument checks, and the schema version both speak.

Both stores keep the same fields with the same meaning, so a session moved from one to the
other (or read by another language) needs no translation: ``metadata`` is JSON text
(``allow_nan=False``, since PostgreSQL's JSONB rejects NaN and SQLite would not).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_finite, check_positive_int, check_text
from ..errors import InvalidInputError, InvalidTypeError
from ..types import Turn, check_role

if TYPE_CHECKING:  # typing.Self exists from Python 3.11 only
    from typing_extensions import Self

# Version 1 was the first table layout (no per-turn metadata); version 2 adds ``metadata``;
# version 3 adds the turn's embedding (``vector``, float32 bytes, and ``vector_model``) and
# the per-session write counter table ``ctxengine_versions``; version 4 adds the rendered
# turn's token count (``tokens``) and the name of the counter that made it
# (``tokens_counter``). A new database runs every step, so the upgrade path is the one
# every file takes.
SCHEMA_VERSION = 4

TABLE = "ctxengine_turns"
# Column order of every SELECT and INSERT in both stores.
COLUMNS = (
    "id",
    "session_id",
    "seq",
    "role",
    "content",
    "timestamp",
    "importance",
    "last_access",
    "metadata",
    "vector",
    "vector_model",
    "tokens",
    "tokens_counter",
)


class ClosingStore:
    """``with store:`` closes the store's connections on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_turn(turn: Any) -> Turn:
    if not isinstance(turn, Turn):
        raise InvalidTypeError(f"a store holds Turn objects, got {type(turn).__name__}")
    check_text(turn.session_id, "Turn.session_id")
    check_text(turn.id, "Turn.id")
    check_role(turn.role)
    check_text(turn.content, "Turn.content", allow_empty=True)
    if not math.isfinite(turn.last_access):
        raise InvalidInputError("Turn.last_access must be finite")
    return turn


def check_session(session_id: Any) -> str:
    return check_text(session_id, "session_id")


def check_last(last: Any) -> int | None:
    return None if last is None else check_positive_int(last, "last", allow_zero=True)


def check_touch(turn_ids: Any, when: Any) -> tuple[list[str], float]:
    """The ids (deduplicated, order kept) and the time of a ``touch`` call."""
    if isinstance(turn_ids, str) or not isinstance(turn_ids, Sequence):
        raise InvalidTypeError("turn_ids must be a sequence of turn ids")
    ids = [check_text(turn_id, "turn id") for turn_id in turn_ids]
    return list(dict.fromkeys(ids)), check_finite(when, "when")


def encode_metadata(metadata: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False, sort_keys=True)
        text.encode("utf-8")  # a lone surrogate would fail later, inside the driver
        return text
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"turn metadata must be JSON-serialisable (str keys, finite numbers) to persist: {exc}"
        ) from exc


def token_rows(
    session_id: str, turn_ids: Sequence[str], counts: Sequence[int], counter: str
) -> list[tuple[int, str, str, str]]:
    """The parameter rows of a ``set_tokens`` update, the session checked first."""
    check_session(session_id)
    return [(int(n), counter, session_id, turn_id) for turn_id, n in zip(turn_ids, counts)]


def turn_params(turn: Turn, seq: int) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for ``turn`` stored at position ``seq``."""
    return (
        turn.id,
        turn.session_id,
        seq,
        turn.role,
        turn.content,
        float(turn.timestamp),
        float(turn.importance),
        float(turn.last_access),
        encode_metadata(turn.metadata),
        *encode_vector(turn),
        *encode_tokens(turn),
    )


def encode_vector(turn: Turn) -> tuple[bytes | None, str | None]:
    """The ``vector`` and ``vector_model`` column values (float32 bytes) of ``turn``."""
    if turn.vector is None or turn.vector_model is None:
        return None, None
    return np.asarray(turn.vector, dtype=np.float32).tobytes(), str(turn.vector_model)


def encode_tokens(turn: Turn) -> tuple[int | None, str | None]:
    """The ``tokens`` and ``tokens_counter`` column values of ``turn`` (both or neither)."""
    if turn.tokens is None or turn.tokens_counter is None:
        return None, None
    return int(turn.tokens), str(turn.tokens_counter)


def decode_vector(blob: bytes | memoryview | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(bytes(blob), dtype=np.float32)


def row_turn(row: Sequence[Any]) -> Turn:
    """A :class:`Turn` from a row in :data:`COLUMNS` order (metadata as JSON text or a dict)."""
    (
        turn_id,
        session_id,
        seq,
        role,
        content,
        timestamp,
        importance,
        last_access,
        metadata,
        blob,
        model,
        tokens,
        counter,
    ) = row
    if isinstance(metadata, str):
        # Most turns carry no metadata; skipping the parser for them halves read time.
        metadata = {} if metadata == "{}" else json.loads(metadata)
    return Turn(
        role=role,
        content=content,
        session_id=session_id,
        timestamp=float(timestamp),
        importance=float(importance),
        last_access=float(last_access),
        id=turn_id,
        metadata=metadata or {},
        seq=int(seq),
        vector=decode_vector(blob),
        vector_model=model if blob is not None else None,
        tokens=None if tokens is None or counter is None else int(tokens),
        tokens_counter=counter if tokens is not None else None,
    )


__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "TABLE",
    "ClosingStore",
    "check_last",
    "check_session",
    "check_touch",
    "check_turn",
    "decode_vector",
    "encode_metadata",
    "encode_tokens",
    "encode_vector",
    "row_turn",
    "turn_params",
]
