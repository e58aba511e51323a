"""Webhooks: the home's events POSTed to configured URLs, at least once, signed, bounded.

Where deliveries come from: the store's event log, read from a cursor kept in the home
(`webhooks.seq`), not the bus. So an event another process recorded (a `queue cancel` from a
shell) is delivered too, and an event recorded just before a crash is delivered after the
restart: the cursor moves only after the deliveries are in the store's outbox (a crash in
between repeats some, which at-least-once allows; receivers dedupe on `X-StableNew-Delivery`).

Sending: one thread reads the event log and hands due rows to lanes, one URL per lane (a few
lanes at once), and each lane POSTs its URL's rows in order with a short timeout and records
the result. So a receiver that hangs holds up only its own deliveries, never another URL's nor
the reading of the log. A failure is retried with exponential backoff, then given up; until
then that URL rests (its other rows wait too) rather than meet a timeout per row. The outbox
keeps at most N pending rows per URL, so a dead endpoint never grows anything without bound,
and nothing here runs on a job's thread: a slow receiver never slows a job.

Signature: `X-StableNew-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the
URL's secret and `X-StableNew-Timestamp` (Unix seconds at sending), so a receiver can refuse a
replayed delivery. The secret is never stored in the outbox; it is looked up when sending.

agent-scheduler's `callback_url` rides the same outbox: when a task submitted through that door
finishes, a multipart form (`task_id`, `status`, one `files` part per image) is POSTed to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import mimetypes
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from stablenew import private_files
from stablenew.app.controllers import JobExecutionController
from stablenew.app.views import iso_utc
from stablenew.errors import StableNewError
from stablenew.jobs.job import Job
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import FINISHED_KINDS, EventKind, JobLifecycleLogEvent
from stablenew.queue.store import Delivery

log = logging.getLogger("stablenew.webhooks")

CALLBACK_EVENT = "agent_scheduler.callback"
# agent-scheduler's words for how a task ended
TASK_STATUS = {
    JobStatus.COMPLETED: "done",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "interrupted",
}


@dataclass(frozen=True)
class Hook:
    url: str
    events: frozenset[str]  # EventKind values; "*" for every recorded kind
    secret: str

    def wants(self, kind: str) -> bool:
        return "*" in self.events or kind in self.events


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0  # seconds before the second attempt; doubles each time
    longest: float = 300.0
    attempts: int = 10  # then the delivery is given up (failed in the outbox)

    def delay(self, attempts_done: int) -> float:
        return float(min(self.first * 2 ** max(0, attempts_done - 1), self.longest))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of "<timestamp>.<body>": what a receiver recomputes to verify."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookDispatcher:
    POLL = 0.5  # seconds between reads of the event log when nothing in this process stirs
    BATCH = 500
    LANES = 8  # URLs sent to at once

    def __init__(
        self,
        jobs: JobExecutionController,
        hooks: Sequence[Hook],
        cursor_file: Path,
        *,
        backoff: Backoff = Backoff(),
        timeout: float = 5.0,
        keep_per_url: int = 10_000,
        on_attempt: Callable[[bool], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.hooks = {hook.url: hook for hook in hooks}
        self.cursor_file = cursor_file
        self.backoff = backoff
        self.keep_per_url = keep_per_url
        self.on_attempt = on_attempt
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self._lanes = ThreadPoolExecutor(self.LANES, thread_name_prefix="webhook-lane")
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # URLs a lane is sending to
        self._resting: dict[str, float] = {}  # URL -> time.time() its next try is due
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._cursor = 0
        self._log_id = ""

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._cursor = self._load_cursor()
        self._unsubscribe = self.jobs.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0, drain: float = 0.0) -> None:
        """Stop; with `drain`, first try for that long what the last jobs made due (a `run`
        exits right after its job). Whatever is left waits in the outbox for the next owner."""
        self._closing.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout)
        self._lanes.shutdown(wait=True, cancel_futures=True)  # a lane ends at its next row
        if drain > 0:
            self._drain(time.monotonic() + drain)
        self._http.close()

    def _drain(self, deadline: float) -> None:
        try:
            self.produce()
            for delivery in self.jobs.outbox_due(time.time(), limit=100, skip=self._skipped()):
                if time.monotonic() >= deadline:
                    return
                self._send(delivery)
        except StableNewError:  # the store is going away: the outbox keeps what is left
            return

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        if event.kind != EventKind.PROGRESS:  # recorded in the store by now: go and read it
            self._wake.set()

    def _run(self) -> None:
        last_error = ""
        while not self._closing.is_set():
            try:
                self.produce()
                self.send_due()
                last_error = ""
            except StableNewError as exc:  # a busy or closing store: the next turn tries again
                if str(exc) != last_error:  # said once, not every half second
                    log.warning("webhook deliveries wait: %s", exc)
                last_error = str(exc)
            self._wake.wait(self._pause())
            self._wake.clear()

    def _pause(self) -> float:
        try:
            due = self.jobs.outbox_next_at(skip=self._skipped())
        except StableNewError:
            return self.POLL
        with self._lock:
            times = [*self._resting.values(), *([due] if due is not None else [])]
        if not times:
            return self.POLL
        return max(0.0, min(self.POLL, min(times) - time.time()))

    def _skipped(self) -> set[str]:
        """URLs whose rows must not be taken now: a lane has them, or they rest."""
        now = time.time()
        with self._lock:
            self._resting = {url: at for url, at in self._resting.items() if at > now}
            return self._busy | self._resting.keys()

    # -- the cursor ----------------------------------------------------------------------------

    def _load_cursor(self) -> int:
        """Where delivering goes on: "<log id> <seq>" in the home. A cursor of another log
        (jobs.db deleted or set aside since) starts this one from its first event, not from a
        seq this log may not reach for a long time."""
        self._log_id = self.jobs.log_id()
        try:
            log_id, _, seq = self.cursor_file.read_text().strip().rpartition(" ")
            cursor = int(seq or 0)
        except FileNotFoundError:  # first start: deliver from now on, not the whole history
            self._save_cursor(self.jobs.last_seq())
            return self._cursor
        except ValueError:
            return self.jobs.last_seq()
        if log_id and log_id != self._log_id:
            log.warning("the job database is new since the last webhook: delivering all of it")
            cursor = 0
        return cursor

    def _save_cursor(self, seq: int) -> None:
        private_files.write(self.cursor_file, f"{self._log_id} {seq}".encode())
        self._cursor = seq

    # -- producing: the event log -> the outbox ------------------------------------------------

    def produce(self) -> int:
        """Turn newly recorded events into outbox rows; returns how many rows."""
        added = 0
        while True:
            events = self.jobs.events_since(self._cursor, limit=self.BATCH)
            if not events:
                return added
            rows: list[tuple[str, str, str]] = []
            for event in events:
                rows += self.deliveries_for(event)
            if rows:
                self.jobs.outbox_add(rows, keep=self.keep_per_url)
                added += len(rows)
            self._save_cursor(events[-1].store_seq or self._cursor)
            if len(events) < self.BATCH:
                return added

    def deliveries_for(self, event: JobLifecycleLogEvent) -> list[tuple[str, str, str]]:
        kind = event.kind.value
        wanted = [hook for hook in self.hooks.values() if hook.wants(kind)]
        job = self._job(event.job_id) if event.job_id else None
        rows: list[tuple[str, str, str]] = []
        if wanted:
            body = orjson.dumps(payload(event, job)).decode()
            rows += [(hook.url, kind, body) for hook in wanted]
        callback = callback_url(job) if job is not None else None
        if callback and event.kind in FINISHED_KINDS and job is not None:
            status = event.status or job.status
            body = orjson.dumps(
                {"task_id": job.id, "status": TASK_STATUS.get(status, status.value.lower())}
            ).decode()
            rows.append((callback, CALLBACK_EVENT, body))
        return rows

    def _job(self, job_id: str) -> Job | None:
        try:
            return self.jobs.get_job(job_id)
        except StableNewError:  # removed since: the event is still worth telling
            return None

    # -- sending -------------------------------------------------------------------------------

    def send_due(self) -> int:
        """Hand what is due now to the lanes, one URL per lane; returns how many lanes began."""
        due = self.jobs.outbox_due(time.time(), limit=100, skip=self._skipped())
        by_url: dict[str, list[Delivery]] = {}
        for delivery in due:
            by_url.setdefault(delivery.url, []).append(delivery)
        began = 0
        for url, deliveries in by_url.items():
            with self._lock:
                if len(self._busy) >= self.LANES or self._closing.is_set():
                    break
                self._busy.add(url)
            self._lanes.submit(self._lane, url, deliveries)
            began += 1
        return began

    def _lane(self, url: str, deliveries: list[Delivery]) -> None:
        """One URL's due rows, in order; a failure rests the URL until its retry is due."""
        retry_at: float | None = None
        try:
            for delivery in deliveries:
                if self._closing.is_set():
                    return
                delivered, retry_at = self._send(delivery)
                if not delivered and retry_at is not None:
                    break
        except StableNewError as exc:  # the store is busy or closing: the rows stay pending
            log.warning("webhook deliveries to %s wait: %s", url, exc)
        finally:
            with self._lock:
                self._busy.discard(url)
                if retry_at is not None:
                    self._resting[url] = retry_at
            self._wake.set()

    def _send(self, delivery: Delivery) -> tuple[bool, float | None]:
        """Try one delivery: (delivered, when to try this URL again after a failure)."""
        try:
            response = self._post(delivery)
            ok = 200 <= response.status_code < 300
            error = "" if ok else f"HTTP {response.status_code}"
        except (httpx.HTTPError, OSError, ValueError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        except _GiveUp as exc:
            self.jobs.outbox_result(delivery.id, delivered=False, error=str(exc))
            return False, None
        if self.on_attempt is not None:
            self.on_attempt(ok)
        if ok:
            self.jobs.outbox_result(delivery.id, delivered=True)
            return True, None
        attempts = delivery.attempts + 1
        retry_at = time.time() + self.backoff.delay(attempts)
        given_up = attempts >= self.backoff.attempts  # the outbox keeps it as failed
        self.jobs.outbox_result(
            delivery.id, delivered=False, error=error, retry_at=None if given_up else retry_at
        )
        return False, retry_at

    def _post(self, delivery: Delivery) -> httpx.Response:
        body = delivery.body.encode()
        if delivery.event == CALLBACK_EVENT:
            return self._post_callback(delivery)
        hook = self.hooks.get(delivery.url)
        if hook is None:
            raise _GiveUp("this URL is no longer configured under [[webhooks]]")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "StableNew-Webhooks",
            "X-StableNew-Event": delivery.event,
            "X-StableNew-Delivery": str(delivery.id),
            "X-StableNew-Timestamp": timestamp,
            "X-StableNew-Signature": signature(hook.secret, timestamp, body),
        }
        return self._http.post(delivery.url, content=body, headers=headers)

    def _post_callback(self, delivery: Delivery) -> httpx.Response:
        """agent-scheduler's callback: a multipart form with the task's images."""
        fields = orjson.loads(delivery.body)
        job = self._job(str(fields["task_id"]))
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        for name in job.result.images if job is not None else []:
            path = Path(name)
            with contextlib.suppress(OSError):  # a file removed since: send the rest
                kind = mimetypes.guess_type(path.name)[0] or "image/png"
                files.append(("files", (path.name, path.read_bytes(), kind)))
        data = {"task_id": str(fields["task_id"]), "status": str(fields["status"])}
        headers = {"User-Agent": "StableNew-Webhooks", "X-StableNew-Delivery": str(delivery.id)}
        return self._http.post(delivery.url, data=data, files=files or None, headers=headers)


class _GiveUp(Exception):
    """A delivery that no retry can make: recorded as failed at once."""


def payload(event: JobLifecycleLogEvent, job: Job | None) -> dict[str, Any]:
    """What a webhook receives: the event, and for a job its status, images and error."""
    body: dict[str, Any] = {
        "event": event.kind.value,
        "seq": event.store_seq,
        "ts": iso_utc(event.ts),
        "message": event.message,
        "job_id": event.job_id,
        "status": event.status.value if event.status is not None else None,
        "fields": event.fields,
    }
    if job is not None:
        body["status"] = body["status"] or job.status.value
        body["job_status"] = job.status.value
        body["images"] = list(job.result.images)
        body["run_dir"] = job.result.run_dir
        body["error"] = job.error.model_dump(mode="json") if job.error is not None else None
    return body


def callback_url(job: Job) -> str | None:
    """The agent-scheduler `callback_url` a job was submitted with, if any."""
    door = job.spec.metadata.get("agent_scheduler")
    if isinstance(door, dict):
        url = door.get("callback_url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return url
    return None


def hooks_of(entries: Sequence[Any]) -> list[Hook]:
    """Hooks from the configuration's `[[webhooks]]` entries (url, events, secret)."""
    return [Hook(e.url, frozenset(e.events), e.secret) for e in entries]
