"""The event stream: a client that drops and reconnects with Last-Event-ID sees the store's
event log exactly (no gap, no duplicate); a slow client catches up from the store and never
holds more than a bounded number of frames; progress is live only."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import stablenew.api.sse as sse_module
from stablenew.api.sse import EventHub
from stablenew.app.events import EventKind, ProgressData
from stablenew.app.services import Services
from stablenew.queue.store import JobStore
from tests.api.conftest import Server, SseReader, fast_config, small


def test_reconnecting_with_last_event_id_sees_the_log_exactly(
    serve: Callable[..., Server], sse: Callable[..., SseReader], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    server = serve(home=home, config=fast_config("--step-ms", "10"))
    first = sse(f"{server.url}/api/v1/events", after=0)
    (job_id,) = server.post(
        "/api/v1/jobs", {"spec": small("replayed", images=10, steps=20)}
    ).json()["ids"]
    first.wait(lambda f: f.event == "stage_finished" and f.data["image_index"] == 3)
    first.close()  # the client drops mid-run
    seen = first.lifecycle()
    last = seen[-1].id
    assert last is not None
    again = sse(f"{server.url}/api/v1/events", {"Last-Event-ID": str(last)})
    again.finished(job_id)
    rest = again.lifecycle()
    union = [f.id for f in seen] + [f.id for f in rest]
    assert union == sorted(set(union)), "a gap or a duplicate across the reconnection"
    store = JobStore(home / "jobs.db")
    try:
        log = [e for e in store.events_since(0, limit=100_000) if e.store_seq <= union[-1]]
    finally:
        store.close()
    assert union == [e.store_seq for e in log]
    frames = {f.id: f for f in [*seen, *rest]}
    for event in log:
        frame = frames[event.store_seq]
        assert frame.event == event.kind.value and frame.data["job_id"] == event.job_id
        assert frame.data["status"] == (event.status.value if event.status else None)
    # ?after= replays the same way
    third = sse(f"{server.url}/api/v1/events", after=union[-5])
    third.wait(lambda f: f.id == union[-1])
    assert [f.id for f in third.lifecycle()][:4] == union[-4:]
    # live progress carried no id
    assert any(f.event == "progress" and f.id is None for f in first.frames + again.frames)


def test_a_slow_client_catches_up_from_the_store_without_gap(
    local_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse_module, "LIMIT", 5)  # a client 5 frames behind stops being fed
    jobs = local_services.jobs
    bus = jobs.bus

    async def scenario() -> tuple[list[bytes], int]:
        hub = EventHub(jobs)
        hub.start(asyncio.get_running_loop())
        try:
            stream = hub.stream(None, None, True)
            assert (await anext(stream)).startswith(b"retry")
            start = jobs.last_seq()
            for n in range(40):  # the client reads nothing meanwhile
                bus.emit(EventKind.WARNING, f"warning {n}", source="test")
            for n in range(30):
                bus.emit(
                    EventKind.PROGRESS, "p", source="test", job_id="j", data=ProgressData(n, 30)
                )
            target = jobs.last_seq()
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # the hub's pending frames never pass LIMIT
                assert asyncio.get_running_loop().time() < deadline, "the hub never caught up"
                client = hub._clients[0]
                if len(client.frames) <= 5 and (client.behind or client.frames):
                    break
                await asyncio.sleep(0.01)
            got: list[bytes] = []
            while True:
                frame = await asyncio.wait_for(anext(stream), 10)
                got.append(frame)
                if f"id: {target}\n".encode() in frame:
                    break
            await stream.aclose()
            return got, target - start
        finally:
            hub.close()

    frames, expected = asyncio.run(scenario())
    # A catching-up chunk may carry several events: every id line of every chunk counts.
    ids = [int(m) for f in frames for m in re.findall(rb"^id: (\d+)$", f, flags=re.M)]
    assert len(ids) == expected == 40
    assert ids == sorted(set(ids)) and ids[-1] - ids[0] == 39
    progress = [f for f in frames if b"event: progress" in f]
    assert len(progress) <= 30  # coalesced (or not), never more than sent
