"""UiDispatcher: the one way onto the Tk thread.

Any thread may `post` a callable; the Tk thread drains the queue with `after`. Posts with the same
key are coalesced (only the latest runs), so a burst of progress events costs one redraw.
Background work goes through `run`: a single worker thread, with the result posted back.
"""

from __future__ import annotations

import logging
import queue
import threading
import tkinter as tk
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("stablenew.gui")


class UiDispatcher:
    def __init__(self, root: tk.Misc, interval_ms: int = 16) -> None:
        self.root = root
        self.interval_ms = interval_ms
        self._queue: queue.SimpleQueue[tuple[str | None, Callable[[], None]]] = queue.SimpleQueue()
        self._latest: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-work")
        self._closed = False
        self.accepting = True  # False once closing began: late refreshes must not touch the store
        self._job = root.after(self.interval_ms, self._drain)

    def post(self, fn: Callable[[], None], key: str | None = None) -> None:
        """Run `fn` on the Tk thread soon; with a key, only the latest post of that key runs."""
        if key is not None:
            with self._lock:
                pending = key in self._latest
                self._latest[key] = fn
            if pending:
                return
        self._queue.put((key, fn))

    def run(
        self,
        work: Callable[[], Any],
        done: Callable[[Any], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> Future[Any] | None:
        """Run `work` off the Tk thread, then `done(result)` or `failed(error)` on it."""
        if not self.accepting:
            log.debug("closing: background work dropped")
            return None

        def finished(future: Future[Any]) -> None:
            error = future.exception()
            if error is not None:
                if failed is not None:
                    self.post(lambda: failed(error))
                else:
                    log.error("background work failed", exc_info=error)
            elif done is not None:
                result = future.result()
                self.post(lambda: done(result))

        future = self._work.submit(work)
        future.add_done_callback(finished)
        return future

    def _drain(self) -> None:
        if self._closed:
            return
        for _ in range(1000):  # bounded: the loop must stay responsive under a flood
            try:
                key, fn = self._queue.get_nowait()
            except queue.Empty:
                break
            if key is not None:
                with self._lock:
                    fn = self._latest.pop(key, fn)
            try:
                fn()
            except Exception:
                log.exception("UI update failed")
        self._job = self.root.after(self.interval_ms, self._drain)

    def close(self, wait: bool = True) -> None:
        self._closed = True
        self._work.shutdown(wait=wait, cancel_futures=True)
