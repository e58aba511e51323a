"""The image-first parts: a gallery of 2,000 jobs opens and scrolls without stalling the Tk loop,
the viewer (fit, 1:1, siblings, infotext, manifest), the live preview while a stage samples, the
theme switch, the backend pool's rows, and the queue-finished action."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from stablenew.gui.gallery import CACHE, PAGE
from stablenew.gui.viewer import Viewer
from stablenew.jobs.outcome import ErrorEnvelope, JobOutcome, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore
from tests.gui.conftest import Gui

pytestmark = pytest.mark.integration

FAST = {"steps": "3", "width": "64", "height": "64", "images": "2", "seed": "9"}


def finished_history(home: Path, jobs: int, pictures: int = 60) -> None:
    """`jobs` completed jobs in the home's store, each with an image (some shared)."""
    folder = home / "out" / "made"
    folder.mkdir(parents=True)
    files = []
    for n in range(pictures):
        path = folder / f"{n:03}.png"
        Image.new("RGB", (256, 256), (n * 4 % 256, 90, 200 - n * 3 % 200)).save(path)
        files.append(str(path))
    store = JobStore(home / "jobs.db")
    ids = store.submit_many([JobSpec(prompt=f"history {n}") for n in range(jobs)])
    for n, job_id in enumerate(ids):
        claim = store.claim_next("tests")
        assert claim is not None
        result = JobResult(run_dir=str(folder), seeds=[n], images=[files[n % pictures]])
        store.finish(job_id, "tests", JobOutcome(status=JobStatus.COMPLETED, result=result))
    store.close()


class Lateness:
    """How late a 10 ms timer runs on the Tk loop (what a stall would show)."""

    def __init__(self, gui: Gui) -> None:
        self.root = gui.root
        self.late: list[float] = []
        self.due = time.perf_counter() + 0.01
        self.running = True
        self.root.after(10, self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        self.late.append(now - self.due)
        if self.running:
            self.due = now + 0.01
            self.root.after(10, self.tick)


def test_a_gallery_of_2000_jobs_opens_and_scrolls_without_stalling(
    make_gui, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    finished_history(tmp_path, 2000)
    gui: Gui = make_gui(home=tmp_path)
    window = gui.window
    gallery = window.gallery
    probe = Lateness(gui)
    gui.click_tab(window.tabs, "Gallery")
    gui.pump_until(lambda: gallery.total_jobs == 2000, 30, "the first page")
    assert len(gallery.items) < 2000  # a page at a time, not the whole history
    gui.pump_until(lambda: gallery.cache.decoded >= 4, 30, "thumbnails in view decoded")
    gui.click_at(gallery.canvas, 10, 10)  # the first cell: selected, the keys go there
    assert gallery.selected == 0
    gui.key("Right")
    assert gallery.selected == 1
    gui.key("Down")
    assert gallery.selected == 1 + gallery.columns()
    for _ in range(40):
        gui.xdo("key", "Next")
        gui.settle()
    gui.pump_until(lambda: len(gallery.items) > PAGE, 30, "more pages as the view nears the end")
    for _ in range(10):
        gallery.canvas.yview_moveto(1.0)
        gallery.redraw_soon()
        gui.settle()
    gui.pump_until(lambda: len(gallery.items) >= 4 * PAGE, 60, "pages loaded while scrolling")
    assert len({i.job_id for i in gallery.items}) == len(gallery.items)  # no page twice
    gui.key("End")
    gui.pump_until(lambda: gallery.cache.decoded >= 20, 30)
    probe.running = False
    assert len(gallery.cache.photos) <= CACHE
    assert max(probe.late) < 1.0, f"the Tk loop stalled for {max(probe.late):.2f}s"

    # Enter opens the viewer on the selected image: fit, 1:1, the next one.
    gui.key("Home")
    gui.key("Return")
    gui.pump_until(lambda: any(isinstance(w, Viewer) for w in gui.toplevels()), 10)
    viewer = next(w for w in gui.toplevels() if isinstance(w, Viewer))
    gui.pump_until(lambda: viewer.shown_size is not None, 15, "the image")
    fitted = viewer.shown_size
    assert fitted[0] <= viewer.canvas.winfo_width() and fitted[1] <= viewer.canvas.winfo_height()
    gui.click("1:1", within=viewer)
    gui.pump_until(lambda: viewer.shown_size == (256, 256), 10)
    gui.click("▶", within=viewer)
    assert viewer.index == 1
    gui.pump_until(lambda: "job " in viewer.details.get("1.0", "end"), 10, "the manifest summary")
    gui.key("Escape")


def test_captions_stay_inside_their_cells(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A tester saw "failed · f6205203 · 1/2" run into the next cell."""
    finished_history(tmp_path, 0)
    folder = tmp_path / "out" / "made"
    files = [str(folder / f"{n:03}.png") for n in range(2)]
    store = JobStore(tmp_path / "jobs.db")
    envelope = ErrorEnvelope(type="BackendError", message="out of memory", stage="upscale")
    for status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.COMPLETED):
        job_id = store.submit(JobSpec(prompt=f"{status.value} twice", images=2))
        assert store.claim_next("tests") is not None
        result = JobResult(run_dir=str(folder), seeds=[1, 2], images=files)
        error = envelope if status == JobStatus.FAILED else None
        store.finish(job_id, "tests", JobOutcome(status=status, result=result, error=error))
    store.close()
    gui: Gui = make_gui(home=tmp_path)
    gallery = gui.window.gallery
    gui.click_tab(gui.window.tabs, "Gallery")
    gui.pump_until(lambda: len(gallery.items) == 6, 30, "the gallery")
    gui.settle()
    canvas = gallery.canvas
    texts = [i for i in canvas.find_withtag("cell") if canvas.type(i) == "text"]
    captions = [str(canvas.itemcget(i, "text")) for i in texts]
    assert any(c.startswith("✗ ") and c.endswith(" · 1/2") for c in captions), captions
    assert any(c.startswith("■ ") for c in captions), captions
    for item in texts:
        left, _top, right, _bottom = canvas.bbox(item)
        x, _y = canvas.coords(item)
        cell = int(x) // gallery.cell_w
        assert cell * gallery.cell_w <= left and right <= (cell + 1) * gallery.cell_w, (
            f"{canvas.itemcget(item, 'text')!r} spans {left}..{right}, its cell is {cell}"
        )


def test_a_failed_jobs_card_says_why_and_opens_its_error(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A tester saw a failed job's card say only "failed": the reason is on the bar when it is
    selected, and View (Enter) on a job with no image opens its error."""
    from stablenew.gui.failure_view import JobDetails

    store = JobStore(tmp_path / "jobs.db")
    job_id = store.submit(JobSpec(prompt="too big"))
    assert store.claim_next("tests") is not None
    envelope = ErrorEnvelope(
        type="BackendError", message="CUDA out of memory", stage="txt2img", image_index=1
    )
    store.finish(job_id, "tests", JobOutcome.failed(envelope))
    store.close()
    gui: Gui = make_gui(home=tmp_path)
    gallery = gui.window.gallery
    gui.click_tab(gui.window.tabs, "Gallery")
    gui.pump_until(lambda: len(gallery.items) == 1, 30, "the card")
    gui.click_at(gallery.canvas, 10, 10)
    assert gallery.count.full_text.startswith(f"✗ job {job_id[:8]} failed: txt2img image 1")
    gui.key("Return")
    gui.pump_until(lambda: any(isinstance(w, JobDetails) for w in gui.toplevels()), 10)


def test_a_fit_still_scaling_when_the_user_picks_1_to_1_does_not_replace_it(
    make_gui, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """CI saw the 1:1 picture replaced by a fit that was still scaling off the Tk thread."""
    import threading

    from stablenew.gui import viewer as viewer_module

    finished_history(tmp_path, 2, pictures=2)
    gui: Gui = make_gui(home=tmp_path)
    gallery = gui.window.gallery
    gui.click_tab(gui.window.tabs, "Gallery")
    gui.pump_until(lambda: gallery.total_jobs == 2, 30, "the gallery")
    gallery.select(0)
    gui.click("View", within=gallery)
    gui.pump_until(lambda: any(isinstance(w, Viewer) for w in gui.toplevels()), 10)
    viewer = next(w for w in gui.toplevels() if isinstance(w, Viewer))
    gui.pump_until(lambda: viewer.shown_size is not None, 15, "the image")
    assert viewer.shown_size != (256, 256), "the fitted size differs from 1:1 at this window size"

    release = threading.Event()
    real = viewer_module.scaled
    monkeypatch.setattr(viewer_module, "scaled", lambda *a: release.wait(10) and real(*a))
    viewer.set_mode("fit")  # a fit starts scaling on the worker ...
    viewer.set_mode("actual")  # ... and the user picks 1:1 before it is done
    assert viewer.shown_size == (256, 256)
    release.set()
    drained: list[bool] = []
    gui.window.ui.run(lambda: None, lambda _r: drained.append(True))  # after the fit's result
    gui.pump_until(lambda: bool(drained), 10, "the worker to drain")
    assert viewer.shown_size == (256, 256)


def test_the_viewer_shows_siblings_infotext_and_manifest(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    window.compose.restore(
        {**FAST, "images": "1", "upscale.enabled": True, "img2img.enabled": True}
    )
    gui.type_prompt("a copper kettle")
    gui.click("Run Now")
    gui.pump_until(lambda: window.jobs.count([JobStatus.COMPLETED]) == 1, 60)
    gallery = window.gallery
    gui.pump_until(lambda: any(i.status == "COMPLETED" for i in gallery.all_items), 10)
    gallery.select(0)
    gui.click("View", within=gallery)
    gui.pump_until(lambda: any(isinstance(w, Viewer) for w in gui.toplevels()), 10)
    viewer = next(w for w in gui.toplevels() if isinstance(w, Viewer))
    gui.pump_until(lambda: viewer.facts is not None, 15)
    assert viewer.facts is not None
    assert list(viewer.facts.siblings) == ["txt2img", "img2img", "upscale"]
    infotext = viewer.infotext.get("1.0", "end")
    assert infotext.startswith("a copper kettle") and "Seed: 9" in infotext
    summary = viewer.details.get("1.0", "end")
    assert "seed 9" in summary and "txt2img: 64x64" in summary and "upscale:" in summary
    gui.pump_until(lambda: bool(viewer._sibling_photos.get("txt2img")), 10)
    gui.click(viewer.sibling_labels["txt2img"])
    gui.pump_until(lambda: viewer.file == viewer.facts.siblings["txt2img"], 10)  # type: ignore[union-attr]


def test_the_live_preview_updates_during_a_long_stage(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui("--step-ms", "100")
    window = gui.window
    window.compose.restore({**FAST, "images": "1", "steps": "40"})
    gui.type_prompt("a slow sunrise")
    gui.click("Run Now")
    running = window.running
    gui.pump_until(lambda: running.live_number >= 1, 30, "a first live preview")
    assert running.preview.cget("image"), "shown in the running panel"
    first = running.live_number
    assert window.state.lifecycle.value == "RUNNING"
    gui.pump_until(lambda: running.live_number > first, 30, "a newer live preview")
    gui.pump_until(lambda: window.jobs.count([JobStatus.COMPLETED]) == 1, 60)
    gui.pump_until(lambda: running.live_number == 0 and bool(running.preview.cget("image")), 10)


def test_theme_switch_from_the_view_menu(make_gui, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    view = window.menus.menus["View"]
    themes = view.nametowidget(view.entrycget("Theme", "menu"))
    before = window.compose.prompt.cget("background")
    themes.invoke("Dark")
    gui.settle()
    assert window.theme.name == "dark" and window.prefs.get("theme") == "dark"
    assert window.compose.prompt.cget("background") != before  # Tk widgets follow
    assert window.theme.colours()["text"] == "#fafafa"
    themes.invoke("Light")
    gui.settle()
    assert window.theme.name == "light"
    monkeypatch.setenv("STABLENEW_OS_THEME", "dark")
    themes.invoke("Follow the system")
    gui.settle()
    assert window.theme.name == "dark" and window.prefs.get("theme") == "system"


def test_the_backend_tab_shows_every_backend_of_the_pool(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    gui.click_tab(window.tabs, "Backend")
    tree = window.backend.pool
    gui.pump_until(lambda: len(tree.get_children()) == 1, 10, "one row")
    assert tree.shown("default")[:2] == ("default", "READY")


def test_when_the_queue_finishes_a_one_shot_command_runs(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    marker = tmp_path / "done.txt"
    command = f"{sys.executable} -c \"open(r'{marker}', 'w').write('done')\""
    window.prefs.set("when_done_command", command)
    window.menus.when_done.set("command")
    window.compose.restore({**FAST, "images": "1"})
    gui.type_prompt("a last lantern")
    gui.click("Run Now")
    gui.pump_until(marker.is_file, 60, "the command run")
    assert window.menus.when_done.get() == "nothing"  # one shot
    assert "The queue is finished" in window.message.full_text


def test_the_window_remembers_its_size_panes_and_the_last_form(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui(home=tmp_path)
    window = gui.window
    width = window.root.minsize()[0] + 8  # smaller than the default, larger than the least
    assert width < 1366
    window.root.geometry(f"{width}x700")
    gui.pump_until(lambda: window.root.winfo_width() == width, 10, "the new size")
    window.panes.sash_place(0, window.panes.sash_coord(0)[0] + 60, 1)
    gui.settle()
    panes = window.pane_positions()
    window.compose.restore({"steps": "33", "txt2img.enable_hr": True, "sampler": "Euler"})
    window.compose.set_prompt("remember me", "and me")
    window.compose.sections["Hires fix"].set_open(True)
    window.close()
    gui.pump_until(lambda: window.destroyed, 30, "the window to close")

    again: Gui = make_gui(home=tmp_path)
    window = again.window
    gui.settle()
    assert (window.root.winfo_width(), window.root.winfo_height()) == (width, 700)
    again.pump_until(lambda: window.pane_positions()["h"] == panes["h"], 10, "the divider")
    compose = window.compose
    assert (compose.prompt_text(), compose.negative_text()) == ("remember me", "and me")
    assert compose.vars["steps"].get() == "33" and compose.vars["sampler"].get() == "Euler"
    assert compose.vars["txt2img.enable_hr"].get() is True
    assert compose.sections["Hires fix"].opened


def test_the_file_dialogs_list_is_readable_in_the_dark_theme(display: str) -> None:
    """A tester's folder chooser in the dark theme drew white names on its white list."""
    import tkinter as tk

    from stablenew.gui import theme

    root = tk.Tk()
    try:
        from tkinter import ttk

        ttk.Label(root, text="a window with something in it").pack()
        theme.apply(root, "dark")
        root.tk.call("event", "generate", root, "<<ThemeChanged>>")  # as Tk sends it, later
        root.update()
        palette = str(root.tk.call("option", "get", root, "foreground", "Foreground"))
        assert root.winfo_rgb(palette) == root.winfo_rgb("#fafafa")  # white text elsewhere
        for dialog in ("TkFDialog", "TkChooseDir"):  # as Tk builds its dialogs' icon list
            top = tk.Toplevel(root, class_=dialog)
            canvas = tk.Canvas(tk.Frame(top), background="white")
            fill = str(root.tk.call("option", "get", canvas, "foreground", "Foreground"))
            assert root.winfo_rgb(fill) == root.winfo_rgb("#1a1a1a"), (dialog, fill)
            top.destroy()
    finally:
        root.destroy()


def test_a_stage_siblings_infotext_and_manifest_are_its_own(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester clicked image 2's txt2img sibling: its picture was shown, but the infotext
    (with img2img's "Denoising strength") and the manifest ("file 2_upscale.png") stayed those
    of the upscaled file."""
    from stablenew.jobs.infotext import read_png_metadata

    gui: Gui = make_gui()
    window = gui.window
    window.compose.restore(
        {**FAST, "width": "64", "height": "96", "upscale.enabled": True, "img2img.enabled": True}
    )
    gui.type_prompt("viewer test castle")
    gui.click("Run Now")
    gui.pump_until(lambda: window.jobs.count([JobStatus.COMPLETED]) == 1, 60)
    gallery = window.gallery
    gui.pump_until(lambda: sum(i.status == "COMPLETED" for i in gallery.all_items) == 2, 10)
    gallery.select(0)
    gui.click("View", within=gallery)
    gui.pump_until(lambda: any(isinstance(w, Viewer) for w in gui.toplevels()), 10)
    viewer = next(w for w in gui.toplevels() if isinstance(w, Viewer))
    gui.pump_until(lambda: viewer.facts is not None and viewer.facts.number == 1, 15)
    gui.pump_until(lambda: viewer.focus_get() is not None, 10, "the keyboard focus")
    gui.key("Right")
    gui.pump_until(lambda: viewer.facts is not None and viewer.facts.number == 2, 15)
    siblings = dict(viewer.facts.siblings)  # type: ignore[union-attr]

    def own(file: str) -> str:
        return read_png_metadata(Path(file).read_bytes(), Path(file).name).parameters or ""

    def shows(file: str) -> bool:
        return (
            viewer.file == file
            and viewer.infotext.get("1.0", "end-1c") == own(file)
            and f"file {Path(file).name}" in viewer.details.get("1.0", "end")
        )

    assert "Denoising strength" not in own(siblings["txt2img"])
    assert "Denoising strength" in own(siblings["upscale"])  # so the two differ
    gui.pump_until(lambda: bool(viewer._sibling_photos.get("txt2img")), 10)
    gui.click(viewer.sibling_labels["txt2img"])
    gui.pump_until(lambda: shows(siblings["txt2img"]), 10, "the txt2img file's own facts")
    summary = viewer.details.get("1.0", "end")
    assert "txt2img: 64x96" in summary and "upscale:" not in summary, summary
    assert viewer.caption.full_text == "txt2img of image 2"
    gui.click(viewer.sibling_labels["upscale"])
    gui.pump_until(lambda: shows(siblings["upscale"]), 10, "the upscaled file's own facts again")
    assert "upscale:" in viewer.details.get("1.0", "end")
