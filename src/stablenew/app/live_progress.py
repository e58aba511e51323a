"""Step progress and live previews of running jobs, shared by the home's owner with its clients.

PROGRESS events stay out of the store's event log (many a second per job); a client that follows
the log would show a running job's stages but no steps and no live preview. So the owner keeps
one row per running job in the store (`live_progress`), replaced at most every SHARE_INTERVAL
with the latest step and, when there is a newer one, the latest live preview shrunk to
PREVIEW_SIDE; the row goes when the job ends. A client reads the rows at each turn of its
follower and publishes the same PROGRESS events on its own bus, with the preview in its own
PreviewBoard, so whatever shows progress for an owner shows it for a client.

The runner's thread only records the latest event in memory; a thread of its own writes. A write
that fails (a busy or full store) is said once and tried again at the next turn.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from PIL import Image

from stablenew.app.previews import Preview, PreviewBoard
from stablenew.errors import StableNewError
from stablenew.observe.events import (
    FINISHED_KINDS,
    PID,
    EventBus,
    EventKind,
    JobLifecycleLogEvent,
    ProgressData,
)
from stablenew.queue.store import JobStore, LiveProgress

SHARE_INTERVAL = 0.25  # seconds: at most four writes a second, whatever the step rate
PREVIEW_SIDE = 320  # pixels: the desktop app's preview square (150) at 2x, with room
PREVIEW_BYTES = 64 * 1024  # a preview this small and no larger than PREVIEW_SIDE is kept as is
ENDS = FINISHED_KINDS | {EventKind.JOB_RECOVERED}  # finished, or given back to the queue


def shrink(image: bytes) -> bytes | None:
    """A preview small enough to write a few times a second; None if it is no image."""
    try:
        with Image.open(io.BytesIO(image)) as picture:
            if max(picture.size) <= PREVIEW_SIDE and len(image) <= PREVIEW_BYTES:
                return image
            picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
            out = io.BytesIO()
            picture.convert("RGB").save(out, "JPEG", quality=85)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


@dataclass
class _Pending:
    latest: dict[str, JobLifecycleLogEvent]  # job -> its latest PROGRESS event not written yet
    ended: set[str]


class ProgressSharer:
    """The owner's side: a bus subscriber that notes, and a thread that writes."""

    def __init__(self, store: JobStore, bus: EventBus, previews: PreviewBoard) -> None:
        self._store = store
        self._bus = bus
        self._previews = previews
        self._lock = threading.Lock()
        self._running: set[str] = set()  # jobs this process runs: a late event starts no row
        self._pending = _Pending({}, set())
        self._shared: dict[str, int] = {}  # job -> the preview number its row holds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failed = ""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._store.clear_shared_progress()  # a previous owner's jobs are not running
        except StableNewError as exc:
            self._warn(exc)
        self._thread = threading.Thread(target=self._loop, name="progress-sharer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """After the runners stopped: the rows of the jobs they gave back go too."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def on_event(self, event: JobLifecycleLogEvent) -> None:
        """Subscribed to the bus, on the runner's thread: only notes what is new."""
        job_id = event.job_id
        if job_id is None or event.pid != PID:
            return
        with self._lock:
            if event.kind == EventKind.JOB_STARTED:
                self._running.add(job_id)
            elif event.kind in ENDS:
                self._running.discard(job_id)
                self._pending.latest.pop(job_id, None)
                self._pending.ended.add(job_id)
            elif isinstance(event.data, ProgressData) and job_id in self._running:
                self._pending.latest[job_id] = event
            else:
                return
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self._write()
            self._stop.wait(SHARE_INTERVAL)
        self._write()

    def _write(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, _Pending({}, set())
        if not pending.latest and not pending.ended:
            return
        rows, images = [], {}
        for job_id, event in pending.latest.items():
            number = self._shared.get(job_id, 0)
            preview = self._previews.latest(job_id)
            if preview is not None and preview.number != number:
                image = shrink(preview.image)
                if image is not None:
                    images[job_id], number = image, preview.number
            assert isinstance(event.data, ProgressData)  # on_event keeps nothing else
            rows.append(
                LiveProgress(
                    job_id=job_id,
                    pid=PID,
                    stage=event.stage,
                    image_index=event.image_index,
                    total=event.total,
                    message=event.message,
                    progress=ProgressData(
                        event.data.step,
                        event.data.steps,
                        event.data.eta,
                        event.data.fraction,
                        number,
                    ),
                )
            )
        try:
            self._store.share_progress(rows, images, pending.ended)
        except StableNewError as exc:  # a busy or full store: the next turn writes the latest
            self._warn(exc)
            with self._lock:
                for job_id, event in pending.latest.items():
                    if job_id in self._running:
                        self._pending.latest.setdefault(job_id, event)
                self._pending.ended |= pending.ended
            self._wake.set()
            return
        self._failed = ""
        for job_id in pending.ended:
            self._shared.pop(job_id, None)
        for row in rows:
            self._shared[row.job_id] = row.progress.preview

    def _warn(self, exc: StableNewError) -> None:
        if str(exc) != self._failed:  # once, not four times a second
            self._failed = str(exc)
            self._bus.emit(
                EventKind.WARNING,
                f"running jobs' progress is not shared with clients: {exc}",
                source="app",
            )


class ProgressFollower:
    """A client's side: at each turn of its follower, what changed in the owner's rows becomes
    PROGRESS events on this process's bus."""

    def __init__(self, store: JobStore, bus: EventBus, previews: PreviewBoard) -> None:
        self._store = store
        self._bus = bus
        self._previews = previews
        self._seen: dict[str, int] = {}  # job -> the version of its row published
        self._stages: dict[str, tuple[str, int | None]] = {}  # job -> its stage, per the log

    def on_event(self, event: JobLifecycleLogEvent) -> None:
        """Subscribed to the bus: where each job is, as the owner's log says."""
        if event.job_id is None:
            return
        if event.kind == EventKind.STAGE_STARTED and event.stage and event.stage != "setup":
            self._stages[event.job_id] = (event.stage, event.image_index)
        elif event.kind in ENDS:
            self._stages.pop(event.job_id, None)

    def turn(self) -> None:
        """Raises StoreError (a busy store): the follower says so and comes back."""
        rows = self._store.shared_progress()
        present = {row.job_id for row in rows}
        self._seen = {job: version for job, version in self._seen.items() if job in present}
        for row in rows:
            if self._seen.get(row.job_id) == row.version:
                continue
            if self._stages.get(row.job_id) != (row.stage, row.image_index):
                # The log and the row disagree on the stage: the log is behind (the row
                # waits for it) or the row is (the owner's next write replaces it).
                continue
            self._seen[row.job_id] = row.version
            self._publish(row)

    def _publish(self, row: LiveProgress) -> None:
        number = row.progress.preview
        held = self._previews.latest(row.job_id)
        if number and (held is None or held.number < number):
            image = self._store.shared_preview(row.job_id)
            if image is not None:
                self._previews.keep(row.job_id, Preview(number, image))
        self._bus.emit(
            EventKind.PROGRESS,
            row.message,
            source="pipeline",
            job_id=row.job_id,
            stage=row.stage,
            image_index=row.image_index,
            total=row.total,
            data=row.progress,
            pid=row.pid,
        )
