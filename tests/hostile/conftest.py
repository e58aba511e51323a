"""What the hostile suite shares: StableNew as users run it (real processes, a real home, real
mounts), and ways to break the machine under it.

Unwritable and full folders are read-only or tiny tmpfs mounts, not a chmod: CI runs as root,
and root writes through any permission bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stablenew.jobs.status import JobStatus
from stablenew.observe.events import JobLifecycleLogEvent
from stablenew.queue.store import JobStore

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def cli(
    home: Path,
    *args: str,
    cwd: Path = ROOT,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """A stablenew command as a user types it, through a pipe."""
    return subprocess.run(
        [sys.executable, "-m", "stablenew", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def spawn(home: Path, *args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stablenew", "--home", str(home), *args],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def sim_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "stablenew", "webui-sim", "--port", "0", *flags]


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def backend_config(*flags: str, extra: str = "") -> str:
    return f"[backend]\ncommand = {json.dumps(sim_command(*flags))}\n{extra}"


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "") -> None:
    """Poll a condition on real processes; fails after a generous bound."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)


def events(home: Path) -> list[JobLifecycleLogEvent]:
    store = JobStore(home / "jobs.db")
    try:
        return store.events_since(0, limit=100_000)
    finally:
        store.close()


def statuses(home: Path) -> list[JobStatus]:
    store = JobStore(home / "jobs.db")
    try:
        return [j.status for j in sorted(store.list_jobs(), key=lambda j: j.position)]
    finally:
        store.close()


def small(prompt: str = "a hostile test", **extra: object) -> dict[str, object]:
    return {"prompt": prompt, "steps": 2, "width": 64, "height": 64, "seed": 5, **extra}


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount a tmpfs (`size` like "256k", `readonly`); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mounted: list[Path] = []

    def make(name: str, size: str = "8m", readonly: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir(parents=True, exist_ok=True)
        options = f"size={size},mode=0755" + (",ro" if readonly else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(folder: Path) -> None:
    """Fill a (small) file system to the last byte."""
    with (folder / "ballast").open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass


from tests.pipeline.conftest import make_services  # noqa: E402,F401  (the fixture, shared)
