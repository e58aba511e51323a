"""Submits per second over the HTTP API of a real `stablenew serve`. JSON out.

    python benchmarks/api_submit.py [--quick] [--out FILE]

The queue is paused, so what is measured is the API's submit path alone: HTTP (keep-alive),
validation of the JobSpec, the name check against the backend's (cached) lists, the store's
transaction and the queued event. Three ways: one job per request from one client, one job
per request from four clients at once, and 100 jobs per request.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from api_common import serving  # the sibling module: benchmarks run as scripts
from common import benchmark_main

SPEC = {"prompt": "a submit benchmark", "steps": 2, "width": 64, "height": 64, "seed": 1}


def run(quick: bool) -> dict[str, object]:
    singles = 200 if quick else 2000
    batches = 5 if quick else 50
    with (
        tempfile.TemporaryDirectory() as tmp,
        serving(Path(tmp) / "home") as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        client.post("/api/v1/queue/pause", json={"reason": "benchmark"}).raise_for_status()
        client.post("/api/v1/jobs", json={"spec": SPEC}).raise_for_status()  # warm up

        started = time.perf_counter()
        for _ in range(singles):
            client.post("/api/v1/jobs", json={"spec": SPEC}).raise_for_status()
        one_client = singles / (time.perf_counter() - started)

        latencies: list[float] = []
        lock = threading.Lock()

        def post_many(count: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                for _ in range(count):
                    t0 = time.perf_counter()
                    own.post("/api/v1/jobs", json={"spec": SPEC}).raise_for_status()
                    with lock:
                        latencies.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=post_many, args=(singles // 4,)) for _ in range(4)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        four_clients = singles / (time.perf_counter() - started)

        started = time.perf_counter()
        for _ in range(batches):
            answer = client.post("/api/v1/jobs", json={"specs": [SPEC] * 100})
            answer.raise_for_status()
        batched = batches * 100 / (time.perf_counter() - started)
        total = client.get("/api/v1/jobs", params={"limit": 1}).json()["total"]
    return {
        "quick": quick,
        "one_client": {"requests": singles, "submits_per_s": round(one_client, 1)},
        "four_clients": {
            "requests": singles,
            "submits_per_s": round(four_clients, 1),
            "latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "latency_p99_ms": round(sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        },
        "batched_100": {"jobs": batches * 100, "jobs_per_s": round(batched, 1)},
        "jobs_in_store": total,
        "targets": {
            "one_client.submits_per_s": ">= 100",
            "batched_100.jobs_per_s": ">= 1000",
        },
    }


if __name__ == "__main__":
    benchmark_main(lambda args: run(args.quick), __doc__)
