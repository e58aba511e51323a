"""JobStore: the durable job queue on SQLite (WAL), shared safely by every process on a home.

Every status change happens in one transaction together with its lifecycle event in `events`,
whose autoincrement `seq` orders the log across processes, so a consumer that reconnects replays
exactly what it missed; the owner appends the other lifecycle events (stage and image
boundaries, recovery steps, backend states) to the same log. Claims take the write lock first
(BEGIN IMMEDIATE), so two processes on one database never run the same job twice. A job carries
a lease that its runner renews; a job whose runner died is recovered at start-up: re-queued to
resume from its checkpoint, or quarantined after too many attempts. Each finished image is a row
of `job_images`, written as it finishes: a resume redoes at most the image that was in flight.

The schema is versioned (`queue/schema.py`). Every SQLite failure reaches callers as a
StoreError that says what to do (a damaged file, a full disk, a busy database).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import orjson
import psutil

from stablenew import redact
from stablenew.errors import InputError, QueueError, StoreError
from stablenew.jobs.job import Job, utcnow
from stablenew.jobs.outcome import Checkpoint, ErrorEnvelope, ImageRecord, JobOutcome, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import BackendState, JobStatus
from stablenew.observe import lifecycle
from stablenew.observe.events import (
    EventKind,
    JobLifecycleLogEvent,
    ProgressData,
    data_from_fields,
)
from stablenew.queue.dbfile import create_database, store_error
from stablenew.queue.schema import migrate

Move = Literal["up", "down", "front", "back"]
SortKey = tuple[float | str, ...]  # where a job stands in a listing's order (see page_after)

# The listing's order: running, then the queue in run order, then finished jobs newest first;
# as (column, descending). No part is NULL (a comparison with NULL is never true), and rowid
# makes each key unique, so a page can begin right after one.
LISTING_KEY = (
    ("CASE status WHEN 'RUNNING' THEN 0 WHEN 'QUEUED' THEN 1 ELSE 2 END", False),
    ("CASE WHEN status = 'QUEUED' THEN -priority ELSE 0 END", False),
    ("CASE WHEN status IN ('RUNNING', 'QUEUED') THEN position ELSE 0 END", False),
    ("COALESCE(finished_at, '')", True),  # ISO text: compared as written, to the microsecond
    ("rowid", False),
)
HISTORY_KEY = (("COALESCE(finished_at, '')", True), ("rowid", True))  # newest first


def _order(key: tuple[tuple[str, bool], ...]) -> str:
    return ", ".join(f"{expr} DESC" if descending else expr for expr, descending in key)


def _beyond(key: tuple[tuple[str, bool], ...], after: SortKey) -> tuple[str, list[float | str]]:
    """WHERE text for "after this key in this order": the columns' directions differ, so a
    row-value comparison will not do; (k0 beyond) OR (k0 equal AND k1 beyond) OR ..."""
    terms: list[str] = []
    params: list[float | str] = []
    for n in range(len(key)):
        equal = [f"k{i} = ?" for i in range(n)]
        terms.append("(" + " AND ".join([*equal, f"k{n} {'<' if key[n][1] else '>'} ?"]) + ")")
        params += [*after[:n], after[n]]
    return "WHERE " + " OR ".join(terms), params


PIN = "json_extract(spec, '$.backend')"  # a job's pin, as the schema's jobs_pin index has it

FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
QUEUED_DATA = orjson.dumps({"status": "QUEUED", "detail": ""}).decode()


@dataclass(frozen=True)
class Claim:
    job: Job
    event: JobLifecycleLogEvent  # job_started, as recorded


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery waiting in the outbox."""

    id: int
    url: str
    event: str
    body: str
    attempts: int


@dataclass(frozen=True)
class BackendReport:
    """One backend as the home's owner knows it, published for clients to show."""

    name: str
    state: BackendState
    url: str | None  # masked: the table is readable by every process on the home
    loaded_model: str | None
    current_job: str | None
    held: str | None  # set aside: why
    restarts: int


@dataclass(frozen=True)
class LiveProgress:
    """A running job's latest step, as its owner shares it with clients (`progress.preview`:
    the number of the live preview shared with it, 0 for none)."""

    job_id: str
    pid: int  # the owner that runs it
    stage: str | None
    image_index: int | None
    total: int | None
    message: str
    progress: ProgressData
    version: int = 0  # as read: changes with every write of the row (ignored when writing)


@dataclass(frozen=True)
class QueueView:
    jobs: list[Job]  # running first, then the queue in run order, at most the limit asked for
    waiting: int  # every queued job, those beyond the limit too
    paused: str | None  # why the queue is paused, or None


def new_owner(backend: str = "default") -> str:
    """A runner's lease holder: host, pid (so a dead one is recognized), a nonce, its backend."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{backend}"


def _owner_is_dead(owner: str | None) -> bool:
    """True only when we can tell: the owner ran on this host and its process is gone."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:  # a killed process its parent has not reaped yet is a zombie: gone all the same
        return psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:  # NoSuchProcess; AccessDenied would mean alive, but not ours
        return not psutil.pid_exists(int(pid))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class JobStore:
    def __init__(self, path: Path | str, *, lease_seconds: float = 30.0) -> None:
        self.path = Path(path).absolute()
        self.lease_seconds = lease_seconds
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise StoreError(
                f"{self.path} is empty (0 bytes): it is not a job database any more. "
                "`stablenew queue recover` sets it aside and starts a fresh one"
            )
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        create_database(self.path)
        try:
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Listings get their own connection: under WAL a reader never blocks the runner's
            # writes, so a GUI refreshing a long queue does not delay the running job.
            self._reader = self._connect()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc
        with self._tx() as c:
            migrate(c)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=10000")
        return db

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            try:
                yield self._reader
            except sqlite3.Error as exc:
                raise store_error(self.path, exc) from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds SQLite's write lock from its first statement."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise store_error(self.path, exc) from exc

    # -- the event log -------------------------------------------------------------------------

    @staticmethod
    def _record(
        c: sqlite3.Connection, event: JobLifecycleLogEvent, status: JobStatus | None = None
    ) -> JobLifecycleLogEvent:
        """Write one lifecycle event; returns it as recorded (with its seq)."""
        status = status or event.status
        cur = c.execute(
            "INSERT INTO events (ts, kind, job_id, status, source, pid, stage, image_index,"
            " total, message, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.ts.isoformat(),
                event.kind.value,
                event.job_id,
                status.value if status else None,
                event.source,
                event.pid,
                event.stage,
                event.image_index,
                event.total,
                redact.text(event.message),
                redact.text(orjson.dumps(event.fields, default=str).decode()),
            ),
        )
        return dataclasses.replace(event, store_seq=cur.lastrowid, persisted=True)

    def append_events(self, events: Sequence[JobLifecycleLogEvent]) -> None:
        """Add lifecycle events that come with no status change (stages, recovery, backend)."""
        with self._tx() as c:
            for event in events:
                self._record(c, event)

    def events_since(
        self, seq: int = 0, limit: int = 10_000, job_id: str | None = None
    ) -> list[JobLifecycleLogEvent]:
        """The log after `seq`, oldest first: what a consumer that saw `seq` has missed."""
        where, params = "seq > ?", [seq]
        if job_id is not None:
            where, params = "job_id = ? AND seq > ?", [job_id, seq]  # type: ignore[list-item]
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM events WHERE {where} ORDER BY seq LIMIT ?", (*params, limit)
            ).fetchall()
        return [_event(r) for r in rows]

    def log_id(self) -> str:
        """A name for this database's event log, made when it is first asked for: a consumer
        that keeps a seq elsewhere (the webhook cursor) can tell a new database from its own."""
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO meta VALUES ('log_id', ?)", (uuid.uuid4().hex,))
            return str(c.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()[0])

    def last_seq(self) -> int:
        """Where a consumer starts to hear only what happens from now on."""
        with self._read() as db:
            return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    # -- submit --------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, priority: int = 0, source: str = "api") -> str:
        return self.submit_many([spec], priority, source=source)[0]

    def submit_many(
        self,
        specs: Iterable[JobSpec],
        priority: int | Sequence[int] = 0,
        retried_from: str | None = None,
        source: str = "api",
    ) -> list[str]:
        """Queue many jobs in one transaction: all of them, or none. `priority` is one for all,
        or one per job."""
        now = utcnow().isoformat()
        rows = [(uuid.uuid4().hex, spec.to_json(), spec.prompt) for spec in specs]
        priorities = [priority] * len(rows) if isinstance(priority, int) else list(priority)
        if len(priorities) != len(rows):
            raise QueueError(f"{len(priorities)} priorities for {len(rows)} jobs")
        with self._tx() as c:
            start = c.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()[0]
            c.executemany(
                "INSERT INTO jobs (id, spec, prompt, status, priority, position, created_at,"
                " retried_from) VALUES (?, ?, ?, 'QUEUED', ?, ?, ?, ?)",
                [
                    (job_id, spec_json, prompt, prio, start + i + 1, now, retried_from)
                    for i, ((job_id, spec_json, prompt), prio) in enumerate(
                        zip(rows, priorities, strict=True)
                    )
                ],
            )
            c.executemany(
                "INSERT INTO events (ts, kind, job_id, status, source, pid, message, data)"
                " VALUES (?, 'job_queued', ?, 'QUEUED', ?, ?, 'Job queued.', ?)",
                [(now, job_id, source, os.getpid(), QUEUED_DATA) for job_id, _, _ in rows],
            )
        return [job_id for job_id, _, _ in rows]

    # -- claim, lease, checkpoint, finish ------------------------------------------------------

    def claim_next(self, owner: str, backend: str = "default") -> Claim | None:
        """Atomically take the next QUEUED job (priority, then FIFO); None when paused or empty."""
        with self._tx() as c:
            if self._paused(c):
                return None
            row = c.execute(
                "SELECT id FROM jobs WHERE status = 'QUEUED'"
                " ORDER BY priority DESC, position LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            return self._claim(c, row["id"], owner, backend)

    def claim(self, job_id: str, owner: str, backend: str = "default") -> Claim | None:
        """Atomically take this job if it is still QUEUED (placement chose it); None when another
        runner took it first or the queue is paused."""
        with self._tx() as c:
            if self._paused(c) or self._status(c, job_id) != JobStatus.QUEUED:
                return None
            return self._claim(c, job_id, owner, backend)

    def _claim(self, c: sqlite3.Connection, job_id: str, owner: str, backend: str) -> Claim:
        c.execute(
            "UPDATE jobs SET status = 'RUNNING', owner = ?, lease_until = ?, started_at = ?,"
            " attempts = attempts + 1, cancel_requested = 0, note = '' WHERE id = ?",
            (owner, time.time() + self.lease_seconds, utcnow().isoformat(), job_id),
        )
        job = self._get(c, job_id)
        started = lifecycle.job_started(job.id, job.attempts, job.spec.stages(), backend)
        return Claim(job, self._record(c, started))

    def set_notes(self, notes: dict[str, str], among: Sequence[str]) -> None:
        """Why queued jobs wait (no backend can run them); cleared for the others of `among`."""
        with self._tx() as c:
            for job_id in among:
                c.execute(
                    "UPDATE jobs SET note = ? WHERE id = ? AND status = 'QUEUED' AND note != ?",
                    (notes.get(job_id, ""), job_id, notes.get(job_id, "")),
                )

    def renew_lease(self, job_id: str, owner: str) -> bool:
        """Extend the lease; returns whether a cancel was requested (from any process)."""
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (time.time() + self.lease_seconds, job_id, owner),
            )
            row = c.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def save_checkpoint(self, job_id: str, owner: str, checkpoint: Checkpoint) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET checkpoint = ? WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (checkpoint.model_dump_json(), job_id, owner),
            )

    def save_image(self, job_id: str, owner: str, record: ImageRecord) -> None:
        """One finished image: the checkpoint a resume starts after."""
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO job_images SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1"
                " FROM jobs WHERE id = ? AND owner = ? AND status = 'RUNNING')",
                (
                    job_id,
                    record.stage,
                    record.index,
                    record.model_dump_json(),
                    job_id,
                    owner,
                ),
            )

    def image_records(self, job_id: str) -> list[ImageRecord]:
        with self._read() as db:
            rows = db.execute(
                "SELECT record FROM job_images WHERE job_id = ? ORDER BY image_index", (job_id,)
            ).fetchall()
        return [ImageRecord.model_validate_json(r["record"]) for r in rows]

    def finish(
        self, job_id: str, owner: str, outcome: JobOutcome, source: str = "runner"
    ) -> JobLifecycleLogEvent | None:
        """Record the outcome and its event; None if this owner no longer holds the job."""
        if not outcome.status.finished:
            raise QueueError(f"{outcome.status} is not a final status")
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ?,"
                " owner = NULL, lease_until = NULL"
                " WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (
                    outcome.status.value,
                    utcnow().isoformat(),
                    outcome.result.model_dump_json(),
                    outcome.error.model_dump_json() if outcome.error else None,
                    job_id,
                    owner,
                ),
            )
            if not cur.rowcount:
                return None
            c.execute("DELETE FROM job_images WHERE job_id = ?", (job_id,))
            return self._record(c, lifecycle.job_finished(job_id, outcome, source))

    def release(self, job_id: str, owner: str, detail: str) -> JobLifecycleLogEvent | None:
        """Give a running job back to the queue (a shutdown, a tripped breaker): it resumes from
        its checkpoint, and the interrupted attempt does not count as a crash."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET status = 'QUEUED', owner = NULL, lease_until = NULL,"
                " attempts = MAX(0, attempts - 1),"
                " position = (SELECT COALESCE(MIN(position), 1) - 1 FROM jobs)"
                " WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (job_id, owner),
            )
            if not cur.rowcount:
                return None
            return self._record(c, lifecycle.job_requeued(job_id, detail))

    # -- recovery ------------------------------------------------------------------------------

    def recover(self, max_attempts: int) -> list[JobLifecycleLogEvent]:
        """Jobs left RUNNING by a dead runner: re-queue them, or quarantine after N attempts."""
        recorded: list[JobLifecycleLogEvent] = []
        with self._tx() as c:
            rows = c.execute(
                "SELECT id, owner, lease_until, attempts, cancel_requested FROM jobs"
                " WHERE status = 'RUNNING'"
            ).fetchall()
            now = time.time()
            for row in rows:
                expired = row["lease_until"] is None or row["lease_until"] < now
                if not (expired or _owner_is_dead(row["owner"])):
                    continue
                if row["cancel_requested"]:  # asked before its runner died: the user's word
                    c.execute(
                        "UPDATE jobs SET status = 'CANCELLED', finished_at = ?, owner = NULL,"
                        " lease_until = NULL WHERE id = ?",
                        (utcnow().isoformat(), row["id"]),
                    )
                    event = lifecycle.job_cancelled_after_its_runner_died(row["id"])
                    recorded.append(self._record(c, event))
                elif row["attempts"] >= max_attempts:
                    reason = (
                        f"quarantined: crashed the runner {row['attempts']} times; "
                        "not retried automatically"
                    )
                    error = ErrorEnvelope(type="Quarantined", message=reason, job_id=row["id"])
                    c.execute(
                        "UPDATE jobs SET status = 'FAILED', finished_at = ?, error = ?,"
                        " owner = NULL, lease_until = NULL WHERE id = ?",
                        (utcnow().isoformat(), error.model_dump_json(), row["id"]),
                    )
                    recorded.append(self._record(c, lifecycle.job_quarantined(row["id"], reason)))
                else:
                    # Back to the front of its priority group: it was already running.
                    c.execute(
                        "UPDATE jobs SET status = 'QUEUED', owner = NULL, lease_until = NULL,"
                        " position = (SELECT COALESCE(MIN(position), 1) - 1 FROM jobs)"
                        " WHERE id = ?",
                        (row["id"],),
                    )
                    event = lifecycle.job_requeued(row["id"], "recovered after its runner died")
                    recorded.append(self._record(c, event))
        return recorded

    # -- user operations -----------------------------------------------------------------------

    def cancel(
        self, job_id: str, source: str = "api"
    ) -> tuple[JobStatus, JobLifecycleLogEvent | None]:
        """QUEUED becomes CANCELLED at once (its event is returned); RUNNING gets a cancel
        request for its runner. Returns the status the job had before."""
        with self._tx() as c:
            status = self._status(c, job_id)
            if status == JobStatus.QUEUED:
                c.execute(
                    "UPDATE jobs SET status = 'CANCELLED', finished_at = ? WHERE id = ?",
                    (utcnow().isoformat(), job_id),
                )
                return status, self._record(c, lifecycle.job_cancelled_while_queued(job_id, source))
            if status == JobStatus.RUNNING:
                c.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return status, None

    def cancel_all_pending(self, source: str = "api") -> list[JobLifecycleLogEvent]:
        """Every QUEUED job becomes CANCELLED; the running one is left alone."""
        with self._tx() as c:
            ids = [
                r["id"] for r in c.execute("SELECT id FROM jobs WHERE status = 'QUEUED'").fetchall()
            ]
            c.execute(
                "UPDATE jobs SET status = 'CANCELLED', finished_at = ? WHERE status = 'QUEUED'",
                (utcnow().isoformat(),),
            )
            return [self._record(c, lifecycle.job_cancelled_while_queued(i, source)) for i in ids]

    def edit(self, job_id: str, spec: JobSpec, source: str = "api") -> JobLifecycleLogEvent:
        """Replace a QUEUED job's spec, in one transaction: a job that a runner claims at the
        same moment either runs the old spec or the new one, never half of each."""
        with self._tx() as c:
            row = c.execute("SELECT status, spec FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise QueueError(f"no job {job_id!r}")
            if row["status"] != JobStatus.QUEUED.value:
                raise QueueError(
                    f"job {job_id[:8]} is {row['status']}: only a QUEUED job can be edited"
                    " (retry a finished one with changes instead)"
                )
            before = orjson.loads(row["spec"])
            after = orjson.loads(spec.to_json())
            changed = sorted(
                k for k in after.keys() | before.keys() if before.get(k) != after.get(k)
            )
            c.execute(
                "UPDATE jobs SET spec = ?, prompt = ? WHERE id = ?",
                (spec.to_json(), spec.prompt, job_id),
            )
            return self._record(c, lifecycle.job_edited(job_id, changed, source))

    def retry(self, job_id: str, source: str = "api", spec: JobSpec | None = None) -> str:
        """Queue a FAILED or CANCELLED job again as a new job linked to it, with its spec or a
        changed one (a smaller size after running out of memory)."""
        job = self.get(job_id)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise QueueError(f"job {job.short_id} is {job.status}; only FAILED or CANCELLED retry")
        again = spec or job.spec
        return self.submit_many([again], job.priority, retried_from=job_id, source=source)[0]

    def pending(self, limit: int = -1) -> list[Job]:
        """QUEUED jobs, in the order they will run (all of them, or the first `limit`)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status = 'QUEUED' ORDER BY priority DESC, position"
                " LIMIT ?",
                (limit,),
            ).fetchall()
        return [_job(r) for r in rows]

    def pending_after(
        self,
        after: Job | None,
        limit: int,
        pins: Collection[str] | None = None,
    ) -> list[Job]:
        """QUEUED jobs in run order that come after `after` (None: from the head). With `pins`,
        only jobs that are unpinned or pinned to one of them: jobs pinned to another backend
        cost a backend looking for work nothing but the index walk."""
        where = "status = 'QUEUED'"
        params: list[str | int | float] = []
        if after is not None:
            where += " AND (priority < ? OR (priority = ? AND position > ?))"
            params += [after.priority, after.priority, after.position]
        if pins is not None:
            where += f" AND ({PIN} IS NULL OR {PIN} IN ({', '.join('?' * len(pins))}))"
            params += list(pins)
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM jobs WHERE {where} ORDER BY priority DESC, position LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_job(r) for r in rows]

    def pinned_away(self, pins: Collection[str]) -> list[tuple[str, str]]:
        """(id, pin) of the QUEUED jobs pinned to none of `pins`, through the pin index."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT id, {PIN} AS pin FROM jobs WHERE status = 'QUEUED' AND {PIN} > ''"
                f" AND {PIN} NOT IN ({', '.join('?' * len(pins))})",
                list(pins),
            ).fetchall()
        return [(r["id"], r["pin"]) for r in rows]

    def notes(self) -> dict[str, tuple[str, str | None]]:
        """id -> (why it waits, its pin) for the QUEUED jobs that have a note."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT id, note, {PIN} AS pin FROM jobs WHERE status = 'QUEUED' AND note != ''"
            ).fetchall()
        return {r["id"]: (r["note"], r["pin"]) for r in rows}

    def move(
        self, job_id: str, where: Move | int, source: str = "api"
    ) -> JobLifecycleLogEvent | None:
        """Move a QUEUED job one step, to an end, or to an index in run order (0: next; past
        the end: last), in one transaction; None when it is already there."""
        with self._tx() as c:
            order = c.execute(
                "SELECT id, priority, position FROM jobs WHERE status = 'QUEUED'"
                " ORDER BY priority DESC, position"
            ).fetchall()
            ids = [r["id"] for r in order]
            if job_id not in ids:
                raise QueueError(f"job {job_id[:8]} is not queued")
            here = ids.index(job_id)
            if isinstance(where, int):
                there = where
            else:
                there = {"up": here - 1, "down": here + 1, "front": 0, "back": len(ids)}[where]
            there = max(0, min(there, len(ids) - 1))
            if there == here:
                return None
            priority, position = _slot([r for r in order if r["id"] != job_id], there, here)
            c.execute(
                "UPDATE jobs SET priority = ?, position = ? WHERE id = ?",
                (priority, position, job_id),
            )
            return self._record(c, lifecycle.job_moved(job_id, there, len(ids), source))

    def remove(self, job_id: str, source: str = "api") -> JobLifecycleLogEvent:
        with self._tx() as c:
            status = self._status(c, job_id)
            if status == JobStatus.RUNNING:
                raise QueueError(f"job {job_id[:8]} is running; cancel it first")
            c.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            c.execute("DELETE FROM job_images WHERE job_id = ?", (job_id,))
            return self._record(c, lifecycle.jobs_removed(1, [status.value], source, job_id))

    def remove_where(
        self, statuses: Iterable[JobStatus], source: str = "api"
    ) -> tuple[int, JobLifecycleLogEvent | None]:
        """Remove every job in these statuses (never a running one); returns how many, and
        the event that says so (None when there was nothing to remove)."""
        wanted = [JobStatus(s).value for s in statuses if JobStatus(s) != JobStatus.RUNNING]
        if not wanted:
            return 0, None
        marks = ", ".join("?" * len(wanted))
        with self._tx() as c:
            c.execute(
                f"DELETE FROM job_images WHERE job_id IN (SELECT id FROM jobs WHERE status IN"
                f" ({marks}))",
                wanted,
            )
            count = int(c.execute(f"DELETE FROM jobs WHERE status IN ({marks})", wanted).rowcount)
            if count == 0:
                return 0, None
            return count, self._record(c, lifecycle.jobs_removed(count, wanted, source))

    def clear_finished(self, source: str = "api") -> tuple[int, JobLifecycleLogEvent | None]:
        return self.remove_where(FINISHED, source)

    def pause(
        self, reason: str = "paused by the user", source: str = "api"
    ) -> JobLifecycleLogEvent:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES ('paused', ?)", (reason,))
            return self._record(c, lifecycle.queue_paused(reason, source))

    def resume(self, source: str = "api") -> JobLifecycleLogEvent | None:
        """Resume a paused queue; None when it was not paused."""
        with self._tx() as c:
            if c.execute("DELETE FROM meta WHERE key = 'paused'").rowcount == 0:
                return None
            return self._record(c, lifecycle.queue_resumed(source))

    def paused(self) -> str | None:
        """The reason the queue is paused, or None when it runs."""
        with self._read() as db:
            return self._paused(db)

    @staticmethod
    def _paused(c: sqlite3.Connection) -> str | None:
        row = c.execute("SELECT value FROM meta WHERE key = 'paused'").fetchone()
        return str(row["value"]) if row else None

    # -- the owner's backends ------------------------------------------------------------------

    def publish_backends(self, reports: Sequence[BackendReport]) -> None:
        """Replace what the owner last said of its backends (a backend gone from the config
        goes from the table too)."""
        with self._tx() as c:
            c.execute("DELETE FROM backends")
            c.executemany(
                "INSERT INTO backends VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.name,
                        r.state.value,
                        redact.text(r.url) if r.url else None,
                        r.loaded_model,
                        r.current_job,
                        r.held,
                        r.restarts,
                    )
                    for r in reports
                ],
            )

    def backend_reports(self) -> dict[str, BackendReport]:
        """What the owner last published of its backends, by name."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM backends").fetchall()
        return {
            row["name"]: BackendReport(
                name=row["name"],
                state=BackendState(row["state"]),
                url=row["url"],
                loaded_model=row["loaded_model"],
                current_job=row["current_job"],
                held=row["held"],
                restarts=int(row["restarts"]),
            )
            for row in rows
        }

    # -- running jobs' live progress (the owner's, for clients) ---------------------------------

    def share_progress(
        self,
        rows: Sequence[LiveProgress],
        previews: Mapping[str, bytes] | None = None,
        ended: Collection[str] = (),
    ) -> None:
        """In one transaction: replace these jobs' rows (a row keeps its preview unless a new
        one is given) and delete the rows of jobs that `ended`."""
        with self._tx() as c:
            c.executemany(
                "INSERT INTO live_progress (job_id, version, pid, stage, image_index, total,"
                " message, step, steps, eta, fraction, preview_number)"
                " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(job_id) DO UPDATE SET version = live_progress.version + 1,"
                " pid = excluded.pid, stage = excluded.stage, image_index = excluded.image_index,"
                " total = excluded.total, message = excluded.message, step = excluded.step,"
                " steps = excluded.steps, eta = excluded.eta, fraction = excluded.fraction,"
                " preview_number = excluded.preview_number",
                [
                    (
                        r.job_id,
                        r.pid,
                        r.stage,
                        r.image_index,
                        r.total,
                        redact.text(r.message),
                        r.progress.step,
                        r.progress.steps,
                        r.progress.eta,
                        r.progress.fraction,
                        r.progress.preview,
                    )
                    for r in rows
                ],
            )
            c.executemany(
                "UPDATE live_progress SET preview = ? WHERE job_id = ?",
                [(image, job_id) for job_id, image in (previews or {}).items()],
            )
            c.executemany("DELETE FROM live_progress WHERE job_id = ?", [(j,) for j in ended])

    def clear_shared_progress(self) -> None:
        """A new owner's start: what a previous one shared is over."""
        with self._tx() as c:
            c.execute("DELETE FROM live_progress")

    def shared_progress(self) -> list[LiveProgress]:
        """Every running job's latest shared step (without the preview's bytes)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT job_id, version, pid, stage, image_index, total, message, step, steps,"
                " eta, fraction, preview_number FROM live_progress"
            ).fetchall()
        return [
            LiveProgress(
                job_id=row["job_id"],
                pid=int(row["pid"]),
                stage=row["stage"],
                image_index=row["image_index"],
                total=row["total"],
                message=row["message"],
                progress=ProgressData(
                    int(row["step"]),
                    int(row["steps"]),
                    float(row["eta"]),
                    float(row["fraction"]),
                    int(row["preview_number"]),
                ),
                version=int(row["version"]),
            )
            for row in rows
        ]

    def shared_preview(self, job_id: str) -> bytes | None:
        with self._read() as db:
            row = db.execute(
                "SELECT preview FROM live_progress WHERE job_id = ?", (job_id,)
            ).fetchone()
        return bytes(row["preview"]) if row and row["preview"] is not None else None

    # -- the webhook outbox ----------------------------------------------------------------------

    def outbox_add(self, deliveries: Sequence[tuple[str, str, str]], keep: int = 10_000) -> None:
        """Queue (url, event, body) deliveries; past `keep` pending for one URL (a dead endpoint)
        the oldest are given up, so the outbox never grows without bound."""
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO webhook_outbox (url, event, body, created_at, next_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(url, event, body, now, now) for url, event, body in deliveries],
            )
            for url in {url for url, _, _ in deliveries}:
                c.execute(
                    "UPDATE webhook_outbox SET failed_at = ?, last_error = 'dropped: outbox full'"
                    " WHERE id IN (SELECT id FROM webhook_outbox WHERE url = ? AND delivered_at"
                    " IS NULL AND failed_at IS NULL ORDER BY id DESC LIMIT -1 OFFSET ?)",
                    (now, url, keep),
                )

    def outbox_due(self, now: float, limit: int = 20, skip: Collection[str] = ()) -> list[Delivery]:
        """Pending deliveries due by `now`, oldest first; URLs in `skip` left out (a busy or
        resting receiver must not hide the others' rows behind its own)."""
        skip = list(skip)
        marks = ", ".join("?" * len(skip))
        with self._read() as db:
            rows = db.execute(
                "SELECT id, url, event, body, attempts FROM webhook_outbox WHERE delivered_at IS"
                f" NULL AND failed_at IS NULL AND next_at <= ? AND url NOT IN ({marks})"
                " ORDER BY id LIMIT ?",
                (now, *skip, limit),
            ).fetchall()
        return [Delivery(r["id"], r["url"], r["event"], r["body"], r["attempts"]) for r in rows]

    def outbox_next_at(self, skip: Collection[str] = ()) -> float | None:
        """When the next pending delivery is due (None: nothing pending), URLs in `skip` aside."""
        skip = list(skip)
        marks = ", ".join("?" * len(skip))
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(next_at) FROM webhook_outbox WHERE delivered_at IS NULL"
                f" AND failed_at IS NULL AND url NOT IN ({marks})",
                skip,
            ).fetchone()
        return float(row[0]) if row[0] is not None else None

    def outbox_result(
        self, delivery_id: int, *, delivered: bool, error: str = "", retry_at: float | None = None
    ) -> None:
        """Delivered; or failed, to be tried again at `retry_at` (None: given up)."""
        now = time.time()
        with self._tx() as c:
            if delivered:
                c.execute(
                    "UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1"
                    " WHERE id = ?",
                    (now, delivery_id),
                )
            elif retry_at is not None:
                c.execute(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, next_at = ?,"
                    " last_error = ? WHERE id = ?",
                    (retry_at, error[:500], delivery_id),
                )
            else:
                c.execute(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, failed_at = ?,"
                    " last_error = ? WHERE id = ?",
                    (now, error[:500], delivery_id),
                )

    def outbox_counts(self) -> dict[str, int]:
        with self._read() as db:
            row = db.execute(
                "SELECT SUM(delivered_at IS NOT NULL), SUM(failed_at IS NOT NULL),"
                " SUM(delivered_at IS NULL AND failed_at IS NULL) FROM webhook_outbox"
            ).fetchone()
        return {"delivered": row[0] or 0, "failed": row[1] or 0, "pending": row[2] or 0}

    # -- reading -------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self._read() as db:
            return self._get(db, job_id)

    def _get(self, c: sqlite3.Connection, job_id: str) -> Job:
        row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise QueueError(f"no job {job_id!r}")
        return _job(row)

    def _status(self, c: sqlite3.Connection, job_id: str) -> JobStatus:
        row = c.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise QueueError(f"no job {job_id!r}")
        return JobStatus(row["status"])

    def find(self, prefix: str) -> str:
        """A full job id from a unique prefix, as users type them."""
        with self._read() as db:
            rows = db.execute(
                "SELECT id FROM jobs WHERE id LIKE ? LIMIT 2", (prefix.replace("%", "") + "%",)
            ).fetchall()
        if len(rows) != 1:
            raise QueueError(f"{'no' if not rows else 'more than one'} job matches {prefix!r}")
        return str(rows[0]["id"])

    def list_jobs(
        self,
        statuses: Iterable[JobStatus] | None = None,
        text: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Job]:
        """Running first, then the queue in run order, then finished jobs newest first."""
        with self._read() as db:
            rows = self._select(db, statuses, text, limit, offset)
        return [_job(r) for r in rows]

    def count(self, statuses: Iterable[JobStatus] | None = None, text: str | None = None) -> int:
        where, params = self._filter(statuses, text)
        with self._read() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM jobs {where}", params).fetchone()[0])

    def queue_view(self, limit: int) -> QueueView:
        """The running job and the head of the queue, with the full count, as of one moment."""
        with self._read() as db:
            db.execute("BEGIN")  # one read transaction: the parts agree with each other
            try:
                rows = self._select(db, [JobStatus.RUNNING, JobStatus.QUEUED], None, limit, 0)
                waiting = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'QUEUED'")
                count = waiting.fetchone()[0]
                paused = self._paused(db)
            finally:
                db.execute("COMMIT")
        return QueueView([_job(r) for r in rows], count, paused)

    def _select(
        self,
        db: sqlite3.Connection,
        statuses: Iterable[JobStatus] | None,
        text: str | None,
        limit: int,
        offset: int,
    ) -> list[sqlite3.Row]:
        where, params = self._filter(statuses, text)
        return db.execute(
            f"SELECT * FROM jobs {where} ORDER BY {_order(LISTING_KEY)} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()

    def page_after(
        self,
        statuses: Iterable[JobStatus] | None,
        text: str | None,
        limit: int,
        after: SortKey | None = None,
        history: bool = False,
    ) -> tuple[list[Job], SortKey | None]:
        """A page of the listing (or of the history) that starts after the job whose sort key
        is `after`, and the key of its last job when more follow. Unlike an offset, a job that
        leaves or joins the list between two pages shifts nothing: none is skipped or shown
        twice because another was cancelled, claimed or added meanwhile."""
        if history:
            statuses = [s for s in (statuses or FINISHED) if s in FINISHED]
        key = HISTORY_KEY if history else LISTING_KEY
        if after is not None and len(after) != len(key):
            raise InputError("cursor: not a cursor of this listing")
        where, params = self._filter(statuses, text)
        keyed = ", ".join(f"{expr} AS k{i}" for i, (expr, _) in enumerate(key))
        beyond, from_key = _beyond(key, after) if after else ("", [])
        order = _order(tuple((f"k{i}", desc) for i, (_, desc) in enumerate(key)))
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM (SELECT *, {keyed} FROM jobs {where}) {beyond}"
                f" ORDER BY {order} LIMIT ?",
                (*params, *from_key, limit + 1),
            ).fetchall()
        jobs = [_job(r) for r in rows[:limit]]
        more = len(rows) > limit
        return jobs, tuple(rows[limit - 1][f"k{i}"] for i in range(len(key))) if more else None

    def history(
        self,
        statuses: Iterable[JobStatus] | None = None,
        text: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[Job]:
        wanted = [s for s in (statuses or FINISHED) if s in FINISHED]
        where, params = self._filter(wanted, text)
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM jobs {where} ORDER BY {_order(HISTORY_KEY)} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [_job(r) for r in rows]

    @staticmethod
    def _filter(
        statuses: Iterable[JobStatus] | None, text: str | None
    ) -> tuple[str, list[str | int]]:
        clauses: list[str] = []
        params: list[str | int] = []
        if statuses is not None:
            wanted = [JobStatus(s).value for s in statuses]
            clauses.append(f"status IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            params += wanted
        if text:
            clauses.append("prompt LIKE ? ESCAPE '\\'")
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def integrity(self) -> str:
        """'ok', or what SQLite's integrity check found."""
        with self._lock:
            try:
                rows = self._db.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.Error as exc:
                return str(exc)
        return "; ".join(str(r[0]) for r in rows)

    def integrity_ok(self) -> bool:
        return self.integrity() == "ok"


@functools.lru_cache(maxsize=4096)
def _spec(job_id: str, spec_json: str) -> JobSpec:
    """A spec changes only by an explicit edit (a new text), so each text is validated once."""
    return JobSpec.from_json(spec_json)


@functools.lru_cache(maxsize=1024)
def _result(text: str) -> JobResult:
    return JobResult.model_validate_json(text)


def _job(row: sqlite3.Row) -> Job:
    checkpoint = row["checkpoint"]
    return Job(
        id=row["id"],
        spec=_spec(row["id"], row["spec"]),
        status=JobStatus(row["status"]),
        priority=row["priority"],
        position=row["position"],
        created_at=_dt(row["created_at"]) or utcnow(),
        started_at=_dt(row["started_at"]),
        finished_at=_dt(row["finished_at"]),
        attempts=row["attempts"],
        checkpoint=Checkpoint.model_validate_json(checkpoint) if checkpoint != "{}" else None,
        result=_result(row["result"]),
        error=ErrorEnvelope.model_validate_json(row["error"]) if row["error"] else None,
        retried_from=row["retried_from"],
        cancel_requested=bool(row["cancel_requested"]),
        note=row["note"],
    )


def _slot(rest: list[sqlite3.Row], there: int, here: int) -> tuple[int, float]:
    """(priority, position) that puts a job at index `there` among the other queued jobs
    `rest`. Between two priority groups it stays in the group it came through: moving down,
    the end of the one above; moving up, the front of the one below."""
    before = rest[there - 1] if there > 0 else None
    after = rest[there] if there < len(rest) else None
    if before is None and after is None:
        raise QueueError("nothing to move past")
    if before is None:
        return after["priority"], after["position"] - 1  # type: ignore[index]
    if after is None:
        return before["priority"], before["position"] + 1
    if before["priority"] == after["priority"]:
        return before["priority"], (before["position"] + after["position"]) / 2
    if there > here:
        return before["priority"], before["position"] + 1
    return after["priority"], after["position"] - 1


def _event(row: sqlite3.Row) -> JobLifecycleLogEvent:
    try:
        kind = EventKind(row["kind"])
    except ValueError:  # written by a newer release: shown as a warning, never dropped
        kind = EventKind.WARNING
    return JobLifecycleLogEvent(
        kind,
        row["message"],
        source=row["source"],
        job_id=row["job_id"],
        stage=row["stage"],
        image_index=row["image_index"],
        total=row["total"],
        data=data_from_fields(kind, orjson.loads(row["data"])),
        ts=_dt(row["ts"]) or utcnow(),
        pid=row["pid"] or 0,
        store_seq=row["seq"],
        persisted=True,
    )
