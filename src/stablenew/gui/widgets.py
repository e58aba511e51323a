"""Widgets that never cut text: a label and table columns that shorten with "…" to the space
they have (the whole text one click away elsewhere), and columns sized from their contents."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
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

    def set_row(
        self, iid: str, values: Sequence[Any], index: int | Literal["end"] = "end", **kw: Any
    ) -> None:
        """A row's values (shortened to fit); a new row goes at `index`."""
        self.rows[iid] = tuple(values)
        shown = self._fitted(self.rows[iid])
        if self.exists(iid):
            self.item(iid, values=shown, **kw)
        else:
            self.insert("", index, iid=iid, values=shown, **kw)

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


def walk(widget: tk.Misc) -> Iterator[tk.Misc]:
    """`widget` and every widget inside it."""
    yield widget
    for child in widget.winfo_children():
        yield from walk(child)


def tab_moves_focus(text: tk.Text) -> None:
    """Tab and Shift+Tab leave a text box, as in every other field, instead of typing a tab
    into the prompt (a keyboard-only user could not get out, and the tab was sent)."""

    def move(forward: bool, _event: object) -> str:
        target = text.tk_focusNext() if forward else text.tk_focusPrev()
        if target is not None:
            target.focus_set()
        return "break"

    text.bind("<Tab>", partial(move, True))
    for sequence in ("<Shift-Tab>", "<ISO_Left_Tab>"):
        text.bind(sequence, partial(move, False))


def on_enter(widget: tk.Misc, action: Callable[[], object]) -> None:
    """Enter in `widget` runs `action`. Ctrl+Enter and Ctrl+Shift+Enter go on to the window's
    shortcuts only: a plain <Return> binding also matched them, so Ctrl+Enter in the gallery
    queued the job and opened the viewer too."""
    widget.bind("<Return>", lambda _e: action())
    widget.bind("<Control-Return>", lambda _e: None)  # more specific: <Return> stays out


class Tooltip:
    """A short explanation that appears when the pointer rests on a widget (and goes when it
    leaves, clicks or types). The text is kept on the widget for tests and the help."""

    DELAY_MS = 600

    def __init__(self, widget: tk.Misc, text: str) -> None:
        self.widget = widget
        self.text = text
        self._after: str | None = None
        self.tip: tk.Toplevel | None = None
        widget.bind("<Enter>", self._schedule, add="+")
        widget.bind("<Destroy>", self.hide, add="+")
        for sequence in ("<Leave>", "<ButtonPress>", "<KeyPress>"):
            widget.bind(sequence, self.hide, add="+")
        TIPS[str(widget)] = text

    def _schedule(self, _event: object = None) -> None:
        self._cancel()
        self._after = self.widget.after(self.DELAY_MS, self.show)

    def _cancel(self) -> None:
        if self._after is not None:
            self.widget.after_cancel(self._after)
            self._after = None

    def show(self) -> None:
        self._after = None
        if self.tip is not None or not self.widget.winfo_viewable():
            return
        x = self.widget.winfo_rootx() + 8
        y = self.widget.winfo_rooty() + self.widget.winfo_height() + 4
        self.tip = tk.Toplevel(self.widget)
        self.tip.wm_overrideredirect(True)
        self.tip.wm_geometry(f"+{x}+{y}")
        screen = self.widget.winfo_screenwidth()
        ttk.Label(
            self.tip, text=self.text, style="Tip.TLabel", wraplength=min(420, screen // 3)
        ).pack()

    def hide(self, _event: object = None) -> None:
        self._cancel()
        if self.tip is not None:
            self.tip.destroy()
            self.tip = None


TIPS: dict[str, str] = {}  # widget path -> its tooltip


def tip(widget: tk.Misc, text: str) -> tk.Misc:
    Tooltip(widget, text)
    return widget


class ScrollFrame(ttk.Frame):
    """A frame whose `interior` scrolls vertically (wheel and scrollbar) when it is taller than
    the room it has; its width follows the interior's, so nothing in it is cut sideways."""

    def __init__(self, master: tk.Misc, **options: Any) -> None:
        super().__init__(master, **options)
        self.canvas = tk.Canvas(self, highlightthickness=0, borderwidth=0, height=120)
        self.bar = ttk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=self.bar.set)
        self.canvas.grid(row=0, column=0, sticky="nsew")
        self.bar.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self.interior = ttk.Frame(self.canvas)
        self._window = self.canvas.create_window(0, 0, window=self.interior, anchor="nw")
        self._sizes: tuple[int, int, int, int] | None = None  # what the canvas was last set to
        self.interior.bind("<Configure>", lambda _e: self._resized(), add="+")
        self.canvas.bind("<Configure>", lambda _e: self._resized(), add="+")
        self.bind_all_wheel(self.interior)

    def refresh(self) -> None:
        """After the interior changed while scrolled out of view (no <Configure> comes then).
        Forcing the layout here is safe now that nothing re-places a divider at every
        <Configure> (that pair never settled at 2x); the size guard in `_resized` keeps a
        refresh that changes nothing from laying the canvas out again."""
        self.interior.update_idletasks()
        self._resized()

    def _resized(self) -> None:
        width, height = self.interior.winfo_reqwidth(), self.interior.winfo_reqheight()
        room = self.canvas.winfo_height()
        sizes = (width, height, self.canvas.winfo_width(), room)
        if sizes == self._sizes:
            return  # nothing changed: configuring the canvas again would lay it out again
        self._sizes = sizes
        self.canvas.configure(width=width, scrollregion=(0, 0, width, height))
        self.canvas.itemconfigure(self._window, width=max(width, self.canvas.winfo_width()))
        # Shorter now (a group closed): never scrolled past the end, where nothing shows.
        if self.canvas.canvasy(0) > max(0, height - room):
            self.canvas.yview_moveto(max(0, height - room) / max(height, 1))

    def bind_all_wheel(self, widget: tk.Misc) -> None:
        """The wheel scrolls the form wherever the pointer is over it."""
        widget.bind("<Enter>", lambda _e: self._wheel(True), add="+")
        widget.bind("<Leave>", lambda _e: self._wheel(False), add="+")

    def _wheel(self, on: bool) -> None:
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            if on:
                self.canvas.bind_all(sequence, self._scroll)
            else:
                self.canvas.unbind_all(sequence)

    def _scroll(self, event: tk.Event[Any]) -> None:
        if self.canvas.yview() == (0.0, 1.0):
            return
        step = -1 if getattr(event, "num", 0) == 4 or getattr(event, "delta", 0) > 0 else 1
        self.canvas.yview_scroll(step * 3, "units")

    def follow_focus(self) -> None:
        """Keyboard focus moving (Tab) to a field out of view scrolls it into view: a user who
        tabs through the form sees where they are. Call once the interior is built."""
        for widget in walk(self.interior):
            if str(widget.cget("takefocus")) != "0" and not isinstance(widget, ttk.Frame):
                widget.bind("<FocusIn>", lambda e: self.see(e.widget), add="+")

    def see(self, widget: tk.Misc) -> None:
        """Scroll so `widget` (inside the interior) is in view."""
        self.update_idletasks()
        top = widget.winfo_rooty() - self.interior.winfo_rooty()
        height = max(1, self.interior.winfo_reqheight())
        view = self.canvas.yview()
        shown = (view[0] * height, view[1] * height)
        if top < shown[0] or top + widget.winfo_height() > shown[1]:
            self.canvas.yview_moveto(max(0.0, (top - 8) / height))


class Section(ttk.Frame):
    """A collapsible group: a header that opens and closes it (with a one-line summary of what
    is set inside when closed) and a body to grid fields into."""

    def __init__(
        self, master: tk.Misc, title: str, scale: Callable[[float], int], opened: bool = True
    ) -> None:
        super().__init__(master)
        self.title = title
        self.columnconfigure(0, weight=1)
        head = ttk.Frame(self)
        head.grid(row=0, column=0, sticky="ew")
        head.columnconfigure(1, weight=1)
        self.toggle = ttk.Button(head, text="", style="Section.TButton", command=self.flip)
        self.toggle.grid(row=0, column=0, sticky="w")
        self.summary = FitLabel(head, "", style="Note.TLabel")
        self.summary.grid(row=0, column=1, sticky="ew", padx=(scale(6), 0))
        self.body = ttk.Frame(self, padding=(scale(14), 0, 0, scale(4)))
        self.on_toggle: Callable[[], None] | None = None
        self.opened = not opened
        self.flip()

    def flip(self) -> None:
        self.set_open(not self.opened)

    def set_open(self, opened: bool) -> None:
        self.opened = opened
        self.toggle.configure(text=("▾ " if opened else "▸ ") + self.title)
        if opened:
            self.body.grid(row=1, column=0, sticky="ew")
        else:
            self.body.grid_remove()
        if self.on_toggle is not None:
            self.on_toggle()
