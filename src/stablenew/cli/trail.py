"""The lifecycle trail as plain lines: what `worker` logs and what `run` shows in a pipe.

One line per event that a person (or a service log) needs: a job starting (id, stage chain,
images) and ending (status, images, run folder or the reason), a stage of an image, the queue
pausing or resuming, the backend changing state, a recovery step, a warning.
"""

from __future__ import annotations

from collections.abc import Callable

from stablenew.app.events import (
    FINISHED_KINDS,
    BackendData,
    EventKind,
    JobFinishedData,
    JobLifecycleLogEvent,
    JobStartedData,
    RecoveryData,
)
from stablenew.app.views import iso_utc
from stablenew.cli.output import Part
from stablenew.jobs.status import JobStatus

STATUS_STYLE = {
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.QUEUED: "",
}

# The kinds a service log wants (stage lines are for `run`'s progress only).
SERVICE_KINDS = {
    EventKind.JOB_STARTED,
    *FINISHED_KINDS,
    EventKind.JOB_RECOVERED,
    EventKind.QUEUE_PAUSED,
    EventKind.QUEUE_RESUMED,
    EventKind.BACKEND_STARTING,
    EventKind.BACKEND_READY,
    EventKind.BACKEND_CRASHED,
    EventKind.BACKEND_RESTARTING,
    EventKind.BACKEND_FAILED,
    EventKind.BACKEND_STOPPING,
    EventKind.BACKEND_STOPPED,
    EventKind.RECOVERY,
    EventKind.WARNING,
}

ImagesOf = Callable[[str], int | None]  # a job's image count, when it can be read


def status_part(status: JobStatus) -> Part:
    return (status.value, STATUS_STYLE.get(status, ""))


def describe(
    event: JobLifecycleLogEvent, images_of: ImagesOf, tag: str = "", pool: bool = False
) -> list[Part] | None:
    """The event as one line, or None when it is not one worth a line. `tag` follows the job
    id (e.g. " (ahead of yours)"); `pool`: there are several backends, so a backend's line
    names it."""
    job = f"job {event.job_id[:8]}{tag}" if event.job_id else ""
    data = event.data
    if event.kind == EventKind.JOB_STARTED and event.job_id:
        chain = ",".join(data.stages) if isinstance(data, JobStartedData) else ""
        images = images_of(event.job_id)
        attempt = data.attempt if isinstance(data, JobStartedData) else 1
        parts: list[Part] = [job, " ", ("started", "cyan"), ": ", chain or "stages unknown"]
        if images is not None:
            parts.append(f", {images} image(s)")
        if attempt > 1:
            parts.append(f", attempt {attempt}")
        return parts
    if event.kind in FINISHED_KINDS and event.status is not None:
        return [job, " ", status_part(event.status), ": ", _outcome(event)]
    if event.kind == EventKind.STAGE_STARTED and event.stage and event.stage != "setup":
        where = f" image {event.image_index}/{event.total}" if event.image_index else ""
        return [job, f" {event.stage}{where}"]
    if event.kind == EventKind.JOB_RECOVERED:
        return [job, " re-queued: ", event.message]
    if event.kind == EventKind.QUEUE_PAUSED:
        reason = event.fields.get("reason")
        return [("queue paused", "yellow"), ": ", str(reason) if reason else event.message]
    if event.kind == EventKind.QUEUE_RESUMED:
        return [("queue resumed", "green")]
    if isinstance(data, BackendData):
        style = "green" if data.state.value == "READY" else "yellow"
        detail = f": {data.detail}" if data.detail else ""
        which = f"backend {data.backend} " if pool else "backend "
        return [(which + data.state.value, style), detail]
    about = f" {job}" if job else ""
    if isinstance(data, RecoveryData):
        return [(f"recovery {data.step}", "yellow"), about, ": ", event.message]
    if event.kind == EventKind.WARNING:
        return [("warning", "yellow"), about, ": ", event.message]
    return None


def stamped(event: JobLifecycleLogEvent, parts: list[Part]) -> list[Part]:
    """A service-log line: the event's time (UTC) first."""
    return [(f"{iso_utc(event.ts)} ", "dim"), *parts]


def _outcome(event: JobLifecycleLogEvent) -> str:
    data = event.data
    if not isinstance(data, JobFinishedData):
        return event.message  # cancelled while queued: nothing ran
    if data.run_dir is None:
        if data.status == JobStatus.CANCELLED:
            return "cancelled before it started"
        return data.reason or event.message
    if data.status == JobStatus.FAILED:
        return f"{data.reason or 'failed'}; run folder {data.run_dir}"
    return f"{data.images} image(s) in {data.run_dir}"
