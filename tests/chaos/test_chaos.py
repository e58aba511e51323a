"""Chaos: many jobs through a worker process while the backend misbehaves at random and the
worker itself is killed with SIGKILL and restarted.

Short form by default (CI); the long form: STABLENEW_CHAOS_JOBS=100. A failing run prints its
seed; STABLENEW_CHAOS_SEED=<seed> replays the same jobs and the same sequence of decisions.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import struct
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from stablenew.app.services import Services
from stablenew.jobs.spec import JobSpec, OutputOptions
from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore
from tests.helpers import start_worker
from tests.pipeline.conftest import service_config

SEED = int(os.environ.get("STABLENEW_CHAOS_SEED") or random.randrange(1_000_000))
JOBS = int(os.environ.get("STABLENEW_CHAOS_JOBS", "8"))

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300 + 30 * JOBS)]
CHAINS = [
    {},
    {"img2img": {"enabled": True}},
    {"upscale": {"enabled": True, "upscaler": "R-ESRGAN 4x+", "tile_size": 64}},
    {
        "img2img": {"enabled": True},
        "adetailer": {"enabled": True},
        "upscale": {"enabled": True, "upscaler": "Lanczos"},
    },
]


def hang(rng: random.Random, mode: str) -> dict[str, object]:
    """Frozen halfway, or at 100% after the last step (the finished-stall rule)."""
    at = rng.choice(["middle", "end"])
    return {"stage": "any", "nth": rng.randint(1, 2), "mode": mode, "at": at}


FAULTS = [
    lambda rng: {"http_error": {"stage": "any", "count": 1}},
    lambda rng: {"http_error": {"stage": "any", "kind": "oom"}},
    lambda rng: {"crash": {"stage": "any", "nth": rng.randint(1, 3)}},
    lambda rng: {"hang": hang(rng, "honour_interrupt")},
    lambda rng: {"hang": hang(rng, "ignore_interrupt")},
    lambda rng: {
        "garbage": {
            "stage": "any",
            "kind": rng.choice(["not_json", "missing_images", "bad_base64"]),
        }
    },
]
CONFIG = f"""
[backend]
# Calls take real time (40 ms a step) so faults and kills land mid-job; images do not change.
command = {
    json.dumps([sys.executable, "-m", "stablenew", "webui-sim", "--port", "0", "--step-ms", "40"])
}
max_restarts = 1000
crash_loop_limit = 1000  # the breaker has its own tests; chaos is about transient faults
[recovery]
stall_timeout = 1.5
finished_stall = 1.0
stall_grace = 0.5
cancel_grace = 0.5
restart_timeout = 60
"""


def make_specs(rng: random.Random) -> list[JobSpec]:
    return [
        JobSpec.model_validate(
            {
                "prompt": f"chaos job {i}",
                "seed": 1000 + i,
                "steps": 4,
                "width": 64,
                "height": 64,
                "images": rng.randint(1, 3),
                **rng.choice(CHAINS),
            }
        )
        for i in range(JOBS)
    ]


def without_provenance(png: bytes) -> bytes:
    """The PNG minus StableNew's own `stablenew` chunk (it names the job id, which differs)."""
    out, pos = bytearray(png[:8]), 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        chunk = png[pos : pos + 12 + length]
        if not (chunk[4:8] == b"tEXt" and chunk[8:18] == b"stablenew\0"):
            out += chunk
        pos += 12 + length
    return bytes(out)


def identity(spec: JobSpec) -> str:
    """A job's identity across the two runs (each writes under its own output root)."""
    return spec.model_copy(update={"output": OutputOptions()}).sha256()


def final_images(jobs: list) -> dict[str, list[bytes]]:  # type: ignore[type-arg]
    return {
        identity(job.spec): [without_provenance(Path(p).read_bytes()) for p in job.result.images]
        for job in jobs
        if job.status == JobStatus.COMPLETED
    }


def reference_run(home: Path, specs: list[JobSpec]) -> dict[str, list[bytes]]:
    services = Services(service_config(home))
    services.start()
    try:
        services.jobs.submit_many(specs)
        deadline = time.monotonic() + 300
        while any(not j.status.finished for j in services.jobs.list_jobs()):
            assert time.monotonic() < deadline, "the fault-free run did not finish"
            time.sleep(0.1)
        jobs = services.jobs.list_jobs()
        assert all(j.status == JobStatus.COMPLETED for j in jobs)
        return final_images(jobs)
    finally:
        services.close()


def stage_runs_after_checkpoint(run_dir: Path, stages: list[str]) -> list[str]:
    """Stages started again after a later stage had begun (their checkpoint was saved)."""
    started = [
        json.loads(line)["stage"]
        for line in (run_dir / "events.jsonl").read_text().splitlines()
        if '"stage_started"' in line and '"setup"' not in line
    ]
    problems = []
    for i, stage in enumerate(started):
        later = [s for s in started[:i] if stages.index(s) > stages.index(stage)]
        if later:
            problems.append(f"{stage} ran again after {later[-1]} had started")
    return problems


def test_chaos(tmp_path: Path) -> None:
    print(f"chaos seed {SEED} ({JOBS} jobs); replay: STABLENEW_CHAOS_SEED={SEED}")
    rng = random.Random(SEED)
    specs = make_specs(rng)
    expected = reference_run(tmp_path / "reference", specs)

    home = tmp_path / "chaos"
    home.mkdir()
    (home / "config.toml").write_text(CONFIG)
    store = JobStore(home / "jobs.db")
    store.submit_many(specs)
    worker = start_worker(home)
    processes = [psutil.Process(worker.proc.pid)]
    kills = injected = resumes = 0
    deadline = time.monotonic() + 120 + 20 * JOBS
    while any(not j.status.finished for j in store.list_jobs()):
        assert time.monotonic() < deadline, f"chaos did not settle (seed {SEED})"
        time.sleep(rng.uniform(0.1, 0.4))  # the pace of the chaos, not a wait for a result
        if store.paused():  # e.g. two out-of-memory failures in a row: the user resumes
            store.resume()
            resumes += 1
        pid_file = home / "backend.pid"
        with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
            # between two backends there is no pid to record this turn
            processes.append(psutil.Process(int(pid_file.read_text().split()[0])))
        if rng.random() < 0.12 and kills < 3 + JOBS // 10:
            os.kill(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait(10)
            kills += 1
            worker = start_worker(home)
            processes.append(psutil.Process(worker.proc.pid))
        elif rng.random() < 0.5:
            fault = rng.choice(FAULTS)(rng)
            with contextlib.suppress(httpx.HTTPError):  # restarting: this fault is not injected
                httpx.post(f"{worker.url}/sim/faults", json=fault, timeout=2)
                injected += 1
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(60) == 0

    jobs = store.list_jobs()
    assert all(j.status.finished for j in jobs)
    assert store.integrity_ok()
    completed = final_images(jobs)
    for job in jobs:
        run_dir = Path(job.result.run_dir or tmp_path)
        if job.status == JobStatus.COMPLETED:
            key = identity(job.spec)
            assert completed[key] == expected[key], job.id
            assert all(Path(m).is_file() for m in job.result.manifests)
            assert not stage_runs_after_checkpoint(run_dir, job.spec.stages()), job.id
        else:
            assert job.status == JobStatus.FAILED and job.error is not None, job
            assert all(Path(a).is_file() for a in job.error.artifacts), job.error
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, f"orphan processes: {alive}"
    done = sum(j.status == JobStatus.COMPLETED for j in jobs)
    print(
        f"chaos seed {SEED}: {done}/{len(jobs)} completed, {kills} worker kills, "
        f"{injected} faults injected, {resumes} pauses resumed"
    )
