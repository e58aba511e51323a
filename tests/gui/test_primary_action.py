"""The primary action queues what is composed: the first click works, Ctrl+Enter works from the
prompt box without adding a newline, Run Now runs what is composed ahead of the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew.gui.compose import NO_PACK
from stablenew.jobs.status import JobStatus
from tests.gui.conftest import Gui

pytestmark = pytest.mark.integration

FAST_JOB = {"steps": "4", "width": "64", "height": "64", "images": "1", "seed": "5"}


def statuses(gui: Gui) -> dict[str, JobStatus]:
    """Every job of the home and its status, read through the controller."""
    return {j.spec.prompt: j.status for j in gui.window.jobs.list_jobs()}


def test_the_first_click_queues_the_typed_prompt_with_an_empty_draft(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    window.compose.restore(FAST_JOB)
    gui.type(window.compose.prompt, "a paper crane")
    gui.click("Add to Queue (Ctrl+Enter)")
    gui.pump_until(
        lambda: statuses(gui).get("a paper crane") == JobStatus.COMPLETED, 60, "the job to run"
    )
    assert window.jobs.draft == []
    gui.pump_until(lambda: "completed" in window.message.full_text, 10, "the status line")
    assert window.running.outcome.full_text.startswith("✓ job")


def test_ctrl_enter_inside_the_prompt_box_queues_and_adds_no_newline(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    window.compose.restore(FAST_JOB)
    gui.type(window.compose.prompt, "a lantern on a boat")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: "a lantern on a boat" in statuses(gui), 30, "the job to be queued")
    assert window.compose.prompt.get("1.0", "end-1c") == "a lantern on a boat"  # no newline
    assert len(statuses(gui)) == 1  # one press, one job

    # From the negative prompt too, and from anywhere else in the window.
    gui.type(window.compose.negative, "blurry")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: len(window.jobs.list_jobs()) == 2, 30, "a second job")
    assert window.compose.negative.get("1.0", "end-1c") == "blurry"
    gui.click(window.tabs)  # the keyboard focus leaves the text boxes
    gui.key("ctrl+Return")
    gui.pump_until(lambda: len(window.jobs.list_jobs()) == 3, 30, "a third job")


def test_run_now_runs_the_composed_prompt_ahead_of_the_queue_and_resumes_it(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    window.compose.restore(FAST_JOB)
    window.tabs.select(window.queue)
    gui.click(gui.window.queue.auto_run_button)  # auto-run off: the queue pauses
    gui.pump_until(lambda: window.state.paused is not None, 10, "the queue to pause")
    for prompt in ("first queued", "second queued"):
        gui.type_prompt(prompt)
        gui.key("ctrl+Return")
        gui.pump_until(lambda p=prompt: p in statuses(gui), 10, f"{prompt!r} queued")
    gui.type_prompt("in the draft")
    gui.click("Add to Job")
    gui.pump_until(lambda: len(window.jobs.draft) == 1, 10, "the draft")

    gui.type_prompt("the one being edited")
    gui.click("Run Now")
    gui.pump_until(
        lambda: (
            all(s == JobStatus.COMPLETED for s in statuses(gui).values())
            and len(statuses(gui)) == 3
        ),
        60,
        "every queued job to run",
    )
    started = sorted(window.jobs.list_jobs(), key=lambda j: j.started_at or j.created_at)
    assert started[0].spec.prompt == "the one being edited"  # ahead of what was queued first
    assert window.state.paused is None and window.queue.auto_run.get()
    assert [s.prompt for s in window.jobs.draft] == ["in the draft"]  # the draft stays a draft


def test_ctrl_shift_enter_in_the_prompt_boxes_runs_now(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester saw Ctrl+Shift+Enter in the prompt box queue at the back of a paused queue (and,
    with a draft, queue the draft): the box's Ctrl+Enter binding took it."""
    gui = make_gui()
    window = gui.window
    window.compose.restore(FAST_JOB)
    window.tabs.select(window.queue)
    gui.click(gui.window.queue.auto_run_button)
    gui.pump_until(lambda: window.state.paused is not None, 10, "the queue to pause")
    gui.type_prompt("waiting")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: "waiting" in statuses(gui), 10, "queued")
    gui.type_prompt("in the draft")
    gui.click("Add to Job")
    gui.pump_until(lambda: len(window.jobs.draft) == 1, 10, "the draft")

    gui.type_prompt("run from the prompt box")
    gui.click(window.compose.prompt)
    gui.key("ctrl+shift+Return")
    gui.pump_until(lambda: statuses(gui).get("run from the prompt box") == JobStatus.COMPLETED, 60)
    assert window.compose.prompt.get("1.0", "end-1c") == "run from the prompt box"  # no newline
    assert window.state.paused is None  # Run Now resumes the queue
    started = sorted(window.jobs.list_jobs(), key=lambda j: j.started_at or j.created_at)
    assert started[0].spec.prompt == "run from the prompt box"
    assert [s.prompt for s in window.jobs.draft] == ["in the draft"]  # the draft stays a draft

    gui.type_prompt("run from the negative box")
    gui.click(window.compose.negative)
    gui.key("ctrl+shift+KP_Enter")
    gui.pump_until(
        lambda: statuses(gui).get("run from the negative box") == JobStatus.COMPLETED, 60
    )


def test_the_draft_is_queued_when_the_user_built_one(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    window.compose.restore(FAST_JOB)
    for prompt in ("draft one", "draft two"):
        gui.type_prompt(prompt)
        gui.click("Add to Job")
        gui.pump_until(
            lambda p=prompt: any(p in row for row in window.draft.table.rows.values()), 10
        )
    assert window.primary.cget("text") == "Queue the Draft (Ctrl+Enter)"
    assert window.tabs.tab(window.draft, "text") == "Draft (2)"
    gui.type_prompt("not in the draft")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: len(statuses(gui)) == 2, 10, "the draft to be queued")
    assert set(statuses(gui)) == {"draft one", "draft two"}
    gui.pump_until(lambda: window.primary.cget("text") == "Add to Queue (Ctrl+Enter)", 10)
    assert window.tabs.tab(window.draft, "text") == "Draft (0)"


def test_an_invalid_compose_says_why_and_queues_nothing(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = make_gui()
    window = gui.window
    gui.click("Add to Queue (Ctrl+Enter)")  # no prompt yet
    gui.pump_until(lambda: window.message.full_text.startswith("Nothing queued"), 10)
    assert "prompt" in window.message.full_text
    gui.click("Run Now")
    gui.pump_until(lambda: window.message.full_text.startswith("Nothing run"), 10)
    assert window.jobs.list_jobs() == []
    gui.pump_until(  # the trail says it too
        lambda: [r[2] for r in window.debug_log.rows()].count("add_to_queue_failed") == 2, 10
    )


def test_a_typed_pack_path_is_read_as_typed_and_the_hint_is_what_gets_queued(  # type: ignore[no-untyped-def]
    make_gui, tmp_path: Path
) -> None:
    """A tester typed a pack's path (no Return): the hint kept saying "no pack: the prompt above
    is what gets queued" and Ctrl+Enter queued the pack. A pack that cannot be read showed its
    long path, the reason cut off behind it."""
    pack = tmp_path / "two.txt"
    pack.write_text("pack row A\n\npack row B\n", encoding="utf-8")
    gui = make_gui()
    window = gui.window
    compose = window.compose
    compose.restore(FAST_JOB)
    gui.type(compose.prompt, "prompt text")
    gui.type(compose.pack_entry, str(pack))
    gui.click(compose.prompt)
    gui.pump_until(lambda: "queued instead of the prompt" in compose.pack_preview.full_text, 10)
    gui.key("ctrl+Return")
    gui.pump_until(lambda: set(statuses(gui)) == {"pack row A", "pack row B"}, 30, "the pack")

    deep = tmp_path / ("a_very_long_folder_name_for_testing_clipping_" * 3) / "latin1.txt"
    deep.parent.mkdir()
    deep.write_bytes(b"caf\xe9\n")
    gui.retype(compose.pack_entry, str(deep))
    gui.pump_until(lambda: compose.pack_preview.full_text.startswith("error:"), 10, "the error")
    gui.settle()
    assert "UTF-8" in str(compose.pack_preview.cget("text")), compose.pack_preview.full_text

    gui.key("ctrl+slash")  # select all, then erase: no pack any more
    gui.key("BackSpace")
    gui.pump_until(lambda: compose.pack_preview.full_text == NO_PACK, 10, "no pack")


def test_ctrl_enter_in_the_gallery_or_history_only_queues(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester saw Ctrl+Enter with the gallery (or history) focused queue the job and also
    open the viewer (or the job's details): their Enter binding matched Ctrl+Enter too."""
    from stablenew.gui.failure_view import JobDetails
    from stablenew.gui.viewer import Viewer

    gui = make_gui()
    window = gui.window
    window.compose.restore(FAST_JOB)
    gui.type_prompt("first")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: statuses(gui).get("first") == JobStatus.COMPLETED, 60)
    gallery = window.gallery
    gui.click_tab(window.tabs, "Gallery")
    gui.pump_until(lambda: bool(gallery.all_items), 10, "the image")
    gui.click_at(gallery.canvas, 10, 10)
    gui.key("ctrl+Return")
    gui.pump_until(lambda: len(window.jobs.list_jobs()) == 2, 10, "a second job")
    gui.click_tab(window.tabs, "History")
    tree = window.history.tree
    gui.pump_until(lambda: bool(tree.get_children()), 10, "a history row")
    gui.click_row(tree, tree.get_children()[-1], "job")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: len(window.jobs.list_jobs()) == 3, 10, "a third job")
    gui.settle()
    opened = [w for w in gui.toplevels() if isinstance(w, Viewer | JobDetails)]
    assert opened == [], opened
    gui.key("Return")  # Enter alone still opens the selected job's details
    gui.pump_until(lambda: any(isinstance(w, JobDetails) for w in gui.toplevels()), 10)


def test_tab_leaves_the_prompt_and_the_focused_field_is_always_in_view(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester's Tab in the prompt box typed a tab into the prompt (and it was sent); tabbing
    on through the form, the focused field went out of view."""
    gui = make_gui()
    window = gui.window
    compose = window.compose
    window.open_sections(True)  # the form at its tallest: it scrolls
    gui.type(compose.prompt, "no tab in here")
    gui.key("Tab")
    assert window.root.focus_get() is compose.negative
    gui.key("shift+Tab")
    assert window.root.focus_get() is compose.prompt
    assert compose.prompt.get("1.0", "end-1c") == "no tab in here"

    canvas = compose.scroll.canvas
    interior = str(compose.scroll.interior)
    checked = 0
    for _ in range(60):
        gui.key("Tab")
        focused = window.root.focus_get()
        if focused is None or not str(focused).startswith(interior):
            continue
        checked += 1
        top, bottom = focused.winfo_rooty(), focused.winfo_rooty() + focused.winfo_height()
        view_top = canvas.winfo_rooty()
        assert view_top <= top and bottom <= view_top + canvas.winfo_height(), (
            f"{focused} at {top}..{bottom} is outside the form's view"
        )
    assert checked > 20
