"""The Settings dialog at the screen sizes the app supports: nothing of the form is cut (the
form scrolls when the dialog cannot grow), a result or error that wraps does not move the
fields under the pointer, and the check and radio indicators follow the display's scaling."""

from __future__ import annotations

from tkinter import ttk

import pytest

from tests.gui.conftest import walk
from tests.gui.test_backend import settings_dialog
from tests.gui.test_layout import problems, widget_font

pytestmark = pytest.mark.integration

WRONG_EVERYWHERE = {
    "backend.startup_timeout": "-5",
    "backend.url": "ftp://nowhere",
    "limits.max_upscale_megapixels": "-1",
    "limits.tile_min": "4096",
    "limits.tile_max": "abc",
}


def test_a_settings_error_on_a_short_screen_cuts_nothing_and_every_field_stays_reachable(  # type: ignore[no-untyped-def]
    make_gui,
) -> None:
    """The tester's 1366x768 screen: the error filled the dialog and the "Upscale limits"
    group was cut under the footer, its Tile row half hidden and no way to reach it."""
    gui = make_gui()
    dialog = settings_dialog(gui)
    for key, text in WRONG_EVERYWHERE.items():
        dialog.vars[key].set(text)
    gui.click("Save", within=dialog)
    gui.pump_until(lambda: "Not saved" in str(dialog.error.cget("text")), 10, "the refusal")
    gui.settle()
    assert dialog.winfo_rooty() + dialog.winfo_height() <= dialog.winfo_screenheight()
    assert not list(problems(dialog)), "\n".join(problems(dialog))
    for key, entry in dialog.entries.items():
        if str(entry.cget("state")) == "disabled":
            continue  # managed-only fields in attached mode: shown, not typed into
        dialog.form_view.see(entry)
        gui.click(entry)  # asserts the pointer hits it: on screen, not covered or cut
        gui.pump_until(lambda e=entry: gui.root.focus_get() is e, 10, f"{key} focused")
    for what in (gui.button("Save", dialog), gui.button("Cancel", dialog)):
        assert what.winfo_rooty() + what.winfo_height() <= dialog.winfo_screenheight()
    gui.click("Cancel", within=dialog)
    gui.pump_until(lambda: not gui.toplevels(), 10, "the dialog to close")


def test_a_two_line_connection_result_does_not_move_the_fields(make_gui, start_sim) -> None:  # type: ignore[no-untyped-def]
    """A 401 said on two lines moved the dialog up 21 px: the click aimed at Password landed
    in "Start-up timeout"."""
    sim = start_sim("--api-auth", "user:right", auth=("user", "right"))
    gui = make_gui()
    dialog = settings_dialog(gui)
    gui.click(dialog.modes["attached"])
    gui.type(dialog.entries["backend.url"], sim.url)
    gui.type(dialog.entries["backend.username"], "user")
    gui.type(dialog.entries["backend.password"], "wrong")
    gui.settle()
    password = dialog.entries["backend.password"]
    before = (dialog.winfo_rooty(), password.winfo_rooty())
    gui.click("Test connection", within=dialog)
    gui.pump_until(lambda: str(dialog.test_result.cget("text")).startswith("✗"), 30)
    gui.settle()
    assert "rejected the credentials" in str(dialog.test_result.cget("text"))
    line = gui.window.theme.body.metrics("linespace")
    assert dialog.test_result.winfo_height() >= 2 * line, "the case at hand: two lines"
    assert (dialog.winfo_rooty(), password.winfo_rooty()) == before
    assert not list(problems(dialog)), "\n".join(problems(dialog))
    gui.click(password)
    gui.pump_until(lambda: gui.root.focus_get() is password, 10, "Password focused")


def test_the_settings_check_and_radio_indicators_follow_2x(  # type: ignore[no-untyped-def]
    make_gui, hidpi_display: str
) -> None:
    """At 2x the text was twice as large and the indicators next to it stayed 1x size."""
    gui = make_gui(screen=hidpi_display, scaling=2 * 96 / 72)
    px = gui.window.theme.px
    dialog = settings_dialog(gui)
    gui.settle()
    indicators = [w for w in walk(dialog) if isinstance(w, ttk.Checkbutton | ttk.Radiobutton)]
    assert len(indicators) == 3
    for w in indicators:
        beside = w.winfo_reqwidth() - widget_font(w).measure(str(w.cget("text")))
        assert beside >= px(20 + 2 * 4), f"{w} {w.cget('text')!r}: {beside} px beside its text"
        assert w.winfo_reqheight() >= px(20 + 2 * 4), f"{w}: {w.winfo_reqheight()} px tall"
    assert not list(problems(dialog)), "\n".join(problems(dialog))
