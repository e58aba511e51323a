"""The event stream: the store's lifecycle log as Server-Sent Events, replayable by `seq`.

One reader thread (the hub) tails the store's event log, woken by the bus when this process
records an event and polling for what other processes record, and hands each new event, made
into an SSE frame once, to every connected client. A client that asks for a replay
(`Last-Event-ID: N` or `?after=N`) reads events after N straight from the store first, then
takes the hub's frames with a larger seq: the store is the buffer, so nothing is missed and
nothing is sent twice.

Nothing here can slow the runner: the bus subscriber only notes the event and wakes the hub.
A client that cannot keep up (its pending frames pass LIMIT) stops receiving frames from the
hub and catches up from the store instead, so a slow or dead client holds no more than LIMIT
frames of memory. Step progress is live only: it carries no `id:`, and a client gets only the
latest progress of each job when it is behind (coalesced); lifecycle events never are.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from stablenew.app.controllers import JobExecutionController
from stablenew.app.events import EventKind, JobLifecycleLogEvent
from stablenew.app.views import EventView

LIMIT = 2000  # frames a client may have pending before it catches up from the store
POLL = 0.2  # seconds: how soon another process's events reach the stream
KEEPALIVE = 15.0  # seconds: a comment line keeps proxies from closing an idle stream
BATCH = 0.02  # seconds: the shortest time between two fan-outs (events in between go together)
REPLAY_PAGE = 500


def event_data(event: JobLifecycleLogEvent) -> dict[str, Any]:
    """The JSON of one event: EventView's fields plus the status it gives its job."""
    data = EventView.of(event).model_dump(mode="json")
    data["status"] = event.status.value if event.status is not None else None
    return data


def frame(event: JobLifecycleLogEvent) -> bytes:
    data = orjson.dumps(event_data(event), default=str)
    head = f"id: {event.store_seq}\n" if event.store_seq is not None else ""
    return f"{head}event: {event.kind.value}\n".encode() + b"data: " + data + b"\n\n"


@dataclass(eq=False)
class StreamClient:
    job_id: str | None  # only this job's events (None: all)
    progress: bool  # wants live progress events
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    frames: list[tuple[int, bytes]] = field(default_factory=list)  # (seq, frame), in order
    latest_progress: dict[str | None, bytes] = field(default_factory=dict)
    behind: bool = False  # fell LIMIT frames behind: catch up from the store
    closed: bool = False

    def wants(self, event: JobLifecycleLogEvent) -> bool:
        return self.job_id is None or event.job_id == self.job_id

    def take(self) -> tuple[list[tuple[int, bytes]], list[bytes], bool]:
        with self.lock:
            frames, self.frames = self.frames, []
            progress = list(self.latest_progress.values())
            self.latest_progress.clear()
            behind, self.behind = self.behind, False
        return frames, progress, behind


class EventHub:
    def __init__(
        self,
        jobs: JobExecutionController,
        on_clients: Callable[[int], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.on_clients = on_clients
        self._lock = threading.Lock()
        self._clients: list[StreamClient] = []
        self._cursor = 0
        self._wake = threading.Event()
        self._dirty = True  # a lifecycle event may be in the store: read it now
        self._progress: dict[str | None, JobLifecycleLogEvent] = {}
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._cursor = self.jobs.last_seq()
        self._unsubscribe = self.jobs.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Every stream ends (the server is stopping)."""
        self._closing.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.closed = True
        self._notify(clients)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    # -- the bus side (the runner's thread: note and wake, nothing more) ---------------------

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        if event.kind == EventKind.PROGRESS:
            self._progress[event.job_id] = event  # one dict store: the latest one wins
        else:
            self._dirty = True
        self._wake.set()

    # -- the hub's thread ----------------------------------------------------------------------

    def _run(self) -> None:
        last_read = 0.0
        last_fan_out = 0.0
        while not self._closing.is_set():
            self._wake.wait(POLL)
            # At most one fan-out per BATCH: a burst of events goes out together, which costs
            # the runner (same process, same GIL) far less than one fan-out per event.
            pause = BATCH - (time.monotonic() - last_fan_out)
            if pause > 0:
                self._closing.wait(pause)
            self._wake.clear()
            progress, self._progress = self._progress, {}
            events: list[JobLifecycleLogEvent] = []
            now = time.monotonic()
            if self._dirty or now - last_read >= POLL:
                self._dirty = False
                last_read = now
                try:
                    events = self.jobs.events_since(self._cursor, limit=1000)
                except Exception:  # a busy or closing store: the next turn reads again
                    self._dirty = True
                    continue
                if len(events) == 1000:
                    self._dirty = True  # more to read: come back at once
                    self._wake.set()
            if events or progress:
                self._fan_out(events, list(progress.values()))
                last_fan_out = time.monotonic()

    def _fan_out(
        self, events: list[JobLifecycleLogEvent], progress: list[JobLifecycleLogEvent]
    ) -> None:
        made = [(e, e.store_seq or 0, frame(e)) for e in events]
        progress_frames = [(e, frame(e)) for e in progress]
        with self._lock:  # a client registering now gets a cursor on one side of this batch
            if made:
                self._cursor = made[-1][1]
            clients = list(self._clients)
        touched: list[StreamClient] = []
        for client in clients:
            got = False
            with client.lock:
                for event, seq, data in made:
                    if not client.wants(event) or client.behind:
                        continue
                    if len(client.frames) >= LIMIT:
                        client.frames.clear()
                        client.behind = True
                        continue
                    client.frames.append((seq, data))
                    got = True
                if client.progress:
                    for event, data in progress_frames:
                        if client.wants(event):
                            client.latest_progress[event.job_id] = data
                            got = True
                got = got or client.behind
            if got:
                touched.append(client)
        if touched:
            self._notify(touched)

    def _notify(self, clients: list[StreamClient]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def wake_all() -> None:
            for client in clients:
                client.wake.set()

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(wake_all)

    # -- a client ------------------------------------------------------------------------------

    def register(self, job_id: str | None, progress: bool) -> tuple[StreamClient, int]:
        """A new client, and the seq it has everything up to (the hub's cursor)."""
        client = StreamClient(job_id, progress)
        with self._lock:
            self._clients.append(client)
            cursor = self._cursor
            count = len(self._clients)
        if self.on_clients is not None:
            self.on_clients(count)
        return client, cursor

    def unregister(self, client: StreamClient) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
            count = len(self._clients)
        if self.on_clients is not None:
            self.on_clients(count)

    async def stream(
        self, after: int | None, job_id: str | None, progress: bool
    ) -> AsyncIterator[bytes]:
        """The frames of one connection: a replay after `after` (if given), then live."""
        client, cursor = self.register(job_id, progress)
        last = cursor if after is None else after
        try:
            yield b"retry: 2000\n\n"
            if after is not None:
                async for data, seq in self._replay(after, job_id):
                    last = seq
                    yield data
            while not client.closed:
                try:
                    await asyncio.wait_for(client.wake.wait(), KEEPALIVE)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                client.wake.clear()
                frames, progress_frames, behind = client.take()
                if behind:  # the hub stopped feeding it: the store has everything since `last`
                    async for data, seq in self._replay(last, job_id):
                        last = seq
                        yield data
                # One write for everything pending: a burst costs one send, not one per event.
                batch = [data for seq, data in frames if seq > last]
                if frames:
                    last = max(last, frames[-1][0])
                batch += progress_frames
                if batch:
                    yield b"".join(batch)
        finally:
            self.unregister(client)

    async def _replay(self, after: int, job_id: str | None) -> AsyncIterator[tuple[bytes, int]]:
        last = after
        while True:
            events = await run_in_threadpool(self.jobs.events_since, last, job_id, REPLAY_PAGE)
            for event in events:
                last = event.store_seq or last
                yield frame(event), last
            if len(events) < REPLAY_PAGE:
                return
