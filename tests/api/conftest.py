"""What the API tests share: `stablenew serve` as a real process on a real home, an SSE reader
and an in-process app for the checks that need no runner.

A server's backend is the reference backend with a short step time, so jobs take
milliseconds; every wait polls a condition with a generous bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from stablenew.api.app import create_app
from stablenew.api.security import Security
from stablenew.app.config import Config, service_config
from stablenew.app.services import Services

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def sim_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "stablenew", "webui-sim", "--port", "0", *flags]


def fast_config(*flags: str, extra: str = "") -> str:
    """config.toml: the reference backend at 2 ms a step, short grace periods."""
    command = json.dumps(sim_command("--step-ms", "2", *flags))
    return (
        f"[backend]\ncommand = {command}\n\n"
        "[recovery]\ncancel_grace = 1.0\nstall_timeout = 10\npoll_interval = 0.1\n\n" + extra
    )


def small(prompt: str = "an api test", **extra: Any) -> dict[str, Any]:
    return {"prompt": prompt, "steps": 2, "width": 64, "height": 64, "seed": 5, **extra}


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "") -> None:
    """Poll a condition on real processes; fails after a generous bound."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    home: Path
    stderr: list[str] = field(default_factory=list)

    @property
    def token(self) -> str:
        return (self.home / "api_token").read_text().strip()

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.get(path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.post(path, json={} if body is None else body, **kw)

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.get(f"/api/v1/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        wait_for(lambda: self.job(job_id)["status"] in statuses, timeout, f"{job_id} {statuses}")
        return self.job(job_id)

    def backend_url(self) -> str:
        url = self.get("/api/v1/backend").json()["url"]
        assert url, "the backend is not ready"
        return str(url)

    def faults(self, spec: dict[str, Any]) -> None:
        httpx.post(f"{self.backend_url()}/sim/faults", json=spec, timeout=5).raise_for_status()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_serve(home: Path, *args: str, config: str | None = None) -> Server:
    """`stablenew serve --port 0`, as a user runs it; returns once it prints its URL."""
    if config is not None or not (home / "config.toml").exists():
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config if config is not None else fast_config())
    proc = subprocess.Popen(
        [sys.executable, "-m", "stablenew", "--home", str(home), "serve", "--port", "0", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    line = proc.stdout.readline()
    assert line.startswith("StableNew API: http://"), (line, proc.wait(10), "".join(errors))
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    url = line.split()[2].replace("0.0.0.0", "127.0.0.1")
    return Server(proc, url, home, errors)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers (`serve(home=..., config=...)`); every one is stopped afterwards."""
    started: list[Server] = []

    def make(*args: str, home: Path | None = None, config: str | None = None) -> Server:
        server = start_serve(home or tmp_path / "home", *args, config=config)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(60)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(10)


# -- the event stream --------------------------------------------------------------------------


@dataclass
class Frame:
    id: int | None
    event: str
    data: dict[str, Any]


class SseReader:
    """Reads an event stream on a thread; `wait` blocks until a frame matches."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, **params: Any) -> None:
        self.frames: list[Frame] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._answer: httpx.Response | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._thread = threading.Thread(
            target=self._read, args=(url, headers or {}, params), daemon=True
        )
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str], params: dict[str, Any]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers, params=params) as answer:
                self._answer = answer
                assert answer.status_code == 200, answer.read()
                fields: dict[str, str] = {}
                for line in answer.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if "data" in fields:
                            self._add(fields)
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except BaseException as exc:  # closed by us, or a failure the test shows
            if not self._stop.is_set():
                self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _add(self, fields: dict[str, str]) -> None:
        seq = int(fields["id"]) if "id" in fields else None
        with self._cond:
            self.frames.append(Frame(seq, fields.get("event", ""), json.loads(fields["data"])))
            self._cond.notify_all()

    def wait(self, predicate: Callable[[Frame], bool], timeout: float = 60) -> Frame:
        def found() -> Frame | None:
            return next((f for f in self.frames if predicate(f)), None)

        with self._cond:
            ok = self._cond.wait_for(lambda: found() is not None or self.error, timeout)
            assert self.error is None, self.error
            assert ok, f"no matching frame in {[(f.id, f.event) for f in self.frames][-20:]}"
            result = found()
            assert result is not None
            return result

    def finished(self, job_id: str, timeout: float = 60) -> Frame:
        return self.wait(
            lambda f: (
                f.data.get("job_id") == job_id
                and f.event in ("job_completed", "job_failed", "job_cancelled")
            ),
            timeout,
        )

    def lifecycle(self) -> list[Frame]:
        with self._cond:
            return [f for f in self.frames if f.id is not None]

    def close(self) -> None:
        """Drop the connection, as a client that goes away does."""
        self._stop.set()
        if self._answer is not None:
            with contextlib.suppress(Exception):
                self._answer.close()
        self._client.close()
        self._thread.join(2)


@pytest.fixture
def sse() -> Iterator[Callable[..., SseReader]]:
    readers: list[SseReader] = []

    def make(url: str, headers: dict[str, str] | None = None, **params: Any) -> SseReader:
        reader = SseReader(url, headers, **params)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


# -- in process ----------------------------------------------------------------------------------


@pytest.fixture
def local_services(tmp_path: Path) -> Iterator[Services]:
    """Services on a fresh home that own nothing: the queue works, no job runs."""
    services = Services(service_config(tmp_path / "local", Config()))
    yield services
    services.close()


@pytest.fixture
def local_app(local_services: Services) -> Iterator[TestClient]:
    """The app in process, as a loopback server would serve it."""
    app = create_app(local_services, Security.for_bind("127.0.0.1", "local-token"))
    with TestClient(app, base_url="http://127.0.0.1:7870") as client:
        yield client
