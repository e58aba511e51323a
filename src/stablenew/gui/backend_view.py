"""Backend status: a visible indicator, Start and Restart, and the backend's output tail."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

COLOURS = {
    "READY": "#2e7d32",
    "STARTING": "#f9a825",
    "RESTARTING": "#f9a825",
    "STOPPING": "#757575",
    "STOPPED": "#757575",
    "CRASHED": "#c62828",
    "FAILED": "#c62828",
}


class BackendIndicator(tk.Label):
    def __init__(self, master: tk.Misc) -> None:
        super().__init__(
            master, text=" backend: STOPPED ", fg="white", bg=COLOURS["STOPPED"], padx=6, pady=2
        )

    def show(self, state: str) -> None:
        self.configure(text=f" backend: {state} ", bg=COLOURS.get(state, "#757575"))

    @property
    def state(self) -> str:
        return str(self.cget("text")).strip().removeprefix("backend: ")


class BackendPanel(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        start: Callable[[], None],
        restart: Callable[[], None],
        refresh_tail: Callable[[], None],
    ) -> None:
        super().__init__(master, padding=4)
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, sticky="ew")
        self.indicator = BackendIndicator(bar)
        self.indicator.pack(side="left")
        self.url = ttk.Label(bar, text="")
        self.url.pack(side="left", padx=6)
        ttk.Button(bar, text="Refresh output", command=refresh_tail).pack(side="right")
        ttk.Button(bar, text="Restart", command=restart).pack(side="right", padx=2)
        ttk.Button(bar, text="Start", command=start).pack(side="right")
        self.tail = tk.Text(self, height=12, wrap="none", font=("TkFixedFont", 9))
        self.tail.grid(row=1, column=0, sticky="nsew")

    def show_tail(self, tails: dict[str, str]) -> None:
        self.tail.configure(state="normal")
        self.tail.delete("1.0", "end")
        for name, text in tails.items():
            self.tail.insert("end", f"--- {name} ---\n{text}\n")
        self.tail.see("end")
        self.tail.configure(state="disabled")
