"""JobStore: the durable job queue on SQLite (WAL).

Every status change happens in one transaction together with a row in `events`, whose
autoincrement `seq` lets a consumer that reconnects replay what it missed. Claims take the write
lock first (BEGIN IMMEDIATE), so two processes on one database never run the same job twice.
A job carries a lease that its runner renews; a job whose runner died is recovered at start-up:
re-queued to resume from its checkpoint, or quarantined after too many attempts.
"""

from __future__ import annotations

import functools
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import psutil

from stablenew.jobs.job import Job, JobOutcome, JobStatus, utcnow
from stablenew.jobs.spec import JobSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    prompt TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    position REAL NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL,
    checkpoint TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    retried_from TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
-- One index serves the claim order (status, then priority, then FIFO) and the status filters.
CREATE INDEX IF NOT EXISTS jobs_order ON jobs(status, priority DESC, position);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,
    ts TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Move = Literal["up", "down", "front", "back"]


class QueueError(ValueError):
    """A queue operation that does not apply (unknown job, wrong status)."""


@dataclass(frozen=True)
class StatusEvent:
    seq: int
    job_id: str
    status: JobStatus
    ts: datetime
    detail: str


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str | None) -> bool:
    """True only when we can tell: the owner ran on this host and its process is gone."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not psutil.pid_exists(int(pid))


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class QueueView:
    jobs: list[Job]  # running first, then the queue in run order, at most the limit asked for
    waiting: int  # every queued job, those beyond the limit too
    paused: str | None  # why the queue is paused, or None


class JobStore:
    def __init__(self, path: Path | str, *, lease_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease_seconds = lease_seconds
        self._lock = threading.RLock()
        self._db = self._connect()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._tx() as c:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
        # Listings get their own connection: under WAL a reader never blocks the runner's writes,
        # so a GUI refreshing a long queue does not delay the running job's checkpoints.
        self._read_lock = threading.Lock()
        self._reader = self._connect()

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
            yield self._reader

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds SQLite's write lock from its first statement."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _event(c: sqlite3.Connection, job_id: str, status: JobStatus, detail: str = "") -> None:
        c.execute(
            "INSERT INTO events (job_id, status, ts, detail) VALUES (?, ?, ?, ?)",
            (job_id, status.value, utcnow().isoformat(), detail),
        )

    # -- submit --------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, priority: int = 0) -> str:
        return self.submit_many([spec], priority)[0]

    def submit_many(
        self, specs: Iterable[JobSpec], priority: int = 0, retried_from: str | None = None
    ) -> list[str]:
        """Queue many jobs in one transaction: all of them, or none."""
        now = utcnow().isoformat()
        rows = [(uuid.uuid4().hex, spec.to_json(), spec.prompt) for spec in specs]
        with self._tx() as c:
            start = c.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()[0]
            c.executemany(
                "INSERT INTO jobs (id, spec, prompt, status, priority, position, created_at,"
                " retried_from) VALUES (?, ?, ?, 'QUEUED', ?, ?, ?, ?)",
                [
                    (job_id, spec_json, prompt, priority, start + i + 1, now, retried_from)
                    for i, (job_id, spec_json, prompt) in enumerate(rows)
                ],
            )
            c.executemany(
                "INSERT INTO events (job_id, status, ts, detail) VALUES (?, 'QUEUED', ?, '')",
                [(job_id, now) for job_id, _, _ in rows],
            )
        return [job_id for job_id, _, _ in rows]

    # -- claim, lease, finish ------------------------------------------------------------------

    def claim_next(self, owner: str) -> Job | None:
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
            c.execute(
                "UPDATE jobs SET status = 'RUNNING', owner = ?, lease_until = ?,"
                " started_at = ?, attempts = attempts + 1, cancel_requested = 0 WHERE id = ?",
                (owner, time.time() + self.lease_seconds, utcnow().isoformat(), row["id"]),
            )
            self._event(c, row["id"], JobStatus.RUNNING, owner)
            return self._get(c, row["id"])

    def renew_lease(self, job_id: str, owner: str) -> bool:
        """Extend the lease; returns whether a cancel was requested (from any process)."""
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (time.time() + self.lease_seconds, job_id, owner),
            )
            row = c.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def save_checkpoint(self, job_id: str, owner: str, checkpoint: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET checkpoint = ? WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (_dumps(checkpoint), job_id, owner),
            )

    def finish(self, job_id: str, owner: str, outcome: JobOutcome) -> bool:
        """Record the outcome; False if this owner no longer holds the job (lease lost)."""
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
                    _dumps(outcome.result),
                    _dumps(outcome.error) if outcome.error else None,
                    job_id,
                    owner,
                ),
            )
            if cur.rowcount:
                detail = (outcome.error or {}).get("message", "") if outcome.error else ""
                self._event(c, job_id, outcome.status, str(detail)[:500])
            return bool(cur.rowcount)

    def release(self, job_id: str, owner: str, detail: str) -> bool:
        """Give a running job back to the queue (a clean shutdown): it resumes from its
        checkpoint at the next start, and the interrupted attempt does not count as a crash."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET status = 'QUEUED', owner = NULL, lease_until = NULL,"
                " attempts = MAX(0, attempts - 1),"
                " position = (SELECT COALESCE(MIN(position), 1) - 1 FROM jobs)"
                " WHERE id = ? AND owner = ? AND status = 'RUNNING'",
                (job_id, owner),
            )
            if cur.rowcount:
                self._event(c, job_id, JobStatus.QUEUED, detail)
            return bool(cur.rowcount)

    # -- recovery ------------------------------------------------------------------------------

    def recover(self, max_attempts: int = 3) -> list[tuple[str, JobStatus]]:
        """Jobs left RUNNING by a dead runner: re-queue them, or quarantine after N attempts."""
        recovered: list[tuple[str, JobStatus]] = []
        with self._tx() as c:
            rows = c.execute(
                "SELECT id, owner, lease_until, attempts FROM jobs WHERE status = 'RUNNING'"
            ).fetchall()
            now = time.time()
            for row in rows:
                expired = row["lease_until"] is None or row["lease_until"] < now
                if not (expired or _owner_is_dead(row["owner"])):
                    continue
                if row["attempts"] >= max_attempts:
                    reason = (
                        f"quarantined: crashed the runner {row['attempts']} times; "
                        "not retried automatically"
                    )
                    error = {
                        "type": "Quarantined",
                        "message": reason,
                        "stage": None,
                        "image_index": None,
                        "cause_chain": [],
                        "artifacts": [],
                    }
                    c.execute(
                        "UPDATE jobs SET status = 'FAILED', finished_at = ?, error = ?,"
                        " owner = NULL, lease_until = NULL WHERE id = ?",
                        (utcnow().isoformat(), _dumps(error), row["id"]),
                    )
                    self._event(c, row["id"], JobStatus.FAILED, reason)
                    recovered.append((row["id"], JobStatus.FAILED))
                else:
                    # Back to the front of its priority group: it was already running.
                    c.execute(
                        "UPDATE jobs SET status = 'QUEUED', owner = NULL, lease_until = NULL,"
                        " position = (SELECT COALESCE(MIN(position), 1) - 1 FROM jobs)"
                        " WHERE id = ?",
                        (row["id"],),
                    )
                    self._event(c, row["id"], JobStatus.QUEUED, "recovered after runner died")
                    recovered.append((row["id"], JobStatus.QUEUED))
        return recovered

    # -- user operations -----------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobStatus:
        """QUEUED becomes CANCELLED at once; RUNNING gets a cancel request for its runner.
        Returns the status the job had before."""
        with self._tx() as c:
            status = self._status(c, job_id)
            if status == JobStatus.QUEUED:
                c.execute(
                    "UPDATE jobs SET status = 'CANCELLED', finished_at = ? WHERE id = ?",
                    (utcnow().isoformat(), job_id),
                )
                self._event(c, job_id, JobStatus.CANCELLED, "cancelled while queued")
            if status == JobStatus.RUNNING:
                c.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return status

    def retry(self, job_id: str) -> str:
        job = self.get(job_id)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise QueueError(f"job {job.short_id} is {job.status}; only FAILED or CANCELLED retry")
        return self.submit_many([job.spec], job.priority, retried_from=job_id)[0]

    def move(self, job_id: str, where: Move) -> None:
        with self._tx() as c:
            order = c.execute(
                "SELECT id, priority, position FROM jobs WHERE status = 'QUEUED'"
                " ORDER BY priority DESC, position"
            ).fetchall()
            ids = [r["id"] for r in order]
            if job_id not in ids:
                raise QueueError(f"job {job_id[:8]} is not queued")
            i = ids.index(job_id)
            target = {"up": i - 1, "down": i + 1, "front": 0, "back": len(ids) - 1}[where]
            if target == i or not 0 <= target < len(ids):
                return
            anchor = order[target]
            if where in ("front", "back"):
                position = anchor["position"] + (-1 if where == "front" else 1)
            else:
                step = -1 if where == "up" else 1
                beyond = target + step
                same_group = (
                    0 <= beyond < len(ids) and order[beyond]["priority"] == anchor["priority"]
                )
                far = order[beyond]["position"] if same_group else anchor["position"] + step
                position = (anchor["position"] + far) / 2
            c.execute(
                "UPDATE jobs SET priority = ?, position = ? WHERE id = ?",
                (anchor["priority"], position, job_id),
            )

    def remove(self, job_id: str) -> None:
        with self._tx() as c:
            status = self._status(c, job_id)
            if status == JobStatus.RUNNING:
                raise QueueError(f"job {job_id[:8]} is running; cancel it first")
            c.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def clear_finished(self) -> int:
        with self._tx() as c:
            return c.execute(
                "DELETE FROM jobs WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')"
            ).rowcount

    def pause(self, reason: str = "paused by the user") -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES ('paused', ?)", (reason,))

    def resume(self) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM meta WHERE key = 'paused'")

    def paused(self) -> str | None:
        """The reason the queue is paused, or None when it runs."""
        with self._read() as db:
            return self._paused(db)

    @staticmethod
    def _paused(c: sqlite3.Connection) -> str | None:
        row = c.execute("SELECT value FROM meta WHERE key = 'paused'").fetchone()
        return row["value"] if row else None

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
        return rows[0]["id"]

    def list_jobs(
        self,
        statuses: Iterable[JobStatus] | None = None,
        text: str | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        """Running first, then the queue in run order, then finished jobs newest first."""
        with self._read() as db:
            rows = self._select(db, statuses, text, limit)
        return [_job(r) for r in rows]

    def queue_view(self, limit: int) -> QueueView:
        """The running job and the head of the queue, with the full count, as of one moment."""
        with self._read() as db:
            db.execute("BEGIN")  # one read transaction: the parts agree with each other
            try:
                rows = self._select(db, [JobStatus.RUNNING, JobStatus.QUEUED], None, limit)
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
    ) -> list[sqlite3.Row]:
        where, params = self._filter(statuses, text)
        return db.execute(
            f"SELECT * FROM jobs {where} ORDER BY"
            " CASE status WHEN 'RUNNING' THEN 0 WHEN 'QUEUED' THEN 1 ELSE 2 END,"
            " CASE WHEN status = 'QUEUED' THEN -priority END, position, finished_at DESC"
            " LIMIT ?",
            (*params, limit),
        ).fetchall()

    def history(
        self, statuses: Iterable[JobStatus] | None = None, text: str | None = None, limit: int = 200
    ) -> list[Job]:
        finished = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
        wanted = [s for s in (statuses or finished) if s in finished]
        where, params = self._filter(wanted, text)
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM jobs {where} ORDER BY finished_at DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [_job(r) for r in rows]

    @staticmethod
    def _filter(statuses: Iterable[JobStatus] | None, text: str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if statuses is not None:
            wanted = [JobStatus(s).value for s in statuses]
            clauses.append(f"status IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            params += wanted
        if text:
            clauses.append("prompt LIKE ? ESCAPE '\\'")
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def events_since(self, seq: int = 0, limit: int = 10_000) -> list[StatusEvent]:
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [
            StatusEvent(r["seq"], r["job_id"], JobStatus(r["status"]), _dt(r["ts"]), r["detail"])  # type: ignore[arg-type]
            for r in rows
        ]

    def last_seq(self) -> int:
        """Where a consumer starts to hear only what happens from now on."""
        with self._read() as db:
            return db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@functools.lru_cache(maxsize=4096)
def _spec(job_id: str, spec_json: str) -> JobSpec:
    """Specs are immutable once queued, so each is validated once, not on every listing."""
    return JobSpec.from_json(spec_json)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()  # stored as TEXT, readable with any SQLite tool


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        spec=_spec(row["id"], row["spec"]),
        status=JobStatus(row["status"]),
        priority=row["priority"],
        position=row["position"],
        created_at=_dt(row["created_at"]),  # type: ignore[arg-type]
        started_at=_dt(row["started_at"]),
        finished_at=_dt(row["finished_at"]),
        attempts=row["attempts"],
        checkpoint=orjson.loads(row["checkpoint"]),
        result=orjson.loads(row["result"]),
        error=orjson.loads(row["error"]) if row["error"] else None,
        retried_from=row["retried_from"],
        cancel_requested=bool(row["cancel_requested"]),
    )
