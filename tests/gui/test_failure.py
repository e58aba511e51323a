"""A failed job says why, wherever it shows, at the default 1366x768 without resizing anything;
and when a job ends, nothing of it is left looking as if it still ran."""

from __future__ import annotations

import os
import re
import tkinter as tk
from pathlib import Path

import httpx
import pytest

from stablenew.gui.failure_view import JobDetails
from stablenew.gui.running import MARKS, NO_IMAGE
from stablenew.jobs.status import JobStatus
from tests.gui.conftest import Gui

pytestmark = pytest.mark.integration

FAST_JOB = {"steps": "4", "width": "64", "height": "64", "images": "1", "seed": "5"}
STALE_STEPS = re.compile(r"\b0/\d+|/0\b|\b\d+/1\b")  # 0/N, N/0 and 1-step counts


def run_and_wait(gui: Gui, prompt: str, status: JobStatus, button: str = "Run Now") -> str:
    gui.type_prompt(prompt)
    gui.click(button)
    found: list[str] = []

    def finished() -> bool:
        jobs = [j for j in gui.window.jobs.list_jobs() if j.spec.prompt == prompt]
        if jobs and jobs[0].status == status:
            found.append(jobs[0].id)
        return bool(found)

    gui.pump_until(finished, 60, f"{prompt!r} to end {status.value}")
    return found[0]


def inside_window(gui: Gui, widget: tk.Misc) -> bool:
    """The widget is on screen, whole, within the window's 1366x768."""
    root = gui.root
    x, y = widget.winfo_rootx() - root.winfo_rootx(), widget.winfo_rooty() - root.winfo_rooty()
    return bool(
        widget.winfo_viewable()
        and x >= 0
        and y >= 0
        and x + widget.winfo_width() <= root.winfo_width()
        and y + widget.winfo_height() <= root.winfo_height()
    )


def test_a_failed_job_says_why_at_1366x768_and_leaves_nothing_stale(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    window.compose.restore(FAST_JOB)
    run_and_wait(gui, "a good one first", JobStatus.COMPLETED)
    gui.pump_until(lambda: window.running.preview.cget("image") != "", 10, "its image")

    url = window.services.backend.url
    httpx.post(f"{url}/sim/faults", json={"http_error": {"stage": "txt2img", "kind": "oom"}})
    job_id = run_and_wait(gui, "out of memory", JobStatus.FAILED)
    gui.pump_until(lambda: window.running.outcome_job == job_id, 10, "the running panel")
    job = window.jobs.get_job(job_id)
    assert job.error is not None
    reason = job.error.reason_line()
    assert reason == "txt2img image 1: the backend ran out of memory"
    # The event's reason first, then StableNew's words once the job's record is read.
    gui.pump_until(lambda: reason in window.running.outcome.full_text, 10, "why")
    gui.pump_until(lambda: reason in window.message.full_text, 10, "why, in the status line")

    menu = window._menu_height()  # the menu bar above the window: together they fill 768
    assert window.root.winfo_width() == 1366 and window.root.winfo_height() + menu == 768
    # One line in the running panel, the status line and the history row.
    assert reason in window.running.outcome.full_text
    assert reason in window.message.full_text and "Queued" not in window.message.full_text
    assert window.lifecycle.cget("text") == "IDLE · last job failed"
    gui.pump_until(lambda: window.history.tree.exists(job_id), 10, "the history row")
    assert window.history.tree.rows[job_id][4] == reason  # the reason column
    assert window.history.tree.rows[job_id][3] == "0/1"  # made of asked

    # Nothing stale: no ▶ marker, the failed stage marked, no step count, no older image.
    labels = {s: str(w.cget("text")) for s, w in window.running.stage_labels.items()}
    assert not any(t.startswith(MARKS["active"]) for t in labels.values()), labels
    assert labels["txt2img"].startswith(MARKS["failed"])
    assert window.running.preview.cget("image") == ""
    assert window.running.preview.cget("text") == NO_IMAGE
    assert window.running.eta.full_text.strip() == ""
    assert window.running.image.full_text.strip() == ""
    assert str(window.running.cancel.cget("state")) == "disabled"

    # The whole envelope one click away, the button visible without resizing.
    button = window.running.details
    assert inside_window(gui, button)
    gui.click(button)
    gui.pump_until(lambda: bool(gui.toplevels()), 10, "the error window")
    details = gui.toplevels()[-1]
    assert isinstance(details, JobDetails)
    text = details.all_text()
    assert "OutOfMemoryError" in text
    assert job.error.artifacts and all(Path(p).is_file() for p in job.error.artifacts)
    for path in job.error.artifacts:
        assert path in text
    gui.click("Close", within=details)
    gui.pump_until(lambda: not gui.toplevels(), 10, "the window to close")

    # And a double-click on its history row opens the same.
    window.tabs.select(window.history)
    gui.settle()
    gui.click_row(window.history.tree, job_id, "reason", double=True)
    gui.pump_until(lambda: bool(gui.toplevels()), 10, "the error window from the history")
    assert "OutOfMemoryError" in gui.toplevels()[-1].all_text()
    assert inside_window(gui, window.history.tree)
    assert inside_window(gui, gui.button("Show error", within=window.history))


def test_the_step_bar_never_shows_0_of_n_and_the_panel_keeps_its_height(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui("--step-ms", "30")
    window = gui.window
    window.compose.restore({**FAST_JOB, "images": "3", "steps": "6", "img2img.enabled": True})
    gui.settle()
    height, below = window.running.winfo_height(), window.tabs.winfo_rooty()
    seen: set[str] = set()
    heights: set[int] = set()

    def watch() -> bool:
        seen.add(window.running.eta.full_text)
        heights.add(window.running.winfo_height())
        heights.add(window.tabs.winfo_rooty() - below + height)
        statuses = [j.status for j in window.jobs.list_jobs()]
        return statuses == [JobStatus.COMPLETED]

    gui.type_prompt("three images, two stages")
    gui.key("ctrl+Return")
    gui.pump_until(watch, 60, "the job to complete")
    assert any(t.startswith("step ") for t in seen), seen  # it did count steps
    assert not [t for t in seen if STALE_STEPS.search(t)], seen
    assert heights == {height}, "the running panel changed height, or what is below it moved"
    gui.pump_until(lambda: window.running.preview.cget("image") != "", 10, "the last image")
    assert window.running.winfo_height() == height


def test_a_cancelled_job_leaves_no_marker(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    url = window.services.backend.url
    httpx.post(f"{url}/sim/faults", json={"hang": {"stage": "txt2img", "mode": "honour_interrupt"}})
    window.compose.restore(FAST_JOB)
    gui.type_prompt("hangs until cancelled")
    gui.click("Run Now")
    gui.pump_until(
        lambda: str(window.running.stage_labels["txt2img"].cget("text")).startswith("▶"), 30
    )
    gui.click("Cancel (Esc)")
    gui.pump_until(lambda: window.running.outcome.full_text.startswith("■"), 30, "cancelled")
    labels = [str(w.cget("text")) for w in window.running.stage_labels.values()]
    assert not any(t.startswith("▶") for t in labels), labels
    assert "cancelled" in window.message.full_text

    # Found by a tester: the ended job's line (and a failure's Show error) stayed under the
    # next running job. A new job clears them; the reason stays in the history.
    httpx.post(f"{url}/sim/faults", json={"hang": {"stage": "txt2img", "mode": "honour_interrupt"}})
    gui.type_prompt("the next one")
    gui.click("Run Now")
    gui.pump_until(
        lambda: str(window.running.stage_labels["txt2img"].cget("text")).startswith("▶"), 30
    )
    assert window.running.outcome.full_text.strip() == ""
    assert str(window.running.details.cget("state")) == "disabled"
    gui.click("Cancel (Esc)")
    gui.pump_until(lambda: window.running.outcome.full_text.startswith("■"), 30, "cancelled")


def open_a_run_folder_from_history(gui: Gui) -> str:
    """Run a job, select its history row and click Open folder; its run folder."""
    window = gui.window
    window.compose.restore(FAST_JOB)
    job_id = run_and_wait(gui, "a folder to open", JobStatus.COMPLETED)
    run_dir = window.jobs.get_job(job_id).result.run_dir
    assert run_dir
    window.tabs.select(window.history)
    gui.pump_until(lambda: window.history.tree.exists(job_id), 10, "the history row")
    gui.click_row(window.history.tree, job_id, "status")  # select the row
    gui.click("Open folder", within=window.history)
    return run_dir


def test_open_folder_asks_the_platform_through_a_library_call(make_gui, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    opened: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        "stablenew.gui.opener.click.launch",
        lambda url, wait=False, locate=False: opened.append((url, locate)) or 0,
    )
    gui = make_gui()
    run_dir = open_a_run_folder_from_history(gui)
    gui.pump_until(lambda: bool(opened), 10, "the folder to be opened")
    assert opened == [(run_dir, False)]


def test_open_folder_says_whether_the_file_manager_opened_it(  # type: ignore[no-untyped-def]
    make_gui, monkeypatch, tmp_path: Path
) -> None:
    """A tester on a machine without a file manager: the status line stayed "Opening …" while
    xdg-open wrote "no method available" to the app's stderr (click.launch answered 0 before
    xdg-open had tried)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    asked = tmp_path / "asked.txt"
    opener.write_text(
        "#!/bin/sh\necho \"xdg-open: no method available for opening '$1'\" >&2\nexit 3\n",
        encoding="utf-8",
    )
    opener.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    gui = make_gui()
    window = gui.window
    run_dir = open_a_run_folder_from_history(gui)
    gui.pump_until(lambda: "Opening" not in window.message.full_text, 30, "the opener's answer")
    said = window.message.full_text
    assert run_dir in said and "\n" not in said
    assert "Could not open" in said and "exited with code 3" in said, said

    # A machine where the opener works: said so, and it was asked for that folder.
    opener.write_text(f'#!/bin/sh\nprintf %s "$1" > "{asked}"\n', encoding="utf-8")
    gui.click("Open folder", within=window.history)
    gui.pump_until(lambda: window.message.full_text.startswith("Opened"), 30, "the answer")
    assert window.message.full_text == f"Opened {run_dir}"
    assert asked.read_text(encoding="utf-8") == run_dir
