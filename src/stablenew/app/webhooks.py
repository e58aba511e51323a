"""Webhooks: the home's events POSTed to configured URLs, at least once, signed, bounded.

Where deliveries come from: the store's event log, read from a cursor kept in the home
(`webhooks.seq`), not the bus. So an event another process recorded (a `queue cancel` from a
shell) is delivered too, and an event recorded just before a crash is delivered after the
restart: the cursor moves only after the deliveries are in the store's outbox (a crash in
between repeats some, which at-least-once allows; receivers dedupe on `X-StableNew-Delivery`).

Sending: one thread takes due rows from the outbox, POSTs each with a short timeout and records
the result; a failure is retried with exponential backoff, then given up. The outbox keeps at
most N pending rows per URL, so a dead endpoint never grows anything without bound, and
nothing here runs on a job's thread: a slow receiver never slows a job.

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
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

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
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._cursor = 0

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
        if drain > 0:
            self._drain(time.monotonic() + drain)
        self._http.close()

    def _drain(self, deadline: float) -> None:
        try:
            self.produce()
            for delivery in self.jobs.outbox_due(time.time(), limit=100):
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
            due = self.jobs.outbox_next_at()
        except StableNewError:
            return self.POLL
        if due is None:
            return self.POLL
        return max(0.0, min(self.POLL, due - time.time()))

    # -- the cursor ----------------------------------------------------------------------------

    def _load_cursor(self) -> int:
        try:
            return int(self.cursor_file.read_text().strip() or 0)
        except FileNotFoundError:  # first start: deliver from now on, not the whole history
            seq = self.jobs.last_seq()
            self._save_cursor(seq)
            return seq
        except ValueError:
            return self.jobs.last_seq()

    def _save_cursor(self, seq: int) -> None:
        tmp = self.cursor_file.with_name(self.cursor_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(str(seq))
        tmp.replace(self.cursor_file)
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
        """Send what is due now; returns how many were delivered."""
        delivered = 0
        while not self._closing.is_set():
            due = self.jobs.outbox_due(time.time(), limit=20)
            if not due:
                return delivered
            for delivery in due:
                if self._closing.is_set():
                    return delivered
                delivered += self._send(delivery)
        return delivered

    def _send(self, delivery: Delivery) -> int:
        try:
            response = self._post(delivery)
            ok = 200 <= response.status_code < 300
            error = "" if ok else f"HTTP {response.status_code}"
        except (httpx.HTTPError, OSError, ValueError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        except _GiveUp as exc:
            self.jobs.outbox_result(delivery.id, delivered=False, error=str(exc))
            return 0
        if self.on_attempt is not None:
            self.on_attempt(ok)
        if ok:
            self.jobs.outbox_result(delivery.id, delivered=True)
            return 1
        attempts = delivery.attempts + 1
        retry_at = (
            time.time() + self.backoff.delay(attempts)
            if attempts < self.backoff.attempts
            else None  # given up: the outbox keeps it as failed, with the last error
        )
        self.jobs.outbox_result(delivery.id, delivered=False, error=error, retry_at=retry_at)
        return 0

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
