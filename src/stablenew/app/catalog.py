"""The backends' lists for checking jobs at submit time, cached until a backend restarts.

When the backends can be asked, a job naming a sampler, model, upscaler, LoRA or embedding
that no backend of the pool has (or, for a job pinned to a backend, that backend) is refused
before anything is queued, with the closest names. When one that might have it cannot be
asked (it is starting, or another process owns it and is away), the job is queued and the
pipeline checks again before its first call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from stablenew.errors import BackendError, InputError
from stablenew.jobs.spec import JobSpec
from stablenew.pipeline.names import Resolved, resolve
from stablenew.webui.client import Health, WebUIClient
from stablenew.webui.lists import BackendLists, fetch_lists, merged


@dataclass(frozen=True)
class CatalogMember:
    name: str
    client: Callable[[], WebUIClient | None]  # how to reach it now; None: it cannot be asked
    labels: frozenset[str] = field(default_factory=frozenset)


class Catalog:
    def __init__(self, members: Sequence[CatalogMember]) -> None:
        self._members = {m.name: m for m in members}
        self._lock = threading.Lock()
        self._lists: dict[str, BackendLists] = {}

    def invalidate(self, backend: str | None = None) -> None:
        """A backend (re)started: its lists may have changed. None: every backend."""
        with self._lock:
            if backend is None:
                self._lists.clear()
            else:
                self._lists.pop(backend, None)

    def lists(self, refresh: bool = False, backend: str | None = None) -> BackendLists | None:
        """One backend's lists (the first when not named), or None when it cannot be asked."""
        name = backend if backend is not None else next(iter(self._members))
        with self._lock:
            cached = self._lists.get(name)
            if cached is not None and not refresh:
                return cached
        member = self._members.get(name)
        client = member.client() if member is not None else None
        if client is None:
            return None
        try:
            if client.health() is not Health.OK:
                return None
            lists = fetch_lists(client)
        except BackendError:
            return None
        with self._lock:
            self._lists[name] = lists
        return lists

    def resolve(self, spec: JobSpec) -> Resolved:
        """`spec` in the spelling of the first backend that may run it and has its names, or
        why none can (no problems, spec unchanged: one cannot be asked, the pipeline checks
        before its first call)."""
        pin = spec.backend
        names = [m.name for m in self._members.values() if pin in (None, m.name) or pin in m.labels]
        if not names:
            known = ", ".join(sorted(self._members))
            return Resolved(spec, [f"no backend is named or labelled {pin!r} (backends: {known})"])
        first: list[str] | None = None
        each: list[BackendLists] = []
        for name in names:
            lists = self.lists(backend=name)
            if lists is None:
                return Resolved(spec, [])
            resolved = resolve(spec, lists)
            if not resolved.problems:
                return resolved
            each.append(lists)
            if first is None:
                first = resolved.problems
        if first is not None and len(names) > 1:
            # Name what the pool has between them, not only what the first backend has.
            which = "the pool" if pin is None else repr(pin)
            pooled = resolve(spec, merged(each), f"{which} ({len(names)} backends)").problems
            first = pooled or [f"{p} (on any of the {len(names)} backends)" for p in first]
        return Resolved(spec, first or [])

    def problems(self, spec: JobSpec) -> list[str]:
        """Why no backend that may run `spec` can: empty when one can, or cannot be asked."""
        return self.resolve(spec).problems

    def check(self, specs: Sequence[JobSpec]) -> list[JobSpec]:
        """The specs with their names in the backend's spelling; refuses the lot if any job
        names something no backend it may run on has."""
        problems: list[str] = []
        checked: list[JobSpec] = []
        for n, spec in enumerate(specs, start=1):
            where = f"job {n}: " if len(specs) > 1 else ""
            resolved = self.resolve(spec)
            problems += [where + p for p in resolved.problems]
            checked.append(resolved.spec)
        if problems:
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise InputError("; ".join(problems[:10]) + more + "; nothing was queued")
        return checked
