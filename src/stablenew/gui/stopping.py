"""SIGTERM and SIGHUP to the desktop app: close like the close button, and still stop the runner
and the managed backend when the Tk loop is too busy to get to it.

A Python signal handler runs only between bytecodes of the main thread, and the close it asks
for runs only when the Tk loop turns: a loop stuck in Tk's own C code (a layout that never
settles) would ignore the signal for good, and a `kill -9` after that orphans the backend. So the
signal is also heard on a thread (through the interpreter's wakeup fd, written by its C-level
handler whatever the main thread does), and if the Tk loop has not begun the close within a
grace period, that thread stops the runner and the backend and ends the process.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stablenew.gui.window import MainWindow

log = logging.getLogger("stablenew.gui")

CLOSE_GRACE = 5.0  # seconds the Tk loop has to begin the close before it is done without it


class Terminator:
    """The handler for a stop signal: `terminator(signum)` from the signal handler."""

    def __init__(
        self, window: MainWindow, leave: Callable[[], None], grace: float = CLOSE_GRACE
    ) -> None:
        self.window = window
        self.leave = leave  # ends the process (the command line's exit code for a signal)
        self.grace = grace
        self.signals: list[int] = []
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None

    def __call__(self, signum: int) -> None:
        # From the signal handler (between any two bytecodes of the Tk thread) or the listening
        # thread, whichever comes first: only queue the close and start the watchdog.
        with self._lock:
            self.signals.append(signum)
            first = self._watch is None
            if first:
                self._watch = threading.Thread(target=self._watchdog, name="gui-stop", daemon=True)
        self.window.ui.post(self.window.close)
        if first and self._watch is not None:
            self._watch.start()

    def listen(
        self, signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)
    ) -> Callable[[], None]:
        """Hear `signums` on a thread too (their Python handlers must be set: the interpreter
        writes to the wakeup fd only for those). Call on the main thread; returns the undo."""
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

        def hear() -> None:
            while True:
                try:
                    data = reader.recv(64)
                except OSError:
                    return
                if not data:
                    return
                for signum in data:
                    if signum in signums:
                        self(signum)

        threading.Thread(target=hear, name="gui-signals", daemon=True).start()

        def undo() -> None:
            signal.set_wakeup_fd(previous)
            writer.close()  # the reader sees the end
            reader.close()

        return undo

    def _watchdog(self) -> None:
        if self.window.close_begun.wait(self.grace):
            return  # the Tk loop is closing the window: the close button's way
        self.window.closing = True  # a close the loop gets to later does nothing
        print(
            "stablenew: the window does not answer; stopping the runner and the backend",
            file=sys.stderr,
            flush=True,
        )
        try:
            self.window.services.close()
        except Exception:  # leaving matters more than a clean report of why stopping failed
            log.exception("stopping after a signal failed")
        self.leave()
