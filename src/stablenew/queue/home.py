"""Home ownership: at most one process per home runs the JobRunner and the managed backend.

The owner holds an OS-level lock on `<home>/owner.lock` for its whole life; the OS releases it
when the process ends, however it ends (kill -9 included), so there is never a stale owner to
clean up. `<home>/owner.json` says who the owner is (pid, command, backend URL) so that other
processes can tell the user; it is advice, the lock is the truth. Every other process is a
client: it uses the queue through the store and never starts, stops or reaps a backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from stablenew import private_files, redact
from stablenew.jobs.job import utcnow


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    command: str
    since: str
    backend_url: str | None = None  # the first backend's (a pool of one: its only one)
    backend_urls: dict[str, str] = field(default_factory=dict)  # every backend's, by name

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where} ({self.command}), since {self.since}"


class HomeLock:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.lock_path = home / "owner.lock"
        self.info_path = home / "owner.json"
        # Not thread-local: a pool publishes its URLs, and a GUI closes, from other threads.
        self._lock = filelock.FileLock(self.lock_path, timeout=0, mode=0o600, thread_local=False)
        self._info: dict[str, object] = {}
        self._writing = threading.Lock()  # a pool's backends publish their URLs side by side

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        """Become the owner if nobody is; never waits."""
        if self.held:
            return True
        private_files.make_folder(self.home)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            return False
        self._info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(redact.command(sys.argv)),
            "since": utcnow().isoformat(timespec="seconds"),
            "backend_url": None,
        }
        self._write()
        return True

    def set_backend_urls(self, urls: dict[str, str]) -> None:
        """Publish where the backends answer, for clients (doctor, a following `run`)."""
        if self.held:
            shown = {name: redact.text(url) for name, url in urls.items()}
            with self._writing:
                self._info["backend_urls"] = shown
                self._info["backend_url"] = next(iter(shown.values()), None)
                self._write()

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                self.info_path.unlink(missing_ok=True)
            self._lock.release(force=True)

    def owner(self) -> Owner | None:
        """The process that owns the home now, or None when nobody does."""
        if self.held:
            return _owner(self._info)
        probe = filelock.FileLock(self.lock_path, timeout=0, mode=0o600)
        try:
            probe.acquire()
        except filelock.Timeout:
            try:
                info = json.loads(self.info_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = {}
            return _owner(info)
        except OSError:
            return None  # no home yet, or it cannot hold a lock file: nobody owns it
        probe.release(force=True)
        return None

    def _write(self) -> None:
        with contextlib.suppress(OSError):  # the lock is what counts; the note is for people
            private_files.write(self.info_path, json.dumps(self._info).encode("utf-8"))


def _owner(info: dict[str, object]) -> Owner:
    pid = info.get("pid")
    urls = info.get("backend_urls")
    return Owner(
        pid=pid if isinstance(pid, int) else 0,
        host=str(info.get("host") or socket.gethostname()),
        command=str(info.get("command") or "unknown command"),
        since=str(info.get("since") or "unknown"),
        backend_url=str(info["backend_url"]) if info.get("backend_url") else None,
        backend_urls={str(k): str(v) for k, v in urls.items()} if isinstance(urls, dict) else {},
    )
