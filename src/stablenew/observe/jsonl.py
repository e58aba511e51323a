"""The structured JSONL log: one event a line, flushed at once, rotated by size.

Written on the publishing thread, as one `write` per line: a writer thread was measured and lost
(handing each event over cost the job thread more than writing the line), and the standard
library's RotatingFileHandler spends four extra system calls a line (stat, stat, seek, tell) on
a size this sink simply counts. A sink never raises: a failed write is reported on stderr, once
until writing works again, and the event is dropped. Lines pass through `redact` (a backend's
launch command may hold a password), and the file is the owner's alone (0600): it holds prompts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import BinaryIO

from stablenew import private_files, redact
from stablenew.observe.events import JobLifecycleLogEvent


class JsonlSink:
    """Appends to `path`; past `max_bytes` (0: never) it rotates, keeping `backups` old files."""

    def __init__(
        self, path: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 3, mode: int = 0o600
    ) -> None:
        self.path = path
        self.mode = mode
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0
        self._failing = False

    def __call__(self, event: JobLifecycleLogEvent) -> None:
        line = redact.text(event.json_line.decode()).encode()
        with self._lock:
            try:
                if self._file is None:
                    self._open()
                if self.max_bytes and self._size + len(line) > self.max_bytes and self._size:
                    self._rotate()
                assert self._file is not None
                self._file.write(line)
                self._file.flush()
                self._size += len(line)
                self._failing = False
            except (OSError, ValueError) as exc:  # ValueError: a file closed under us
                self._report(exc)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError as exc:
                    self._report(exc)
                self._file = None

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.mode)
        except FileNotFoundError:
            private_files.make_folder(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.mode)
        self._file = os.fdopen(fd, "ab")
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        """events.jsonl -> events.jsonl.1 -> ... -> events.jsonl.<backups>, oldest dropped."""
        assert self._file is not None
        self._file.close()
        self._file = None
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._open()

    def _report(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            with contextlib.suppress(Exception):  # stderr itself is gone: nothing left to tell
                print(f"stablenew: cannot write the event log {self.path}: {exc}", file=sys.stderr)
