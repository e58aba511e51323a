"""Screenshots of the desktop app's main states, for the README.

    python -m stablenew.gui.screenshots [OUT_DIR]      (default docs/screenshots)

Runs the real app on a virtual display against the reference backend: idle, running (with the
stage timeline and preview), a failed job with its error envelope, and the debug log.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import ImageGrab

from devtools.xvfb import start_xvfb
from stablenew.app.config import Config, service_config
from stablenew.app.services import Services
from stablenew.gui.prefs import Prefs
from stablenew.gui.window import MainWindow
from stablenew.webui.process import reference_backend_command


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    xvfb = None
    if not os.environ.get("DISPLAY"):
        xvfb, os.environ["DISPLAY"] = start_xvfb()
    try:
        with tempfile.TemporaryDirectory() as home:
            shoot(Path(home), out)
    finally:
        if xvfb is not None:
            xvfb.terminate()


def shoot(home: Path, out: Path) -> None:
    config = Config()
    config.backend.command = reference_backend_command(0, "--step-ms", "60")
    services = Services(service_config(home, config))
    window = MainWindow(services, Prefs(home / "gui.json"), tk.Tk())
    root = window.root

    def pump(until: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("the app did not reach the state to photograph")
            root.update()
            time.sleep(0.01)

    def snap(name: str) -> None:
        for _ in range(20):
            root.update()
        ImageGrab.grab(xdisplay=os.environ["DISPLAY"]).crop(
            (0, 0, root.winfo_width(), root.winfo_height())
        ).save(out / f"{name}.png")
        print(f"wrote {out / name}.png")

    window.start()
    pump(lambda: window.indicator.state == "READY")
    snap("idle")

    window.compose.set_prompt("a lighthouse at dusk, oil painting", "blurry")
    window.compose.restore(
        {"images": "3", "img2img.enabled": True, "upscale.enabled": True, "steps": "20"}
    )
    window.add_to_job()
    pump(lambda: bool(window.jobs.draft))
    window.add_to_queue()
    pump(lambda: window.running.stage_labels["img2img"].cget("text").startswith("▶"))
    pump(lambda: window.running.preview.cget("image") != "")
    snap("running")
    pump(lambda: window.lifecycle.cget("text") == "IDLE", 120)

    httpx.post(
        f"{services.backend.url}/sim/faults",
        json={"http_error": {"stage": "txt2img", "kind": "oom"}},
    )
    window.compose.restore({"images": "1", "img2img.enabled": False, "upscale.enabled": False})
    window.run_now()
    pump(lambda: window.lifecycle.cget("text") == "ERROR")
    window.tabs.select(window.history)
    tree = window.history.tree
    pump(lambda: len(tree.get_children()) >= 2)
    tree.selection_set(tree.get_children()[0])
    window.history_action("error", tree.get_children()[0])
    popup = [w for w in root.winfo_children() if isinstance(w, tk.Toplevel)][-1]
    popup.geometry("760x420+560+300")
    snap("failed")
    popup.destroy()

    window.tabs.select(window.debug_log)
    snap("debug_log")
    window.close()
    pump(lambda: window.destroyed)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshots"))
