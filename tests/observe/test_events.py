"""Observing never breaks running: bus isolation, the capped buffer, the JSONL log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stablenew.app.state import AppState
from stablenew.observe.events import EventBus, EventKind, JobLifecycleLogEvent
from stablenew.observe.jsonl import JsonlSink
from stablenew.observe.lifecycle import JobLifecycleLogger


def test_a_failing_subscriber_is_skipped_not_raised() -> None:
    bus = EventBus()
    got: list[JobLifecycleLogEvent] = []

    def broken(event: JobLifecycleLogEvent) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    JobLifecycleLogger(bus).log_add_to_job("gui", draft_size=3, added=1)
    assert [e.kind for e in got] == [EventKind.ADD_TO_JOB]
    assert got[0].fields["draft_size"] == 3 and "draft now has 3" in got[0].message


def test_app_state_buffer_stays_capped() -> None:
    state = AppState(max_events=500)
    bus = EventBus()
    bus.subscribe(state.on_event)
    for i in range(1200):
        bus.emit(EventKind.PROGRESS, f"step {i}", job_id="j", stage="txt2img", fields={"step": i})
    events = state.recent_events()
    assert len(events) == 500 and events[-1].message == "step 1199"
    assert state.active is not None and state.active.step == 1199


def test_a_failing_state_listener_does_not_stop_the_others() -> None:
    state = AppState()
    calls: list[str] = []
    state.subscribe("events", lambda topic: (_ for _ in ()).throw(ValueError("boom")))
    state.subscribe("events", calls.append)
    state.on_event(JobLifecycleLogEvent(EventKind.WARNING, "x"))
    assert calls == ["events"]


def test_jsonl_lines_and_rotation(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "logs" / "events.jsonl", max_bytes=2000, backups=2)
    bus = EventBus()
    bus.subscribe(sink)
    for i in range(40):
        bus.emit(
            EventKind.STAGE_FINISHED,
            f"upscale {i}/40",
            job_id="j1",
            stage="upscale",
            image_index=i,
            total=40,
            fields={"duration_s": 0.5},
        )
    sink.close()
    files = sorted((tmp_path / "logs").glob("events.jsonl*"))
    assert len(files) == 3  # the live file plus two rotated backups
    last = json.loads((tmp_path / "logs" / "events.jsonl").read_text().splitlines()[-1])
    assert set(last) >= {
        "ts",
        "seq",
        "event",
        "job_id",
        "stage",
        "image_index",
        "message",
        "fields",
    }
    assert last["event"] == "stage_finished" and last["image_index"] == 39


def test_jsonl_sink_never_raises_when_the_disk_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "events.jsonl").mkdir()  # the log cannot be opened as a file
    sink = JsonlSink(tmp_path / "events.jsonl")
    sink(JobLifecycleLogEvent(EventKind.WARNING, "still fine"))  # never raises...
    sink.close()
    assert "IsADirectoryError" in capsys.readouterr().err  # ...but is reported
