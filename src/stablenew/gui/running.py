"""The running job: stage timeline, image i/N, step progress with ETA, live preview, Cancel."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from PIL import Image, ImageTk

from stablenew.app.state import ActiveStage
from stablenew.jobs.spec import STAGES


class RunningPanel(ttk.LabelFrame):
    def __init__(self, master: tk.Misc, on_cancel: Callable[[], None]) -> None:
        super().__init__(master, text="Running", padding=6)
        self.columnconfigure(1, weight=1)
        self.preview = ttk.Label(self, text="no image yet", anchor="center", width=22)
        self.preview.grid(row=0, column=0, rowspan=4, padx=(0, 8))
        self._photo: ImageTk.PhotoImage | None = None
        self.job = ttk.Label(self, text="idle", font=("TkDefaultFont", 11, "bold"))
        self.job.grid(row=0, column=1, sticky="w")
        timeline = ttk.Frame(self)
        timeline.grid(row=1, column=1, sticky="w", pady=2)
        self.stage_labels = {}
        for stage in STAGES:
            label = ttk.Label(timeline, text=f"○ {stage}", padding=(6, 2))
            label.pack(side="left")
            self.stage_labels[stage] = label
        self.image = ttk.Label(self, text="")
        self.image.grid(row=2, column=1, sticky="w")
        bar = ttk.Frame(self)
        bar.grid(row=3, column=1, sticky="ew")
        bar.columnconfigure(0, weight=1)
        self.progress = ttk.Progressbar(bar, maximum=1, value=0)
        self.progress.grid(row=0, column=0, sticky="ew")
        self.eta = ttk.Label(bar, text="", width=16)
        self.eta.grid(row=0, column=1, padx=4)
        self.cancel = ttk.Button(bar, text="Cancel (Esc)", command=on_cancel, state="disabled")
        self.cancel.grid(row=0, column=2)
        self.stages: list[str] = []

    def show(self, active: ActiveStage | None, lifecycle: str, stages: list[str]) -> None:
        self.stages = stages or self.stages
        running = active is not None and lifecycle in ("RUNNING", "STOPPING")
        self.cancel.configure(state="normal" if running else "disabled")
        if active is None:
            self.job.configure(text=f"idle ({lifecycle})" if lifecycle != "IDLE" else "idle")
            self.image.configure(text="")
            self.progress.configure(value=0)
            self.eta.configure(text="")
            return
        self.job.configure(text=f"job {active.job_id[:8]} · {lifecycle}")
        current = STAGES.index(active.stage) if active.stage in STAGES else -1
        for i, stage in enumerate(STAGES):
            if stage not in self.stages:
                text, style = f"- {stage}", "Disabled.TLabel"
            elif i < current:
                text, style = f"✓ {stage}", "Done.TLabel"
            elif i == current:
                text, style = f"▶ {stage}", "Active.TLabel"
            else:
                text, style = f"○ {stage}", "TLabel"
            self.stage_labels[stage].configure(text=text, style=style)
        if active.image_index:
            self.image.configure(text=f"image {active.image_index}/{active.total}")
        self.progress.configure(maximum=max(active.steps, 1), value=active.step)
        steps = f"step {active.step}/{active.steps}" if active.steps else "starting…"
        self.eta.configure(text=steps + (f" · ETA {active.eta:.0f}s" if active.eta else ""))

    def show_preview(self, image: Image.Image) -> None:
        self._photo = ImageTk.PhotoImage(image)
        self.preview.configure(image=self._photo, text="")


def thumbnail(path: str, size: int = 160) -> Image.Image:
    """Decode and shrink an image (call off the Tk thread)."""
    with Image.open(path) as image:
        image.thumbnail((size, size))
        return image.convert("RGB")
