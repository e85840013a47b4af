"""Checks before opening an SQLite file a user names (the memory store, the tool-result
store, the embedding cache), so every one of them refuses the same things alike.

``sqlite3.connect`` opens anything lazily: a FIFO blocks it forever, a symbolic link puts
the data somewhere not named, a text file fails later with a bare ``DatabaseError``, and a
path with a lone surrogate (an undecodable file name) raises ``UnicodeEncodeError``. These
checks read the file's type and magic bytes first and raise
:class:`~ctxengine.errors.StoreError`, leaving the file untouched.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, InvalidTypeError, StoreError

#: The first 16 bytes of every SQLite 3 database.
SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_path(value: Any, what: str) -> Path:
    """``value`` as the absolute path of a file for ``what``: an
    :class:`~ctxengine.errors.InvalidTypeError` if it is not a path, a
    :class:`~ctxengine.errors.ConfigurationError` if it is empty, holds NUL, is ``:memory:``
    or a ``file:`` URI, or is not encodable as UTF-8 (which SQLite requires)."""
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidTypeError(f"{what} path must be a str or PathLike, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or "\x00" in text:
        raise ConfigurationError(
            f"{what} path must be a str path without NUL characters, got {text!r}"
        )
    if not text or text == ":memory:" or text.startswith("file:"):
        raise ConfigurationError(f"{what} needs a file path, got {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{what} path {text!r} is not valid UTF-8 (an undecodable file name); SQLite "
            "cannot open it: rename the file or its directory"
        ) from None
    return Path(os.path.abspath(text))  # threads must not follow a later chdir


def _is_regular(path: Path, what: str) -> bool:
    """True if ``path`` is a regular file, False if missing; StoreError otherwise."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot inspect {path}: {exc}") from exc
    if stat.S_ISLNK(mode):
        raise StoreError(f"{path} is a symbolic link; give the real path of the {what} file")
    if not stat.S_ISREG(mode):
        raise StoreError(
            f"{path} is not a regular file (a FIFO, device or directory); it was not opened"
        )
    return True


def check_sqlite_file(path: Path, what: str) -> bool:
    """Whether ``path`` exists; raises :class:`~ctxengine.errors.StoreError` unless it is a
    regular SQLite file (or empty, or missing in an existing directory) whose ``-wal``,
    ``-shm`` and ``-journal`` companions are regular files too."""
    for companion in ("-wal", "-shm", "-journal"):
        _is_regular(Path(f"{path}{companion}"), what)
    if not _is_regular(path, what):
        if not path.parent.is_dir():
            raise StoreError(f"cannot create {path}: directory {path.parent} does not exist")
        return False
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise StoreError(f"{path} is not a regular file; it was not opened")
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    if head and head != SQLITE_HEADER:
        raise StoreError(f"{path} is not a SQLite database (wrong header); it was not modified")
    return True


@contextmanager
def sqlite_errors(where: str) -> Iterator[None]:
    """Turns a ``sqlite3.Error`` raised inside into a :class:`~ctxengine.errors.StoreError`
    naming ``where`` (a damaged, locked or unwritable file is never a bare driver error)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{where}: {exc}") from exc


__all__ = ["SQLITE_HEADER", "check_sqlite_file", "sqlite_errors", "sqlite_path"]
