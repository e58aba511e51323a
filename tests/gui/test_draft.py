"""The Draft tab: jobs built with "Add to Job" before they are queued, one row each."""

from __future__ import annotations

from pathlib import Path
from tkinter import filedialog, ttk

import pytest
from PIL import Image

from tests.gui.conftest import Gui
from tests.gui.test_form import BASE, form_click, open_section

pytestmark = pytest.mark.integration


def test_draft_rows_from_input_images_say_which_image_and_the_list_scrolls(
    make_gui, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A tester added a folder of 40 images with img2img to the draft: 40 identical rows
    "1x a failing fox in the snow", no image name nor stage, about 22 shown and no scrollbar."""
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(40):
        Image.new("RGB", (16, 16), (n * 6, 255 - n * 6, 90)).save(folder / f"fox_{n:02}.png")
    gui: Gui = make_gui(home=tmp_path / "home")
    window = gui.window
    compose = window.compose
    compose.restore({**BASE, "img2img.enabled": True})
    gui.type_prompt("a failing fox in the snow")
    open_section(gui, "Input images")
    monkeypatch.setattr(filedialog, "askdirectory", lambda **_kw: str(folder))
    form_click(gui, "Folder…")
    gui.pump_until(lambda: len(compose.inputs) == 40, 15, "the images listed")
    gui.click("Add to Job")
    gui.pump_until(lambda: len(window.jobs.draft) == 40, 15, "40 jobs in the draft")
    gui.key("ctrl+3")
    draft = window.draft
    gui.pump_until(lambda: window.tabs.select() == str(draft), 10, "the Draft tab")

    rows = [draft.table.shown(iid) for iid in draft.table.get_children()]
    assert len(rows) == 40
    for n, row in enumerate(rows):
        assert f"fox_{n:02}.png" in row and "img2img" in row, row
    assert len(set(rows)) == 40, "every row tells its job apart"

    scroll = next(w for w in draft.winfo_children() if isinstance(w, ttk.Scrollbar))
    gui.settle()
    assert scroll.winfo_viewable() and draft.table.yview() != (0.0, 1.0), "more rows than room"
    last = draft.table.get_children()[-1]
    assert not draft.table.bbox(last), "the last row starts out of view"
    for _ in range(40):  # the user scrolls down with the scrollbar's arrow
        if draft.table.bbox(last):
            break
        gui.click_at(scroll, scroll.winfo_width() // 2, scroll.winfo_height() - 4)
    assert draft.table.bbox(last), "the last row is reached by scrolling"

    draft.table.yview_moveto(0)
    gui.click_row(draft.table, "0", "input")  # Remove takes the row selected
    gui.click("Remove", within=draft)
    gui.pump_until(lambda: len(window.jobs.draft) == 39, 10, "the first job removed")
    assert "fox_01.png" in draft.table.shown(draft.table.get_children()[0])
