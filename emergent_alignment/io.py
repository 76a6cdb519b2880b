"""Atomic file writes: text, bytes, JSON, JSONL and matplotlib figures; gzip-compressed logs read back alike.

Every writer goes through a temporary file in the target's directory (so the rename stays on one
file system), flushes and fsyncs it, then `os.replace`s it over the target: a reader sees either
the old file or the new one, never half of one, and a failure mid-write leaves the old file intact
(the temporary file is removed).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _plain_mode(path: str, default: int) -> int:
    """The mode a plain `open` or `mkdir` would give: the existing file's, else default & ~umask
    (tempfile's own 0600 / 0700 would otherwise stick to the result)."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return default & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on a clean exit it replaces `path`, on an error it is removed."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _plain_mode(path, 0o666))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """`obj` as JSON (UTF-8, non-ASCII kept) with a final newline."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """One JSON object per line."""
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> None:
    """Save a matplotlib figure as PNG atomically, then close it (kwargs go to `Figure.savefig`)."""
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", **savefig_kwargs)
    finally:
        pyplot().close(fig)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary directory beside `path` to fill; on a clean exit it is renamed to `path`.

    An existing `path` is replaced when `overwrite`, else kept (another process finished first) and
    the temporary directory dropped. On an error the temporary directory is removed.
    """
    import shutil

    path = os.fspath(path).rstrip("/")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.isdir(path) and overwrite:
        shutil.rmtree(path)
    try:
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if overwrite or not os.path.isdir(path):
            raise


def compress(path: str | os.PathLike) -> str:
    """Replace `path` by `path`.gz (written atomically first, so one of the two always exists); the new path."""
    path = os.fspath(path)
    with open(path, "rb") as src, atomic_open(path + ".gz", "wb") as dst:
        with gzip.GzipFile(fileobj=dst, mode="wb", mtime=0) as z:
            z.write(src.read())
    os.remove(path)
    return path + ".gz"


def read_lines(path: str | os.PathLike) -> list[str] | None:
    """The lines of `path`, or of `path`.gz when only the compressed one exists; None when neither does."""
    path = os.fspath(path)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    if os.path.isfile(path + ".gz"):
        with gzip.open(path + ".gz", "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    return None


def read_json(path: str | os.PathLike):
    """A JSON file's content; a malformed one raises ValueError naming the file and line, not a traceback."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
