"""Reading and replacing files without following links, blocking on FIFOs, trusting a
file's own size claims, or leaving a directory half-replaced (used by :mod:`ctxengine.persist`)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError, StoreError

# JSON nesting a saved index may hold; deeper input is refused before the parser recurses.
MAX_JSON_DEPTH = 200

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def open_regular(path: Path) -> Any:
    """``path`` opened for binary reading if it is a regular file, never following a link.

    ``O_NOFOLLOW`` refuses a symlink and ``O_NONBLOCK`` makes opening a FIFO return at once
    (then ``fstat`` refuses it), so checking and reading are one step with no race.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise IndexFormatError(
                f"{path} is a symbolic link; an index holds only regular files"
            ) from None
        raise IndexFormatError(f"{path} is missing or unreadable: {exc}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise IndexFormatError(f"{path} is not a regular file; an index holds only regular files")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def open_append(path: Path) -> Any:
    """``path`` opened for reading and appending (created if missing) if it is a regular
    file, never following a link nor blocking on a FIFO (opening one for writing without
    a reader blocked forever): :func:`open_regular`'s checks, for a log."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise IndexFormatError(f"{path} is a symbolic link, not a file") from None
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise IndexFormatError(f"{path} is not a regular file") from None
        raise IndexFormatError(f"{path} cannot be opened for appending: {exc}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IndexFormatError(f"{path} is not a regular file")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return os.fdopen(fd, "r+b")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sync(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def exchange(first: Path, second: Path) -> bool:
    """Swap two directory entries in one atomic step; False where the OS cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # old kernel or a file system without the flag
    raise OSError(code, os.strerror(code), str(second))


def load_array(path: Path) -> np.ndarray:
    """An ``.npy`` array, its header checked against the file's size before numpy
    allocates anything: a header claiming a huge shape is an IndexFormatError, never a
    MemoryError (or an allocation that takes the machine down)."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            version = np.lib.format.read_magic(handle)
            header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )(handle)
        except (ValueError, OverflowError) as exc:
            raise IndexFormatError(f"{path} is not a numpy array file: {exc}") from None
        shape, _, dtype = header
        needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if dtype.hasobject or needed != size - handle.tell():
            raise IndexFormatError(
                f"{path} claims shape {shape} of {dtype} ({needed} bytes) but holds {size - handle.tell()}"
            )
        handle.seek(0)
        return np.load(handle, allow_pickle=False)


def json_loads(text: str | bytes, where: Path) -> Any:
    """``json.loads`` with nesting bounded, so hostile input is an IndexFormatError rather
    than a RecursionError (or a crash) deep in the parser."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise IndexFormatError(f"{where} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise IndexFormatError(f"{where} is not valid JSON: {exc}") from None


def read_json(path: Path) -> Any:
    """A JSON file read as :func:`open_regular` and :func:`json_loads` read (no links, no
    FIFOs, bounded nesting); any failure is an :class:`~ctxengine.errors.IndexFormatError`."""
    with open_regular(path) as handle:
        return json_loads(handle.read(), path)


def write_json(path: Path, data: Mapping[str, Any], *, indent: int | None = None) -> Path:
    """Write ``data`` (a saved form with a ``format`` field) as JSON beside ``path``, flush
    it to disk, then rename it into place, so a reader sees the old file or the new one,
    never half of one.

    ``path`` must be new or a file of the same ``format`` (an earlier save): a user's file,
    a model of another kind, a link, a directory or a FIFO is an
    :class:`~ctxengine.errors.IndexFormatError` and stays as it was. The file written aside
    has a fresh name (``O_EXCL``), so no file or link already there is written through.
    """
    mode = _check_replaceable(path, data.get("format"))
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a missing or read-only folder
        raise StoreError(f"cannot write {path}: {exc}") from exc
    try:
        if hasattr(os, "fchmod"):  # mkstemp's 0600 would hide a model others read
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=indent, allow_nan=False)
            sync(handle)
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):  # a full disk: the old file is in place
            raise StoreError(f"cannot write {path}: {exc}") from exc
        raise
    return path


# A saved model is megabytes at most; a larger file at the path is not one, and is not read.
_MAX_REPLACED_BYTES = 256 << 20


def _check_replaceable(path: Path, format_name: Any) -> int:
    """Refuse to replace anything at ``path`` but a regular file whose JSON ``format`` is
    ``format_name``; the permissions the new file gets (the old file's, else 0644)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0o644
    except OSError as exc:  # a parent that is a file, a path too long
        raise StoreError(f"cannot write {path}: {exc}") from exc
    refusal = f"{path} is not a saved {format_name} file; give a new path (nothing was written)"
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_REPLACED_BYTES:
        raise IndexFormatError(refusal)
    try:
        existing = read_json(path)
    except IndexFormatError:
        raise IndexFormatError(refusal) from None
    if not isinstance(existing, dict) or existing.get("format") != format_name:
        raise IndexFormatError(refusal)
    return stat.S_IMODE(info.st_mode)


def json_depth(text: str | bytes) -> int:
    """An upper bound of the JSON nesting depth (brackets inside strings count too, which
    only makes the bound safer); linear, and in C for the common shallow case."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    for byte in raw.translate(None, bytes(b for b in range(256) if b not in b"[]{}")):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


__all__ = [
    "MAX_JSON_DEPTH",
    "exchange",
    "json_depth",
    "json_loads",
    "load_array",
    "open_append",
    "open_regular",
    "read_json",
    "sha256",
    "sync",
    "write_json",
]
