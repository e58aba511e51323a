"""WebUIProcessManager: starts, watches, tails, restarts and stops the backend process.

Managed mode launches a command (no shell, its own process group, unbuffered output) and owns the
process; attached mode only watches a URL it cannot restart. Restarts are serialized and counted:
a crash loop ends in FAILED instead of restarting forever.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO

import psutil

URL_LINE = re.compile(r"(?:Running on local URL:|Uvicorn running on)\s+(https?://[^\s]+)")
TAIL_LINES = 500


class BackendState(StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    READY = "READY"
    CRASHED = "CRASHED"
    RESTARTING = "RESTARTING"
    STOPPING = "STOPPING"
    FAILED = "FAILED"


class BackendStartError(RuntimeError):
    """The backend did not become ready; the message carries the reason and the output tail."""


def reference_backend_command(port: int = 0, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stablenew", "webui-sim", "--port", str(port), *extra]


@dataclass
class LaunchConfig:
    command: list[str] | None = None  # None: attached mode, nothing to launch
    url: str | None = None  # known URL; None: read it from the boot lines
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = 60.0
    max_restarts: int = 3
    restart_window: float = 300.0
    log_dir: Path | None = None
    pidfile: Path | None = None  # where the managed backend's pid is kept (stale-orphan reaping)


StateListener = Callable[[BackendState, str], None]


class WebUIProcessManager:
    def __init__(
        self,
        config: LaunchConfig,
        probe: Callable[[str], bool],
        on_state: StateListener | None = None,
    ) -> None:
        if config.command is None and config.url is None:
            raise ValueError("a backend needs a command to launch or a URL to attach to")
        self.config = config
        self._probe = probe
        self._on_state = on_state
        self._command = list(config.command or [])
        self._url = config.url
        self._proc: subprocess.Popen[str] | None = None
        self._pumps: list[threading.Thread] = []
        self._tails: dict[str, deque[str]] = {
            "stdout": deque(maxlen=TAIL_LINES),
            "stderr": deque(maxlen=TAIL_LINES),
        }
        self._tail_lock = threading.Lock()
        self._url_seen = threading.Event()
        self._log_file: IO[str] | None = None
        self._state = BackendState.STOPPED
        self._state_lock = threading.Lock()
        self._restart_lock = threading.Lock()
        self._restart_times: deque[float] = deque()
        self.restarts = 0

    # -- state ---------------------------------------------------------------------------------

    @property
    def managed(self) -> bool:
        return bool(self._command)

    @property
    def state(self) -> BackendState:
        return self._state

    @property
    def url(self) -> str:
        if self._url is None:
            raise BackendStartError("the backend's URL is not known yet (not started)")
        return self._url

    def _set_state(self, state: BackendState, detail: str = "") -> None:
        with self._state_lock:
            if self._state == state:
                return
            self._state = state
        if self._on_state is not None:
            try:
                self._on_state(state, detail)
            except Exception as exc:  # a listener must never break supervision
                print(f"stablenew: backend state listener failed: {exc!r}", file=sys.stderr)

    def is_process_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def get_tail_logs(self, max_lines: int = 200) -> dict[str, str]:
        with self._tail_lock:
            return {
                name: "\n".join(list(lines)[-max_lines:]) for name, lines in self._tails.items()
            }

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> str:
        """Launch (managed) or check (attached) the backend and wait until it answers."""
        timeout = self.config.startup_timeout if timeout is None else timeout
        if not self.managed:
            return self._wait_attached(timeout)
        if self.is_process_alive():
            return self.url
        self._set_state(BackendState.STARTING, " ".join(self._command))
        self._reap_stale()
        self._launch()
        return self._wait_ready(timeout)

    def _reap_stale(self) -> None:
        """A backend left running by a StableNew that was killed (kill -9, power loss of the
        terminal) is stopped before a new one starts: no orphan outlives the next start."""
        pidfile = self.config.pidfile
        if pidfile is None or not pidfile.is_file():
            return
        try:
            pid_text, created_text = pidfile.read_text().split()
            stale = psutil.Process(int(pid_text))
            if abs(stale.create_time() - float(created_text)) < 1.0:
                stop_tree(stale, grace=5)
        except (ValueError, OSError, psutil.Error):
            pass  # gone already, or not ours: nothing to reap
        pidfile.unlink(missing_ok=True)

    def _launch(self) -> None:
        env = {**os.environ, **self.config.env, "PYTHONUNBUFFERED": "1"}
        self._url_seen.clear()
        if self.config.url is None:
            self._url = None
        if self.config.log_dir is not None and self._log_file is None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            name = time.strftime("webui_%Y%m%d_%H%M%S.log")
            self._log_file = open(self.config.log_dir / name, "a", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            self._command,
            cwd=self.config.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group: our Ctrl+C is ours to handle
        )
        if self.config.pidfile is not None:
            with contextlib.suppress(psutil.Error):  # it may already be gone (fail at start)
                created = psutil.Process(self._proc.pid).create_time()
                self.config.pidfile.write_text(f"{self._proc.pid} {created}\n")
        self._pumps = [
            threading.Thread(
                target=self._pump,
                args=(self._proc, name, stream),
                name=f"webui-{name}",
                daemon=True,
            )
            for name, stream in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr))
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, proc: subprocess.Popen[str], name: str, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            line = line.rstrip("\n")
            with self._tail_lock:
                self._tails[name].append(line)
                if self._log_file is not None:
                    self._log_file.write(f"[{name}] {line}\n")
                    self._log_file.flush()
            if self._url is None and (match := URL_LINE.search(line)):
                self._url = match.group(1).rstrip("/")
                self._remember_port()
                self._url_seen.set()
        if name == "stdout":
            code = proc.wait()
            if proc is self._proc and self._state in (BackendState.READY, BackendState.STARTING):
                self._set_state(BackendState.CRASHED, f"process exited with code {code}")

    def _remember_port(self) -> None:
        """After `--port 0`, restart on the port we were given so clients keep their URL."""
        if "--port" in self._command and self._url:
            i = self._command.index("--port") + 1
            if i < len(self._command) and self._command[i] == "0":
                self._command[i] = self._url.rsplit(":", 1)[1].split("/")[0]

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_process_alive():
                return self._fail_start("the backend exited during start-up")
            if self._url is not None and self._probe(self._url):
                self._set_state(BackendState.READY, self._url)
                return self._url
            self._url_seen.wait(0.05)
        self.stop()
        return self._fail_start(f"the backend was not ready within {timeout:g}s")

    def _fail_start(self, reason: str) -> str:
        if self._proc is not None:
            self._proc.wait(timeout=5)
        for pump in self._pumps:
            pump.join(timeout=2)
        tail = self.get_tail_logs(20)
        detail = f"{reason}\n--- stderr ---\n{tail['stderr']}\n--- stdout ---\n{tail['stdout']}"
        self._set_state(BackendState.FAILED, reason)
        raise BackendStartError(detail)

    def _wait_attached(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if self._probe(self.url):
                self._set_state(BackendState.READY, self.url)
                return self.url
            if time.monotonic() >= deadline:
                self._set_state(BackendState.FAILED, f"{self.url} does not answer")
                raise BackendStartError(
                    f"the attached backend at {self.url} does not answer after {timeout:g}s; "
                    "StableNew does not own it and cannot restart it"
                )
            time.sleep(0.2)

    # -- restart -------------------------------------------------------------------------------

    def restart_and_wait_ready(self, timeout: float | None = None) -> str:
        """Restart once, however many threads ask at the same moment; give up on a crash loop."""
        requested = time.monotonic()
        with self._restart_lock:
            restarted_meanwhile = self._restart_times and self._restart_times[-1] >= requested
            if restarted_meanwhile and self.state == BackendState.READY:
                return self.url  # another thread restarted it while we waited for the lock
            if not self.managed:
                return self._wait_attached(timeout or self.config.startup_timeout)
            now = time.monotonic()
            while self._restart_times and now - self._restart_times[0] > self.config.restart_window:
                self._restart_times.popleft()
            if len(self._restart_times) >= self.config.max_restarts:
                reason = (
                    f"crash loop: {len(self._restart_times)} restarts within "
                    f"{self.config.restart_window:g}s; not restarting again"
                )
                self.stop()
                self._set_state(BackendState.FAILED, reason)
                tail = self.get_tail_logs(20)["stderr"]
                raise BackendStartError(f"{reason}\n--- stderr ---\n{tail}")
            self._note_crash()
            self._set_state(BackendState.RESTARTING, f"restart {self.restarts + 1}")
            self._terminate(grace=5.0)
            self.restarts += 1
            self._set_state(BackendState.STARTING, "restarting")
            self._launch()
            try:
                return self._wait_ready(timeout or self.config.startup_timeout)
            finally:
                self._restart_times.append(time.monotonic())

    def _note_crash(self) -> None:
        """A restart right after a crash must still show the crash, whoever noticed it first."""
        if self._proc is None or self._state not in (BackendState.READY, BackendState.STARTING):
            return
        try:
            code = self._proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            return  # alive: a restart of a misbehaving but running backend
        self._set_state(BackendState.CRASHED, f"process exited with code {code}")

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the whole process tree, kill what outlives the grace."""
        if not self.managed or self._proc is None:
            self._set_state(BackendState.STOPPED)
            return
        self._set_state(BackendState.STOPPING)
        self._terminate(grace)
        if self.config.pidfile is not None:
            self.config.pidfile.unlink(missing_ok=True)
        self._set_state(BackendState.STOPPED)
        with self._tail_lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            stop_tree(psutil.Process(proc.pid), grace)
        proc.wait(timeout=grace)
        for pump in self._pumps:
            pump.join(timeout=2)


def stop_tree(root: psutil.Process, grace: float) -> None:
    """Terminate a process and all its descendants; kill what outlives the grace."""
    tree = [root, *root.children(recursive=True)]
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)
