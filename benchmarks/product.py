"""The whole product measured side by side with the floor. JSON out.

    python benchmarks/product.py [--quick] [--out FILE] [--only overhead,realistic,cancel,recovery]
                                 [--workdir DIR]

- overhead: N jobs x (txt2img -> img2img -> upscale) through queue, runner, pipeline, artifacts
  and events, versus a bare loop making the same HTTP calls with httpx and decoding the images,
  against the same reference backend at zero latency, interleaved round by round.
  Targets: throughput ratio >= 0.90 (the benchmark as specified, 512x512) and < 10 ms overhead
  per job at 64x64. The ratio at 64x64 is reported too; it has no target of its own, since a
  bare 64x64 job costs ~11 ms here and 0.90 would mean < 1.2 ms per job, making the 10 ms
  bound moot.
- realistic: the same at 20 steps x 50 ms. Target: overhead < 1% of wall time.
- cancel: cancel_job -> CANCELLED while the backend hangs, honouring and ignoring interrupt.
  Targets: p99 < 0.5 s (honour), < cancel_grace + 0.5 s (ignore).
- recovery: crash of the backend -> job completed, minus the backend's own restart time.
  Target: < 1 s.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import benchmark_main  # the sibling module: benchmarks run as scripts

from stablenew.app.config import Config, service_config
from stablenew.app.services import Services
from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import EventKind, JobLifecycleLogEvent
from stablenew.pipeline import payloads
from stablenew.pipeline.settings import PipelineSettings
from stablenew.webui.process import reference_backend_command

FINAL = {EventKind.JOB_COMPLETED, EventKind.JOB_FAILED, EventKind.JOB_CANCELLED}


class Product:
    """A running StableNew (managed reference backend) plus a way to wait for job ends."""

    def __init__(
        self, home: Path, *flags: str, cancel_grace: float = 3.0, live_preview: bool = True
    ) -> None:
        config = Config()
        config.backend.command = reference_backend_command(0, *flags)
        config.recovery = config.recovery.model_copy(
            update={"cancel_grace": cancel_grace, "live_preview": live_preview}
        )
        config.backend.max_restarts = 1000  # the cancel and recovery trials restart on purpose
        config.backend.crash_loop_limit = 1000
        self.services = Services(service_config(home, config))
        self.events: list[JobLifecycleLogEvent] = []
        self.finished: set[str] = set()
        self._cond = threading.Condition()
        self.services.jobs.subscribe(self._on)
        self.services.start()
        self.url = self.services.backend.url or ""

    def _on(self, event: JobLifecycleLogEvent) -> None:
        # Runs on the job thread inside the measured time: only wake the waiter on a job's end.
        with self._cond:
            self.events.append(event)
            if event.kind in FINAL and event.job_id is not None:
                self.finished.add(event.job_id)
                self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 120) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError("benchmark condition not reached")

    def ended(self, ids: list[str]) -> Callable[[], bool]:
        wanted = set(ids)
        return lambda: wanted <= self.finished

    def event_time(self, kind: EventKind, job_id: str | None = None) -> float:
        return next(
            e.ts.timestamp()
            for e in self.events
            if e.kind == kind and (job_id is None or e.job_id == job_id)
        )

    def run_jobs(self, specs: list[JobSpec]) -> float:
        started = time.perf_counter()
        ids = self.services.jobs.submit_many(specs)
        self.wait(self.ended(ids))
        return time.perf_counter() - started

    def faults(self, spec: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/sim/faults", json=spec, timeout=5).raise_for_status()

    def close(self) -> None:
        self.services.close()


def chain_spec(size: int, steps: int, seed: int) -> JobSpec:
    return JobSpec(
        prompt="a lighthouse at dusk, oil painting",
        negative_prompt="blurry",
        seed=seed,
        steps=steps,
        width=size,
        height=size,
        img2img={"enabled": True, "denoising_strength": 0.3},
        upscale={"enabled": True, "upscaler": "R-ESRGAN 4x+", "factor": 2, "tile_size": 192},
    )


def bare_jobs(url: str, specs: list[JobSpec]) -> float:
    """The floor: the same three calls per job with httpx, decoding each image."""
    settings = PipelineSettings()
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as http:
        http.post("/sdapi/v1/options", json={"ESRGAN_tile": 192}).raise_for_status()
        for spec in specs:
            first = http.post("/sdapi/v1/txt2img", json=payloads.txt2img(spec, settings, spec.seed))
            image = base64.b64decode(first.json()["images"][0])
            size = (spec.width, spec.height)
            second = http.post(
                "/sdapi/v1/img2img",
                json=payloads.img2img(spec, settings, spec.seed, image, size),
            )
            image = base64.b64decode(second.json()["images"][0])
            target = (spec.width * 2, spec.height * 2)
            third = http.post(
                "/sdapi/v1/extra-single-image",
                json=payloads.upscale_extra(image, spec.upscale.upscaler, target),
            )
            base64.b64decode(third.json()["image"])
    return time.perf_counter() - started


def overhead(
    home: Path, size: int, steps: int, jobs: int, rounds: int, *flags: str
) -> dict[str, Any]:
    product = Product(home, *flags)
    try:
        bare_jobs(product.url, [chain_spec(size, steps, 0)])  # warm both paths up
        product.run_jobs([chain_spec(size, steps, 0)])
        product_s = bare_s = 0.0
        for r in range(rounds):  # interleaved, so machine noise hits both alike
            specs = [chain_spec(size, steps, 1000 * r + i) for i in range(jobs)]
            product_s += product.run_jobs(specs)
            bare_s += bare_jobs(product.url, specs)
    finally:
        product.close()
    total = jobs * rounds
    return {
        "size": f"{size}x{size}",
        "steps": steps,
        "jobs": total,
        "product_s": round(product_s, 3),
        "bare_s": round(bare_s, 3),
        "throughput_ratio": round(bare_s / product_s, 3),
        "overhead_ms_per_job": round((product_s - bare_s) / total * 1000, 2),
        "overhead_share": round((product_s - bare_s) / product_s, 4),
    }


def cancel_latency(home: Path, mode: str, trials: int, grace: float) -> dict[str, Any]:
    product = Product(home, cancel_grace=grace)
    latencies = []
    try:
        for trial in range(trials):
            product.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": mode}})
            job_id = product.services.jobs.submit_pipeline_run(
                JobSpec(prompt=f"cancel probe {trial}", steps=8, width=64, height=64)
            )
            deadline = time.monotonic() + 30
            while (
                httpx.get(f"{product.url}/sdapi/v1/progress").json()["state"]["sampling_step"] < 4
            ):  # the hang freezes at step 4 of 8
                if time.monotonic() > deadline:
                    raise TimeoutError("the hang never started")
                time.sleep(0.01)
            started = time.perf_counter()
            product.services.jobs.cancel_job(job_id)
            product.wait(product.ended([job_id]))
            latencies.append(time.perf_counter() - started)
            if mode == "ignore_interrupt":  # only a restart frees that backend (not measured)
                product.services.backend.restart()
            product.faults({})
    finally:
        product.close()
    latencies.sort()
    return {
        "mode": mode,
        "trials": trials,
        "cancel_grace_s": grace,
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 3),
        "max_s": round(latencies[-1], 3),
    }


def recovery_cost(home: Path, trials: int) -> dict[str, Any]:
    product = Product(home)
    costs, restarts = [], []
    try:
        for trial in range(trials):
            product.events.clear()
            product.faults({"crash": {"stage": "txt2img", "nth": 1}})
            job_id = product.services.jobs.submit_pipeline_run(
                JobSpec(prompt=f"crash probe {trial}", steps=4, width=64, height=64, seed=trial)
            )
            product.wait(product.ended([job_id]))
            crashed = min(
                product.event_time(EventKind.BACKEND_CRASHED),
                product.event_time(EventKind.BACKEND_RESTARTING),
            )
            restart = product.event_time(EventKind.BACKEND_READY) - product.event_time(
                EventKind.BACKEND_RESTARTING
            )
            done = product.event_time(EventKind.JOB_COMPLETED, job_id)
            costs.append(done - crashed - restart)
            restarts.append(restart)
    finally:
        product.close()
    return {
        "trials": trials,
        "backend_restart_s_median": round(statistics.median(restarts), 3),
        "cost_beyond_restart_s_median": round(statistics.median(costs), 3),
        "cost_beyond_restart_s_max": round(max(costs), 3),
    }


def preview_cost(home: Path, jobs: int, rounds: int) -> dict[str, Any]:
    """The same realistic jobs with the live preview on and off, interleaved: what asking the
    backend for its preview image once a second costs a stage."""
    flags = ("--step-ms", "50", "--upscale-ms-per-mp", "200")
    on = Product(home / "on", *flags, live_preview=True)
    off = Product(home / "off", *flags, live_preview=False)
    try:
        on_s = off_s = 0.0
        for r in range(rounds):
            specs = [chain_spec(512, 20, 1000 * r + i) for i in range(jobs)]
            on_s += on.run_jobs(specs)
            off_s += off.run_jobs(specs)
        previews = sum(
            1 for e in on.events if e.kind == EventKind.PROGRESS and getattr(e.data, "preview", 0)
        )
    finally:
        on.close()
        off.close()
    return {
        "jobs": jobs * rounds,
        "preview_on_s": round(on_s, 3),
        "preview_off_s": round(off_s, 3),
        "previews_seen": previews,
        "cost_share": round((on_s - off_s) / off_s, 4),
    }


def run(quick: bool, only: set[str], workdir: Path | None) -> dict[str, Any]:
    results: dict[str, Any] = {"benchmark": "product", "quick": quick}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        home = Path(tmp)
        if "overhead" in only:
            jobs, rounds = (2, 1) if quick else (20, 5)
            results["overhead_64"] = overhead(home / "o64", 64, 20, jobs, 2 * rounds)
            results["overhead_512"] = overhead(home / "o512", 512, 20, jobs // 2 or 1, rounds)
        if "realistic" in only:
            jobs, rounds = (1, 1) if quick else (3, 3)
            results["realistic"] = overhead(
                home / "real",
                512,
                20,
                jobs,
                rounds,
                "--step-ms",
                "50",
                "--upscale-ms-per-mp",
                "200",
            )
        if "preview" in only:
            jobs, rounds = (1, 1) if quick else (3, 3)
            results["live_preview"] = preview_cost(home / "prev", jobs, rounds)
        if "cancel" in only:
            trials = 1 if quick else 20
            results["cancel_honour"] = cancel_latency(home / "ch", "honour_interrupt", trials, 1.0)
            results["cancel_ignore"] = cancel_latency(home / "ci", "ignore_interrupt", trials, 1.0)
        if "recovery" in only:
            results["recovery"] = recovery_cost(home / "rec", 1 if quick else 10)
    results["targets"] = {
        "overhead_512.throughput_ratio": ">= 0.90",
        "overhead_64.overhead_ms_per_job": "< 10",
        "realistic.overhead_share": "< 0.01",
        "live_preview.cost_share": "< 0.01",
        "cancel_honour.p99_s": "< 0.5",
        "cancel_ignore.p99_s": "< cancel_grace_s + 0.5",
        "recovery.cost_beyond_restart_s_median": "< 1.0",
    }
    return results


def main() -> None:
    def add_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--only", default="overhead,realistic,preview,cancel,recovery")
        parser.add_argument("--workdir", type=Path, help="where jobs write (default: a temp dir)")

    benchmark_main(
        lambda args: run(args.quick, set(args.only.split(",")), args.workdir), __doc__, add_args
    )


if __name__ == "__main__":
    main()
