"""The viewer: one image at full size (fit to the window, or 1:1 with panning), its infotext, a
summary of its manifest, and its stage siblings (the txt2img, img2img, adetailer and upscale
files of the same image side by side, each a click away). Left and Right go through the
gallery; F fits, 1 shows actual pixels; the buttons load its settings into the compose form.

Files are read and images decoded and scaled off the Tk thread.
"""

from __future__ import annotations

import json
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from tkinter import ttk
from typing import Any

from PIL import Image, ImageTk

from stablenew.app.controllers import JobExecutionController
from stablenew.errors import StableNewError
from stablenew.gui.dispatcher import UiDispatcher
from stablenew.gui.gallery import Item, decode
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import FitLabel, tip
from stablenew.jobs.infotext import read_png_metadata
from stablenew.jobs.job import Job
from stablenew.jobs.spec import STAGES

SIZE = (1100, 720)  # the window at 1x
SIDE = 360  # the facts column, pixels at 1x
SIBLING = 72  # a stage sibling's thumbnail


@dataclass(frozen=True)
class ImageFacts:
    """What the viewer shows about one image (read off the Tk thread)."""

    job: Job | None
    file: str
    number: int  # the image's number in its job (1-based; 0: unknown)
    siblings: dict[str, str] = field(default_factory=dict)  # stage -> its file of this image
    infotext: str = ""
    manifest: dict[str, Any] | None = None  # the image's: one per image, of its furthest file
    stage: str = ""  # the stage that made `file` ("": unknown)

    def summary(self) -> str:
        lines: list[str] = []
        m = self.manifest or {}
        job = self.job
        if job is not None:
            lines.append(f"job {job.short_id} · {job.status.value}")
        if self.number:
            total = len(job.result.images) if job is not None else 0
            lines.append(f"image {self.number}" + (f" of {total}" if total else ""))
        seed = m.get("seed")
        if seed is None and job is not None and 0 < self.number <= len(job.result.seeds):
            seed = job.result.seeds[self.number - 1]
        if seed is not None:
            lines.append(f"seed {seed}")
        if m.get("model"):
            lines.append(f"model {m['model']}")
        after = STAGES[STAGES.index(self.stage) + 1 :] if self.stage in STAGES else ()
        for stage in m.get("stages", []):
            if not isinstance(stage, dict):
                continue
            if stage.get("stage") in after:
                break  # the manifest is the image's; the file shown was made before this stage
            size = stage.get("size") or ["?", "?"]
            backend = stage.get("backend") or {}
            lines.append(
                f"{stage.get('stage')}: {size[0]}x{size[1]} in {stage.get('duration_s', 0):.2f}s"
                + (f" · {backend.get('name')}" if backend.get("name") else "")
                + (f" · {stage.get('attempts')} attempts" if stage.get("attempts", 1) > 1 else "")
            )
        if job is not None and job.result.run_dir:
            lines.append(f"folder {job.result.run_dir}")
        lines.append(f"file {Path(self.file).name}")
        return "\n".join(lines)


def read_facts(jobs: JobExecutionController, item: Item, file: str | None = None) -> ImageFacts:
    """The facts of `file` (the item's own file unless a stage sibling is named): its job,
    siblings, infotext and its image's manifest (call off the Tk thread)."""
    job: Job | None
    try:
        job = jobs.get_job(item.job_id)
    except StableNewError:
        job = None
    file = file or item.file or ""
    number = item.number
    siblings: dict[str, str] = {}
    made_by = ""
    if job is not None and file:
        made_by = next((s for s in STAGES if file in job.result.stages.get(s, [])), "")
        for files in [job.result.images, *job.result.stages.values()]:
            if file in files:
                number = files.index(file) + 1
                break
        for stage in STAGES:
            files = job.result.stages.get(stage, [])
            if 0 < number <= len(files):
                siblings[stage] = files[number - 1]
    infotext = ""
    manifest: dict[str, Any] | None = None
    if file:
        try:
            meta = read_png_metadata(Path(file).read_bytes(), Path(file).name)
            infotext = meta.parameters or ""
        except (OSError, StableNewError):
            infotext = ""
        final = file
        if job is not None and 0 < number <= len(job.result.images):
            final = job.result.images[number - 1]
        try:
            loaded = json.loads(Path(final).with_suffix(".json").read_text(encoding="utf-8"))
            manifest = loaded if isinstance(loaded, dict) else None
        except (OSError, ValueError):
            manifest = None
    return ImageFacts(job, file, number, siblings, infotext, manifest, made_by)


def _call(command: Callable[[], object], _event: object) -> None:
    command()


def scaled(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` scaled up or down to fit width x height, keeping its aspect, at least 1 px."""
    ratio = min(width / image.width, height / image.height)
    if image.width * ratio < 1 or image.height * ratio < 1:
        ratio = 1
    return image.resize(
        (max(1, round(image.width * ratio)), max(1, round(image.height * ratio))),
        Image.Resampling.LANCZOS,
    )


class Viewer(tk.Toplevel):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        ui: UiDispatcher,
        jobs: JobExecutionController,
        items: Callable[[], list[Item]],
        index: int,
        act: Callable[[str, Item], None],
    ) -> None:
        super().__init__(master)
        px = theme.px
        self.theme = theme
        self.ui = ui
        self.jobs = jobs
        self.items = items
        self.index = index
        self.act = act
        self.mode = "fit"
        self.full: Image.Image | None = None
        self.facts: ImageFacts | None = None
        self.wanted = ""  # the file last asked for: what is read or decoded for another is stale
        self._photo: ImageTk.PhotoImage | None = None
        self._sibling_photos: dict[str, ImageTk.PhotoImage] = {}
        self._fit_pending: str | None = None
        self._shown: tuple[str, int, int] | None = None
        self.shown_size: tuple[int, int] | None = None  # what is on the canvas now
        self.title("StableNew viewer")
        self.geometry("{}x{}".format(*theme.fit(px(SIZE[0]), px(SIZE[1]))))
        self.transient(master.winfo_toplevel())
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)

        bar = ttk.Frame(self, padding=px(4))
        bar.grid(row=0, column=0, columnspan=2, sticky="ew")
        bar.columnconfigure(4, weight=1)
        self.buttons: dict[str, ttk.Button] = {}
        for column, (text, command, hint) in enumerate(
            (
                ("◀", lambda: self.step(-1), "Previous image (Left)"),
                ("▶", lambda: self.step(1), "Next image (Right)"),
                ("Fit", lambda: self.set_mode("fit"), "Fit to the window (F)"),
                ("1:1", lambda: self.set_mode("actual"), "Actual pixels; drag to pan (1)"),
            )
        ):
            button = ttk.Button(bar, text=text, command=command, style="Small.TButton")
            button.grid(row=0, column=column, padx=(0, px(2)))
            tip(button, hint)
            self.buttons[text] = button
        self.caption = FitLabel(bar, "")
        self.caption.grid(row=0, column=4, sticky="ew", padx=px(6))
        for column, (text, op, hint) in enumerate(
            (
                ("Use settings", "load", "Load its settings into the form, same seed"),
                ("New seed", "reroll", "Load its settings into the form with a new seed"),
                ("Open folder", "open", "Its run folder in the file manager"),
            ),
            start=5,
        ):
            button = ttk.Button(bar, text=text, command=partial(self._act, op))
            button.grid(row=0, column=column, padx=(px(2), 0))
            tip(button, hint)
            self.buttons[text] = button

        self.canvas = tk.Canvas(self, highlightthickness=0)
        self.canvas.grid(row=1, column=0, sticky="nsew")
        self.canvas.bind("<Configure>", lambda _e: self._refit_soon())
        self.canvas.bind("<ButtonPress-1>", lambda e: self.canvas.scan_mark(e.x, e.y))
        self.canvas.bind("<B1-Motion>", lambda e: self.canvas.scan_dragto(e.x, e.y, gain=1))

        side = ttk.Frame(self, padding=(px(6), 0, px(6), px(6)), width=px(SIDE))
        side.grid(row=1, column=1, sticky="ns")
        side.grid_propagate(False)
        side.columnconfigure(0, weight=1)
        side.rowconfigure(3, weight=1)
        side.rowconfigure(5, weight=1)
        ttk.Label(side, text="Stages of this image", style="Title.TLabel").grid(
            row=0, column=0, sticky="w"
        )
        self.strip = ttk.Frame(side)
        self.strip.grid(row=1, column=0, sticky="w", pady=(px(2), px(6)))
        self.sibling_labels: dict[str, tk.Label] = {}
        for column, stage in enumerate(STAGES):
            label = tk.Label(self.strip, text=stage, compound="top", cursor="hand2", bd=0)
            label.grid(row=0, column=column, padx=(0, px(4)))
            label.bind("<Button-1>", partial(self._sibling_clicked, stage))
            self.sibling_labels[stage] = label
        ttk.Label(side, text="Infotext", style="Title.TLabel").grid(row=2, column=0, sticky="w")
        self.infotext = tk.Text(side, height=8, wrap="word", width=10)
        self.infotext.grid(row=3, column=0, sticky="nsew")
        ttk.Label(side, text="Manifest", style="Title.TLabel").grid(
            row=4, column=0, sticky="w", pady=(px(6), 0)
        )
        self.details = tk.Text(side, height=8, wrap="word", width=10)
        self.details.grid(row=5, column=0, sticky="nsew")

        for sequence, command in (
            ("<Left>", lambda: self.step(-1)),
            ("<Right>", lambda: self.step(1)),
            ("<f>", lambda: self.set_mode("fit")),
            ("<Key-1>", lambda: self.set_mode("actual")),
            ("<Escape>", self.destroy),
        ):
            self.bind(sequence, partial(_call, command))
        self.show(index)
        self.focus_set()

    # -- which image ---------------------------------------------------------------------------

    def item(self) -> Item | None:
        items = self.items()
        return items[self.index] if 0 <= self.index < len(items) else None

    def step(self, by: int) -> None:
        items = self.items()
        if items:
            self.show(max(0, min(len(items) - 1, self.index + by)))

    def show(self, index: int) -> None:
        self.index = index
        item = self.item()
        if item is None:
            return
        self.caption.set(f"job {item.job_id[:8]} · image {item.number or '-'} · {item.prompt}")
        self.wanted = item.file or ""
        self.ui.run(lambda: read_facts(self.jobs, item), self._facts)
        if item.file:
            self.open_file(item.file)

    def open_file(self, file: str) -> None:
        self.wanted = file

        def load() -> Image.Image:
            with Image.open(file) as image:
                return image.convert("RGB")

        self.ui.run(load, partial(self._loaded, file), partial(self._unreadable, file))

    def _unreadable(self, file: str, error: BaseException) -> None:
        if not self.winfo_exists() or file != self.wanted:
            return
        self.full = None
        self.canvas.delete("all")
        self.canvas.create_text(10, 10, anchor="nw", text=f"cannot show it: {error}")

    def _loaded(self, file: str, image: Image.Image) -> None:
        if not self.winfo_exists() or file != self.wanted:
            return
        self.full = image
        self.file = file
        self._shown = None
        self._refit()

    def _facts(self, facts: ImageFacts) -> None:
        if not self.winfo_exists() or facts.file != self.wanted:
            return
        same_strip = self.facts is not None and self.facts.siblings == facts.siblings
        self.facts = facts
        texts = ((self.infotext, facts.infotext or "(none)"), (self.details, facts.summary()))
        for box, text in texts:
            box.configure(state="normal")
            box.delete("1.0", "end")
            box.insert("1.0", text)
            box.configure(state="disabled")
        if same_strip:
            return  # a sibling of the same image: its thumbnails are already there
        size = self.theme.px(SIBLING)
        self._sibling_photos.clear()
        for stage, label in self.sibling_labels.items():
            file = facts.siblings.get(stage)
            label.configure(image="", text=stage if file else f"{stage}\n—")
            if file:
                self.ui.run(partial(decode, file, size), partial(self._sibling, stage))

    def _sibling(self, stage: str, image: Image.Image) -> None:
        if not self.winfo_exists():
            return
        self._sibling_photos[stage] = ImageTk.PhotoImage(image, master=self)
        self.sibling_labels[stage].configure(image=self._sibling_photos[stage], text=stage)

    def _sibling_clicked(self, stage: str, _event: object) -> None:
        self.show_sibling(stage)

    def show_sibling(self, stage: str) -> None:
        item = self.item()
        if item is None or self.facts is None or stage not in self.facts.siblings:
            return
        file = self.facts.siblings[stage]
        self.open_file(file)
        self.caption.set(f"{stage} of image {self.facts.number}")
        self.ui.run(lambda: read_facts(self.jobs, item, file), self._facts)

    # -- drawing -------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._shown = None
        self._refit()

    def _refit_soon(self) -> None:
        if self._fit_pending is None:
            self._fit_pending = self.after(50, self._refit)

    def _refit(self) -> None:
        self._fit_pending = None
        full = self.full
        if full is None or not self.winfo_exists():
            return
        width, height = max(1, self.canvas.winfo_width()), max(1, self.canvas.winfo_height())
        want = (self.mode, width, height) if self.mode == "fit" else (self.mode, 0, 0)
        if want == self._shown:
            return
        self._shown = want
        if self.mode == "actual":
            self._draw(full)
        else:
            self.ui.run(lambda: scaled(full, width, height), lambda image: self._draw(image, want))

    def _draw(self, image: Image.Image, want: tuple[str, int, int] | None = None) -> None:
        # A fit scaled off the Tk thread can arrive after the user switched to 1:1 or resized
        # again: drawing it then would replace the newer picture with a stale one.
        if not self.winfo_exists() or (want is not None and want != self._shown):
            return
        self._photo = ImageTk.PhotoImage(image, master=self)
        self.canvas.delete("all")
        width, height = self.canvas.winfo_width(), self.canvas.winfo_height()
        if self.mode == "fit":
            self.canvas.create_image(width // 2, height // 2, image=self._photo)
            self.canvas.configure(scrollregion=(0, 0, width, height))
        else:
            self.canvas.create_image(0, 0, image=self._photo, anchor="nw")
            self.canvas.configure(scrollregion=(0, 0, image.width, image.height))
        self.shown_size = (image.width, image.height)

    def _act(self, op: str) -> None:
        item = self.item()
        if item is not None:
            self.act(op, item)

    def destroy(self) -> None:
        self._photo = None
        self._sibling_photos.clear()
        super().destroy()
