"""The desktop app, driven like a user would, against a real backend process."""

from __future__ import annotations

import httpx
import psutil
import pytest

from stablenew.app.config import load_config, service_config
from tests.gui.conftest import Gui

pytestmark = pytest.mark.integration

FAST_JOB = {"steps": "4", "width": "64", "height": "64", "images": "2", "seed": "5"}


def compose(gui: Gui, prompt: str, **settings: object) -> None:
    gui.type_prompt(prompt)
    gui.window.compose.restore({**FAST_JOB, **settings})


def debug_rows(gui: Gui) -> list[tuple[str, ...]]:
    return gui.window.debug_log.rows()


def history_statuses(gui: Gui) -> list[str]:
    tree = gui.window.history.tree
    return [tree.shown(i)[1] for i in tree.get_children()]


def test_compose_add_to_job_add_to_queue_and_see_it_complete(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    gui.click("Add to Job")  # nothing composed yet: says why, and logs it
    gui.pump_until(lambda: "Nothing added" in window.message.full_text)
    gui.pump_until(lambda: any(r[2] == "add_to_job_noop" for r in debug_rows(gui)))

    compose(gui, "a paper boat on a pond", **{"upscale.enabled": True, "upscale.factor": "2"})
    gui.click("Add to Job")
    gui.pump_until(lambda: window.draft.count.full_text.startswith("1 job(s) in the draft"))
    assert window.draft.table.rows["0"][1:] == ("txt2img,upscale", 2, "", "a paper boat on a pond")
    gui.click("Queue the Draft (Ctrl+Enter)")  # the primary action says what it queues
    gui.pump_until(lambda: window.draft.count.full_text.startswith("Empty"))
    assert window.primary.cget("text") == "Add to Queue (Ctrl+Enter)"
    gui.pump_until(lambda: history_statuses(gui) == ["COMPLETED"], 60, "the job in history")

    assert window.running.preview.cget("image"), "the latest image is previewed"
    events = [r[2] for r in debug_rows(gui)]
    for kind in ("add_to_job", "add_to_queue", "job_started", "job_completed"):
        assert kind in events, events
    assert events.index("add_to_job") < events.index("add_to_queue") < events.index("job_started")
    gui.pump_until(lambda: bool(window.history.thumbs), 10, "a thumbnail in history")
    assert window.lifecycle.cget("text") == "IDLE"


def test_cancel_a_hanging_upscale_while_the_window_keeps_responding(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    url = window.services.backend.url
    httpx.post(f"{url}/sim/faults", json={"hang": {"stage": "upscale", "mode": "ignore_interrupt"}})
    compose(gui, "a hanging upscale", images="1", **{"upscale.enabled": True})
    gui.click("Run Now")
    gui.pump_until(
        lambda: window.running.stage_labels["upscale"].cget("text") == "▶ upscale",
        30,
        "the upscale to start",
    )
    gui.pump_until(lambda: httpx.get(f"{url}/sim/stats").json()["stages"].get("upscale") == 1)
    gui.gaps.clear()
    gui.key("Escape")
    gui.pump_until(lambda: history_statuses(gui) == ["CANCELLED"], 30, "CANCELLED in history")
    assert max(gui.gaps) < 1.0, "the event loop never stalled while the backend hung"
    assert any(r[2] == "job_cancelled" for r in debug_rows(gui))


def test_a_failed_job_shows_its_envelope(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    compose(gui, "an impossible model", images="1", model="no-such-model")
    gui.click("Run Now")  # the backend has no such model: refused before anything is queued
    gui.pump_until(lambda: "the backend has no 'no-such-model'" in window.message.full_text, 10)
    assert window.jobs.list_jobs() == []
    httpx.post(
        f"{window.services.backend.url}/sim/faults",
        json={"http_error": {"stage": "txt2img", "kind": "oom"}},
    )
    compose(gui, "too big for the card", images="1", model="")
    gui.click("Run Now")
    gui.pump_until(lambda: history_statuses(gui) == ["FAILED"], 30)
    assert window.lifecycle.cget("text") == "IDLE · last job failed"
    window.tabs.select(window.history)
    window.history.tree.selection_set(window.history.tree.get_children()[0])
    gui.click("Show error", within=window.history)
    gui.pump_until(lambda: bool(gui.toplevels()), 10, "the error window")
    assert "CUDA out of memory" in gui.toplevels()[-1].all_text()


def test_the_top_bar_says_paused_while_the_queue_is_paused(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester saw IDLE in the top bar while the queue was paused (and nothing would run)."""
    gui = make_gui()
    window = gui.window
    window.tabs.select(window.queue)
    gui.click(window.queue.auto_run_button)
    gui.pump_until(lambda: window.state.paused is not None, 10, "paused")
    gui.pump_until(lambda: window.lifecycle.cget("text") == "PAUSED", 10, "PAUSED in the top bar")
    gui.click(window.queue.auto_run_button)
    gui.pump_until(lambda: window.lifecycle.cget("text") == "IDLE", 10, "IDLE again")


def test_a_job_queued_while_the_backend_failed_to_start_says_why_it_waits(  # type: ignore[no-untyped-def]
    make_gui, tmp_path
) -> None:
    """A tester's backend (the README's example, on a machine without that folder) failed to
    start; Ctrl+Enter then said only "Queued job X." and the job waited with no reason."""
    (tmp_path / "config.toml").write_text(
        '[backend]\ncommand = ["python", "launch.py", "--api", "--port", "7999"]\n'
        'cwd = "/opt/no-such-webui"\nurl = "http://127.0.0.1:7999"\ndiscover = false\n',
        encoding="utf-8",
    )
    config = service_config(tmp_path, load_config(tmp_path))
    gui = make_gui(home=tmp_path, config=config, ready=False)
    window = gui.window
    gui.pump_until(lambda: window.indicator.state == "FAILED", 30, "the failed start")
    gui.pump_until(lambda: "127.0.0.1:7999" in window.backend_text.full_text, 10, "named")
    window.compose.restore({"steps": "2", "width": "64", "height": "64"})
    gui.type_prompt("waits for a backend")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: "it waits" in window.message.full_text, 10, "why it waits")
    assert "the backend did not start" in window.message.full_text
    assert "/opt/no-such-webui" in window.message.full_text, window.message.full_text
    window.tabs.select(window.queue)
    gui.pump_until(
        lambda: "waiting: the backend did not start" in window.queue.paused.full_text, 10
    )


def test_a_backend_crash_shows_in_the_indicator_and_recovers(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    shown: list[str] = []
    original = window.indicator.show
    window.indicator.show = lambda state: (shown.append(state), original(state))  # type: ignore[method-assign]
    httpx.post(f"{window.services.backend.url}/sim/faults", json={"crash": {"stage": "txt2img"}})
    compose(gui, "a crash and a recovery", images="1")
    gui.click("Run Now")
    gui.pump_until(lambda: history_statuses(gui) == ["COMPLETED"], 60)
    assert "CRASHED" in shown and shown[-1] == "READY"
    assert shown.index("CRASHED") < shown.index("RESTARTING") < len(shown) - 1


def test_the_step_bar_says_the_backend_restarts_instead_of_the_dead_attempts_step(  # type: ignore[no-untyped-def]
    make_gui,
) -> None:
    """A tester saw "step 9/20 · ETA 2s" of the crashed attempt stay through the restart (on a
    real A1111, minutes): the running panel now says what happens instead."""
    gui = make_gui("--step-ms", "40")
    window = gui.window
    running = window.running
    seen: list[tuple[str, str, float]] = []  # (backend state, step text, bar) at each redraw
    original = running.show

    def show(active, lifecycle):  # type: ignore[no-untyped-def]
        original(active, lifecycle)
        value = float(running.progress.cget("value"))
        seen.append((window.indicator.state, running.eta.full_text, value))

    running.show = show  # type: ignore[method-assign]
    httpx.post(f"{window.services.backend.url}/sim/faults", json={"crash": {"stage": "txt2img"}})
    compose(gui, "a crash midway", images="1", steps="20")
    gui.click("Run Now")
    gui.pump_until(lambda: history_statuses(gui) == ["COMPLETED"], 90)
    down = [s for s in seen if s[0] in ("CRASHED", "RESTARTING", "STARTING")]
    assert down, seen
    assert not any(text.startswith("step ") or bar > 0 for _state, text, bar in down), down
    assert any("restarting the backend" in text for _state, text, _bar in seen), seen
    assert any(text.startswith("step ") for state, text, _bar in seen if state == "READY")


def test_closing_the_window_stops_the_backend(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    pidfile = gui.window.services.config.launch.pidfile
    assert pidfile is not None
    pid = int(pidfile.read_text().split()[0])
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    gui.window.close()
    gui.pump_until(lambda: gui.window.destroyed, 30)
    _, alive = psutil.wait_procs(family, timeout=5)
    assert not alive
    assert gui.window.prefs.path.is_file()  # geometry and settings remembered


def test_history_filter_and_search(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    compose(gui, "a paper lantern", images="1")
    gui.click("Run Now")
    gui.pump_until(lambda: history_statuses(gui) == ["COMPLETED"], 30)
    httpx.post(
        f"{window.services.backend.url}/sim/faults",
        json={"http_error": {"stage": "txt2img", "kind": "oom"}},
    )
    compose(gui, "a broken model", images="1")
    gui.click("Run Now")
    gui.pump_until(lambda: sorted(history_statuses(gui)) == ["COMPLETED", "FAILED"], 30)
    window.tabs.select(window.history)
    window.history.status.set("FAILED")
    gui.click("Search")
    gui.pump_until(lambda: history_statuses(gui) == ["FAILED"])
    window.history.status.set("all")
    window.history.search.set("lantern")
    gui.click("Search")
    gui.pump_until(lambda: history_statuses(gui) == ["COMPLETED"])
    assert window.history.page_text.full_text == "jobs 1-1 of 1"
    window.history.search.set("no such words")
    gui.click("Search")
    gui.pump_until(lambda: history_statuses(gui) == [])
    assert window.history.page_text.full_text == "no jobs match"  # not "jobs 0-0 of 0"


def test_debug_log_autoscroll_pauses_when_scrolled_up(display: str) -> None:
    import tkinter as tk

    from stablenew.gui import theme
    from stablenew.gui.debug_log import DebugLogPanel
    from stablenew.observe.events import EventKind, JobLifecycleLogEvent

    root = tk.Tk()
    try:
        panel = DebugLogPanel(root, theme.apply(root), max_rows=500)
        panel.pack(fill="both", expand=True)

        def add(n: int, job: str = "aaaaaaaa") -> None:
            panel.add(
                [
                    JobLifecycleLogEvent(EventKind.STAGE_FINISHED, f"row {i}", job_id=job)
                    for i in range(n)
                ]
            )
            root.update()

        add(100)
        assert panel.tree.yview()[1] == 1.0  # following the newest row
        panel.tree.yview_moveto(0)
        root.update()
        add(10)
        assert panel.tree.yview()[0] == 0.0  # the reader stays where they scrolled
        panel.tree.yview_moveto(1)
        root.update()
        add(700)
        assert len(panel.rows()) == 500 and panel.tree.yview()[1] == 1.0
        add(5, job="bbbbbbbb")
        panel.job_filter.set("bbbbbbbb")
        panel.rebuild()
        assert [r[3] for r in panel.rows()] == ["bbbbbbbb"] * 5
    finally:
        root.destroy()


def test_the_debug_log_puts_a_late_read_event_where_its_time_is(display: str) -> None:
    """A tester saw a job queued from a shell logged after its own job_started: the owner
    reads another process's events from the home's log a turn later than its own."""
    import tkinter as tk
    from datetime import timedelta

    from stablenew.gui import theme
    from stablenew.gui.debug_log import DebugLogPanel
    from stablenew.observe.events import EventKind, JobLifecycleLogEvent

    root = tk.Tk()
    try:
        panel = DebugLogPanel(root, theme.apply(root), max_rows=3)
        panel.pack(fill="both", expand=True)
        queued = JobLifecycleLogEvent(EventKind.JOB_QUEUED, "queued", source="cli", job_id="a" * 8)
        at = queued.ts
        started = JobLifecycleLogEvent(
            EventKind.JOB_STARTED, "started", job_id="a" * 8, ts=at + timedelta(milliseconds=30)
        )
        panel.add([started])
        panel.add([queued])  # read later, happened first
        assert [r[2] for r in panel.rows()] == ["job_queued", "job_started"]
        later = JobLifecycleLogEvent(
            EventKind.JOB_COMPLETED, "done", job_id="a" * 8, ts=at + timedelta(seconds=1)
        )
        panel.add([later])
        older = JobLifecycleLogEvent(EventKind.WARNING, "old news", ts=at - timedelta(seconds=1))
        panel.add([older])  # at most 3 rows: the oldest goes
        assert [r[2] for r in panel.rows()] == ["job_queued", "job_started", "job_completed"]
        panel.rebuild()
        assert [r[2] for r in panel.rows()] == ["job_queued", "job_started", "job_completed"]
    finally:
        root.destroy()
