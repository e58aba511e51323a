"""The latest live preview of each running job, in memory only (never written to a run folder).

The pipeline hands over what the backend shows mid-sampling (in a client, the follower hands over
what the owner shares, app/live_progress.py); doors (the API, the GUI) ask for the latest one
when a progress event says a new one exists. One image per running job is kept, and a job's
image is dropped when it ends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from stablenew.observe.events import FINISHED_KINDS, EventKind, JobLifecycleLogEvent


@dataclass(frozen=True)
class Preview:
    number: int  # how many previews this job has had, this one included
    image: bytes  # PNG or JPEG, as the backend sent it


class PreviewBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Preview] = {}

    def put(self, job_id: str, image: bytes) -> int:
        with self._lock:
            number = self._latest[job_id].number + 1 if job_id in self._latest else 1
            self._latest[job_id] = Preview(number, image)
            return number

    def keep(self, job_id: str, preview: Preview) -> None:
        """A client's board: the owner's preview, under the owner's number."""
        with self._lock:
            self._latest[job_id] = preview

    def latest(self, job_id: str) -> Preview | None:
        with self._lock:
            return self._latest.get(job_id)

    def on_event(self, event: JobLifecycleLogEvent) -> None:
        """Subscribed to the bus: a job that ended has nothing to preview any more."""
        if event.job_id and (event.kind in FINISHED_KINDS or event.kind == EventKind.JOB_RECOVERED):
            with self._lock:
                self._latest.pop(event.job_id, None)
