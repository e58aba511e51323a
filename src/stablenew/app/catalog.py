"""The backend's lists for checking jobs at submit time, cached until the backend restarts.

When the backend can be asked, a job naming a sampler, model, upscaler, LoRA or embedding it
does not have is refused before anything is queued, with the closest names. When it cannot
(it is starting, or another process owns it and is away), the job is queued and the pipeline
checks again before its first call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from stablenew.errors import BackendError, InputError
from stablenew.jobs.spec import JobSpec
from stablenew.pipeline.names import unknown_names
from stablenew.webui.client import Health, WebUIClient
from stablenew.webui.lists import BackendLists, fetch_lists


class Catalog:
    def __init__(self, client: Callable[[], WebUIClient | None]) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._lists: BackendLists | None = None

    def invalidate(self) -> None:
        """The backend (re)started: its lists may have changed."""
        with self._lock:
            self._lists = None

    def lists(self, refresh: bool = False) -> BackendLists | None:
        """The lists, or None when the backend cannot be asked now."""
        with self._lock:
            if self._lists is not None and not refresh:
                return self._lists
        client = self._client()
        if client is None:
            return None
        try:
            if client.health() is not Health.OK:
                return None
            lists = fetch_lists(client)
        except BackendError:
            return None
        with self._lock:
            self._lists = lists
        return lists

    def check(self, specs: Sequence[JobSpec]) -> None:
        """Refuse the lot if any job names something the backend does not have."""
        lists = self.lists()
        if lists is None:
            return
        problems: list[str] = []
        for n, spec in enumerate(specs, start=1):
            where = f"job {n}: " if len(specs) > 1 else ""
            problems += [where + p for p in unknown_names(spec, lists)]
        if problems:
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise InputError("; ".join(problems[:10]) + more + "; nothing was queued")
