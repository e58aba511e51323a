"""`stablenew queue recover`: keep what a damaged job database still holds.

The damaged file (and its -wal/-shm) is moved aside, never deleted; every job row that can
still be read, row by row, is copied into a fresh database of the current schema, with the
finished images of running jobs so they resume where they were. A job that was RUNNING is
queued again (its runner is gone). A paused queue stays paused, with its reason; when the pause
cannot be read the recovered queue is paused (running every job the user may have held back is
the worse mistake). Only a process that can take the home lock may do this: the
owner has the database open.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from stablenew.errors import HomeOwnedError, StoreError
from stablenew.jobs.spec import JobSpec
from stablenew.queue.home import HomeLock
from stablenew.queue.store import JobStore

JOB_COLUMNS = (
    "id, spec, prompt, status, priority, position, created_at, started_at, finished_at,"
    " attempts, checkpoint, result, error, retried_from"
)


PAUSE_UNREADABLE = (
    "paused by `queue recover`: the damaged database did not say whether the queue was paused;"
    " check the jobs, then resume"
)


@dataclass(frozen=True)
class SalvageReport:
    database: Path
    kept: int
    unreadable: int
    aside: Path | None
    problem: str | None
    paused: str | None = None  # why the recovered queue is paused, or None when it runs

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.aside is None and self.problem is None:
            return f"{self.database} is healthy: nothing to recover"
        lines = [f"kept {self.kept} job(s) in a fresh {self.database}"]
        if self.unreadable:
            lines.append(f"{self.unreadable} row(s) could not be read and were left behind")
        if self.aside is not None:
            lines.append(f"the damaged file is kept as {self.aside}")
        if self.paused:
            lines.append(f"the queue is paused: {self.paused} (`stablenew queue resume` runs it)")
        if self.problem:
            lines.append(f"problem: {self.problem}")
        return "\n".join(lines)


def salvage(path: Path, home: Path) -> SalvageReport:
    lock = HomeLock(home)
    if not lock.try_acquire():
        owner = lock.owner()
        who = owner.describe() if owner else "another process"
        raise HomeOwnedError(f"the home is owned by {who}: stop it before recovering jobs.db")
    try:
        if not path.exists():
            return SalvageReport(path, 0, 0, None, None)
        if path.stat().st_size and _healthy(path):
            return SalvageReport(path, 0, 0, None, None)
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                source.replace(Path(f"{aside}{suffix}"))
        rows, images, unreadable = _read(aside)
        paused = _pause(aside)
        if paused is None and rows:
            paused = PAUSE_UNREADABLE
        fresh = JobStore(path)  # a fresh database of the current schema
        try:
            if paused:
                fresh.pause(paused, source="recover")
        finally:
            fresh.close()
        kept = _write(path, rows, images)
        return SalvageReport(path, kept, unreadable + len(rows) - kept, aside, None, paused or None)
    except (OSError, sqlite3.Error, StoreError) as exc:
        return SalvageReport(path, 0, 0, None, str(exc))
    finally:
        lock.release()


def _pause(path: Path) -> str | None:
    """The damaged queue's pause reason; "" when it ran; None when that cannot be read."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'paused'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else ""


def _healthy(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return bool(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    except sqlite3.Error:
        return False


def _read(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], int]:
    """Every job row that can be read, one by one (a damaged page loses its rows, not all)."""
    rows: list[tuple[object, ...]] = []
    images: list[tuple[object, ...]] = []
    unreadable = 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return rows, images, 0
    with contextlib.closing(db):
        try:
            last = db.execute("SELECT MAX(rowid) FROM jobs").fetchone()[0] or 0
        except sqlite3.Error:
            return rows, images, 0
        for rowid in range(1, int(last) + 1):
            try:
                row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE rowid = ?", (rowid,))
                found = row.fetchone()
            except sqlite3.Error:
                unreadable += 1
                continue
            if found is None:
                continue
            try:
                JobSpec.from_json(str(found[1]))
            except ValueError:
                unreadable += 1
                continue
            rows.append(tuple(found))
        with contextlib.suppress(sqlite3.Error):  # a release without per-image rows
            images = [tuple(r) for r in db.execute("SELECT * FROM job_images").fetchall()]
    return rows, images, unreadable


def _write(path: Path, rows: list[tuple[object, ...]], images: list[tuple[object, ...]]) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for row in rows:
            status = "QUEUED" if row[3] == "RUNNING" else row[3]
            db.execute(
                f"INSERT OR IGNORE INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                (*row[:3], status, *row[4:]),
            )
        kept = {str(r[0]) for r in rows}
        db.executemany(
            "INSERT OR IGNORE INTO job_images VALUES (?, ?, ?, ?)",
            [r for r in images if str(r[0]) in kept],
        )
    return len(rows)
