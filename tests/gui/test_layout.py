"""Nothing is clipped, measured from widget geometry: at 1366x768 (1x), and on a 2732x1536
screen at tk scaling 2.0 and at twice the screen's own scaling (2x).

Every mapped widget lies inside its parent; every button, label and check box got at least the
size it asked for; a shortened label's text fits its width; every table heading and cell fits
its column (the debug log's event names included); every list's value fits its field and its
drop-down fits its longest choice. Run with content that is long on purpose."""

from __future__ import annotations

import json
import signal
import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Iterator
from pathlib import Path
from tkinter import ttk

import httpx
import pytest

from stablenew.gui.compose import SECTIONS
from stablenew.gui.widgets import FitLabel, FitTree
from stablenew.jobs.status import JobStatus
from tests.gui.conftest import HIDPI_SCREEN, Gui, owner, spawn_gui, stop_backend, wait_for, walk

pytestmark = pytest.mark.integration

LONG = (
    "a lighthouse at dusk on a basalt cliff, oil painting, dramatic clouds, long exposure, "
    "volumetric light, highly detailed, trending on artstation, in the style of Turner"
)
FAST_JOB = {"steps": "3", "width": "64", "height": "64", "images": "1", "seed": "5"}


def body_font(widget: tk.Misc) -> tkfont.Font:
    return tkfont.nametofont("SunValleyBodyFont", root=widget)


def options(w: tk.Misc) -> set[str]:
    return set(w.keys())


def widget_font(w: tk.Misc) -> tkfont.Font:
    name = str(w.cget("font")) if "font" in options(w) else ""
    if not name and isinstance(w, ttk.Widget):
        style = str(w.cget("style")) or w.winfo_class()
        name = str(ttk.Style(w).lookup(style, "font")) or str(ttk.Style(w).lookup(".", "font"))
    return tkfont.nametofont(name or "TkDefaultFont", root=w)


def px(widget: tk.Misc, pixels: int) -> int:
    return round(pixels * max(1.0, float(widget.tk.call("tk", "scaling")) / (96 / 72)))


def problems(top: tk.Misc) -> Iterator[str]:
    """What is clipped in `top` (a window) as it is shown now."""
    for w in walk(top):
        if w is not top and isinstance(w, tk.Toplevel):
            continue  # its own window: checked on its own
        if w is not top and not w.winfo_ismapped():
            continue
        if w is top:
            screen = (w.winfo_screenwidth(), w.winfo_screenheight())
            if w.winfo_rootx() + w.winfo_width() > screen[0] or (
                w.winfo_rooty() + w.winfo_height() > screen[1]
            ):
                yield f"{w} is larger than the screen"
            continue
        parent = w.nametowidget(w.winfo_parent())
        x, y, width, height = w.winfo_x(), w.winfo_y(), w.winfo_width(), w.winfo_height()
        scrolled = isinstance(parent, tk.Canvas)  # a form that scrolls: taller on purpose
        if not scrolled and (
            x < 0 or y < 0 or x + width > parent.winfo_width() or y + height > parent.winfo_height()
        ):
            yield f"{w} ({width}x{height}+{x}+{y}) sticks out of {parent}"
        if isinstance(w, FitLabel):
            shown = str(w.cget("text"))
            if w.font().measure(shown) > width:
                yield f"{w}: {shown!r} is wider than {width}"
        elif isinstance(w, ttk.Button | ttk.Label | ttk.Checkbutton | ttk.Radiobutton | tk.Label):
            text = str(w.cget("text"))
            if w.winfo_reqwidth() > width or w.winfo_reqheight() > height:
                asked = f"{w.winfo_reqwidth()}x{w.winfo_reqheight()}"
                yield f"{w} {text!r}: asked {asked}, got {width}x{height}"
            # A fixed -width can ask for less than the text: then measure the text itself.
            fixed = "width" in options(w) and str(w.cget("width")) not in ("", "0")
            indicator = px(w, 24) if isinstance(w, ttk.Checkbutton | ttk.Radiobutton) else 0
            wraps = "wraplength" in options(w) and str(w.cget("wraplength")) not in ("", "0")
            if fixed and not wraps and widget_font(w).measure(text) + indicator > width:
                yield f"{w}: {text!r} needs {widget_font(w).measure(text)}, it is {width} wide"
        elif isinstance(w, FitTree):
            yield from tree_problems(w)
        elif isinstance(w, ttk.Combobox):
            yield from combo_problems(w)


def tree_problems(tree: FitTree) -> Iterator[str]:
    body, head = body_font(tree), tkfont.nametofont("SunValleyCaptionFont", root=tree)
    total = sum(int(tree.column(c.name, "width")) for c in tree.fit_columns)
    if "tree" in str(tree.cget("show")):
        total += int(tree.column("#0", "width"))
    if total > tree.winfo_width():
        yield f"{tree}: its columns need {total}, it is {tree.winfo_width()} wide"
    for i, column in enumerate(tree.fit_columns):
        width = int(tree.column(column.name, "width"))
        if head.measure(column.heading) + px(tree, 4) > width:
            yield f"{tree}: heading {column.heading!r} is cut at {width}"
        for iid in tree.get_children():
            shown = tree.shown(iid)[i]
            if body.measure(shown) + px(tree, 4) > width:
                yield f"{tree}: {column.name} {shown!r} is cut at {width}"


def combo_problems(combo: ttk.Combobox) -> Iterator[str]:
    font = body_font(combo)
    field = combo.winfo_width() - px(combo, 26)  # the arrow's part
    value = combo.get()
    if font.measure(value) > field:
        yield f"{combo}: its value {value!r} is cut at {field}"
    values = [str(v) for v in combo.cget("values")]
    postcommand = str(combo.cget("postcommand"))
    if postcommand:
        combo.tk.eval(postcommand)  # what opening the list does first
    offset = str(ttk.Style(combo).lookup(str(combo.cget("style")) or "TCombobox", "postoffset"))
    extra = int(offset.split()[2]) if len(offset.split()) == 4 else 0
    widest = max((font.measure(v) for v in values), default=0)
    if widest > field + extra:
        yield f"{combo}: its longest choice needs {widest}, the list gets {field + extra}"


def populate(gui: Gui) -> None:
    """A completed and a failed job, two queued, one in the draft, long texts everywhere."""
    window = gui.window
    window.compose.restore(FAST_JOB)
    gui.type_prompt(LONG)
    gui.click("Run Now")
    gui.pump_until(lambda: [j.status for j in window.jobs.list_jobs()] == [JobStatus.COMPLETED])
    url = window.services.backend.url
    httpx.post(f"{url}/sim/faults", json={"http_error": {"stage": "txt2img", "kind": "oom"}})
    gui.type_prompt("fails: " + LONG)
    gui.click("Run Now")
    gui.pump_until(lambda: window.running.outcome.full_text.startswith("✗"), 30)
    window.tabs.select(window.queue)
    gui.click(window.queue.auto_run_button)
    gui.pump_until(lambda: window.state.paused is not None)
    window.compose.restore({"img2img.enabled": True, "adetailer.enabled": True})
    window.compose.restore({"upscale.enabled": True})
    for n in range(2):
        gui.type_prompt(f"queued {n}: {LONG}")
        gui.key("ctrl+Return")
        gui.pump_until(lambda n=n: len(window.state.queue) == n + 1, 30)
    gui.type_prompt("drafted: " + LONG)
    gui.click("Add to Job")
    gui.pump_until(lambda: len(window.draft.table.get_children()) == 1)
    gui.pump_until(lambda: len(window.history.tree.get_children()) == 2)
    gui.pump_until(lambda: bool(window.history.thumbs))
    window.compose.combos["sampler"].set("DPM++ 2M SDE Heun")  # the longest A1111 sampler


@pytest.mark.parametrize("scale", ["1x", "1.5x", "tk scaling 2.0", "2x"])
def test_nothing_is_clipped(make_gui, hidpi_display: str, scale: str) -> None:  # type: ignore[no-untyped-def]
    if scale == "1x":
        gui = make_gui()
        expected = (1366, 768)
    else:
        # 2x: twice Tk's scaling at 96 dpi (what Windows sets at 200%). Set every time: Tk keeps
        # a screen's scaling for the process, from one window to the next.
        scaling = {"tk scaling 2.0": 2.0, "1.5x": 1.5 * 96 / 72}.get(scale, 2 * 96 / 72)
        gui = make_gui(screen=hidpi_display, scaling=scaling)
        factor = round(scaling / (96 / 72) * 4) / 4
        width, height = (int(n) for n in HIDPI_SCREEN.split("x")[:2])
        expected = (min(width, round(1366 * factor)), min(height, round(768 * factor)))
    window = gui.window
    populate(gui)
    gui.settle()
    # The window and its menu bar together fill the screen (the menu bar above the window).
    menu = window._menu_height()
    assert menu > 0
    assert (window.root.winfo_width(), window.root.winfo_height() + menu) == expected

    window.open_sections(True)  # every group of the form shown (it scrolls)
    tabs = (window.gallery, window.queue, window.draft, window.history, window.debug_log)
    for tab in (*tabs, window.backend):
        window.tabs.select(tab)
        gui.settle()
        found = list(problems(window.root))
        assert not found, f"{tab.winfo_name()}:\n" + "\n".join(found)

    # At the smallest size the window allows, too.
    window.root.geometry("{}x{}".format(*window.root.minsize()))
    gui.pump_until(lambda: window.root.winfo_width() == window.root.minsize()[0], 10)
    for tab in (window.gallery, window.queue, window.history, window.debug_log, window.backend):
        window.tabs.select(tab)
        gui.settle()
        found = list(problems(window.root))
        assert not found, f"{tab.winfo_name()} at {window.root.minsize()}:\n" + "\n".join(found)

    gui.click(window.running.details)  # the failed job's envelope
    gui.pump_until(lambda: bool(gui.toplevels()), 10, "the error window")
    details = gui.toplevels()[-1]
    gui.settle()
    assert not list(problems(details)), "\n".join(problems(details))
    gui.click("Close", within=details)

    gui.click("Settings…", within=window.root.nametowidget(window.indicator.winfo_parent()))
    gui.pump_until(lambda: bool(gui.toplevels()), 10, "the settings")
    settings = gui.toplevels()[-1]
    gui.settle()
    assert not list(problems(settings)), "\n".join(problems(settings))


def test_the_app_at_2x_with_a_saved_form_and_dividers_saved_at_1x_starts_and_answers(
    hidpi_display: str, tmp_path: Path
) -> None:
    """The tester's gui.json: written at 1x (the left divider at its 1x minimum), then scaling
    2 chosen. Placing that divider below the 2x minimum, again at every <Configure>, kept Tk's
    layout from ever settling: a half-drawn window that ignored clicks and SIGTERM."""
    (tmp_path / "config.toml").write_text("[backend]\ndiscover = false\n", encoding="utf-8")
    form: dict[str, object] = {**FAST_JOB, "prompt": LONG, "negative_prompt": "blurry"}
    form |= {"txt2img.enable_hr": True, "adetailer.enabled": True, "upscale.enabled": True}
    form["open"] = [title for title, _opened in SECTIONS]  # the form at its tallest
    saved = {
        "scale": "2",
        "geometry": "1366x740+0+0",
        "panes": {"h": 451, "v": 177},
        "compose": form,
    }
    (tmp_path / "gui.json").write_text(json.dumps(saved), encoding="utf-8")
    gui = spawn_gui(tmp_path, hidpi_display)
    try:
        wait_for(lambda: owner(tmp_path), 60, "the window to own the home and its backend")
        # The Tk loop answers: SIGTERM closes the window its own way, which saves the form and
        # the dividers where the 2x layout put them (a stuck loop never gets to that).
        gui.send_signal(signal.SIGTERM)
        code = gui.wait(60)
        stderr = gui.stderr.read() if gui.stderr else ""
        assert code == 143, stderr
        assert "does not answer" not in stderr
        again = json.loads((tmp_path / "gui.json").read_text(encoding="utf-8"))
        assert again["compose"]["prompt"] == LONG
        assert again["compose"]["steps"] == FAST_JOB["steps"]
        # Saved in 1x units: the 2x form's minimum (in device pixels, more than the old 451).
        assert again["panes"]["units"] == "1x"
        assert again["panes"]["h"] * 2 > saved["panes"]["h"]
    finally:
        if gui.poll() is None:
            gui.kill()
            gui.wait(10)
        stop_backend(tmp_path)


def test_a_saved_size_below_the_layout_minimum_opens_at_the_minimum(  # type: ignore[no-untyped-def]
    make_gui, hidpi_display: str, tmp_path: Path
) -> None:
    """A size saved at 1x (or by a smaller layout) is below what the 2x layout needs."""
    (tmp_path / "gui.json").write_text(json.dumps({"geometry": "900x520+0+0"}), encoding="utf-8")
    gui = make_gui(screen=hidpi_display, scaling=2 * 96 / 72, ready=False)
    root = gui.window.root
    gui.settle()
    least = root.minsize()
    assert root.winfo_width() >= least[0] and root.winfo_height() >= least[1]
    assert not list(problems(root)), "\n".join(problems(root))


def test_dividers_moved_at_2x_open_at_1x_where_they_were(  # type: ignore[no-untyped-def]
    make_gui, hidpi_display: str, tmp_path: Path
) -> None:
    """A 2x window saved its dividers in device pixels ({'h': 831, 'v': 353}): the next 1x
    window opened with a 650 px compose column and a 350 px running panel, and saved that."""
    gui = make_gui(screen=hidpi_display, scaling=2 * 96 / 72, ready=False)
    window = gui.window
    gui.settle()
    least = window.pane_positions()  # where the layout puts them: at their minimums
    window.panes.sash_place(0, least["h"] + 80, 1)
    window.right_panes.sash_place(0, 1, least["v"] + 40)
    gui.settle()
    moved = window.pane_positions()
    assert moved == {"h": least["h"] + 80, "v": least["v"] + 40}
    window.close()
    gui.pump_until(lambda: window.destroyed, 30, "the window to close")
    saved = json.loads((tmp_path / "gui.json").read_text(encoding="utf-8"))["panes"]
    at_1x = {"h": moved["h"] // 2, "v": moved["v"] // 2}
    assert saved == {**at_1x, "units": "1x"}

    again = make_gui(ready=False)
    again.pump_until(lambda: again.window.pane_positions() == at_1x, 10, f"dividers at {at_1x}")
    again.window.close()
    again.pump_until(lambda: again.window.destroyed, 30, "the window to close")
    saved = json.loads((tmp_path / "gui.json").read_text(encoding="utf-8"))["panes"]
    assert saved == {**at_1x, "units": "1x"}  # and so on, at any scaling


def test_dividers_from_an_older_gui_json_open_within_the_layout(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Device pixels without the 1x marker (written before it): taken as this display's,
    within what the layout allows; saved in 1x units from then on."""
    panes = {"h": 99999, "v": 1}
    (tmp_path / "gui.json").write_text(json.dumps({"panes": panes}), encoding="utf-8")
    gui = make_gui(ready=False)
    window = gui.window
    gui.settle()
    allowed = lambda: {k: window._sash_range(k, v) for k, v in panes.items()}  # noqa: E731
    gui.pump_until(lambda: window.pane_positions() == allowed(), 10, "the dividers placed")
    gui.settle()
    assert not list(problems(window.root)), "\n".join(problems(window.root))
    placed = window.pane_positions()
    window.close()
    gui.pump_until(lambda: window.destroyed, 30, "the window to close")
    saved = json.loads((tmp_path / "gui.json").read_text(encoding="utf-8"))["panes"]
    assert saved == {**placed, "units": "1x"}
