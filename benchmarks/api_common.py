"""What the API benchmarks share: a real `stablenew serve` on a throwaway home."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def sim_config(*flags: str) -> str:
    command = [sys.executable, "-m", "stablenew", "webui-sim", "--port", "0", *flags]
    return f"[backend]\ncommand = {json.dumps(command)}\n"


@contextmanager
def serving(home: Path, *flags: str, config: str = "") -> Iterator[str]:
    """`stablenew serve --port 0` on `home` (`config`: more TOML for its config.toml); yields
    its URL, stops it (SIGTERM) afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(sim_config(*flags) + config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stablenew", "--home", str(home), "serve", "--port", "0"],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line.startswith("StableNew API: "):
            raise RuntimeError(f"serve did not start: {line!r}")
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield line.split()[2]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_finished(client: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
