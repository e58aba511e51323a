"""Running `stablenew` as a user does: a real subprocess, its output through a pipe."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stablenew.jobs.spec import build_spec
from stablenew.queue.store import JobStore

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stablenew", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=ENV,
    )


def popen(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stablenew", "--home", str(home), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def document(done: subprocess.CompletedProcess[str], key: str) -> Any:
    """The data of a `--json` document, checked to be one `{"schema": 1, key: ...}`."""
    assert done.returncode in (0, 1), done.stderr
    data = json.loads(done.stdout)
    assert data["schema"] == 1 and key in data, data
    return data[key]


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a command printed: exactly one line on stderr, no traceback."""
    no_traceback(done)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def sim_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "stablenew", "webui-sim", "--port", "0", *flags]


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


def slow_backend(home: Path, step_ms: int = 100) -> None:
    """A managed reference backend that takes `step_ms` per step (20 steps an image)."""
    command = sim_command("--step-ms", str(step_ms))
    write_config(home, f"[backend]\ncommand = {json.dumps(command)}\n")


def queue_failing_job(home: Path, prompt: str = "doomed") -> str:
    """A job the backend refuses every time (an unknown upscaler), queued as the API would."""
    spec = build_spec(
        {"prompt": prompt, "upscale": {"enabled": True, "upscaler": "No Such Upscaler"}}
    )
    store = JobStore(home / "jobs.db")
    try:
        return store.submit_many([spec], source="api")[0]
    finally:
        store.close()


class Lines:
    """A process's output, line by line, waited for with a deadline (never a sleep)."""

    def __init__(self, stream: Any) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, wanted: str | Callable[[str], bool], timeout: float = 60) -> str:
        """The first line from now on that contains `wanted` (or satisfies it)."""
        match = (lambda line: wanted in line) if isinstance(wanted, str) else wanted
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no line matching {wanted!r}; saw:\n" + "\n".join(self.seen)
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"ended before {wanted!r}; saw:\n" + "\n".join(self.seen)
            self.seen.append(line)
            if match(line):
                return line

    def rest(self, timeout: float = 30) -> list[str]:
        """Every line until the stream ends."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "the stream did not end"
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                return self.seen
            self.seen.append(line)
