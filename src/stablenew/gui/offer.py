"""The first-start offer: an A1111-compatible API found on this machine, and the way to use it
instead of the reference backend's simulated images. A bar in the window, not a modal dialog:
nothing waits for an answer."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from stablenew.app.discovery import REFERENCE_TEXT, Probe, Verdict
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import FitLabel


def offer_text(found: Probe) -> str:
    models = f" ({found.models} models)" if found.models else ""
    credentials = (
        " It asks for credentials: set them in Settings."
        if found.verdict is Verdict.AUTH_REJECTED
        else ""
    )
    return (
        f"Found an A1111-compatible API at {found.url}{models}. "
        f"Use it instead of the {REFERENCE_TEXT}?{credentials}"
    )


class OfferBar(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        use: Callable[[Probe], None],
        never: Callable[[], None],
    ) -> None:
        px = theme.px
        super().__init__(master, padding=(px(8), px(4)))
        self.columnconfigure(0, weight=1)
        self.found: Probe | None = None
        self.text = FitLabel(self, "", style="Title.TLabel")
        self.text.grid(row=0, column=0, sticky="ew", padx=(0, px(8)))
        ttk.Button(
            self,
            text="Use it",
            style="Accent.TButton",
            command=lambda: self._use(use),
        ).grid(row=0, column=1)
        ttk.Button(self, text="Not now", command=self.dismiss).grid(row=0, column=2, padx=px(4))
        ttk.Button(self, text="Don't ask again", command=never).grid(row=0, column=3)

    def _use(self, use: Callable[[Probe], None]) -> None:
        if self.found is not None:
            use(self.found)

    def offer(self, found: Probe) -> None:
        self.found = found
        self.text.set(offer_text(found))

    def dismiss(self) -> None:
        self.found = None
        self.grid_remove()
