"""The real Tk app on a virtual X display (Xvfb), with a real reference backend behind it."""

from __future__ import annotations

import gc
import os
import shutil
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path
from tkinter import ttk

import pytest
from devtools.xvfb import start_xvfb

from stablenew.app.services import Services
from stablenew.gui.prefs import Prefs
from stablenew.gui.window import MainWindow
from tests.pipeline.conftest import service_config


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (.ci/run installs it)")
    proc, name = start_xvfb()
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = name
    yield name
    proc.terminate()
    proc.wait(5)
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous


class Gui:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.root = window.root
        self.gaps: list[float] = []  # time between event-loop turns while pumping

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

    def click(self, text: str) -> None:
        button = find(self.root, lambda w: isinstance(w, ttk.Button) and w.cget("text") == text)
        button.invoke()
        self.root.update()

    def type_prompt(self, text: str) -> None:
        self.window.compose.set_prompt(text)


def find(root: tk.Misc, match: Callable[[tk.Misc], bool]) -> tk.Misc:
    stack = [root]
    while stack:
        widget = stack.pop()
        if match(widget):
            return widget
        stack.extend(widget.winfo_children())
    raise LookupError("no such widget")


@pytest.fixture
def make_gui(display: str, tmp_path: Path) -> Iterator[Callable[..., Gui]]:
    made: list[Gui] = []

    def make(*flags: str) -> Gui:
        services = Services(service_config(tmp_path, *flags))
        window = MainWindow(services, Prefs(tmp_path / "gui.json"), tk.Tk())
        gui = Gui(window)
        made.append(gui)
        window.start()
        gui.pump_until(lambda: window.indicator.state == "READY", 60, "backend READY")
        return gui

    yield make
    for gui in made:
        if not gui.window.destroyed:
            gui.window.close()
            gui.pump_until(lambda g=gui: g.window.destroyed, 30, "the window to close")
    made.clear()
    gc.collect()  # Tk leftovers are collected here, on the Tk thread
