"""The running job: stage timeline, image i/N, step progress with ETA, the live preview (the
engine's picture mid-sampling, or the last finished image, whichever is newer), Cancel, and
how the last job ended (a failure's reason in one line, its details one click away).

Every row always holds a text (a blank when there is nothing to say) and the preview is a fixed
square, so the panel keeps one height: nothing below it moves when the first image arrives.
When a job ends nothing of it stays "running": no ▶ marker, no step count, and a failed job's
preview is cleared rather than left showing an older image.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable
from tkinter import ttk

from PIL import Image, ImageTk

from stablenew.app.state import ActiveStage
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import FitLabel
from stablenew.jobs.spec import STAGES
from stablenew.jobs.status import JobStatus

PREVIEW = 150  # the preview square's side, in pixels at 1x
NO_IMAGE = "no image yet"
BLANK = " "  # a row with nothing to say keeps its height
MARKS = {"pending": "○", "active": "▶", "done": "✓", "failed": "✗", "stopped": "■", "off": "-"}
STYLES = {
    "pending": "TLabel",
    "active": "Active.TLabel",
    "done": "Done.TLabel",
    "failed": "Failed.TLabel",
    "stopped": "TLabel",
    "off": "Disabled.TLabel",
}


def step_text(active: ActiveStage) -> str:
    """Steps as "step s/S" only while a count is meaningful: never 0/0 or 0/1 between images."""
    if active.note:
        return active.note
    if active.stage is None:
        return "starting…"
    if active.steps > 1 and 1 <= active.step <= active.steps:
        eta = f" · ETA {active.eta:.0f}s" if active.eta >= 1 else ""
        return f"step {active.step}/{active.steps}{eta}"
    return "starting…" if active.step == 0 else "working…"


class RunningPanel(ttk.LabelFrame):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        on_cancel: Callable[[], None],
        on_details: Callable[[str], None],
    ) -> None:
        px = theme.px
        super().__init__(master, text="Running", padding=px(6))
        self.theme = theme
        self.columnconfigure(1, weight=1)
        frame = ttk.Frame(self, width=px(PREVIEW), height=px(PREVIEW))
        frame.grid(row=0, column=0, rowspan=5, padx=(0, px(8)), sticky="n")
        frame.grid_propagate(False)
        frame.columnconfigure(0, weight=1)
        frame.rowconfigure(0, weight=1)
        self.preview = ttk.Label(frame, text=NO_IMAGE, anchor="center", style="Note.TLabel")
        self.preview.grid(row=0, column=0, sticky="nsew")
        self._photo: ImageTk.PhotoImage | None = None
        self.preview_job: str | None = None  # whose image the preview shows
        self.live_number = 0  # the live preview shown (0: a finished image, or none)

        self.job = FitLabel(self, "idle", style="Title.TLabel")
        self.job.grid(row=0, column=1, sticky="ew")
        self.timeline = ttk.Frame(self)
        self.timeline.grid(row=1, column=1, sticky="w", pady=px(2))
        self.stage_labels: dict[str, ttk.Label] = {}
        widest = max(
            tkfont.nametofont("SunValleyBodyFont", root=self).measure(f"{m} {s}")
            for m in MARKS.values()
            for s in STAGES
        )
        for i, stage in enumerate(STAGES):
            label = ttk.Label(self.timeline, text=f"{MARKS['pending']} {stage}")
            label.grid(row=0, column=i, sticky="w")
            self.timeline.columnconfigure(i, minsize=widest + px(12))  # marks never shift it
            self.stage_labels[stage] = label
        self.image = FitLabel(self, BLANK)
        self.image.grid(row=2, column=1, sticky="ew")
        bar = ttk.Frame(self)
        bar.grid(row=3, column=1, sticky="ew", pady=(px(2), 0))
        bar.columnconfigure(0, weight=1)
        self.progress = ttk.Progressbar(bar, maximum=1, value=0)
        self.progress.grid(row=0, column=0, sticky="ew")
        self.eta = FitLabel(bar, BLANK)
        self.eta.grid(row=0, column=1, padx=px(6), sticky="ew")
        bar.columnconfigure(
            1,
            minsize=tkfont.nametofont("SunValleyBodyFont", root=self).measure(
                "step 150/150 · ETA 9999s"
            ),
        )
        self.cancel = ttk.Button(bar, text="Cancel (Esc)", command=on_cancel, state="disabled")
        self.cancel.grid(row=0, column=2)
        outcome = ttk.Frame(self)
        outcome.grid(row=4, column=1, sticky="ew", pady=(px(4), 0))
        outcome.columnconfigure(0, weight=1)
        self.outcome = FitLabel(outcome, BLANK)
        self.outcome.grid(row=0, column=0, sticky="ew", padx=(0, px(6)))
        self.details = ttk.Button(
            outcome,
            text="Show error",
            state="disabled",
            command=lambda: self._details(on_details),
        )
        self.details.grid(row=0, column=1)
        self.outcome_job: str | None = None  # the job the outcome line is about
        self.current: str | None = None  # the job the panel follows
        self.completed: str | None = None  # the last job, if it completed: its image may stay
        self.stages: list[str] = []
        self.last_stage: str | None = None

    def _details(self, on_details: Callable[[str], None]) -> None:
        if self.outcome_job is not None:
            on_details(self.outcome_job)

    # -- a job's life --------------------------------------------------------------------------

    def job_started(self, job_id: str, stages: list[str]) -> None:
        self.current = job_id
        self.completed = None
        # The previous job's ✓/✗ line and its Show error belong to that job, not this one: its
        # reason stays in the history and the queue, one click away there.
        self.outcome.configure(style="TLabel")
        self.outcome.set(BLANK)
        self.outcome_job = None
        self.details.configure(state="disabled")
        self.stages = stages or self.stages
        self.last_stage = None
        self.clear_preview()
        self._marks({stage: "pending" for stage in self.stages})

    def stage_started(self, job_id: str, stage: str) -> None:
        """Every stage start, even one too short for a redraw: where a failure happened."""
        if job_id == self.current and stage in STAGES:
            self.last_stage = stage

    def job_finished(self, job_id: str, status: JobStatus, reason: str | None, images: int) -> None:
        """Say how it ended, and clear everything that only meant "running"."""
        short = job_id[:8]
        if status == JobStatus.COMPLETED:
            self.outcome.configure(style="Done.TLabel")
            self.outcome.set(f"✓ job {short} completed: {images} image(s)")
            self._marks({stage: "done" for stage in self.stages})
        elif status == JobStatus.FAILED:
            self.outcome.configure(style="Failed.TLabel")
            self.outcome.set(f"✗ job {short} failed: {reason or 'no reason recorded'}")
            self._ended("failed")
        else:
            self.outcome.configure(style="TLabel")
            self.outcome.set(f"■ job {short} cancelled")
            self._ended("stopped")
        if status == JobStatus.FAILED or self.preview_job != job_id:
            self.clear_preview()  # never another job's image next to this job's outcome
        self.outcome_job = job_id
        self.completed = job_id if status == JobStatus.COMPLETED else None
        self.details.configure(state="normal" if status == JobStatus.FAILED else "disabled")
        self.current = None

    def failure_reason(self, job_id: str, reason: str) -> None:
        """The failed job's reason in StableNew's words, once its record is read."""
        if job_id == self.outcome_job:
            self.outcome.set(f"✗ job {job_id[:8]} failed: {reason}")

    def _ended(self, how: str) -> None:
        where = STAGES.index(self.last_stage) if self.last_stage in STAGES else -1
        marks = {}
        for stage in self.stages:
            i = STAGES.index(stage)
            marks[stage] = "done" if i < where else how if i == where else "pending"
        self._marks(marks)

    def _marks(self, marks: dict[str, str]) -> None:
        for stage in STAGES:
            state = marks.get(stage, "off")
            self.stage_labels[stage].configure(text=f"{MARKS[state]} {stage}", style=STYLES[state])

    # -- AppState ------------------------------------------------------------------------------

    def show(self, active: ActiveStage | None, lifecycle: str) -> None:
        running = active is not None and lifecycle in ("RUNNING", "STOPPING")
        self.cancel.configure(state="normal" if running else "disabled")
        if active is None or not running:
            self.job.set("idle" if lifecycle in ("IDLE", "ERROR") else lifecycle.lower())
            self.image.set(BLANK)
            self.progress.configure(value=0)
            self.eta.set(BLANK)
            if self.current is None and not any(
                str(label.cget("text")).startswith(MARKS["active"])
                for label in self.stage_labels.values()
            ):
                return
            self._ended("stopped")  # the job went without an end event: no ▶ left behind
            self.current = None
            return
        if self.current != active.job_id:
            self.job_started(active.job_id, self.stages)
        self.job.set(f"job {active.job_id[:8]} · {lifecycle}")
        if active.stage in STAGES:
            self.last_stage = active.stage
            current = STAGES.index(active.stage)
            self._marks(
                {
                    stage: "done"
                    if STAGES.index(stage) < current
                    else "active"
                    if stage == active.stage
                    else "pending"
                    for stage in self.stages
                }
            )
        self.image.set(
            f"image {active.image_index}/{active.total}" if active.image_index else "preparing…"
        )
        counting = active.steps > 1 and active.step >= 1
        self.progress.configure(maximum=max(active.steps, 1), value=active.step if counting else 0)
        self.eta.set(step_text(active))

    # -- the preview ---------------------------------------------------------------------------

    def preview_size(self) -> int:
        return self.theme.px(PREVIEW) - self.theme.px(4)

    def show_preview(self, job_id: str, image: Image.Image, live: int = 0) -> None:
        """The latest picture of the job: a finished image, or (`live`: its number) the
        engine's live preview while a stage samples; whichever came last replaces the other."""
        if job_id not in (self.current, self.completed):
            return  # decoded after its job failed or another began: not the picture to show
        self._photo = ImageTk.PhotoImage(image, master=self)
        self.preview.configure(image=self._photo, text="")
        self.preview_job = job_id
        self.live_number = live

    def clear_preview(self) -> None:
        self.preview.configure(image="", text=NO_IMAGE)
        self._photo = None
        self.preview_job = None
        self.live_number = 0


def thumbnail(path: str, size: int = 160) -> Image.Image:
    """Decode and shrink an image (call off the Tk thread)."""
    with Image.open(path) as image:
        image.thumbnail((size, size))
        return image.convert("RGB")
