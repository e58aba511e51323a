"""The README's screenshots, made from the real flow: a user's clicks and keys on the real app
against the reference backend. Every run goes through the flow (it must keep working); the
pictures are written to $STABLENEW_SCREENSHOTS when set (`python -m devtools.screenshots`)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from PIL import ImageGrab

from stablenew.gui.failure_view import JobDetails
from stablenew.gui.settings_dialog import SettingsDialog
from tests.gui.conftest import Gui

pytestmark = pytest.mark.integration

REFERENCE = "reference backend (simulated images)"


def test_the_readme_screenshots_from_the_real_flow(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = Path(os.environ.get("STABLENEW_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    gui: Gui = make_gui("--step-ms", "60")
    window = gui.window
    compose = window.compose

    def snap(name: str) -> None:
        gui.settle()
        image = ImageGrab.grab(xdisplay=gui.display)
        image.crop((0, 0, window.root.winfo_width(), window.root.winfo_height())).save(
            out / f"{name}.png"
        )

    gui.pump_until(lambda: REFERENCE in window.backend_text.full_text, 30)
    snap("idle")

    gui.type(compose.prompt, "a lighthouse at dusk, oil painting, dramatic clouds")
    gui.type(compose.negative, "blurry, low contrast")
    gui.retype(compose.entries["images"], "3")
    gui.click(compose.checks["img2img.enabled"])
    gui.click(compose.checks["upscale.enabled"])
    gui.key("ctrl+Return")
    img2img = window.running.stage_labels["img2img"]
    gui.pump_until(lambda: str(img2img.cget("text")).startswith("▶"), 60, "img2img")
    gui.pump_until(lambda: window.running.preview.cget("image") != "", 30, "a preview")
    gui.pump_until(lambda: window.running.eta.full_text.startswith("step"), 30, "steps")
    snap("running")
    gui.pump_until(lambda: window.running.outcome.full_text.startswith("✓"), 120, "the end")

    url = window.services.backend.url
    httpx.post(f"{url}/sim/faults", json={"http_error": {"stage": "txt2img", "kind": "oom"}})
    gui.retype(compose.entries["images"], "1")
    gui.click(compose.checks["img2img.enabled"])
    gui.click(compose.checks["upscale.enabled"])
    gui.click("Run Now")
    gui.pump_until(lambda: window.running.outcome.full_text.startswith("✗"), 60, "the failure")
    gui.click_tab(window.tabs, "History")
    gui.pump_until(lambda: len(window.history.tree.get_children()) == 2, 10)
    gui.pump_until(lambda: bool(window.history.thumbs), 10, "a thumbnail")
    snap("failed")

    gui.click(window.running.details)
    gui.pump_until(lambda: any(isinstance(w, JobDetails) for w in gui.toplevels()), 10)
    snap("failure_details")
    gui.click("Close", within=gui.toplevels()[-1])

    gui.click_tab(window.tabs, "Debug log")
    snap("debug_log")

    top_bar = window.root.nametowidget(window.indicator.winfo_parent())
    gui.click("Settings…", within=top_bar)
    gui.pump_until(lambda: any(isinstance(w, SettingsDialog) for w in gui.toplevels()), 10)
    snap("settings")
    gui.click("Cancel", within=gui.toplevels()[-1])
    for name in ("idle", "running", "failed", "failure_details", "debug_log", "settings"):
        assert (out / f"{name}.png").stat().st_size > 10_000
