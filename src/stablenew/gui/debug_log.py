"""The debug log panel: the lifecycle trail as a table (most recent 500), filterable by job.

Rows are in the order things happened (an event read later from another process's log, such
as a `queue add` from a shell, goes where its time puts it). Autoscroll follows new rows unless
the user has scrolled up to read. Every event name fits its column; a long message is shortened
in its row and shown whole below the table when selected.
"""

from __future__ import annotations

import bisect
import tkinter as tk
from datetime import datetime
from tkinter import ttk
from typing import Literal

from stablenew.app.events import EventKind, JobLifecycleLogEvent
from stablenew.gui.queue_view import SHORT_ID
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import Column, FitTree

SOURCES = ("gui", "cli", "api", "app", "runner", "pipeline", "backend", "pipeline_controller")


class DebugLogPanel(ttk.Frame):
    COLUMNS = (
        Column("time", "time", ("23:59:59",)),
        Column("source", "source", SOURCES),
        Column("event", "event", tuple(k.value for k in EventKind)),
        Column("job", "job", SHORT_ID),
        Column("message", "message"),
    )

    def __init__(self, master: tk.Misc, theme: Theme, max_rows: int = 500) -> None:
        px = theme.px
        super().__init__(master, padding=px(4))
        self.max_rows = max_rows
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, px(4)))
        ttk.Label(bar, text="Job").pack(side="left")
        self.job_filter = tk.StringVar(value="all")
        self.filter_box = ttk.Combobox(
            bar, textvariable=self.job_filter, width=11, values=["all"], state="readonly"
        )
        self.filter_box.pack(side="left", padx=px(4))
        self.filter_box.bind("<<ComboboxSelected>>", lambda _e: self.rebuild())
        self.tree = FitTree(self, self.COLUMNS, theme.px)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=1, column=0, sticky="nsew")
        scroll.grid(row=1, column=1, sticky="ns")
        # The selected row's whole message, wrapped (selectable, so it can be copied).
        self.selected = tk.Text(
            self,
            height=2,
            width=20,  # it takes the panel's width; it asks for little
            wrap="word",
            relief="flat",
            takefocus=False,
            font="SunValleyBodyFont",
        )
        self.selected.grid(row=2, column=0, columnspan=2, sticky="ew", pady=(px(2), 0))
        self._say("Select a row to read its whole message.")
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._show_selected())
        self.following = True
        self.tree.bind("<Map>", lambda _e: self._catch_up(), add="+")
        self._count = 0
        self._events: list[JobLifecycleLogEvent] = []  # in time order
        self._shown: list[datetime] = []  # the shown rows' times, in the table's order
        self._messages: dict[str, str] = {}
        self._jobs: list[str] = []

    def rows(self) -> list[tuple[str, ...]]:
        """The rows as shown (a long message shortened)."""
        return [self.tree.shown(i) for i in self.tree.get_children()]

    def add(self, events: list[JobLifecycleLogEvent]) -> None:
        fresh = [e for e in events if e.kind != EventKind.PROGRESS]
        if not fresh:
            return
        for event in fresh:
            bisect.insort(self._events, event, key=lambda e: e.ts)
        del self._events[: -self.max_rows]
        for event in fresh:
            if event.job_id and event.job_id[:8] not in self._jobs:
                self._jobs.append(event.job_id[:8])
                self.filter_box.configure(values=["all", *self._jobs[-50:]])
        if self.tree.winfo_ismapped():  # hidden, its view says nothing about the reader
            self.following = self.tree.yview()[1] >= 0.999  # at the bottom: keep following
        follow = self.following
        for event in fresh:
            self._insert(event)
        children = self.tree.get_children()
        if len(children) > self.max_rows:
            old = children[: len(children) - self.max_rows]
            self.tree.delete(*old)
            del self._shown[: len(old)]
            for iid in old:
                self.tree.rows.pop(iid, None)
                self._messages.pop(iid, None)
        if follow and self.tree.get_children():
            self.tree.see(self.tree.get_children()[-1])

    def _insert(self, event: JobLifecycleLogEvent) -> None:
        wanted = self.job_filter.get()
        job = event.job_id[:8] if event.job_id else ""
        if wanted != "all" and job != wanted:
            return
        when = event.ts.astimezone().strftime("%H:%M:%S")
        self._count += 1
        iid = f"e{self._count}"
        self._messages[iid] = event.message
        at = bisect.bisect_right(self._shown, event.ts)
        self._shown.insert(at, event.ts)
        index: int | Literal["end"] = "end" if at == len(self._shown) - 1 else at
        self.tree.set_row(iid, (when, event.source, event.kind.value, job, event.message), index)

    def _catch_up(self) -> None:
        """Shown again (its tab chosen): the newest rows, unless the reader had scrolled up."""
        children = self.tree.get_children()
        if self.following and children:
            self.tree.see(children[-1])

    def _show_selected(self) -> None:
        selected = self.tree.selection()
        if selected:
            self._say(self._messages.get(str(selected[0]), ""))

    def _say(self, text: str) -> None:
        self.selected.configure(state="normal")
        self.selected.delete("1.0", "end")
        self.selected.insert("1.0", text)
        self.selected.configure(state="disabled")

    def rebuild(self) -> None:
        self.tree.clear()
        self._messages.clear()
        self._shown.clear()
        for event in self._events:
            self._insert(event)
        if self.tree.get_children():
            self.tree.see(self.tree.get_children()[-1])
