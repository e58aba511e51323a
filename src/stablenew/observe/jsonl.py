"""The structured JSONL log: one event a line, rotated by size.

Built on the standard library's RotatingFileHandler, whose errors go to `handleError` (a
message on stderr) instead of raising into the code that logged. Lines are written on the
publishing thread: a writer thread was measured and lost, because handing each event over costs
the job thread more (GIL hand-offs) than writing the line itself.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

import orjson

from stablenew.observe.events import JobLifecycleLogEvent


class JsonlSink:
    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 3) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handler = RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    def __call__(self, event: JobLifecycleLogEvent) -> None:
        record = logging.LogRecord("stablenew.jsonl", logging.INFO, __file__, 0, "%s", None, None)
        record.msg = orjson.dumps(event.as_record(), default=str).decode()
        self._handler.handle(record)

    def close(self) -> None:
        self._handler.close()
