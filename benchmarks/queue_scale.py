"""Queue scale: batched submit rate, claim latency with many rows, resident memory. JSON out.

    python benchmarks/queue_scale.py [--quick] [--out FILE]

Targets (issue 5): >= 5,000 submits/s batched; claim < 5 ms with 100,000 rows in the table.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import psutil
from common import benchmark_main  # the sibling module: benchmarks run as scripts

from stablenew.jobs.outcome import JobOutcome
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore


def run(quick: bool) -> dict[str, object]:
    submits = 2_000 if quick else 10_000
    rows = 20_000 if quick else 100_000
    claims = 100 if quick else 500
    spec = JobSpec(prompt="a lighthouse at dusk, oil painting", images=2)
    with tempfile.TemporaryDirectory() as tmp:
        store = JobStore(Path(tmp) / "jobs.db")
        started = time.perf_counter()
        store.submit_many([spec] * submits)
        submit_s = time.perf_counter() - started
        store.submit_many([spec] * (rows - submits))
        latencies = []
        for _ in range(claims):
            t0 = time.perf_counter()
            claimed = store.claim_next("bench")
            latencies.append((time.perf_counter() - t0) * 1000)
            assert claimed is not None
            store.finish(claimed.job.id, "bench", JobOutcome(status=JobStatus.COMPLETED))
        latencies.sort()
        store.close()
    return {
        "benchmark": "queue_scale",
        "quick": quick,
        "submits": submits,
        "submits_per_s": round(submits / submit_s),
        "rows": rows,
        "claims": claims,
        "claim_ms_p50": round(statistics.median(latencies), 3),
        "claim_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 3),
        "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
        "targets": {"submits_per_s": ">= 5000", "claim_ms_p99": "< 5"},
    }


def main() -> None:
    benchmark_main(lambda args: run(args.quick), __doc__)


if __name__ == "__main__":
    main()
