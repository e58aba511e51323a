"""A client of the home's owner sees the running job's step progress and live preview, as the
owner does: a real `stablenew worker` runs the job on the reference backend, a client Services in
this process follows it through the home's store; nothing is left behind when the job ends."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from stablenew.app.config import load_config, service_config
from stablenew.app.live_progress import PREVIEW_SIDE, ProgressSharer
from stablenew.app.previews import PreviewBoard
from stablenew.app.services import Role, Services
from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import (
    EventBus,
    EventKind,
    JobLifecycleLogEvent,
    JobStartedData,
    ProgressData,
)
from stablenew.queue.store import JobStore
from stablenew.webui.process import reference_backend_command
from tests.helpers import Waiter, start_worker

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """For a condition in another process: ask again until it holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_client_shows_the_owners_step_progress_and_live_preview(tmp_path: Path) -> None:
    command = reference_backend_command(0, "--step-ms", "50")
    (tmp_path / "config.toml").write_text(
        f"[backend]\ncommand = {json.dumps(command)}\ndiscover = false\n", encoding="utf-8"
    )
    worker = start_worker(tmp_path)
    client = Services(service_config(tmp_path, load_config(tmp_path)))
    late: Services | None = None
    # What the client's board held when a progress event named a preview: (number, size).
    previews: list[tuple[int, tuple[int, int]] | None] = []

    def hold(event: JobLifecycleLogEvent) -> None:
        if isinstance(event.data, ProgressData) and event.data.preview and event.job_id:
            preview = client.previews.latest(event.job_id)
            if preview is None:
                previews.append(None)
                return
            with Image.open(io.BytesIO(preview.image)) as image:
                previews.append((preview.number, image.size))

    try:
        assert client.open() == Role.CLIENT
        waiter = Waiter(client.jobs)
        client.jobs.subscribe(hold)
        spec = JobSpec(prompt="a slow tide", steps=80, width=512, height=512, seed=7)
        job_id = client.jobs.submit_pipeline_run(spec, source="test")

        waiter.wait(
            EventKind.PROGRESS,
            job_id,
            timeout=60,
            where=lambda e: e.data.step >= 2 and e.data.preview >= 1,
        )
        # A client that attaches mid-stage shows the current step at once.
        late = Services(service_config(tmp_path, load_config(tmp_path)))
        late_heard = Waiter(late.jobs)
        late.attach()
        active = late.state.active
        assert active is not None and active.job_id == job_id, active
        assert active.stage == "txt2img" and active.step >= 2, active

        waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=120)
        progress = [
            e.data for e in waiter.events if e.job_id == job_id and isinstance(e.data, ProgressData)
        ]
        steps = [p.step for p in progress]
        assert steps == sorted(steps) and len(set(steps)) >= 3, steps  # rising, one stage
        assert all(p.steps == 80 for p in progress)
        assert all(e.pid == worker.proc.pid for e in waiter.events if e.kind == EventKind.PROGRESS)
        assert previews and None not in previews, previews  # each named preview was there
        numbers = [held[0] for held in previews if held]
        assert numbers == sorted(numbers) and numbers[0] >= 1, numbers
        assert all(max(held[1]) <= PREVIEW_SIDE for held in previews if held)  # kept small

        store = JobStore(tmp_path / "jobs.db")
        try:
            wait_for(lambda: store.shared_progress() == [], 30, "the job's row to go")
        finally:
            store.close()
        assert client.previews.latest(job_id) is None
        late_heard.wait(EventKind.JOB_COMPLETED, job_id, timeout=30)
        assert late.previews.latest(job_id) is None
    finally:
        if late is not None:
            late.close()
        client.close()
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(60)


def test_a_locked_store_delays_the_shared_progress_and_is_said_once(tmp_path: Path) -> None:
    """Another process holds the store's write lock past the busy timeout: the sharer warns
    once, the runner's side goes on, and the row ends on the latest step once the lock goes."""
    store = JobStore(tmp_path / "jobs.db")
    bus, board = EventBus(), PreviewBoard()
    waiter = Waiter(bus)
    sharer = ProgressSharer(store, bus, board)
    bus.subscribe(sharer.on_event)
    sharer.start()
    other = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
    try:
        started = JobStartedData(1, ("txt2img",))
        bus.emit(EventKind.JOB_STARTED, "", source="runner", job_id="job", data=started)
        other.execute("BEGIN EXCLUSIVE")
        for step in range(1, 4):
            bus.emit(EventKind.PROGRESS, "", job_id="job", stage="txt2img", image_index=1,
                     total=1, data=ProgressData(step, 10))  # fmt: skip
        waiter.wait(EventKind.WARNING, timeout=60)
        bus.emit(EventKind.PROGRESS, "", job_id="job", stage="txt2img", image_index=1, total=1,
                 data=ProgressData(4, 10))  # fmt: skip
        other.execute("ROLLBACK")
        wait_for(
            lambda: [r.progress.step for r in store.shared_progress()] == [4], 60, "step 4 shared"
        )
        warnings = [e for e in waiter.events if e.kind == EventKind.WARNING]
        assert len(warnings) == 1 and "not shared with clients" in warnings[0].message
        bus.emit(EventKind.JOB_COMPLETED, "", source="runner", job_id="job")
        sharer.stop()
        assert store.shared_progress() == []
    finally:
        other.close()
        sharer.stop()
        store.close()
