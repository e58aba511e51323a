"""The job database file: made whole or not at all, and its failures in words a user can act on.

A new jobs.db is initialised under a private temporary name and linked into place only when its
schema is written, so no process ever finds a half-made (0-byte) jobs.db of ours and takes it
for a damaged one, and a creation that fails (a full disk) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import uuid
from pathlib import Path

from stablenew import diskspace, private_files
from stablenew.errors import StoreError
from stablenew.queue.schema import migrate


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """A SQLite failure as something a user can act on."""
    text = str(exc)
    lowered = text.lower()
    # SQLite says "disk I/O error" when a write fails for want of room (WAL, -shm, journal):
    # on a (nearly) full disk that is the cause to name, not the folder's permissions.
    if "full" in lowered or ("disk i/o" in lowered and diskspace.nearly_full(path.parent)):
        return _full(path, text)
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return StoreError(
            f"{path} is damaged ({text}). `stablenew doctor` checks it; `stablenew queue "
            "recover` keeps every job that can still be read and sets the damaged file aside"
        )
    if "locked" in lowered or "busy" in lowered:
        return StoreError(f"{path} stayed busy (another process holds it): {text}")
    if "readonly" in lowered or "unable to open" in lowered or "disk i/o" in lowered:
        return StoreError(f"cannot use {path}: {text} (is its folder writable?)")
    return StoreError(f"{path}: {text}")


def _full(path: Path, text: str) -> StoreError:
    free = diskspace.describe_free(path.parent)
    room = f"{free}; " if free else ""
    return StoreError(f"the disk holding {path} is full ({room}{text}): free some space and retry")


def create_database(path: Path) -> None:
    """Make `path` a job database of the current schema unless it exists; owner-only (it
    holds every prompt; SQLite gives its -wal and -shm files the database's permissions)."""
    if path.exists():
        return
    try:
        private_files.make_folder(path.parent)
    except OSError as exc:
        raise _os_error(path, exc) from exc
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.new")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            migrate(db)
            db.execute("COMMIT")
        _publish(tmp, path)
    except sqlite3.Error as exc:
        raise store_error(path, exc) from exc
    except OSError as exc:
        raise _os_error(path, exc) from exc
    finally:
        for leftover in (tmp, Path(f"{tmp}-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> None:
    """Put the finished database in place without replacing one another process made."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process was first: its database (and its jobs) is the one
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A file system without hard links (FAT, some network shares): a rename is atomic
        # too, it only cannot refuse to replace, so look first (a far narrower window).
        if not path.exists():
            os.replace(tmp, path)


def _os_error(path: Path, exc: OSError) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _full(path, str(exc))
    return StoreError(f"cannot create {path}: {exc}")
