"""A content-hash cache of finished work, so that a re-run resumes where the last one stopped.

Each record is one JSON line `{"key": ..., "value": ...}` appended to a file in the run's
directory and flushed to disk (fsync) chunk by chunk. The key is the SHA-256 of everything the
value depends on (model fingerprint, sampling settings, seed, prompt; judge name, judge prompt),
so changed arguments simply miss the cache. A line torn by an interruption is ignored on load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

logger = logging.getLogger(__name__)


def content_key(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def fingerprint(path_or_id: str) -> str:
    """Identity of a checkpoint: for a directory its small files' contents and every file's size and
    modification time (a checkpoint rewritten in place changes it); otherwise the id itself."""
    if not os.path.isdir(path_or_id):
        return path_or_id
    h = hashlib.sha256()
    for name in sorted(os.listdir(path_or_id)):
        full = os.path.join(path_or_id, name)
        if not os.path.isfile(full):
            continue
        st = os.stat(full)
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        if st.st_size < 1 << 20:
            with open(full, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


class JsonlCache:
    """key -> value, persisted as appended JSON lines. Counts hits and new entries."""

    def __init__(self, path: str):
        self.path = path
        self.data: dict[str, object] = {}
        self.hits = 0
        self.added = 0
        if os.path.isfile(path):
            self._load()

    def _load(self):
        torn = 0
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    self.data[row["key"]] = row["value"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    torn += 1
        if torn:
            logger.warning("%s: ignored %d unreadable line(s) (an interrupted write)", self.path, torn)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str):
        self.hits += 1
        return self.data[key]

    def put_many(self, items: dict[str, object]) -> None:
        if not items:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        # A line torn by an earlier interruption must not swallow the first new line.
        needs_newline = (
            os.path.isfile(self.path) and os.path.getsize(self.path) > 0 and not _ends_with_newline(self.path)
        )
        with open(self.path, "a", encoding="utf-8") as f:
            if needs_newline:
                f.write("\n")
            for key, value in items.items():
                f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.data.update(items)
        self.added += len(items)


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
