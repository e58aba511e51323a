"""A virtual X display for headless runs of the desktop app (tests, screenshots, benchmarks).

Development support, not part of the shipped package.
"""

from __future__ import annotations

import os
import subprocess


def start_xvfb(size: str = "1366x768x24") -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a display it picks itself (safe when several start at once, as parallel
    test workers do); returns the process and ':N'."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", size, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write,),
    )
    os.close(write)
    with os.fdopen(read) as answer:
        number = answer.readline().strip()  # written once the display accepts clients
    if not number.isdigit():
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"
