"""The README's screenshots, made from the real flow: a user's clicks and keys on the real app
against the reference backend, light and dark, at 1x (1366x768) and 2x (2732x1536). Every run
goes through the flow (it must keep working); the pictures are written to $STABLENEW_SCREENSHOTS
when set (`python -m devtools.screenshots`)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageGrab

from stablenew.gui.failure_view import JobDetails
from stablenew.gui.settings_dialog import SettingsDialog
from stablenew.gui.viewer import Viewer
from tests.gui.conftest import HIDPI_SCREEN, Gui

pytestmark = pytest.mark.integration

REFERENCE = "reference backend (simulated images)"
PROMPT = "a lighthouse at dusk, oil painting, dramatic clouds, <lora:add_detail:0.6>"


def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("STABLENEW_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def snapper(gui: Gui, out: Path):  # type: ignore[no-untyped-def]
    def snap(name: str, window: object = None) -> None:
        gui.settle()
        top = window or gui.root
        image = ImageGrab.grab(xdisplay=gui.display)
        x, y = top.winfo_rootx(), top.winfo_rooty()  # type: ignore[attr-defined]
        if top is gui.root:
            x, y = 0, 0  # the menu bar too
        box = (x, y, top.winfo_rootx() + top.winfo_width(), top.winfo_rooty() + top.winfo_height())  # type: ignore[attr-defined]
        image.crop(box).save(out / f"{name}.png", optimize=True)

    return snap


def open_section(gui: Gui, title: str) -> None:
    section = gui.window.compose.sections[title]
    if not section.opened:
        gui.window.compose.scroll.see(section)
        gui.click(section.toggle)


def dark(gui: Gui) -> None:
    view = gui.window.menus.menus["View"]
    view.nametowidget(view.entrycget("Theme", "menu")).invoke("Dark")
    gui.settle()


def run_a_job(gui: Gui, images: str = "4") -> None:
    window = gui.window
    compose = window.compose
    gui.type(compose.prompt, PROMPT)
    gui.type(compose.negative, "blurry, low contrast")
    compose.scroll.see(compose.entries["images"])
    gui.retype(compose.entries["images"], images)
    gui.retype(compose.entries["steps"], "12")
    for title, check in (("img2img (refine)", "img2img.enabled"), ("Upscale", "upscale.enabled")):
        open_section(gui, title)
        compose.scroll.see(compose.checks[check])
        gui.click(compose.checks[check])
    compose.scroll.canvas.yview_moveto(0)
    gui.key("ctrl+Return")


def test_the_readme_screenshots_from_the_real_flow(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = shots(tmp_path)
    gui: Gui = make_gui("--step-ms", "60")
    window = gui.window
    snap = snapper(gui, out)
    gui.pump_until(lambda: REFERENCE in window.backend_text.full_text, 30)

    run_a_job(gui)
    img2img = window.running.stage_labels["img2img"]
    gui.pump_until(lambda: str(img2img.cget("text")).startswith("▶"), 60, "img2img")
    gui.pump_until(lambda: window.running.preview.cget("image") != "", 30, "a preview")
    gui.pump_until(lambda: window.running.eta.full_text.startswith("step"), 30, "steps")
    snap("running")
    gui.pump_until(lambda: window.running.outcome.full_text.startswith("✓"), 180, "the end")
    gui.pump_until(lambda: window.gallery.cache.decoded >= 4, 30, "the gallery's thumbnails")
    window.compose.scroll.canvas.yview_moveto(0)
    snap("gallery")

    gui.click_at(window.gallery.canvas, 20, 20)
    gui.key("Return")
    gui.pump_until(lambda: any(isinstance(w, Viewer) for w in gui.toplevels()), 10)
    viewer = next(w for w in gui.toplevels() if isinstance(w, Viewer))
    gui.pump_until(lambda: viewer.facts is not None and len(viewer._sibling_photos) == 3, 20)
    gui.pump_until(lambda: getattr(viewer, "shown_size", None) is not None, 20)
    snap("viewer", viewer)
    gui.click("Use settings", within=viewer)
    gui.key("Escape")
    gui.pump_until(lambda: not viewer.winfo_exists(), 10)

    window.open_sections(True)
    window.compose.scroll.see(window.compose.sections["Hires fix"])
    snap("compose")

    dark(gui)
    window.open_sections(False)
    for title in ("Model and sampling", "Size, seed and count"):
        window.compose.sections[title].set_open(True)
    snap("gallery-dark")
    window.open_sections(True)
    window.compose.scroll.see(window.compose.sections["ADetailer"])
    snap("compose-dark")
    window.set_theme("light")
    window.open_sections(False)
    for title in ("Model and sampling", "Size, seed and count"):
        window.compose.sections[title].set_open(True)

    url = window.services.backend.url
    httpx.post(f"{url}/sim/faults", json={"http_error": {"stage": "txt2img", "kind": "oom"}})
    window.compose.set_prompt("a lighthouse in a storm")
    images = window.compose.entries["images"]

    def shown() -> bool:  # the sections just opened are laid out a moment later: scroll then
        window.compose.scroll.see(images)
        return bool(images.winfo_viewable())

    gui.pump_until(shown, 10, "the opened sections")
    gui.retype(images, "1")
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
    names = ("running", "gallery", "viewer", "compose", "gallery-dark", "compose-dark", "failed")
    for name in (*names, "failure_details", "debug_log", "settings"):
        with Image.open(out / f"{name}.png") as image:
            assert image.getextrema() != ((0, 0), (0, 0), (0, 0)), f"{name} is blank"


def test_the_readme_screenshots_at_2x(make_gui, hidpi_display: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = shots(tmp_path)
    gui: Gui = make_gui(screen=hidpi_display, scaling=2 * 96 / 72)
    window = gui.window
    snap = snapper(gui, out)
    assert window.theme.scale == 2
    run_a_job(gui, images="2")
    gui.pump_until(lambda: window.running.outcome.full_text.startswith("✓"), 120, "the end")
    gui.pump_until(lambda: window.gallery.cache.decoded >= 2, 30, "the gallery's thumbnails")
    width = int(HIDPI_SCREEN.split("x")[0])
    assert window.root.winfo_width() == width
    snap("gallery@2x")
    dark(gui)
    snap("gallery-dark@2x")
    for name in ("gallery@2x", "gallery-dark@2x"):
        with Image.open(out / f"{name}.png") as image:
            assert image.size[0] == width
