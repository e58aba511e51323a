"""The draft ("Add to Job": an explicit list for building several jobs before queueing them) and
the queue panel (edit a queued job, order, cancel, pause, auto-run)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from functools import partial
from tkinter import ttk
from typing import Any

from stablenew.gui.theme import Theme
from stablenew.gui.widgets import Column, FitLabel, FitTree
from stablenew.jobs.job import Job
from stablenew.jobs.spec import STAGES, JobSpec
from stablenew.jobs.status import JobStatus

SHORT_ID = ("00000000", "dddddddd")  # the widest an 8-character hex id gets
STATUSES = tuple(s.value for s in JobStatus)
LONGEST_CHAIN = ",".join(STAGES)


def inputs_text(spec: JobSpec) -> str:
    """The input images a job starts from, by name ("": it starts from its prompt)."""
    names = [i.name for i in spec.inputs]
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "") if names else ""


class DraftPanel(ttk.Frame):
    # Jobs made together (a folder of images, a pack's variants) share their prompt: the row
    # leads with what tells them apart.
    COLUMNS = (
        Column("pos", "#", ("9999",)),
        Column("stages", "stages", (LONGEST_CHAIN,)),
        Column("images", "images", ("9999",)),
        Column("input", "input image"),
        Column("prompt", "prompt", weight=2),
    )

    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        on_remove: Callable[[int], None],
        on_clear: Callable[[], None],
    ) -> None:
        px = theme.px
        super().__init__(master, padding=px(4))
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        self.count = FitLabel(self, self._count_text(0))
        self.count.grid(row=0, column=0, sticky="ew")
        ttk.Button(self, text="Remove", command=lambda: self._remove(on_remove)).grid(
            row=0, column=1, padx=px(2)
        )
        ttk.Button(self, text="Clear", command=on_clear).grid(row=0, column=2)
        self.table = FitTree(self, self.COLUMNS, px, height=4, selectmode="browse")
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.table.yview)
        self.table.configure(yscrollcommand=scroll.set)
        self.table.grid(row=1, column=0, columnspan=3, sticky="nsew", pady=(px(4), 0))
        scroll.grid(row=1, column=3, sticky="ns", pady=(px(4), 0))

    @staticmethod
    def _count_text(n: int) -> str:
        if not n:
            return "Empty: Ctrl+Enter queues the composed job directly. Add to Job collects here."
        return f"{n} job(s) in the draft: Ctrl+Enter queues them all; Clear to queue directly."

    def _remove(self, on_remove: Callable[[int], None]) -> None:
        selected = self.table.selection()
        if selected:
            on_remove(int(selected[0]))

    def show(self, draft: list[JobSpec]) -> None:
        self.table.clear()
        for n, spec in enumerate(draft):
            variant = spec.provenance.variant_label()
            self.table.set_row(
                str(n),  # the job's index in the draft, what Remove takes
                (
                    n + 1,
                    ",".join(spec.stages()),
                    spec.images,
                    inputs_text(spec),
                    (f"[{variant}] " if variant else "") + spec.prompt,
                ),
            )
        self.count.set(self._count_text(len(draft)))


class QueuePanel(ttk.Frame):
    COLUMNS = (
        Column("pos", "#", ("9999",)),
        Column("job", "job", SHORT_ID),
        Column("status", "status", STATUSES),
        Column("stages", "stages", (LONGEST_CHAIN,)),
        Column("images", "images", ("9999",)),
        Column("prompt", "prompt"),
    )

    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        act: Callable[[str, str], None],
        set_auto_run: Callable[[bool], None],
    ) -> None:
        px = theme.px
        super().__init__(master, padding=px(4))
        self.act = act
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, px(4)))
        for i, (label, op) in enumerate(
            (
                ("Edit", "edit"),
                ("Up", "up"),
                ("Down", "down"),
                ("Front", "front"),
                ("Back", "back"),
                ("Cancel", "cancel"),
                ("Remove", "remove"),
            )
        ):
            ttk.Button(
                bar, text=label, command=partial(self._selected, op), style="Small.TButton"
            ).grid(row=0, column=i, padx=(0, px(2)))
        bar.columnconfigure(7, weight=1)
        self.paused = FitLabel(bar, "")
        self.paused.grid(row=0, column=7, sticky="ew", padx=px(6))
        self.auto_run = tk.BooleanVar(value=True)
        self.auto_run_button = ttk.Checkbutton(
            bar,
            text="Auto-run",
            variable=self.auto_run,
            command=lambda: set_auto_run(self.auto_run.get()),
        )
        self.auto_run_button.grid(row=0, column=8)
        self.tree = FitTree(self, self.COLUMNS, theme.px, height=6)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=1, column=0, sticky="nsew")
        scroll.grid(row=1, column=1, sticky="ns")
        self.tree.bind("<Double-1>", self._double_click)

    def _double_click(self, event: tk.Event[Any]) -> str:
        row = self.tree.identify_row(event.y)
        if row:
            self.tree.selection_set(row)
            self.act("edit", row)
        return "break"

    def _selected(self, op: str) -> None:
        selected = self.tree.selection()
        if selected:
            self.act(op, selected[0])

    def show(self, jobs: list[Job], paused: str | None, waiting: int, blocked: str = "") -> None:
        """`blocked`: why queued jobs cannot run though the queue is not paused (the backend)."""
        selected = set(self.tree.selection())
        self.tree.clear()
        for n, job in enumerate(jobs, start=1):
            self.tree.set_row(
                job.id,
                (
                    n,
                    job.short_id,
                    job.status.value,
                    ",".join(job.spec.stages()),
                    job.spec.images,
                    job.spec.prompt,
                ),
            )
        keep = [i for i in selected if self.tree.exists(i)]
        if keep:
            self.tree.selection_set(keep)
        shown = sum(1 for j in jobs if j.status == JobStatus.QUEUED)
        more = f"{waiting - shown} more queued · " if waiting > shown else ""
        why = f"paused: {paused}" if paused else (f"waiting: {blocked}" if blocked else "")
        self.paused.set(more + why)
        self.auto_run.set(paused is None)
