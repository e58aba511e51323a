"""Whole lines to stdout/stderr from any thread (print() writes the text and the newline
separately, so lines from two threads can interleave)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

_lock = threading.Lock()


def say(line: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    with _lock:
        out.write(line + "\n")
        out.flush()


def err(line: str) -> None:
    say(line, sys.stderr)
