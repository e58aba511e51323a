"""The draft ("Add to Job") and the queue panel (order, cancel, pause, auto-run)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from stablenew.jobs.job import Job
from stablenew.jobs.spec import JobSpec


class DraftPanel(ttk.LabelFrame):
    def __init__(
        self, master: tk.Misc, on_remove: Callable[[int], None], on_clear: Callable[[], None]
    ) -> None:
        super().__init__(master, text="Draft (Add to Job)", padding=4)
        self.columnconfigure(0, weight=1)
        self.count = ttk.Label(self, text="0 job(s) in the draft")
        self.count.grid(row=0, column=0, sticky="w")
        self.items = tk.Listbox(self, height=4, activestyle="none")
        self.items.grid(row=1, column=0, columnspan=3, sticky="nsew")
        ttk.Button(self, text="Remove", command=lambda: self._remove(on_remove)).grid(
            row=0, column=1, padx=2
        )
        ttk.Button(self, text="Clear", command=on_clear).grid(row=0, column=2)

    def _remove(self, on_remove: Callable[[int], None]) -> None:
        selected = self.items.curselection()
        if selected:
            on_remove(int(selected[0]))

    def show(self, draft: list[JobSpec]) -> None:
        self.items.delete(0, "end")
        for spec in draft:
            variant = spec.provenance.variant_label()
            self.items.insert(
                "end", f"{spec.images}x {spec.prompt[:70]}" + (f"  [{variant}]" if variant else "")
            )
        self.count.configure(text=f"{len(draft)} job(s) in the draft")


class QueuePanel(ttk.Frame):
    COLUMNS = ("pos", "job", "status", "stages", "images", "prompt")

    def __init__(
        self, master: tk.Misc, act: Callable[[str, str], None], set_auto_run: Callable[[bool], None]
    ) -> None:
        super().__init__(master, padding=4)
        self.act = act
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, sticky="ew")
        for label, op in (
            ("Up", "up"),
            ("Down", "down"),
            ("To front", "front"),
            ("To back", "back"),
            ("Cancel", "cancel"),
            ("Remove", "remove"),
        ):
            ttk.Button(bar, text=label, command=lambda op=op: self._selected(op)).pack(
                side="left", padx=1
            )
        self.auto_run = tk.BooleanVar(value=True)
        ttk.Checkbutton(
            bar,
            text="Auto-run",
            variable=self.auto_run,
            command=lambda: set_auto_run(self.auto_run.get()),
        ).pack(side="right")
        self.paused = ttk.Label(bar, text="")
        self.paused.pack(side="right", padx=6)
        self.tree = ttk.Treeview(self, columns=self.COLUMNS, show="headings", height=8)
        for column, width in zip(self.COLUMNS, (40, 80, 90, 170, 60, 400), strict=True):
            self.tree.heading(column, text=column)
            self.tree.column(column, width=width, stretch=column == "prompt")
        self.tree.grid(row=1, column=0, sticky="nsew")

    def _selected(self, op: str) -> None:
        selected = self.tree.selection()
        if selected:
            self.act(op, selected[0])

    def show(self, jobs: list[Job], paused: str | None, waiting: int) -> None:
        selected = set(self.tree.selection())
        self.tree.delete(*self.tree.get_children())
        for n, job in enumerate(jobs, start=1):
            self.tree.insert(
                "",
                "end",
                iid=job.id,
                values=(
                    n,
                    job.short_id,
                    job.status.value,
                    ",".join(job.spec.stages()),
                    job.spec.images,
                    job.spec.prompt[:120],
                ),
            )
        keep = [i for i in selected if self.tree.exists(i)]
        if keep:
            self.tree.selection_set(keep)
        shown = sum(1 for j in jobs if j.status.value == "QUEUED")
        more = f"{waiting - shown} more queued · " if waiting > shown else ""
        self.paused.configure(text=more + (f"paused: {paused}" if paused else ""))
        self.auto_run.set(paused is None)
