"""The queue as AppState shows it: the running job and the head of the queue, kept fresh off the
job thread.

Every job start and end changes the queue, but reading it back (up to 200 rows) costs more than
the rest of a small job's bookkeeping. So a change only marks the snapshot stale, and one
background thread re-reads it, at most once per `interval`: a burst of events costs one read,
and the job thread never waits for it.
"""

from __future__ import annotations

import threading

from stablenew.app.state import AppState
from stablenew.observe.events import EventBus, EventKind
from stablenew.queue.store import JobStore

QUEUE_SNAPSHOT = 200  # jobs shown in AppState.queue; the rest are counted


class QueueSnapshot:
    def __init__(
        self,
        store: JobStore,
        state: AppState,
        bus: EventBus,
        *,
        interval: float = 0.1,
        limit: int = QUEUE_SNAPSHOT,
    ) -> None:
        self.store = store
        self.state = state
        self.bus = bus
        self.interval = interval
        self.limit = limit
        self._stale = threading.Event()
        self._closing = threading.Event()
        self._refresh_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="queue-snapshot", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Read the queue now (bounded: a queue may hold 100,000 jobs). Refreshes take turns,
        so a read that began before a change can never overwrite one that began after it."""
        with self._refresh_lock:
            view = self.store.queue_view(self.limit)
            self.state.set_queue(view.jobs, view.paused, view.waiting)

    def request(self) -> None:
        """The queue changed: refresh soon, on the snapshot thread."""
        self._stale.set()

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        self._stale.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._stale.wait()
            if self._closing.is_set():
                return
            self._stale.clear()
            try:
                self.refresh()
            except Exception as exc:  # a busy store: the next change tries again
                self.bus.emit(EventKind.WARNING, f"queue view not refreshed: {exc}")
            if self._closing.wait(self.interval):
                return
