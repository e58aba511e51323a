"""WebUIProcessManager: starts, watches, tails, restarts and stops the backend process.

Managed mode launches a command (no shell, its own process group, unbuffered output) and owns the
process; attached mode only watches a URL it cannot restart. Every launch, whoever asked for it,
goes through the crash-loop breaker, so a backend that dies every time it starts is not started
again and again. What the backend prints is kept (redacted: A1111 prints its own arguments,
`--api-auth` included) in a numbered tail, so a failure quotes only what was printed since its
own attempt began.
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
from pathlib import Path
from typing import IO

import psutil

from stablenew import private_files, redact
from stablenew.errors import BackendAuthRejected, BackendCrashLoop, BackendStartError
from stablenew.jobs.status import BackendState
from stablenew.webui.breaker import BreakerListener, BreakerState, CrashLoopBreaker
from stablenew.webui.client import Health

URL_LINE = re.compile(r"(?:Running on local URL:|Uvicorn running on)\s+(https?://[^\s]+)")
TAIL_LINES = 500
KEEP_LOGS = 10  # backend log files kept in the log folder, newest first


def reference_backend_command(port: int = 0, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stablenew", "webui-sim", "--port", str(port), *extra]


@dataclass
class LaunchConfig:
    command: list[str] | None = None  # None: attached mode, nothing to launch
    url: str | None = None  # known URL; None: read it from the boot lines
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = 120.0
    max_restarts: int = 3
    restart_window: float = 300.0
    breaker_cooldown: float = 600.0
    crash_loop_limit: int = 3
    log_dir: Path | None = None
    log_name: str = "webui"  # its log files: <log_dir>/<log_name>_<time>.log
    pidfile: Path | None = None  # where the managed backend's pid is kept (stale-orphan reaping)


StateListener = Callable[[BackendState, str], None]
Probe = Callable[[str], Health]


class WebUIProcessManager:
    def __init__(
        self,
        config: LaunchConfig,
        probe: Probe,
        on_state: StateListener | None = None,
        on_breaker: BreakerListener | None = None,
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
        self._tail: deque[tuple[int, str, str]] = deque(maxlen=2 * TAIL_LINES)
        self._lines = 0  # lines printed so far by every process we launched
        self._tail_lock = threading.Lock()
        self._url_seen = threading.Event()
        self._log_file: IO[str] | None = None
        self._state = BackendState.STOPPED
        self._state_lock = threading.Lock()
        self._restart_lock = threading.Lock()
        self._last_restart = 0.0
        self.restarts = 0  # successful restarts since this manager was made
        self.launches = 0  # processes started, by any path
        self.breaker = CrashLoopBreaker(
            max_restarts=config.max_restarts,
            window=config.restart_window,
            cooldown=config.breaker_cooldown,
            limit=config.crash_loop_limit,
            on_change=on_breaker,
        )

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

    @property
    def known_url(self) -> str | None:
        return self._url

    def _set_state(self, state: BackendState, detail: str = "") -> None:
        with self._state_lock:
            if self._state == state:
                return
            self._state = state
        if state == BackendState.CRASHED:
            self.breaker.crashed()  # counted once, whoever noticed it first
        if self._on_state is not None:
            try:
                self._on_state(state, redact.text(detail))
            except Exception as exc:  # a listener must never break supervision
                print(f"stablenew: backend state listener failed: {exc!r}", file=sys.stderr)

    def is_process_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exited(self, within: float) -> bool:
        """Whether the managed process has ended, or ends within `within` seconds (a dropped
        connection and the process's exit arrive a moment apart)."""
        proc = self._proc
        if proc is None:
            return False
        try:
            proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            return False
        return True

    def mark(self) -> int:
        """A point in the output: `get_tail_logs(since=mark)` shows only what came after it."""
        with self._tail_lock:
            return self._lines

    def get_tail_logs(self, max_lines: int = 200, since: int = 0) -> dict[str, str]:
        """The backend's last output lines per stream, printed after `since` (see `mark`)."""
        with self._tail_lock:
            lines = [(name, text) for n, name, text in self._tail if n > since]
        return {
            name: "\n".join([text for stream, text in lines if stream == name][-max_lines:])
            for name in ("stdout", "stderr")
        }

    def settle_output(self, idle: float = 0.1, longest: float = 0.5) -> None:
        """Wait (bounded) until the backend stops printing: a failed request's traceback
        reaches its stderr a moment after the answer, and the failure artifacts want it."""
        if not self.managed or self._proc is None:
            return
        deadline = time.monotonic() + longest
        seen = self.mark()
        while time.monotonic() < deadline:
            time.sleep(idle)
            now = self.mark()
            if now == seen:
                return
            seen = now

    def generation_completed(self) -> None:
        """The running process completed a generation: it is healthy (breaker)."""
        self.breaker.proven()

    def restart_did_not_help(self) -> None:
        """The call failed again after a restart (breaker: the next restart would not help)."""
        self.breaker.restart_did_not_help()

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> str:
        """Launch (managed) or check (attached) the backend and wait until it answers."""
        timeout = self.config.startup_timeout if timeout is None else timeout
        if not self.managed:
            return self._wait_attached(timeout)
        with self._restart_lock:
            if self.is_process_alive() and self._state == BackendState.READY:
                return self.url
            if self.is_process_alive():
                self._terminate(grace=5.0)  # a process that is not READY is stuck: replace it
            self._set_state(BackendState.STARTING, " ".join(redact.command(self._command)))
            since = self._launch()
            return self._wait_ready(timeout, since)

    def reap_stale(self) -> None:
        """A backend left running by a StableNew that was killed (kill -9, power loss of the
        terminal) is stopped. Only the home's new owner calls this, right after taking the lock:
        no other process touches a backend it does not own."""
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

    def _launch(self) -> int:
        """Start the process (counted by the breaker); returns the output mark of its start."""
        try:
            self.breaker.allow_start()
        except BackendCrashLoop as exc:
            self._set_state(BackendState.FAILED, self.breaker.reason)
            raise exc
        self.launches += 1
        env = {**os.environ, **self.config.env, "PYTHONUNBUFFERED": "1"}
        self._url_seen.clear()
        if self.config.url is None:
            self._url = None
        since = self.mark()
        self._open_log()
        try:
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
        except OSError as exc:
            self._proc = None
            reason = _launch_problem(self._command, self.config.cwd, exc)
            self._set_state(BackendState.FAILED, reason)
            raise BackendStartError(reason) from exc
        if self.config.pidfile is not None:
            with contextlib.suppress(psutil.Error, OSError):  # it may be gone already
                created = psutil.Process(self._proc.pid).create_time()
                private_files.write(self.config.pidfile, f"{self._proc.pid} {created}\n".encode())
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
        return since

    def _open_log(self) -> None:
        log_dir = self.config.log_dir
        if log_dir is None or self._log_file is not None:
            return
        try:
            private_files.make_folder(log_dir)
            name = self.config.log_name
            old = sorted(log_dir.glob(f"{name}_*.log"), reverse=True)[KEEP_LOGS - 1 :]
            for path in old:  # pruned, so an afternoon of restarts does not fill the folder
                path.unlink(missing_ok=True)
            path = log_dir / time.strftime(f"{name}_%Y%m%d_%H%M%S.log")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._log_file = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:  # the tail in memory still works; say so once
            print(f"stablenew: cannot write the backend log in {log_dir}: {exc}", file=sys.stderr)

    def _pump(self, proc: subprocess.Popen[str], name: str, stream: IO[str] | None) -> None:
        assert stream is not None
        for raw in stream:
            line = redact.text(raw.rstrip("\n"))
            with self._tail_lock:
                self._lines += 1
                self._tail.append((self._lines, name, line))
                if self._log_file is not None:
                    try:
                        self._log_file.write(f"[{name}] {line}\n")
                        self._log_file.flush()
                    except (OSError, ValueError):
                        self._log_file = None  # a full disk: keep the tail in memory only
            if self._url is None and (match := URL_LINE.search(raw)):
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

    def _wait_ready(self, timeout: float, since: int) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_process_alive():
                return self._fail_start("the backend exited during start-up", since)
            if self._url is not None:
                health = self._probe(self._url)
                if health is Health.OK:
                    self._set_state(BackendState.READY, self._url)
                    return self._url
                if health is Health.AUTH_REJECTED:
                    self._terminate(grace=5.0)
                    self._set_state(BackendState.FAILED, "the backend rejected the credentials")
                    raise BackendAuthRejected(
                        "the backend rejected the credentials (check [backend] username and "
                        "password against its --api-auth)",
                        endpoint=self._url,
                        status=401,
                    )
            self._url_seen.wait(0.05)
        self._terminate(grace=5.0)
        return self._fail_start(f"the backend was not ready within {timeout:g}s", since)

    def _fail_start(self, reason: str, since: int) -> str:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        for pump in self._pumps:
            pump.join(timeout=2)
        tail = self.get_tail_logs(20, since=since)
        detail = f"{reason}\n--- stderr ---\n{tail['stderr']}\n--- stdout ---\n{tail['stdout']}"
        self._set_state(BackendState.FAILED, reason)
        raise BackendStartError(detail)

    def _wait_attached(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            health = self._probe(self.url)
            if health is Health.OK:
                if self._state != BackendState.READY:
                    # Back after being away: it may be another process with other models, so
                    # what was asked of the one before (lists, options) is asked again.
                    self.launches += 1
                self._set_state(BackendState.READY, self.url)
                return self.url
            if health is Health.AUTH_REJECTED:
                self._set_state(BackendState.FAILED, "the backend rejected the credentials")
                raise BackendAuthRejected(
                    f"the backend at {self.url} rejected the credentials (check [backend] "
                    "username and password)",
                    endpoint=self.url,
                    status=401,
                )
            if health is Health.REFUSED or time.monotonic() >= deadline:
                why = (
                    "nothing listens there (connection refused)"
                    if health is Health.REFUSED
                    else f"it does not answer after {timeout:g}s"
                )
                self._set_state(BackendState.FAILED, f"{self.url}: {why}")
                raise BackendStartError(
                    f"the attached backend at {self.url} cannot be used: {why}; StableNew does "
                    "not own it and cannot start it"
                )
            time.sleep(0.2)

    # -- restart -------------------------------------------------------------------------------

    def restart_and_wait_ready(self, timeout: float | None = None) -> str:
        """Restart once, however many threads ask at the same moment (counted by the breaker)."""
        requested = time.monotonic()
        with self._restart_lock:
            if self._last_restart >= requested and self.state == BackendState.READY:
                return self.url  # another thread restarted it while we waited for the lock
            if not self.managed:
                return self._wait_attached(timeout or self.config.startup_timeout)
            self._note_crash()
            self._set_state(BackendState.RESTARTING, f"restart {self.restarts + 1}")
            self._terminate(grace=5.0)
            try:
                since = self._launch()
            except BackendStartError:
                self._last_restart = time.monotonic()
                raise
            self._set_state(BackendState.STARTING, "restarting")
            try:
                url = self._wait_ready(timeout or self.config.startup_timeout, since)
            finally:
                self._last_restart = time.monotonic()
            self.restarts += 1
            return url

    def _note_crash(self) -> None:
        """A restart right after a crash must still show the crash, whoever noticed it first."""
        if self._proc is None or self._state not in (BackendState.READY, BackendState.STARTING):
            return
        try:
            code = self._proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            return  # alive: a restart of a misbehaving but running backend
        self._set_state(BackendState.CRASHED, f"process exited with code {code}")

    def reset_breaker(self, why: str) -> None:
        if self.breaker.state != BreakerState.CLOSED:
            self.breaker.reset(why)

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
                with contextlib.suppress(OSError):
                    self._log_file.close()
                self._log_file = None

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            stop_tree(psutil.Process(proc.pid), grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        for pump in self._pumps:
            pump.join(timeout=2)


def _launch_problem(command: list[str], cwd: Path | None, exc: OSError) -> str:
    if cwd is not None and not cwd.is_dir():
        return f"the backend's folder [backend] cwd = {str(cwd)!r} does not exist"
    if isinstance(exc, FileNotFoundError):
        return (
            f"the backend command {command[0]!r} was not found (check [backend] command in "
            "config.toml)"
        )
    if isinstance(exc, PermissionError):
        return f"the backend command {command[0]!r} cannot be run: {exc.strerror}"
    return f"the backend command could not be started: {exc}"


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
