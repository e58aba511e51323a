"""LoRA and embedding pickers: the backend's names, filtered as the user types; choosing one
inserts `<lora:name:weight>` or `<embedding:name>` at the prompt's cursor."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Any

from stablenew.gui.theme import Theme


def token(kind: str, name: str, weight: str = "1") -> str:
    if kind == "lora":
        return f"<lora:{name}:{weight.strip() or '1'}>"
    return f"<embedding:{name}>"


class TokenPicker(tk.Toplevel):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        kind: str,
        names: list[str],
        insert: Callable[[str], None],
    ) -> None:
        super().__init__(master)
        px = theme.px
        self.kind = kind
        self.names = names
        self.insert = insert
        self.title("Insert a LoRA" if kind == "lora" else "Insert an embedding")
        self.transient(master.winfo_toplevel())
        body = ttk.Frame(self, padding=px(8))
        body.pack(fill="both", expand=True)
        body.columnconfigure(1, weight=1)
        body.rowconfigure(1, weight=1)
        ttk.Label(body, text="Filter").grid(row=0, column=0, sticky="w", padx=(0, px(4)))
        self.filter = tk.StringVar()
        entry = ttk.Entry(body, textvariable=self.filter, width=28)
        entry.grid(row=0, column=1, columnspan=2, sticky="ew")
        self.filter.trace_add("write", lambda *_a: self._filter())
        self.list = tk.Listbox(body, height=12, activestyle="none", exportselection=False)
        self.list.grid(row=1, column=0, columnspan=3, sticky="nsew", pady=px(4))
        self.list.bind("<Double-1>", lambda _e: self.choose())
        self.list.bind("<Return>", lambda _e: self.choose())
        entry.bind("<Return>", lambda _e: self.choose())
        entry.bind("<Down>", lambda _e: self.list.focus_set())
        self.weight = tk.StringVar(value="1")
        if kind == "lora":
            ttk.Label(body, text="Weight").grid(row=2, column=0, sticky="w")
            ttk.Entry(body, textvariable=self.weight, width=6).grid(row=2, column=1, sticky="w")
        ttk.Button(body, text="Insert", command=self.choose, style="Accent.TButton").grid(
            row=2, column=2, sticky="e"
        )
        self.bind("<Escape>", lambda _e: self.destroy())
        self._filter()
        entry.focus_set()

    def shown(self) -> list[str]:
        return [str(v) for v in self.list.get(0, "end")]

    def _filter(self) -> None:
        wanted = self.filter.get().strip().casefold()
        self.list.delete(0, "end")
        for name in self.names:
            if wanted in name.casefold():
                self.list.insert("end", name)
        if self.list.size():
            self.list.selection_set(0)

    def choose(self, *_args: Any) -> None:
        selected: tuple[int, ...] = self.list.curselection()  # type: ignore[no-untyped-call]
        if not selected:
            return
        name = str(self.list.get(selected[0]))
        self.insert(token(self.kind, name, self.weight.get()))
        self.destroy()
