"""Files that can hold prompts or secrets, written owner-only (0600, folders 0700) on POSIX.

The mode is set when the file is made, never loosened afterwards, and does not depend on the
folder it lands in: a home the user made (0755) gets the same private files as one StableNew
made.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def make_folder(folder: Path) -> None:
    """`mkdir -p` where each folder it makes is owner-only (Path.mkdir's mode reaches only the
    last one); folders that exist are left as their owner set them."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another process meanwhile
            path.mkdir(mode=FOLDER_MODE)


def write(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace `path` with `data` atomically, owner-only from its first byte."""
    make_folder(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)  # O_CREAT's mode misses a leftover temp file
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def open_append(path: Path) -> int:
    """A descriptor appending to `path`, made owner-only if it is new."""
    make_folder(path.parent)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
