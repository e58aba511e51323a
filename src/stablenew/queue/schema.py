"""The job database's schema, versioned with `PRAGMA user_version`, and its migrations.

Each step takes the database from version N-1 to N inside the opening transaction, so a database
written by any earlier release opens and keeps its jobs. Version 1 is release 0.1.0 (which set no
user_version; its tables tell it apart from an empty file). Add a step; never edit an old one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import orjson

from stablenew.errors import StoreError

V1 = """
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

# v2: the event log carries every lifecycle event (not only status changes), with the process
# that wrote it; each finished image is a row of its own (the per-image checkpoint).
V2 = """
CREATE TABLE events_v2 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT,
    status TEXT,
    source TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    stage TEXT,
    image_index INTEGER,
    total INTEGER,
    message TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO events_v2 (seq, ts, kind, job_id, status, source, message)
    SELECT seq, ts,
        CASE status
            WHEN 'QUEUED' THEN CASE WHEN detail = '' THEN 'job_queued' ELSE 'job_recovered' END
            WHEN 'RUNNING' THEN 'job_started'
            WHEN 'COMPLETED' THEN 'job_completed'
            WHEN 'FAILED' THEN 'job_failed'
            ELSE 'job_cancelled' END,
        job_id, status, 'store', detail
    FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_job ON events(job_id, seq);
CREATE TABLE job_images (
    job_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    image_index INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (job_id, stage, image_index)
) WITHOUT ROWID;
"""


# v3: webhook deliveries, durable: one written with the event it announces is sent after a
# crash too.
V3 = """
CREATE TABLE webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    delivered_at REAL,
    failed_at REAL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(delivered_at, failed_at, next_at);
"""


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def _v1(c: sqlite3.Connection) -> None:
    for statement in _statements(V1):
        c.execute(statement)


def _v2(c: sqlite3.Connection) -> None:
    for statement in _statements(V2):
        c.execute(statement)
    # A checkpoint of release 0.1.0 kept one seed and every finished stage's records inline.
    rows = c.execute("SELECT id, spec, checkpoint FROM jobs WHERE checkpoint != '{}'").fetchall()
    for job_id, spec_json, checkpoint_json in rows:
        old = orjson.loads(checkpoint_json)
        if not isinstance(old, dict) or "run_dir" not in old:
            c.execute("UPDATE jobs SET checkpoint = '{}' WHERE id = ?", (job_id,))
            continue
        images = int(orjson.loads(spec_json).get("images", 1))
        seed = int(old.get("seed", 0))
        done = []
        for stage in old.get("stages", []):
            done.append(stage["stage"])
            c.executemany(
                "INSERT OR REPLACE INTO job_images VALUES (?, ?, ?, ?)",
                [
                    (job_id, stage["stage"], image["index"], orjson.dumps(image).decode())
                    for image in stage.get("images", [])
                ],
            )
        new = {"run_dir": old["run_dir"], "seeds": [seed + i for i in range(images)]}
        c.execute(
            "UPDATE jobs SET checkpoint = ? WHERE id = ?",
            (orjson.dumps({**new, "stages_done": done}).decode(), job_id),
        )


def _v3(c: sqlite3.Connection) -> None:
    for statement in _statements(V3):
        c.execute(statement)


def _v4(c: sqlite3.Connection) -> None:
    # Why a queued job waits (no backend of the pool can run it), for every door to show.
    c.execute("ALTER TABLE jobs ADD COLUMN note TEXT NOT NULL DEFAULT ''")


def _v5(c: sqlite3.Connection) -> None:
    # A pool's backends look past jobs pinned to others, and say why those wait, without
    # parsing every queued spec (queue.store.PIN is this expression).
    c.execute("CREATE INDEX jobs_pin ON jobs(status, json_extract(spec, '$.backend'))")


def _v6(c: sqlite3.Connection) -> None:
    # What the owner knows of each backend (set aside and why, restarts, loaded model, job),
    # for clients to show: probing a URL from outside tells none of it.
    c.execute(
        "CREATE TABLE backends (name TEXT PRIMARY KEY, state TEXT NOT NULL, url TEXT,"
        " loaded_model TEXT, current_job TEXT, held TEXT, restarts INTEGER NOT NULL)"
    )


def _v7(c: sqlite3.Connection) -> None:
    # Each running job's latest step and live preview, for clients to show: the owner keeps
    # them out of the event log (many a second), so it replaces one row per job instead.
    c.execute(
        "CREATE TABLE live_progress (job_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
        " pid INTEGER NOT NULL, stage TEXT, image_index INTEGER, total INTEGER,"
        " message TEXT NOT NULL, step INTEGER NOT NULL, steps INTEGER NOT NULL,"
        " eta REAL NOT NULL, fraction REAL NOT NULL, preview_number INTEGER NOT NULL,"
        " preview BLOB)"
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
VERSION = len(MIGRATIONS)


def current_version(c: sqlite3.Connection) -> int:
    version = int(c.execute("PRAGMA user_version").fetchone()[0])
    if (
        version == 0
        and c.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
        ).fetchone()
    ):
        return 1  # release 0.1.0 set no user_version
    return version


def migrate(c: sqlite3.Connection) -> tuple[int, int]:
    """Bring the schema up to date (inside the caller's transaction); returns (from, to)."""
    start = current_version(c)
    if start > VERSION:
        raise StoreError(
            f"the job database has schema version {start}, newer than this StableNew knows "
            f"({VERSION}): upgrade StableNew"
        )
    for step in MIGRATIONS[start:]:
        step(c)
    if start != VERSION:
        c.execute(f"PRAGMA user_version = {VERSION}")
    return start, VERSION
