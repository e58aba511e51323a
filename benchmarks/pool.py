"""Many backends, one queue: the pool measured side by side in one run. JSON out.

    python benchmarks/pool.py [--quick] [--out FILE] [--only scaling,affinity,overhead]
                              [--workdir DIR]

- scaling: the same realistic jobs (20 steps x 25 ms) on pools of 1, 2 and 4 reference
  backends, interleaved round by round. Target: throughput of N >= 0.95 x N x that of one.
- affinity: 100 jobs over 4 models in a seeded random order on 2 backends that take 3 s to
  switch checkpoints (`--model-load-ms 3000`), with model affinity and with strict FIFO
  (`[pool] affinity = false`). Targets: switches with affinity <= 2 x the number of models;
  wall time at least 2x better than FIFO. Affinity runs twice: with the fairness bound out of
  the way (`max_skips` = the number of jobs), and with the default bound (20), which trades
  switches for a bounded wait: each rare job's wait ends in a switch.
- overhead: what StableNew adds per job beyond the same HTTP calls made by a bare loop per
  backend (one thread each), with 1 and with 4 backends, in lane time (wall x backends / jobs).
  Target: the 4-backend figure within 10% of the 1-backend figure, or within 2 ms where both
  are a few milliseconds (a 10% band of that is below the noise of a shared machine).
"""

from __future__ import annotations

import argparse
import base64
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from common import benchmark_main  # the sibling module: benchmarks run as scripts

from stablenew.app.config import BackendEntry, Config, service_config
from stablenew.app.placement import PoolPolicy
from stablenew.app.services import Services
from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import EventKind, JobLifecycleLogEvent
from stablenew.pipeline import payloads
from stablenew.pipeline.settings import PipelineSettings
from stablenew.webui.process import reference_backend_command

FINAL = {EventKind.JOB_COMPLETED, EventKind.JOB_FAILED, EventKind.JOB_CANCELLED}
MODELS = ("sim-v15-base", "sim-xl-photo", "anime_sim-toon-mix", "sim-v15-landscape")


class Pool:
    """A running StableNew over N managed reference backends, and a way to wait for job ends."""

    def __init__(
        self, home: Path, backends: int, *flags: str, policy: PoolPolicy | None = None
    ) -> None:
        config = Config()
        if backends == 1:  # a pool of one is the plain [backend] section
            config.backend.command = reference_backend_command(0, *flags)
        else:
            config.backends = [
                BackendEntry(name=f"b{n}", command=reference_backend_command(0, *flags))
                for n in range(backends)
            ]
        config.pool = policy or PoolPolicy()
        self.services = Services(service_config(home, config))
        self.finished: set[str] = set()
        self.failed: list[str] = []
        self._cond = threading.Condition()
        self.services.jobs.subscribe(self._on)
        self.services.start()
        self.urls = [b.url or "" for b in self.services.backends]

    def _on(self, event: JobLifecycleLogEvent) -> None:
        if event.kind in FINAL and event.job_id is not None:
            with self._cond:
                self.finished.add(event.job_id)
                if event.kind != EventKind.JOB_COMPLETED:
                    self.failed.append(event.message)
                self._cond.notify_all()

    def run_jobs(self, specs: list[JobSpec], timeout: float = 1800) -> float:
        started = time.perf_counter()
        wanted = set(self.services.jobs.submit_many(specs))
        with self._cond:
            if not self._cond.wait_for(lambda: wanted <= self.finished, timeout):
                raise TimeoutError("jobs did not finish")
        if self.failed:
            raise RuntimeError(f"jobs failed: {self.failed[:3]}")
        return time.perf_counter() - started

    def model_loads(self) -> int:
        return sum(
            int(httpx.get(f"{u}/sim/stats", timeout=5).json()["model_loads"]) for u in self.urls
        )

    def close(self) -> None:
        self.services.close()


def spec(n: int, steps: int, model: str | None = None) -> JobSpec:
    return JobSpec(
        prompt=f"a lighthouse at dusk {n}", seed=n, steps=steps, width=64, height=64, model=model
    )


def bare(urls: Sequence[str], specs: Sequence[JobSpec]) -> float:
    """The floor: one thread per backend making the txt2img calls and decoding the images,
    taking the next job from a shared list as it frees up."""
    todo = list(specs)
    lock = threading.Lock()
    settings = PipelineSettings()

    def lane(url: str) -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    job = todo.pop(0)
                answer = http.post(
                    "/sdapi/v1/txt2img", json=payloads.txt2img(job, settings, job.seed)
                )
                answer.raise_for_status()
                base64.b64decode(answer.json()["images"][0])

    started = time.perf_counter()
    threads = [threading.Thread(target=lane, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def scaling(home: Path, jobs_per_backend: int, rounds: int) -> dict[str, Any]:
    flags = ("--step-ms", "25")
    pools = {n: Pool(home / f"s{n}", n, *flags) for n in (1, 2, 4)}
    seconds = dict.fromkeys(pools, 0.0)
    try:
        for n, pool in pools.items():  # warm up
            pool.run_jobs([spec(i, 20) for i in range(n)])
        for r in range(rounds):
            for n, pool in pools.items():
                specs = [spec(10_000 * r + i, 20) for i in range(jobs_per_backend * n)]
                seconds[n] += pool.run_jobs(specs)
    finally:
        for pool in pools.values():
            pool.close()
    rate = {n: jobs_per_backend * n * rounds / s for n, s in seconds.items()}
    return {
        "steps": 20,
        "step_ms": 25,
        "jobs_per_backend": jobs_per_backend * rounds,
        "jobs_per_s": {str(n): round(r, 3) for n, r in rate.items()},
        "scaling": {str(n): round(rate[n] / (n * rate[1]), 3) for n in rate},
    }


def affinity(home: Path, jobs: int, load_ms: int) -> dict[str, Any]:
    order = [MODELS[i % len(MODELS)] for i in range(jobs)]
    random.Random(20).shuffle(order)
    specs = [spec(i, 4, model) for i, model in enumerate(order)]
    flags = ("--model-load-ms", str(load_ms), "--step-ms", "25")
    results: dict[str, Any] = {
        "jobs": jobs,
        "models": len(MODELS),
        "backends": 2,
        "model_load_ms": load_ms,
    }
    variants = (
        ("affinity", PoolPolicy(max_skips=jobs)),  # the fairness bound out of the way
        ("affinity_default_bound", PoolPolicy()),  # passed over at most 20 times
        ("fifo", PoolPolicy(affinity=False)),
    )
    for name, policy in variants:
        pool = Pool(home / name, 2, *flags, policy=policy)
        try:
            before = pool.model_loads()
            wall = pool.run_jobs(specs)
            results[name] = {
                "max_skips": policy.max_skips,
                "wall_s": round(wall, 3),
                "switches": pool.model_loads() - before,
            }
        finally:
            pool.close()
    fifo = results["fifo"]["wall_s"]
    results["speedup"] = round(fifo / results["affinity"]["wall_s"], 3)
    results["speedup_default_bound"] = round(fifo / results["affinity_default_bound"]["wall_s"], 3)
    return results


def overhead(home: Path, jobs: int, rounds: int) -> dict[str, Any]:
    flags = ("--step-ms", "10")
    figures: dict[str, Any] = {"steps": 10, "step_ms": 10}
    pools = {n: Pool(home / f"o{n}", n, *flags) for n in (1, 4)}
    product_s = dict.fromkeys(pools, 0.0)
    bare_s = dict.fromkeys(pools, 0.0)
    try:
        for n, pool in pools.items():  # warm both paths up
            pool.run_jobs([spec(i, 10) for i in range(n)])
            bare(pool.urls, [spec(i, 10) for i in range(n)])
        for r in range(rounds):  # interleaved, so machine noise hits all alike
            for n, pool in pools.items():
                specs = [spec(10_000 * r + i, 10) for i in range(jobs * n)]
                product_s[n] += pool.run_jobs(specs)
                bare_s[n] += bare(pool.urls, specs)
    finally:
        for pool in pools.values():
            pool.close()
    for n in pools:
        total = jobs * n * rounds
        figures[f"backends_{n}"] = {
            "jobs": total,
            "product_s": round(product_s[n], 3),
            "bare_s": round(bare_s[n], 3),
            "overhead_ms_per_job": round((product_s[n] - bare_s[n]) * n / total * 1000, 2),
        }
    one = figures["backends_1"]["overhead_ms_per_job"]
    four = figures["backends_4"]["overhead_ms_per_job"]
    figures["difference_ms_per_job"] = round(four - one, 2)
    return figures


def run(quick: bool, only: set[str], workdir: Path | None) -> dict[str, Any]:
    results: dict[str, Any] = {"benchmark": "pool", "quick": quick}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        home = Path(tmp)
        if "scaling" in only:
            results["scaling"] = scaling(home / "scaling", *((2, 1) if quick else (6, 3)))
        if "affinity" in only:
            results["affinity"] = affinity(home / "affinity", *((8, 100) if quick else (100, 3000)))
        if "overhead" in only:
            results["overhead"] = overhead(home / "overhead", *((2, 1) if quick else (20, 3)))
    results["targets"] = {
        "scaling.scaling.2": ">= 0.95",
        "scaling.scaling.4": ">= 0.95",
        "affinity.affinity.switches": "<= 8 (2 x models)",
        "affinity.speedup": ">= 2.0",
        "overhead.difference_ms_per_job": "<= 10% of backends_1, or <= 2 ms",
    }
    return results


def main() -> None:
    def add_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--only", default="scaling,affinity,overhead")
        parser.add_argument("--workdir", type=Path, help="where jobs write (default: a temp dir)")

    benchmark_main(
        lambda args: run(args.quick, set(args.only.split(",")), args.workdir), __doc__, add_args
    )


if __name__ == "__main__":
    main()
