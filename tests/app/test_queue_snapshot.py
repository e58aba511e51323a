"""The queue view: refreshed off the job thread, coalesced, and never silently stale."""

from __future__ import annotations

import threading
from pathlib import Path

from stablenew.app.queue_snapshot import QueueSnapshot
from stablenew.app.state import AppState
from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import EventBus, EventKind
from stablenew.queue.store import JobStore
from tests.helpers import Waiter


def test_a_burst_of_changes_costs_a_few_reads_and_ends_fresh(tmp_path: Path) -> None:
    store, state, bus = JobStore(tmp_path / "jobs.db"), AppState(), EventBus()
    snapshot = QueueSnapshot(store, state, bus, interval=0.05, limit=10)
    reads = 0
    list_jobs = store.list_jobs

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return list_jobs(*args, **kwargs)

    store.list_jobs = counted  # type: ignore[method-assign]
    fresh = threading.Event()
    state.subscribe("queue", lambda _: fresh.set() if state.waiting == 50 else None)
    try:
        for i in range(50):  # one job event after another, as a fast batch makes them
            store.submit(JobSpec(prompt=f"job {i}"))
            snapshot.request()
        assert fresh.wait(10), "the queue view never caught up"
        assert len(state.queue) == 10 and state.waiting == 50  # bounded view, full count
        assert reads < 50  # coalesced, not one read per change
    finally:
        snapshot.close()
        store.close()


def test_a_failed_refresh_is_reported_not_swallowed(tmp_path: Path) -> None:
    store, state, bus = JobStore(tmp_path / "jobs.db"), AppState(), EventBus()
    waiter = Waiter(bus)
    snapshot = QueueSnapshot(store, state, bus)
    store.close()  # the database goes away under the view
    try:
        snapshot.request()
        warning = waiter.wait(EventKind.WARNING, timeout=10)
        assert warning.message.startswith("queue view not refreshed")
    finally:
        snapshot.close()
