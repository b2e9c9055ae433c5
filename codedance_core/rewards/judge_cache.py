"""A disk cache of judge verdicts, so that scoring the same answers again costs no request.

SQLite because it is in the standard library, safe for several processes on one machine (WAL
mode, a busy timeout), and a single file to copy next to a run. The key is the sha256 of
(judge model, prompt version, question, gold, prediction): change any of them and the old
verdict no longer applies. Only real verdicts are stored; a `judge_error` is never cached, so
a rerun retries it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    score REAL NOT NULL,
    reply TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


def verdict_key(model: str, prompt_version: str, question: str, gold: str, prediction: str) -> str:
    """sha256 hex of the five strings, JSON-encoded so that no two tuples share a key."""
    payload = json.dumps([model, prompt_version, question, gold, prediction], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class JudgeCache:
    """Verdicts by key in one SQLite file; usable from one thread at a time per instance."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(_SCHEMA)
        self._connection.commit()

    def get(self, key: str) -> tuple[float, str] | None:
        """(score, judge reply) stored under `key`, or None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT score, reply FROM verdicts WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def put(self, key: str, score: float, reply: str, *, model: str, prompt_version: str) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                (key, score, reply, model, prompt_version, time.time()),
            )
            self._connection.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()
