"""How much room a folder's file system has left, for the messages that blame a full disk."""

from __future__ import annotations

import shutil
from pathlib import Path

# Below this SQLite cannot count on finishing a transaction (pages, journal, WAL growth): an
# I/O error with less room than this is a full disk, whatever the OS called it.
NEARLY_FULL = 1024 * 1024


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the file system that holds `folder` (or its nearest existing parent);
    None when it cannot be told."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def free_mb(folder: Path) -> int | None:
    free = free_bytes(folder)
    return None if free is None else free // 2**20


def nearly_full(folder: Path) -> bool:
    free = free_bytes(folder)
    return free is not None and free < NEARLY_FULL


def describe_free(folder: Path) -> str:
    """Free space as "12 KB free", for a message; empty when it cannot be told."""
    free = free_bytes(folder)
    if free is None:
        return ""
    if free >= 2**20:
        return f"{free // 2**20:,} MB free"
    if free >= 1024:
        return f"{free // 1024:,} KB free"
    return f"{free} bytes free"
