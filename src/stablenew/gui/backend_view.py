"""Backend status: a visible indicator, what the backend is (the reference backend's simulated
images, a real A1111, another process's backend), Start and Restart, and its output tail."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from tkinter import ttk

from stablenew.app.controllers import BackendStatus
from stablenew.app.discovery import REFERENCE_TEXT
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import Column, FitLabel, FitTree

COLOURS = {
    "READY": "#2e7d32",
    "STARTING": "#f9a825",
    "RESTARTING": "#f9a825",
    "STOPPING": "#757575",
    "STOPPED": "#757575",
    "CRASHED": "#c62828",
    "FAILED": "#c62828",
}


@dataclass(frozen=True)
class BackendFacts:
    """What is known about the backend this window uses; every field may still be unknown."""

    reference: bool | None = None  # None: not asked yet
    url: str | None = None
    managed: bool = True
    owner_pid: int | None = None  # set when another process owns the home (and its backend)

    def describe(self) -> str:
        parts = []
        if self.reference is True:
            parts.append(REFERENCE_TEXT)
        elif self.reference is False:
            parts.append("A1111-compatible API" + (f" at {self.url}" if self.url else ""))
        elif self.url:  # not asked (it does not answer): where it is meant to be, at least
            parts.append(f"backend at {self.url}")
        if self.owner_pid is not None:
            parts.append(f"attached to the owner pid {self.owner_pid}")
        elif self.reference is not None and not self.managed:
            parts.append("attached (StableNew does not start or stop it)")
        return " · ".join(parts)


class BackendIndicator(tk.Label):
    def __init__(self, master: tk.Misc, theme: Theme) -> None:
        super().__init__(
            master,
            text=" backend: STOPPED ",
            fg="white",
            bg=COLOURS["STOPPED"],
            padx=theme.px(6),
            pady=theme.px(2),
            font="SunValleyBodyFont",
        )

    def show(self, state: str) -> None:
        self.configure(text=f" backend: {state} ", bg=COLOURS.get(state, "#757575"))

    @property
    def state(self) -> str:
        return str(self.cget("text")).strip().removeprefix("backend: ")


POOL_COLUMNS = (
    Column("name", "backend", ("default", "gpu-workstation")),
    Column("state", "state", tuple(COLOURS)),
    Column("model", "loaded model", weight=2),
    Column("job", "current job", ("00000000", "dddddddd", "idle")),
    Column("held", "held / restarts", weight=1),
)


class BackendPanel(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        start: Callable[[], None],
        restart: Callable[[], None],
        refresh_tail: Callable[[], None],
        settings: Callable[[], None],
    ) -> None:
        px = theme.px
        super().__init__(master, padding=px(4))
        self.columnconfigure(0, weight=1)
        self.rowconfigure(3, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, sticky="ew")
        bar.columnconfigure(1, weight=1)
        self.indicator = BackendIndicator(bar, theme)
        self.indicator.grid(row=0, column=0)
        self.description = FitLabel(bar, "")
        self.description.grid(row=0, column=1, sticky="ew", padx=px(6))
        self.start = ttk.Button(bar, text="Start", command=start)
        self.start.grid(row=0, column=2)
        self.restart = ttk.Button(bar, text="Restart", command=restart)
        self.restart.grid(row=0, column=3, padx=px(2))
        ttk.Button(bar, text="Refresh output", command=refresh_tail).grid(row=0, column=4)
        ttk.Button(bar, text="Settings…", command=settings).grid(row=0, column=5, padx=(px(2), 0))
        self.url = FitLabel(self, "", style="Note.TLabel")
        self.url.grid(row=1, column=0, sticky="ew", pady=px(2))
        self.pool = FitTree(self, POOL_COLUMNS, px, height=2)
        self.pool.grid(row=2, column=0, sticky="ew", pady=(0, px(4)))
        # Wrapped: a backend's traceback or model path is one long line, cut at the edge unwrapped.
        self.tail = tk.Text(self, height=8, wrap="word", font="TkFixedFont")
        self.tail.grid(row=3, column=0, sticky="nsew")
        scrollbar = ttk.Scrollbar(self, orient="vertical", command=self.tail.yview)
        scrollbar.grid(row=3, column=1, sticky="ns")
        self.tail.configure(yscrollcommand=scrollbar.set)

    def show_pool(self, statuses: list[BackendStatus]) -> None:
        """Every backend of the pool, one row each: state, loaded model, current job."""
        self.pool.configure(height=max(1, min(len(statuses), 6)))
        keep = {s.name for s in statuses}
        for iid in self.pool.get_children():
            if iid not in keep:
                self.pool.delete(iid)
                self.pool.rows.pop(iid, None)
        for status in statuses:
            self.pool.set_row(
                status.name,
                (
                    status.name + (f" [{','.join(status.labels)}]" if status.labels else ""),
                    status.state.value,
                    status.loaded_model or "",
                    status.current_job[:8] if status.current_job else "idle",
                    status.held or (f"{status.restarts} restart(s)" if status.restarts else ""),
                ),
            )

    def show_facts(self, facts: BackendFacts) -> None:
        self.description.set(facts.describe())
        self.url.set(f"URL: {facts.url}" if facts.url else "")
        client = facts.owner_pid is not None
        for button in (self.start, self.restart):  # a client never starts another's backend
            button.configure(state="disabled" if client else "normal")

    def show_tail(self, tails: dict[str, str]) -> None:
        self.tail.configure(state="normal")
        self.tail.delete("1.0", "end")
        for name, text in tails.items():
            self.tail.insert("end", f"--- {name} ---\n{text}\n")
        self.tail.see("end")
        self.tail.configure(state="disabled")
