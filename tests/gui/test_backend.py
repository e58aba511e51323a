"""What the window says about the backend, and the way to another one: the reference backend
named as such, a second window on a home attached to its owner (never starting a backend of
its own), SIGTERM closing like the close button, the first-start offer of an A1111 found on
this machine, and the Settings dialog."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import psutil
import pytest

from stablenew.app import discovery
from stablenew.app.config import load_config, service_config
from stablenew.gui.settings_dialog import SettingsDialog
from stablenew.gui.stopping import Terminator
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore
from stablenew.webui.process import reference_backend_command
from tests.gui.conftest import Gui, owner, spawn_gui, wait_for
from tests.helpers import ROOT, start_worker

pytestmark = pytest.mark.integration

FAST_JOB = {"steps": "4", "width": "64", "height": "64", "images": "1", "seed": "5"}
REFERENCE = "reference backend (simulated images)"


class FakeA1111(BaseHTTPRequestHandler):
    """Answers like an A1111 started with --api (and names no reference backend)."""

    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        FakeA1111.requests.append(self.path)
        if self.path.startswith("/sdapi/v1/sd-models"):
            body = json.dumps([{"title": "real.safetensors", "model_name": "real"}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_a1111() -> Iterator[str]:
    FakeA1111.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeA1111)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def reference_home(home: Path, *flags: str) -> None:
    """A home whose managed backend is the reference backend with `flags`, no discovery."""
    command = reference_backend_command(0, *flags)
    (home / "config.toml").write_text(
        f"[backend]\ncommand = {json.dumps(command)}\ndiscover = false\n", encoding="utf-8"
    )


def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_the_reference_backend_is_named_wherever_the_backend_shows(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    gui.pump_until(lambda: REFERENCE in window.backend_text.full_text, 30, "the top bar")
    window.tabs.select(window.backend)
    assert REFERENCE in window.backend.description.full_text
    assert window.backend.url.full_text.startswith("URL: http://127.0.0.1:")


def test_the_backend_output_wraps_long_lines(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester saw the backend's long lines cut at the box's edge, with no way to read them."""
    gui = make_gui()
    window = gui.window
    window.tabs.select(window.backend)
    # Opening the tab reads the backend's output: that answer must not replace the one below.
    gui.pump_until(lambda: bool(window.backend.tail.get("1.0", "end").strip()), 30, "the output")
    line = "RuntimeError: no model at " + "/models/Stable-diffusion/sub" * 12 + "/end.safetensors"
    window.backend.show_tail({"default": f"loading\n{line}\ndone"})
    gui.settle()
    tail = window.backend.tail
    start = tail.search("RuntimeError", "1.0")
    last = f"{start} lineend - 1c"
    assert tail.get(last) == "s"
    tail.see(last)
    gui.settle()
    box = tail.bbox(last)
    assert box is not None and box[0] + box[2] <= tail.winfo_width()
    assert tail.xview() == (0.0, 1.0), "the line's end is beyond the box's right edge"


def test_a_window_on_an_owned_home_attaches_and_starts_no_backend(  # type: ignore[no-untyped-def]
    make_gui, tmp_path, monkeypatch
) -> None:
    from stablenew.gui.window import MainWindow

    reference_home(tmp_path, "--step-ms", "40")
    said: list[str] = []
    say = MainWindow.say
    monkeypatch.setattr(MainWindow, "say", lambda w, text: (said.append(text), say(w, text)))
    worker = start_worker(tmp_path)
    try:
        gui = make_gui(home=tmp_path)
        window = gui.window
        owner = f"attached to the owner pid {worker.proc.pid}"
        gui.pump_until(lambda: owner in window.backend_text.full_text, 30, "the owner named")
        # A tester saw "Starting the backend…" for seconds in a window that starts none.
        assert f"Attaching to the owner pid {worker.proc.pid}…" in said, said
        assert not any(text.startswith("Starting the backend") for text in said), said
        gui.pump_until(lambda: REFERENCE in window.backend_text.full_text, 30, "what it runs")
        gui.pump_until(lambda: "Attached to the owner" in window.message.full_text, 30)
        gui.settle()  # the top bar shows it whole at the default size, not cut at "simulated imag…"
        assert str(window.backend_text.cget("text")) == window.backend_text.full_text
        assert window.message.winfo_width() > window.theme.px(300)  # the status keeps its room
        window.tabs.select(window.backend)
        gui.settle()
        assert str(window.backend.start.cget("state")) == "disabled"
        assert str(window.backend.restart.cget("state")) == "disabled"
        mine = [
            c.cmdline()
            for c in psutil.Process().children()  # the owner's backend is its child, not ours
            if c.status() != psutil.STATUS_ZOMBIE and "webui-sim" in c.cmdline()
        ]
        assert mine == [], "this process started a backend of its own"

        window.compose.restore({**FAST_JOB, "images": "2", "steps": "6"})
        window.compose.restore({"img2img.enabled": True})
        gui.type(window.compose.prompt, "run by the owner")
        gui.key("ctrl+Return")
        shown: set[str] = set()

        def watch() -> bool:
            shown.update(str(w.cget("text")) for w in window.running.stage_labels.values())
            shown.add(window.running.image.full_text)
            return window.running.outcome.full_text.startswith("✓")

        gui.pump_until(watch, 60, "the owner to run the job, shown here")
        assert "▶ txt2img" in shown and "▶ img2img" in shown, shown
        assert "image 2/2" in shown, shown
        events = [(r[1], r[2]) for r in window.debug_log.rows()]
        assert ("runner", "job_started") in events and ("runner", "job_completed") in events

        window.close()
        gui.pump_until(lambda: window.destroyed, 30, "the window to close")
        assert worker.proc.poll() is None  # the owner goes on
        assert httpx.get(f"{worker.url}/sdapi/v1/sd-models", timeout=5).status_code == 200
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(60)


def test_a_window_on_an_owned_home_shows_the_owners_steps_and_live_preview(
    make_gui, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    reference_home(tmp_path, "--step-ms", "100")
    worker = start_worker(tmp_path)
    try:
        gui = make_gui(home=tmp_path)
        window = gui.window
        gui.pump_until(lambda: "Attached to the owner" in window.message.full_text, 30)
        window.compose.restore({**FAST_JOB, "steps": "40"})
        gui.type(window.compose.prompt, "a slow sunrise, run by the owner")
        gui.key("ctrl+Return")
        running = window.running
        steps: list[int] = []

        def stepping() -> bool:
            value = float(running.progress.cget("value"))
            if value and running.eta.full_text.startswith("step "):
                steps.append(int(value))
            return len(set(steps)) >= 2

        gui.pump_until(stepping, 60, "the owner's steps shown here")
        assert steps == sorted(steps), steps
        assert float(running.progress.cget("maximum")) == 40
        gui.pump_until(lambda: running.live_number >= 1, 30, "the owner's live preview")
        assert running.preview.cget("image"), "shown in the running panel"
        first = running.live_number
        gui.pump_until(lambda: running.live_number > first, 30, "a newer live preview")
        gui.pump_until(lambda: running.outcome.full_text.startswith("✓"), 60, "the job's end")
        gui.pump_until(lambda: running.live_number == 0, 10, "the finished image shown instead")
        window.close()  # before the owner goes: this window would take the home over
        gui.pump_until(lambda: window.destroyed, 30, "the window to close")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(60)


def test_a_window_taking_over_a_dead_owner_shows_no_stale_step_nor_a_wrong_backend(
    make_gui, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A tester killed the worker mid-job: while the window took over (its backend starting),
    the running panel kept the dead owner's "step 30/60 · ETA 3s" and the top bar called the
    reference backend "A1111-compatible API"."""
    reference_home(tmp_path, "--step-ms", "100", "--slow-start", "3")
    worker = start_worker(tmp_path)
    try:
        gui = make_gui(home=tmp_path)
        window = gui.window
        running = window.running
        gui.pump_until(lambda: "Attached to the owner" in window.message.full_text, 30)
        window.compose.restore({**FAST_JOB, "steps": "60", "images": "2"})
        gui.type(window.compose.prompt, "outlives its owner")
        gui.key("ctrl+Return")
        gui.pump_until(lambda: running.eta.full_text.startswith("step "), 60, "the owner's steps")
        seen: list[tuple[str, str, str]] = []

        def taken_over() -> bool:
            state = window.indicator.state
            seen.append((state, running.eta.full_text, window.backend_text.full_text))
            return state == "READY" and any(s[0] == "STARTING" for s in seen)

        worker.proc.kill()
        worker.proc.wait(10)
        gui.pump_until(taken_over, 60, "the take-over's backend READY")
        starting = [s for s in seen if s[0] == "STARTING"]
        assert not any(eta.startswith("step ") for _state, eta, _text in starting), starting
        assert not any("A1111-compatible" in text for _s, _e, text in seen), seen
        gui.pump_until(lambda: running.outcome.full_text.startswith("✓"), 90, "the job's end")
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def test_in_a_pool_cancel_stops_the_job_the_panel_shows_and_the_other_runs_on(  # type: ignore[no-untyped-def]
    make_gui, tmp_path
) -> None:
    """A tester ran two jobs on a pool of two: the panel flipped between them, Cancel (Esc)
    stopped the job it was not showing, and the app then said IDLE while the other ran."""
    config = "".join(
        f'[[backends]]\nname = "{name}"\n'
        f"command = {json.dumps(reference_backend_command(0, '--step-ms', '60'))}\n"
        "discover = false\n"
        for name in ("alpha", "beta")
    )
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")
    gui = make_gui(home=tmp_path, config=service_config(tmp_path, load_config(tmp_path)))
    window = gui.window
    running = window.running
    jobs = window.jobs
    first = jobs.submit_pipeline_run(
        JobSpec(prompt="on beta", steps=150, width=64, height=64, backend="beta"), source="test"
    )
    gui.pump_until(lambda: running.current == first, 60, "the first job in the panel")
    second = jobs.submit_pipeline_run(
        JobSpec(prompt="on alpha", steps=150, width=64, height=64, backend="alpha"), source="test"
    )
    gui.pump_until(lambda: jobs.get_job(second).status == JobStatus.RUNNING, 60, "both running")
    shown: set[str | None] = set()
    gui.pump_until(
        lambda: shown.add(running.current) or running.eta.full_text.startswith("step "), 30
    )
    for _ in range(10):  # the other job's steps arrive too: the panel stays on its job
        gui.settle()
        shown.add(running.current)
    assert shown == {first}, shown
    gui.key("Escape")
    gui.pump_until(lambda: jobs.get_job(first).status == JobStatus.CANCELLED, 30, "cancelled")
    assert jobs.get_job(second).status == JobStatus.RUNNING  # the one not shown runs on
    gui.pump_until(lambda: running.current == second, 30, "the panel on the job still running")
    assert window.lifecycle.cget("text") == "RUNNING"
    gui.key("Escape")
    gui.pump_until(lambda: jobs.get_job(second).status == JobStatus.CANCELLED, 30)
    gui.pump_until(lambda: window.lifecycle.cget("text") == "IDLE", 30)


def test_sigterm_closes_the_window_like_its_close_button(display: str, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[backend]\ndiscover = false\n", encoding="utf-8")
    gui = spawn_gui(tmp_path, display)
    try:
        info = wait_for(lambda: owner(tmp_path), 60, "the window to own the home and its backend")
        assert isinstance(info, dict) and info["pid"] == gui.pid
        url = str(info["backend_url"])
        hang = {"hang": {"stage": "txt2img", "mode": "honour_interrupt"}}
        httpx.post(f"{url}/sim/faults", json=hang, timeout=5).raise_for_status()
        subprocess.run(
            [sys.executable, "-m", "stablenew", "--home", str(tmp_path), "queue", "add",
             "held by a hang", "--images", "1"],
            cwd=ROOT, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        stats = lambda: httpx.get(f"{url}/sim/stats", timeout=5).json()  # noqa: E731
        wait_for(lambda: stats()["stages"].get("txt2img") == 1, 60, "the job's first call")
        backend = psutil.Process(int((tmp_path / "backend.pid").read_text().split()[0]))

        started = time.monotonic()
        gui.send_signal(signal.SIGTERM)
        code = gui.wait(60)
        assert time.monotonic() - started < 30  # a generous bound: closing is prompt
        assert code == 143, gui.stderr.read() if gui.stderr else ""
        psutil.wait_procs([backend], timeout=10)
        assert not backend.is_running() or backend.status() == psutil.STATUS_ZOMBIE
        store = JobStore(tmp_path / "jobs.db")
        try:
            assert [j.status for j in store.list_jobs()] == [JobStatus.QUEUED]
        finally:
            store.close()
        assert not (tmp_path / "owner.json").exists()
    finally:
        if gui.poll() is None:
            gui.kill()
            gui.wait(10)


def test_first_start_offers_an_a1111_found_nearby_and_saves_it(  # type: ignore[no-untyped-def]
    make_gui, start_sim, fake_a1111: str, monkeypatch, tmp_path
) -> None:
    reference = start_sim()  # StableNew's own reference backend is never offered
    monkeypatch.setattr(discovery, "PORTS", (port(reference.url), port(fake_a1111)))
    gui = make_gui()
    window = gui.window
    gui.pump_until(lambda: window.offer.winfo_ismapped(), 30, "the offer")
    offer = window.offer.text.full_text
    assert fake_a1111 in offer and reference.url not in offer
    assert "(1 models)" in offer or "1 model" in offer
    gui.click("Use it")
    gui.pump_until(lambda: "next start" in window.message.full_text, 10, "the answer")
    assert not window.offer.winfo_ismapped()
    path = tmp_path / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load_config(tmp_path)
    assert config.backend.mode == "attached" and config.backend.url == fake_a1111


def test_no_offer_when_discovery_is_off_and_dont_ask_again_turns_it_off(  # type: ignore[no-untyped-def]
    make_gui, fake_a1111: str, monkeypatch, tmp_path
) -> None:
    monkeypatch.setattr(discovery, "PORTS", (port(fake_a1111),))
    gui = make_gui()
    window = gui.window
    gui.pump_until(lambda: window.offer.winfo_ismapped(), 30, "the offer")
    gui.click("Don't ask again")
    gui.pump_until(lambda: "No more looking" in window.message.full_text, 10)
    assert load_config(tmp_path).backend.discover is False
    window.close()
    gui.pump_until(lambda: window.destroyed, 30)

    FakeA1111.requests.clear()
    second = make_gui(home=tmp_path)
    second.pump_until(lambda: "Backend ready" in second.window.message.full_text, 30)
    future = second.window.ui.run(lambda: None)  # after the start's own background work
    assert future is not None
    second.pump_until(future.done, 30, "the start's background work")
    assert FakeA1111.requests == [] and not second.window.offer.winfo_ismapped()


def settings_dialog(gui: Gui) -> SettingsDialog:
    top_bar = gui.window.root.nametowidget(gui.window.indicator.winfo_parent())
    gui.click("Settings…", within=top_bar)
    gui.pump_until(lambda: bool(gui.toplevels()), 10, "the settings dialog")
    dialog = gui.toplevels()[-1]
    assert isinstance(dialog, SettingsDialog)
    return dialog


def test_settings_test_the_connection_refuse_bad_values_and_write_config_toml(  # type: ignore[no-untyped-def]
    make_gui, fake_a1111: str, tmp_path
) -> None:
    gui = make_gui()
    dialog = settings_dialog(gui)
    path = tmp_path / "config.toml"
    gui.click(dialog.modes["attached"])
    assert dialog.mode.get() == "attached"

    gui.click("Save", within=dialog)  # attached without a URL: refused, by key
    gui.pump_until(lambda: "backend.url" in str(dialog.error.cget("text")), 10)
    gui.type(dialog.entries["backend.url"], "not a url")
    gui.click("Save", within=dialog)
    gui.pump_until(lambda: "not an http(s) URL" in str(dialog.error.cget("text")), 10)
    assert not path.exists()

    dialog.vars["backend.url"].set("")
    gui.type(dialog.entries["backend.url"], fake_a1111)
    gui.click("Test connection", within=dialog)
    gui.pump_until(lambda: str(dialog.test_result.cget("text")).startswith("✓"), 30)
    assert "A1111-compatible API answers" in str(dialog.test_result.cget("text"))
    gui.type(dialog.entries["backend.username"], "me")
    gui.type(dialog.entries["backend.password"], "s3cret")
    gui.click("Save", within=dialog)
    gui.pump_until(lambda: not gui.toplevels(), 10, "the dialog to close")
    assert "next time StableNew starts" in gui.window.message.full_text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load_config(tmp_path)
    assert (config.backend.mode, config.backend.url) == ("attached", fake_a1111)
    assert (config.backend.username, config.backend.password) == ("me", "s3cret")


def test_a_long_settings_error_keeps_save_and_cancel_on_screen(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester saw the dialog grow past the screen's bottom edge with a 3-line error."""
    gui = make_gui()
    dialog = settings_dialog(gui)
    gui.click(dialog.modes["attached"])
    gui.type(dialog.entries["backend.url"], "not a url " + "x" * 150)
    dialog.vars["limits.tile_min"].set("4096")
    dialog.vars["limits.tile_max"].set("512")
    gui.click("Save", within=dialog)
    gui.pump_until(lambda: "not an http(s) URL" in str(dialog.error.cget("text")), 10)
    gui.settle()
    screen = dialog.winfo_screenheight()
    assert dialog.error.winfo_height() > 2 * gui.window.theme.body.metrics("linespace")
    for what in (dialog.error, gui.button("Save", dialog), gui.button("Cancel", dialog)):
        bottom = what.winfo_rooty() + what.winfo_height()
        assert bottom <= dialog.winfo_rooty() + dialog.winfo_height(), f"{what} is cut"
        assert bottom <= screen, f"{what} is below the screen's edge"
    gui.click("Cancel", within=dialog)
    gui.pump_until(lambda: not gui.toplevels(), 10, "the dialog to close")


def test_settings_test_connection_names_the_reference_backend(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    dialog = settings_dialog(gui)
    gui.type(dialog.entries["backend.url"], str(gui.window.services.backend.url))
    gui.click("Test connection", within=dialog)
    gui.pump_until(lambda: str(dialog.test_result.cget("text")).startswith("✓"), 30)
    assert REFERENCE in str(dialog.test_result.cget("text"))
    dialog.vars["backend.url"].set("")
    dialog.entries["backend.command"].insert(0, "no-such-program --api")
    gui.click("Test connection", within=dialog)
    gui.pump_until(lambda: str(dialog.test_result.cget("text")).startswith("✗"), 30)
    assert "'no-such-program' is not found" in str(dialog.test_result.cget("text"))


def test_sigterm_stops_the_backend_while_the_tk_loop_is_busy(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The Tk loop does not turn here (as when it is stuck in Tk's own C code): the signal is
    still heard on a thread, the runner and the backend are stopped, and the process leaves."""
    gui: Gui = make_gui()
    window = gui.window
    backend = psutil.Process(int((tmp_path / "backend.pid").read_text().split()[0]))
    left = threading.Event()
    terminator = Terminator(window, leave=left.set, grace=0.5)
    previous = signal.signal(signal.SIGTERM, lambda _s, _f: None)  # a handler that never runs
    undo = terminator.listen()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert left.wait(60), "the process did not leave"
    finally:
        undo()
        signal.signal(signal.SIGTERM, previous)
    assert terminator.signals == [signal.SIGTERM]
    psutil.wait_procs([backend], timeout=10)
    assert not backend.is_running() or backend.status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "owner.json").exists()
    window._destroy()  # what the leaving process does not need: this test process goes on


def test_start_and_restart_say_when_the_backend_answers(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    gui.click_tab(window.tabs, "Backend")
    for button, said in (("Restart", "Backend restarted"), ("Start", "Backend started")):
        gui.click(button, within=window.backend)
        gui.pump_until(lambda said=said: said in window.message.full_text, 60, said)
        assert window.services.backend.shown_url in window.message.full_text
        gui.pump_until(lambda: window.indicator.state == "READY", 60, "backend READY")


def test_after_a_restart_the_loaded_model_shows_in_the_tab_and_in_backend_list(  # type: ignore[no-untyped-def]
    make_gui, tmp_path: Path
) -> None:
    """Found by a tester: after Restart the Backend tab's row and `backend list` lost the loaded
    model (asked only when the runner picks a job, so never while the queue is paused or
    idle), and the tab's output pane stayed empty until Refresh output was clicked."""
    gui: Gui = make_gui("--step-ms", "100")
    window = gui.window
    panel = window.backend
    url = window.services.backend.url
    assert url is not None
    model = httpx.get(f"{url}/sdapi/v1/options", timeout=5).json()["sd_model_checkpoint"]
    window.services.jobs.pause("the user paused it", source="gui")

    def row() -> tuple[str, ...]:
        children = panel.pool.get_children()
        return tuple(panel.pool.item(children[0], "values")) if children else ()

    def output() -> str:
        return panel.tail.get("1.0", "end").strip()

    gui.key("ctrl+6")
    gui.pump_until(lambda: window.current_tab() == str(panel), 10, "the Backend tab")
    gui.pump_until(lambda: bool(output()), 30, "the backend's output, without Refresh output")
    gui.pump_until(lambda: len(row()) > 2 and row()[2] == model, 30, "the loaded model")
    before = output()
    gui.click("Restart", within=panel)
    gui.pump_until(lambda: "Backend restarted" in window.message.full_text, 60, "the restart")
    gui.pump_until(lambda: "1 restart(s)" in row(), 30, "the restart counted")
    assert row()[2] == model, row()
    gui.pump_until(lambda: output() != before, 30, "the new process's output")

    def listed() -> str:  # another process: what the owner published (at most every 0.5 s)
        return subprocess.run(
            [sys.executable, "-m", "stablenew", "--home", str(tmp_path), "backend", "list"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    wait_for(lambda: model in listed(), 30, "`backend list` to name the loaded model")
