"""History: finished jobs with thumbnails, filters, open folder, re-queue, the error envelope."""

from __future__ import annotations

import json
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from PIL import Image, ImageTk

from stablenew.jobs.job import Job


class HistoryPanel(ttk.Frame):
    COLUMNS = ("job", "status", "finished", "images", "prompt")

    def __init__(
        self, master: tk.Misc, refresh: Callable[[], None], act: Callable[[str, str], None]
    ) -> None:
        super().__init__(master, padding=4)
        self.act = act
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, sticky="ew")
        self.status = tk.StringVar(value="all")
        ttk.Combobox(
            bar,
            textvariable=self.status,
            width=11,
            state="readonly",
            values=["all", "COMPLETED", "FAILED", "CANCELLED"],
        ).pack(side="left")
        self.search = tk.StringVar()
        entry = ttk.Entry(bar, textvariable=self.search, width=24)
        entry.pack(side="left", padx=4)
        entry.bind("<Return>", lambda _e: refresh())
        ttk.Button(bar, text="Search", command=refresh).pack(side="left")
        for label, op in (
            ("Open folder", "open"),
            ("Re-queue", "requeue"),
            ("Show error", "error"),
        ):
            ttk.Button(bar, text=label, command=lambda op=op: self._selected(op)).pack(
                side="right", padx=1
            )
        style = ttk.Style(self)
        style.configure("History.Treeview", rowheight=68)
        self.tree = ttk.Treeview(
            self, columns=self.COLUMNS, show="tree headings", style="History.Treeview", height=5
        )
        self.tree.column("#0", width=80, stretch=False)
        for column, width in zip(self.COLUMNS, (80, 90, 150, 60, 420), strict=True):
            self.tree.heading(column, text=column)
            self.tree.column(column, width=width, stretch=column == "prompt")
        self.tree.grid(row=1, column=0, sticky="nsew")
        self.thumbs: dict[str, ImageTk.PhotoImage] = {}
        self.jobs: dict[str, Job] = {}

    def filters(self) -> tuple[str | None, str | None]:
        status = self.status.get()
        return (None if status == "all" else status), (self.search.get().strip() or None)

    def _selected(self, op: str) -> None:
        selected = self.tree.selection()
        if selected:
            self.act(op, selected[0])

    def show(self, jobs: list[Job]) -> None:
        self.jobs = {j.id: j for j in jobs}
        self.tree.delete(*self.tree.get_children())
        for job in jobs:
            finished = (
                job.finished_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
                if job.finished_at
                else ""
            )
            self.tree.insert(
                "",
                "end",
                iid=job.id,
                image=self.thumbs.get(job.id, ""),
                values=(
                    job.short_id,
                    job.status.value,
                    finished,
                    len(job.result.images),
                    job.spec.prompt[:120],
                ),
            )

    def set_thumbnail(self, job_id: str, image: Image.Image) -> None:
        self.thumbs[job_id] = ImageTk.PhotoImage(image)
        if self.tree.exists(job_id):
            self.tree.item(job_id, image=self.thumbs[job_id])


def show_envelope(master: tk.Misc, job: Job) -> tk.Toplevel:
    """A window with the job's error envelope and failure artifacts."""
    window = tk.Toplevel(master)
    window.title(f"Job {job.short_id}: {job.status.value}")
    text = tk.Text(window, width=100, height=30, wrap="word")
    text.pack(fill="both", expand=True)
    error = job.error
    if error is None:
        text.insert("1.0", "no error recorded")
    else:
        text.insert(
            "1.0",
            error.message
            + "\n\nartifacts:\n"
            + "\n".join(error.artifacts or ["(none)"])
            + "\n\nenvelope:\n"
            + json.dumps(error.model_dump(mode="json"), indent=2),
        )
    text.configure(state="disabled")
    return window
