"""What sharing running jobs' progress with clients costs the owner (app/live_progress.py).

    python benchmarks/live_progress.py [--quick] [--out FILE]

- runner_us: what the runner's thread pays per progress event: publishing it on a bus alone and
  on a bus with the sharer subscribed (it only notes the event). Target: <= 5 us added.
- write_ms / read_ms: one write of a job's row (with and without a new preview) and a client's
  read of every row, on a real store file.
- shrink_ms: a 512x512 noise PNG (the worst case for size) shrunk to the shared preview.
- rate: a flood of progress events (one a millisecond) for `seconds`: the writes the sharer
  made per second (target: <= 1 / SHARE_INTERVAL) and whether the row ended on the last event.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import benchmark_main
from PIL import Image

from stablenew.app.live_progress import SHARE_INTERVAL, ProgressSharer, shrink
from stablenew.app.previews import PreviewBoard
from stablenew.observe.events import (
    EventBus,
    EventKind,
    JobLifecycleLogEvent,
    JobStartedData,
    ProgressData,
)
from stablenew.queue.store import JobStore, LiveProgress


def progress(step: int) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.PROGRESS,
        f"txt2img 1/1: step {step}",
        job_id="job",
        stage="txt2img",
        image_index=1,
        total=1,
        data=ProgressData(step, 10**9),
    )


def median_ms(fn: Any, times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - started)
    return round(statistics.median(spent) * 1e3, 4)


def run(args: argparse.Namespace) -> dict[str, Any]:
    events = 20_000 if args.quick else 200_000
    seconds = 1.0 if args.quick else 5.0
    with tempfile.TemporaryDirectory() as tmp:
        store = JobStore(Path(tmp) / "jobs.db")
        bus, board = EventBus(), PreviewBoard()
        sharer = ProgressSharer(store, bus, board)
        bus.subscribe(sharer.on_event)
        started = JobStartedData(1, ("txt2img",))
        bus.publish(JobLifecycleLogEvent(EventKind.JOB_STARTED, "", job_id="job", data=started))
        flood = [progress(i) for i in range(events)]
        per_event = {}
        for name, target in (("bare", EventBus()), ("with_sharer", bus)):
            begun = time.perf_counter()
            for event in flood:
                target.publish(event)
            per_event[name] = round((time.perf_counter() - begun) / events * 1e6, 3)
        per_event["added"] = round(per_event["with_sharer"] - per_event["bare"], 3)

        png = io.BytesIO()
        Image.effect_noise((512, 512), 64).convert("RGB").save(png, "PNG")
        small = shrink(png.getvalue()) or b""
        row = LiveProgress("job", 1, "txt2img", 1, 1, "step", ProgressData(1, 30, 1.0, 0.1, 1))
        write = {
            "row": median_ms(lambda: store.share_progress([row]), 200),
            "row_and_preview": median_ms(lambda: store.share_progress([row], {"job": small}), 200),
        }
        read = median_ms(store.shared_progress, 200)
        shrunk = median_ms(lambda: shrink(png.getvalue()), 10 if args.quick else 50)

        sharer.start()  # clears the rows: the first write makes version 1
        begun, step = time.perf_counter(), 0
        while time.perf_counter() - begun < seconds:
            bus.publish(progress(step))
            step += 1
            time.sleep(0.001)
        elapsed = time.perf_counter() - begun
        sharer.stop()  # writes what is pending: the latest step
        last = store.shared_progress()[0]
        store.close()
    return {
        "quick": args.quick,
        "share_interval_s": SHARE_INTERVAL,
        "runner_us": per_event,
        "write_ms": write,
        "read_ms": read,
        "shrink_ms": shrunk,
        "preview_bytes": {"png": len(png.getvalue()), "shared": len(small)},
        "rate": {
            "events": step,
            "seconds": round(elapsed, 2),
            "writes_per_s": round(last.version / elapsed, 2),
            "ended_on_last": last.progress.step == step - 1,
        },
        "targets": {
            "runner_us.added": "<= 5",
            "rate.writes_per_s": f"<= {1 / SHARE_INTERVAL:g} (+1 for the final write)",
        },
    }


if __name__ == "__main__":
    benchmark_main(run, __doc__)
