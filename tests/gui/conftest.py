"""The real Tk app on a virtual X display (Xvfb), with a real reference backend behind it.

Tests act as a user does: `Gui.click` moves the X pointer onto a button and clicks it with
xdotool (so a button that is off-screen, clipped or covered cannot be clicked), `Gui.key` and
`Gui.type` press real keys into whatever has the keyboard focus. Nothing sleeps to let the app
catch up: `pump_until` turns the Tk loop until a condition holds, within a generous bound.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path
from tkinter import ttk

import psutil
import pytest
from devtools.xvfb import start_xvfb

from stablenew.app import discovery
from stablenew.app.services import ServiceConfig, Services
from stablenew.gui.prefs import Prefs
from stablenew.gui.window import MainWindow
from tests.helpers import ROOT
from tests.pipeline.conftest import service_config

HIDPI_SCREEN = "2732x1536x24"


def _xvfb(size: str) -> Iterator[str]:
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.skip("Xvfb and xdotool are not installed (.ci/run installs them)")
    proc, name = start_xvfb(size)
    yield name
    proc.terminate()
    proc.wait(5)


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A 1366x768 screen, also the process's DISPLAY (subprocesses inherit it)."""
    for name in _xvfb("1366x768x24"):
        previous = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = name
        yield name
        if previous is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = previous


@pytest.fixture(scope="session")
def hidpi_display() -> Iterator[str]:
    """A 2732x1536 screen: 1366x768 at 2x."""
    yield from _xvfb(HIDPI_SCREEN)


@pytest.fixture(autouse=True)
def no_a1111_nearby(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first-start look for an A1111 probes no real port unless a test gives it some:
    what listens on this machine's 7860/7861 is not the suite's business."""
    monkeypatch.setattr(discovery, "PORTS", ())


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """For a condition in another process: ask again until it holds (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def owner(home: Path) -> dict[str, object] | None:
    """The home's owner, once its backend is up (what a window writes when it is ready)."""
    try:
        info = json.loads((home / "owner.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("backend_url") else None


def spawn_gui(home: Path, display: str) -> subprocess.Popen[str]:
    """`stablenew gui` as a user starts it, on `display`."""
    return subprocess.Popen(
        [sys.executable, "-m", "stablenew", "--home", str(home), "gui"],
        cwd=ROOT,
        env={**os.environ, "DISPLAY": display, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_backend(home: Path) -> None:
    """After a test that may have killed a window: its managed backend must not outlive it."""
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        psutil.Process(int((home / "backend.pid").read_text().split()[0])).kill()


class Gui:
    def __init__(self, window: MainWindow, display: str) -> None:
        self.window = window
        self.root = window.root
        self.display = display
        self.gaps: list[float] = []  # time between event-loop turns while pumping

    # -- the loop ------------------------------------------------------------------------------

    def pump_until(
        self, condition: Callable[[], bool], timeout: float = 30, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
            self.root.update()
            now = time.monotonic()
            self.gaps.append(now - last)
            last = now
            time.sleep(0.005)  # yield the CPU between turns of the loop we are driving

    def settle(self) -> None:
        """Let pending layout and redraws happen (geometry is read after this)."""
        self.root.update_idletasks()
        self.root.update()

    # -- a user's hands ------------------------------------------------------------------------

    def xdo(self, *args: str) -> None:
        subprocess.run(
            ["xdotool", *args],
            env={**os.environ, "DISPLAY": self.display},
            check=True,
            timeout=10,
        )

    def button(self, text: str, within: tk.Misc | None = None) -> ttk.Button:
        """The one mapped button with this text (in `within`, or anywhere in the app)."""
        self.settle()
        found = [
            w
            for w in walk(within or self.root)
            if isinstance(w, ttk.Button) and w.cget("text") == text and w.winfo_ismapped()
        ]
        assert len(found) == 1, f"{len(found)} visible buttons say {text!r}"
        return found[0]

    def click(self, target: str | tk.Misc, within: tk.Misc | None = None) -> None:
        """Click a button (by its text) or any widget, with the real pointer, at its centre."""
        widget = self.button(target, within) if isinstance(target, str) else target
        self.click_at(widget, widget.winfo_width() // 2, widget.winfo_height() // 2)

    def click_at(self, widget: tk.Misc, x: int, y: int, double: bool = False) -> None:
        self.settle()
        assert widget.winfo_viewable(), f"{widget} is not on screen"
        rx, ry = widget.winfo_rootx() + x, widget.winfo_rooty() + y
        hit = self.root.winfo_containing(rx, ry)
        assert hit is not None and str(hit).startswith(str(widget)), (
            f"the pointer at {rx},{ry} would hit {hit}, not {widget}: covered or clipped"
        )
        seen: list[int] = []
        sequence = "<Double-ButtonRelease-1>" if double else "<ButtonRelease-1>"
        hit.bind(sequence, lambda _e: seen.append(1), add="+")  # the event goes to what is hit
        try:
            clicks = ["click", "--repeat", "2", "--delay", "80", "1"] if double else ["click", "1"]
            # No --sync: it waits forever when the pointer is already there.
            self.xdo("mousemove", str(rx), str(ry), *clicks)
            self.pump_until(lambda: bool(seen), 10, f"the click on {widget} to arrive")
        finally:
            if hit.winfo_exists():  # a Close button is gone with its window
                hit.tk.call("bind", str(hit), sequence, "")
        self.settle()

    def key(self, keys: str) -> None:
        """Press keys (xdotool names: "ctrl+Return", "Escape") into the focused widget."""
        self.settle()
        self.xdo("key", "--clearmodifiers", keys)
        self.settle()

    def type(self, widget: tk.Misc, text: str) -> None:
        """Click into a text box and type, as a user does."""
        self.click(widget)
        self.pump_until(lambda: self.root.focus_get() is widget, 10, "the keyboard focus")
        self.xdo("type", "--delay", "2", text)

    def retype(self, entry: tk.Misc, text: str) -> None:
        """Replace an entry's text as a user does: click, select all, type."""
        self.click(entry)
        self.pump_until(lambda: self.root.focus_get() is entry, 10, "the keyboard focus")
        self.key("ctrl+slash")  # Tk's "select all"; typing replaces the selection
        self.xdo("type", "--delay", "2", text)
        self.pump_until(lambda: entry.get() == text, 10, f"{text!r} typed")  # type: ignore[attr-defined]

    def click_tab(self, notebook: ttk.Notebook, title: str) -> None:
        """Click a notebook's tab by its title, where it is drawn."""
        self.settle()
        y = 0
        xs: list[int] = []
        for y in range(2, notebook.winfo_height() // 4, 3):
            for x in range(0, notebook.winfo_width(), 3):
                try:
                    index = notebook.index(f"@{x},{y}")
                except tk.TclError:
                    continue
                if notebook.tab(index, "text") == title:
                    xs.append(x)
            if xs:
                break
        assert xs, f"no tab {title!r} is drawn"
        self.click_at(notebook, (xs[0] + xs[-1]) // 2, y + 6)
        self.pump_until(lambda: notebook.tab(notebook.select(), "text") == title, 10)

    def click_row(self, tree: ttk.Treeview, iid: str, column: str, double: bool = False) -> None:
        """Click (or double-click) a table row where it is drawn, once it is drawn."""
        boxes: list[tuple[int, int, int, int]] = []

        def drawn() -> bool:
            self.settle()
            box = tree.bbox(iid, column)
            if box:
                boxes.append(box)  # type: ignore[arg-type]
            return bool(box)

        self.pump_until(drawn, 10, f"row {iid} to be drawn")
        x, y, _width, height = boxes[-1]
        self.click_at(tree, x + 5, y + height // 2, double=double)

    def type_prompt(self, text: str) -> None:
        """Put a prompt in the box (fixtures for states; tests of typing use `type`)."""
        self.window.compose.set_prompt(text)

    def toplevels(self) -> list[tk.Toplevel]:
        return [w for w in self.root.winfo_children() if isinstance(w, tk.Toplevel)]


def walk(root: tk.Misc) -> Iterator[tk.Misc]:
    stack = [root]
    while stack:
        widget = stack.pop()
        yield widget
        stack.extend(widget.winfo_children())


def find(root: tk.Misc, match: Callable[[tk.Misc], bool]) -> tk.Misc:
    for widget in walk(root):
        if match(widget):
            return widget
    raise LookupError("no such widget")


@pytest.fixture
def make_gui(display: str, tmp_path: Path) -> Iterator[Callable[..., Gui]]:
    made: list[Gui] = []

    def make(
        *flags: str,
        screen: str | None = None,
        scaling: float | None = None,
        home: Path | None = None,
        ready: bool = True,
        config: ServiceConfig | None = None,  # instead of the reference backend with `flags`
    ) -> Gui:
        home = home or tmp_path
        services = Services(config or service_config(home, *flags))
        root = tk.Tk(screenName=screen or display)
        if scaling is not None:
            root.tk.call("tk", "scaling", scaling)
        window = MainWindow(services, Prefs(home / "gui.json"), root)
        gui = Gui(window, screen or display)
        made.append(gui)
        window.start()
        if ready:
            gui.pump_until(lambda: window.indicator.state == "READY", 60, "backend READY")
        return gui

    yield make
    for gui in made:
        if not gui.window.destroyed:
            gui.window.close()
            gui.pump_until(lambda g=gui: g.window.destroyed, 30, "the window to close")
    made.clear()
    gc.collect()  # Tk leftovers are collected here, on the Tk thread
