"""The debug log panel: the lifecycle trail as a table (most recent 500), filterable by job.

Autoscroll follows new rows unless the user has scrolled up to read.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from stablenew.app.events import JobLifecycleLogEvent


class DebugLogPanel(ttk.Frame):
    COLUMNS = ("time", "source", "event", "job", "message")

    def __init__(self, master: tk.Misc, max_rows: int = 500) -> None:
        super().__init__(master, padding=4)
        self.max_rows = max_rows
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, columnspan=2, sticky="ew")
        ttk.Label(bar, text="Job").pack(side="left")
        self.job_filter = tk.StringVar(value="all")
        self.filter_box = ttk.Combobox(
            bar, textvariable=self.job_filter, width=12, values=["all"], state="readonly"
        )
        self.filter_box.pack(side="left", padx=4)
        self.filter_box.bind("<<ComboboxSelected>>", lambda _e: self.rebuild())
        self.tree = ttk.Treeview(self, columns=self.COLUMNS, show="headings")
        for column, width in zip(self.COLUMNS, (70, 80, 130, 80, 600), strict=True):
            self.tree.heading(column, text=column)
            self.tree.column(column, width=width, stretch=column == "message")
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=1, column=0, sticky="nsew")
        scroll.grid(row=1, column=1, sticky="ns")
        self._last_seq = 0
        self._events: list[JobLifecycleLogEvent] = []
        self._jobs: list[str] = []

    def rows(self) -> list[tuple[str, ...]]:
        return [tuple(self.tree.item(i, "values")) for i in self.tree.get_children()]

    def add(self, events: list[JobLifecycleLogEvent]) -> None:
        fresh = [e for e in events if e.seq > self._last_seq and e.kind.value != "progress"]
        if events:
            self._last_seq = max(self._last_seq, events[-1].seq)
        if not fresh:
            return
        self._events = (self._events + fresh)[-self.max_rows :]
        for event in fresh:
            if event.job_id and event.job_id[:8] not in self._jobs:
                self._jobs.append(event.job_id[:8])
                self.filter_box.configure(values=["all", *self._jobs[-50:]])
        follow = self.tree.yview()[1] >= 0.999  # at the bottom: keep following
        for event in fresh:
            self._insert(event)
        children = self.tree.get_children()
        if len(children) > self.max_rows:
            self.tree.delete(*children[: len(children) - self.max_rows])
        if follow and self.tree.get_children():
            self.tree.see(self.tree.get_children()[-1])

    def _insert(self, event: JobLifecycleLogEvent) -> None:
        wanted = self.job_filter.get()
        job = event.job_id[:8] if event.job_id else ""
        if wanted != "all" and job != wanted:
            return
        when = event.ts.astimezone().strftime("%H:%M:%S")
        self.tree.insert(
            "", "end", values=(when, event.source, event.kind.value, job, event.message)
        )

    def rebuild(self) -> None:
        self.tree.delete(*self.tree.get_children())
        for event in self._events:
            self._insert(event)
        if self.tree.get_children():
            self.tree.see(self.tree.get_children()[-1])
