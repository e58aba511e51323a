"""History: finished jobs with thumbnails, filters, a page at a time (so thousands of jobs stay
quick), open folder, re-queue, load a job's settings into the compose form (a failed one to
retry with changes), and why a job failed (the reason column; the whole envelope on "Show
error" or a double-click)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from datetime import datetime
from functools import partial
from tkinter import ttk
from typing import Any

from PIL import Image, ImageTk

from stablenew.gui.queue_view import SHORT_ID, STATUSES
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import Column, FitLabel, FitTree, on_enter
from stablenew.jobs.job import Job
from stablenew.jobs.status import JobStatus

THUMB = 44  # a row's thumbnail side, pixels at 1x
PAGE = 100  # jobs a page shows
FILTERS = ["all", "COMPLETED", "FAILED", "CANCELLED"]


def when(moment: datetime | None) -> str:
    """A finish time, short: the time today, else the day and minute (local time)."""
    if moment is None:
        return ""
    local = moment.astimezone()
    today = local.date() == datetime.now().astimezone().date()
    return local.strftime("%H:%M:%S" if today else "%m-%d %H:%M")


def reason(job: Job) -> str:
    """Why it ended as it did, in one line ("" for a job that completed)."""
    if job.status == JobStatus.FAILED:
        return job.error.reason_line() if job.error is not None else "no reason recorded"
    if job.status == JobStatus.CANCELLED:
        return "cancelled"
    return ""


def images(job: Job) -> str:
    """Made of asked ("1/4" for a job that failed after its first image), or just the count
    when all were made: the CLI's column is the asked count, which alone read as a mismatch."""
    made, asked = len(job.result.images), job.spec.images
    return str(made) if made == asked else f"{made}/{asked}"


class HistoryPanel(ttk.Frame):
    COLUMNS = (
        Column("job", "job", SHORT_ID),
        Column("status", "status", STATUSES),
        Column("finished", "finished", ("12-30 23:59", "23:59:59")),
        Column("images", "images", ("99/99",)),
        Column("reason", "reason", weight=3),
        Column("prompt", "prompt", weight=2),
    )

    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        refresh: Callable[[], None],
        act: Callable[[str, str | None], None],
        turn: Callable[[int], None] | None = None,
    ) -> None:
        px = theme.px
        super().__init__(master, padding=px(4))
        self.theme = theme
        self.act = act
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, px(4)))
        self.status = tk.StringVar(value="all")
        width = max(len(f) for f in FILTERS) + 2
        status = ttk.Combobox(
            bar, textvariable=self.status, width=width, state="readonly", values=FILTERS
        )
        status.grid(row=0, column=0)
        status.bind("<<ComboboxSelected>>", lambda _e: refresh())
        self.search = tk.StringVar()
        entry = ttk.Entry(bar, textvariable=self.search, width=12)
        entry.grid(row=0, column=1, sticky="ew", padx=px(4))
        on_enter(entry, refresh)
        bar.columnconfigure(1, weight=1)
        ttk.Button(bar, text="Search", command=refresh).grid(row=0, column=2, padx=(0, px(12)))
        style = ttk.Style(self)
        row_height = max(px(THUMB) + px(4), theme.body.metrics("linespace") + px(6))
        style.configure("History.Treeview", rowheight=row_height)
        self.tree = FitTree(
            self,
            self.COLUMNS,
            px,
            tree_width=px(THUMB) + px(24),
            style="History.Treeview",
            height=4,
        )
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=1, column=0, sticky="nsew")
        scroll.grid(row=1, column=1, sticky="ns")
        self.tree.bind("<Double-1>", self._double_click)
        pager = ttk.Frame(self)
        pager.grid(row=2, column=0, columnspan=2, sticky="ew", pady=(px(4), 0))
        pager.columnconfigure(1, weight=1)
        self.turn = turn or (lambda _offset: refresh())
        self.newer = ttk.Button(
            pager, text="◀ Newer", style="Small.TButton", command=lambda: self._turn(-PAGE)
        )
        self.newer.grid(row=0, column=0)
        self.page_text = FitLabel(pager, "", anchor="center")
        self.page_text.grid(row=0, column=1, sticky="ew")
        self.older = ttk.Button(
            pager, text="Older ▶", style="Small.TButton", command=lambda: self._turn(PAGE)
        )
        self.older.grid(row=0, column=2)
        for i, (label, op) in enumerate(
            (
                ("Use settings", "load"),
                ("Open folder", "open"),
                ("Re-queue", "requeue"),
                ("Show error", "error"),
            ),
            start=3,
        ):
            ttk.Button(
                pager, text=label, command=partial(self._selected, op), style="Small.TButton"
            ).grid(row=0, column=i, padx=(px(2) if i > 3 else px(12), 0))
        self.offset = 0
        self.total = 0
        on_enter(self.tree, lambda: self._selected("error"))
        self.thumbs: dict[str, ImageTk.PhotoImage] = {}
        self.jobs: dict[str, Job] = {}

    def thumb_size(self) -> int:
        return self.theme.px(THUMB)

    def filters(self) -> tuple[str | None, str | None]:
        status = self.status.get()
        return (None if status == "all" else status), (self.search.get().strip() or None)

    def selected(self) -> str | None:
        selected = self.tree.selection()
        return str(selected[0]) if selected else None

    def _selected(self, op: str) -> None:
        self.act(op, self.selected())  # None: the window says to select a job first

    def _double_click(self, event: tk.Event[Any]) -> str:
        row = self.tree.identify_row(event.y)
        if row:
            self.tree.selection_set(row)
            self.act("error", row)
        return "break"

    def _turn(self, by: int) -> None:
        offset = max(0, self.offset + by)
        if offset < self.total or offset == 0:
            self.turn(offset)

    def show_page(self, jobs: list[Job], offset: int, total: int) -> None:
        self.offset, self.total = offset, total
        self.show(jobs)
        last = offset + len(jobs)
        self.page_text.set(f"jobs {offset + 1}-{last} of {total}" if jobs else "no jobs match")
        self.newer.configure(state="normal" if offset > 0 else "disabled")
        self.older.configure(state="normal" if last < total else "disabled")

    def show(self, jobs: list[Job]) -> None:
        selected = self.selected()
        self.jobs = {j.id: j for j in jobs}
        self.tree.clear()
        for job in jobs:
            self.tree.set_row(
                job.id,
                (
                    job.short_id,
                    job.status.value,
                    when(job.finished_at),
                    images(job),
                    reason(job),
                    job.spec.prompt,
                ),
                image=self.thumbs.get(job.id, ""),
            )
        if selected and self.tree.exists(selected):
            self.tree.selection_set(selected)

    def set_thumbnail(self, job_id: str, image: Image.Image) -> None:
        self.thumbs[job_id] = ImageTk.PhotoImage(image, master=self)
        if self.tree.exists(job_id):
            self.tree.item(job_id, image=self.thumbs[job_id])
