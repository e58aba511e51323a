"""Widgets that never cut text: a label and table columns that shorten with "…" to the space
they have (the whole text one click away elsewhere), and columns sized from their contents."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from tkinter import ttk
from typing import Any, Literal

ELLIPSIS = "…"
CELL_PAD = 12  # pixels at 1x a table cell keeps around its text (the theme's cell padding)
TREE_BORDER = 4  # pixels at 1x the table's frame takes from its width


def fit_text(font: tkfont.Font, text: str, width: int) -> str:
    """`text` on one line, shortened with "…" to at most `width` pixels."""
    text = " ".join(text.split())  # one line: a newline in a cell or label shows as a box
    if font.measure(text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        mid = (low + high + 1) // 2
        if font.measure(text[:mid].rstrip() + ELLIPSIS) <= width:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + ELLIPSIS if low else ""


def widest(font: tkfont.Font, texts: Iterable[str]) -> int:
    return max((font.measure(t) for t in texts), default=0)


class FitLabel(ttk.Label):
    """A one-line label that takes the width its layout gives it (it never asks for more) and
    shows as much of its text as fits, ending with "…". `full_text` is the whole text."""

    def __init__(self, master: tk.Misc, text: str = "", **options: Any) -> None:
        super().__init__(master, width=1, **options)
        self.full_text = ""
        self.bind("<Configure>", lambda _e: self._fit(), add="+")
        self.set(text)

    def set(self, text: str) -> None:
        self.full_text = text
        self._fit()

    def font(self) -> tkfont.Font:
        name = str(self.cget("font")) or str(
            ttk.Style(self).lookup(str(self.cget("style")) or "TLabel", "font")
        )
        return tkfont.nametofont(name or "TkDefaultFont", root=self)

    def _fit(self) -> None:
        width = self.winfo_width()
        if width <= 1:  # not laid out yet: <Configure> comes back with the real width
            self.configure(text=" ".join(self.full_text.split()))
            return
        self.configure(text=fit_text(self.font(), self.full_text, width - 2))


@dataclass(frozen=True)
class Column:
    name: str
    heading: str
    samples: Sequence[str] = ()  # the widest texts it must show whole; none: it stretches
    anchor: Literal["w", "e", "center"] = "w"
    weight: int = 1  # a stretching column's share of the room left

    @property
    def stretches(self) -> bool:
        return not self.samples


class FitTree(ttk.Treeview):
    """A table whose fixed columns fit their widest possible text and heading, and whose
    stretching columns share the rest, each cell shortened with "…" to its column."""

    def __init__(
        self,
        master: tk.Misc,
        columns: Sequence[Column],
        scale: Callable[[float], int],
        tree_width: int = 0,  # the #0 column (a thumbnail), 0: hidden
        **options: Any,
    ) -> None:
        super().__init__(
            master,
            columns=[c.name for c in columns],
            show="tree headings" if tree_width else "headings",
            **options,
        )
        self.fit_columns = list(columns)
        self.px = scale
        self.rows: dict[str, tuple[Any, ...]] = {}  # iid -> the whole values
        body = tkfont.nametofont("SunValleyBodyFont", root=self)
        head = tkfont.nametofont("SunValleyCaptionFont", root=self)
        pad = scale(CELL_PAD)
        if tree_width:
            self.column("#0", width=tree_width, minwidth=tree_width, stretch=False)
        for c in columns:
            self.heading(c.name, text=c.heading, anchor="w")
            need = max(widest(body, c.samples), head.measure(c.heading)) + pad
            if c.stretches:
                need = max(head.measure(c.heading) + pad, scale(120))
            # Tk's own stretching settles after <Configure>: the widths are set here instead.
            self.column(c.name, width=need, minwidth=need, stretch=False, anchor=c.anchor)
        self._pending = False
        self.bind("<Configure>", lambda _e: self._refit_soon(), add="+")

    def _share_width(self) -> None:
        """Give the stretching columns what the fixed ones leave of the table's width."""
        stretching = [c for c in self.fit_columns if c.stretches]
        room = self.winfo_width() - self.fixed_width() - self.px(TREE_BORDER)
        room += sum(int(self.column(c.name, "minwidth")) for c in stretching)
        weights = sum(c.weight for c in stretching)
        for c in stretching:
            share = room * c.weight // weights if weights else 0
            self.column(c.name, width=max(share, int(self.column(c.name, "minwidth"))))

    def fixed_width(self) -> int:
        """The width every column needs at its narrowest (the table's own minimum)."""
        total = int(self.column("#0", "width")) if "tree" in str(self.cget("show")) else 0
        return total + sum(int(self.column(c.name, "minwidth")) for c in self.fit_columns)

    def set_row(self, iid: str, values: Sequence[Any], **kw: Any) -> None:
        self.rows[iid] = tuple(values)
        shown = self._fitted(self.rows[iid])
        if self.exists(iid):
            self.item(iid, values=shown, **kw)
        else:
            self.insert("", "end", iid=iid, values=shown, **kw)

    def clear(self) -> None:
        self.delete(*self.get_children())
        self.rows.clear()

    def shown(self, iid: str) -> tuple[str, ...]:
        return tuple(str(v) for v in self.item(iid, "values"))

    def _fitted(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        body = tkfont.nametofont("SunValleyBodyFont", root=self)
        out = []
        for c, value in zip(self.fit_columns, values, strict=False):
            if c.stretches:
                width = int(self.column(c.name, "width")) - self.px(CELL_PAD)
                out.append(fit_text(body, str(value), max(width, 0)))
            else:
                out.append(value)
        return tuple(out)

    def _refit_soon(self) -> None:
        if not self._pending:
            self._pending = True
            self.after_idle(self._refit)

    def _refit(self) -> None:
        self._pending = False
        if not self.winfo_exists():
            return
        self._share_width()
        for iid, values in self.rows.items():
            if self.exists(iid):
                self.item(iid, values=self._fitted(values))
