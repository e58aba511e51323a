"""Observing never breaks running: bus isolation, the capped buffer, the JSONL log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stablenew.app.state import AppState
from stablenew.observe.events import (
    EventBus,
    EventKind,
    JobLifecycleLogEvent,
    NoteData,
    ProgressData,
    StageFinishedData,
)
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
    assert got[0].data == NoteData({"draft_size": 3, "added": 1})
    assert "draft now has 3" in got[0].message


def test_app_state_buffer_stays_capped() -> None:
    state = AppState(max_events=500)
    bus = EventBus()
    bus.subscribe(state.on_event)
    for i in range(1200):
        bus.emit(
            EventKind.PROGRESS, f"step {i}", job_id="j", stage="txt2img", data=ProgressData(i, 1200)
        )
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
            data=StageFinishedData(duration_s=0.5),
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
    assert last["fields"]["duration_s"] == 0.5 and last["pid"] > 0
    logs = tmp_path / "logs"
    kept = [
        json.loads(line)["image_index"]
        for name in ("events.jsonl.2", "events.jsonl.1", "events.jsonl")
        for line in (logs / name).read_text().splitlines()
    ]
    assert kept == list(range(40 - len(kept), 40))  # oldest dropped, order kept, no gaps
    assert all(f.stat().st_size <= 2000 for f in files)


def test_jsonl_without_a_size_limit_keeps_one_file(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "events.jsonl", max_bytes=0)
    for i in range(50):
        sink(JobLifecycleLogEvent(EventKind.WARNING, f"line {i}"))
    sink.close()
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 50


def test_jsonl_sink_never_raises_when_the_disk_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "events.jsonl"
    log.mkdir()  # the log cannot be opened as a file
    sink = JsonlSink(log)
    for i in range(3):
        sink(JobLifecycleLogEvent(EventKind.WARNING, f"lost {i}"))  # never raises...
    err = capsys.readouterr().err
    assert err.count("cannot write the event log") == 1  # ...is reported, once, not per line
    log.rmdir()  # the disk comes back: the sink carries on
    sink(JobLifecycleLogEvent(EventKind.WARNING, "kept"))
    sink.close()
    assert [json.loads(line)["message"] for line in log.read_text().splitlines()] == ["kept"]


def test_jsonl_lines_never_hold_a_credential(tmp_path: Path) -> None:
    """A backend's launch command, echoed in an event, keeps its password out of the log."""
    from stablenew import redact

    redact.register_launch(["python", "launch.py", "--api-auth", "kim:hunter2-secret"])
    sink = JsonlSink(tmp_path / "events.jsonl")
    sink(
        JobLifecycleLogEvent(
            EventKind.BACKEND_STARTING, "python launch.py --api-auth kim:hunter2-secret"
        )
    )
    sink(JobLifecycleLogEvent(EventKind.WARNING, "at http://kim:hunter2-secret@127.0.0.1:7860/"))
    sink.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert "hunter2" not in text and text.count("***") == 2
    assert (tmp_path / "events.jsonl").stat().st_mode & 0o777 == 0o600
