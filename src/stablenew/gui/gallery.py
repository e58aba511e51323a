"""The gallery: the images of the running and recent jobs in a grid, newest first.

It is virtualised and paginated, so a history of thousands of jobs opens and scrolls at once:
jobs come a page at a time (more when the view nears the end), only the cells in view are drawn
on the canvas, and thumbnails are decoded off the Tk thread by a small pool, only for cells
still in view when their turn comes, and kept in a bounded cache. Arrows, Page Up/Down, Home
and End move the selection; Enter (or a double-click) opens the viewer; the context menu loads
an image's settings into the compose form.
"""

from __future__ import annotations

import math
import threading
import tkinter as tk
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from tkinter import ttk
from typing import Any

from PIL import Image, ImageTk

from stablenew.gui.dispatcher import UiDispatcher
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import FitLabel, fit_text, on_enter
from stablenew.jobs.job import Job
from stablenew.jobs.status import JobStatus

THUMB = 128  # a cell's picture, pixels at 1x
PAD = 8
PAGE = 100  # jobs fetched at a time
CACHE = 400  # decoded thumbnails kept


@dataclass(frozen=True)
class Item:
    """One cell: an image of a job (or a job that made none, shown by its status)."""

    job_id: str
    file: str | None
    number: int  # the image's number in its job (1-based)
    status: str  # the job's status; "RUNNING" for an image of the running job
    prompt: str = ""
    images: int = 0  # how many images the job has
    reason: str = ""  # why the job failed, in one line

    @property
    def key(self) -> str:
        return f"{self.job_id}:{self.file or self.number}"


def items_of(job: Job) -> list[Item]:
    files = job.result.images
    why = job.error.reason_line() if job.error is not None else ""
    if not files:
        return [Item(job.id, None, 0, job.status.value, job.spec.prompt, 0, why)]
    return [
        Item(job.id, f, n, job.status.value, job.spec.prompt, len(files), why)
        for n, f in enumerate(files, start=1)
    ]


def decode(path: str, size: int) -> Image.Image:
    """A thumbnail of an image file (off the Tk thread)."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        image.thumbnail((size, size))
        return image.convert("RGB")


class ThumbCache:
    """Decoded thumbnails by file, least recently used dropped past `capacity`. Decoding runs on
    its own pool (two threads); a request whose cell left the view before its turn is skipped.
    PhotoImages are made and dropped on the Tk thread only."""

    def __init__(self, ui: UiDispatcher, master: tk.Misc, size: int, capacity: int = CACHE) -> None:
        self.ui = ui
        self.master = master  # PhotoImages belong to this window's Tk
        self.size = size
        self.capacity = capacity
        self.photos: OrderedDict[str, ImageTk.PhotoImage] = OrderedDict()
        self.failed: set[str] = set()
        self._pending: set[str] = set()
        self._wanted: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gui-thumbs")
        self.decoded = 0  # how many were decoded (for tests and benchmarks)

    def get(self, path: str) -> ImageTk.PhotoImage | None:
        photo = self.photos.get(path)
        if photo is not None:
            self.photos.move_to_end(path)
        return photo

    def want(self, paths: set[str]) -> None:
        """The files whose cells are in view now: only those are decoded."""
        with self._lock:
            self._wanted = set(paths)

    def request(self, path: str, ready: Callable[[str], None]) -> None:
        if path in self.photos or path in self.failed:
            return
        with self._lock:
            if path in self._pending:
                return
            self._pending.add(path)
        self._pool.submit(self._decode, path, ready)

    def _decode(self, path: str, ready: Callable[[str], None]) -> None:
        with self._lock:
            wanted = path in self._wanted
        if not wanted or not self.ui.accepting:
            with self._lock:
                self._pending.discard(path)
            return
        try:
            image: Image.Image | None = decode(path, self.size)
        except (OSError, ValueError, SyntaxError):
            image = None
        self.ui.post(lambda: self._made(path, image, ready))

    def _made(self, path: str, image: Image.Image | None, ready: Callable[[str], None]) -> None:
        with self._lock:
            self._pending.discard(path)
        if image is None:
            self.failed.add(path)
        else:
            self.photos[path] = ImageTk.PhotoImage(image, master=self.master)
            self.decoded += 1
            while len(self.photos) > self.capacity:
                self.photos.popitem(last=False)
        ready(path)

    def clear(self) -> None:
        """Drop every PhotoImage (on the Tk thread) and stop decoding."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.photos.clear()


MARK = {  # the running panel's stage marks
    JobStatus.RUNNING.value: "▶",
    JobStatus.FAILED.value: "✗",
    JobStatus.CANCELLED.value: "■",
}


def caption(item: Item) -> str:
    """Under a thumbnail: the job, the image's number, and a mark when the job did not
    complete (spelled out, "failed · " overran the cell into the next one)."""
    mark = MARK.get(item.status, "") if item.file or item.status == "RUNNING" else ""
    number = f" · {item.number}/{item.images}" if item.images > 1 else ""
    return f"{mark} {item.job_id[:8]}{number}".strip()


class GalleryPanel(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        ui: UiDispatcher,
        load_page: Callable[[int, int], None],
        act: Callable[[str, Item], None],
    ) -> None:
        px = theme.px
        super().__init__(master, padding=px(4))
        self.theme = theme
        self.ui = ui
        self.load_page = load_page  # (offset, limit): the window fetches, then calls add_page
        self.act = act
        self.thumb = px(THUMB)
        self.cell_w = self.thumb + px(PAD) * 2
        self.cell_h = self.thumb + px(PAD) * 2 + theme.body.metrics("linespace")
        self.cache = ThumbCache(ui, self, self.thumb)
        self.items: list[Item] = []
        self.live: list[Item] = []  # the running job's finished images, newest first
        self.selected = 0
        self.loaded_jobs = 0  # jobs of the history read so far
        self.total_jobs = 0
        self.more = True
        self.loading = False
        self._redraw_pending = False
        self._requested = -1  # the offset of the page asked for
        self._view = (0.0, 1.0)
        self._region: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)

        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, px(4)))
        bar.columnconfigure(0, weight=1)
        self.count = FitLabel(bar, "")
        self.count.grid(row=0, column=0, sticky="ew")
        for i, (label, op) in enumerate(
            (
                ("View", "view"),
                ("Use settings", "load"),
                ("New seed", "reroll"),
                ("Open folder", "open"),
            ),
            start=1,
        ):
            ttk.Button(bar, text=label, command=partial(self._act, op), style="Small.TButton").grid(
                row=0, column=i, padx=(px(2), 0)
            )
        self.canvas = tk.Canvas(self, highlightthickness=0, takefocus=1, height=self.cell_h)
        self.scrollbar = ttk.Scrollbar(self, orient="vertical", command=self._yview)
        self.canvas.configure(yscrollcommand=self._scrolled)
        self.canvas.grid(row=1, column=0, sticky="nsew")
        self.scrollbar.grid(row=1, column=1, sticky="ns")
        self.canvas.bind("<Configure>", lambda _e: self.redraw_soon())
        self.canvas.bind("<Button-1>", self._clicked)
        self.canvas.bind("<Double-Button-1>", self._double)
        self.canvas.bind("<Button-3>", self._context)
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            self.canvas.bind(sequence, self._wheel)
        keys: dict[str, int | str] = {
            "<Left>": -1,
            "<Right>": 1,
            "<Up>": "up",
            "<Down>": "down",
            "<Prior>": "pgup",
            "<Next>": "pgdn",
            "<Home>": "home",
            "<End>": "end",
        }
        for sequence, move in keys.items():
            self.canvas.bind(sequence, partial(self._key_move, move))
        on_enter(self.canvas, lambda: self._act("view"))
        self.menu = tk.Menu(self, tearoff=False)
        for label, op in (
            ("View", "view"),
            ("Use settings (same seed)", "load"),
            ("Use settings (new seed)", "reroll"),
            ("Open folder", "open"),
            ("Show details", "error"),
        ):
            self.menu.add_command(label=label, command=partial(self._act, op))

    # -- data ----------------------------------------------------------------------------------

    @property
    def all_items(self) -> list[Item]:
        return self.live + self.items

    def reset(self) -> None:
        self.items, self.live = [], []
        self.loaded_jobs, self.total_jobs, self.more, self.loading = 0, 0, True, False
        self.selected = 0
        self.canvas.yview_moveto(0)
        self.next_page()

    def next_page(self) -> None:
        if self.loading or not self.more:
            return
        self.loading = True
        self._requested = self.loaded_jobs
        self.load_page(self.loaded_jobs, PAGE)

    def add_page(self, jobs: list[Job], total: int, more: int, offset: int | None = None) -> None:
        """A page of finished jobs, newest first, after those already shown (a page asked for
        before a reset, or asked twice, is dropped)."""
        if offset is not None and (offset != self._requested or not self.loading):
            return
        self.loading = False
        known = {i.job_id for i in self.items}
        for job in jobs:
            if job.id not in known:
                self.items.extend(items_of(job))
        self.loaded_jobs += len(jobs)
        self.total_jobs = total
        self.more = more > 0
        self._count()
        self.redraw_soon()

    def add_live(self, job_id: str, file: str, prompt: str = "") -> None:
        """An image of the running job, as soon as its last stage wrote it."""
        if any(i.file == file for i in self.live):
            return
        number = 1 + sum(1 for i in self.live if i.job_id == job_id)
        self.live.insert(0, Item(job_id, file, number, "RUNNING", prompt))
        self._count()
        self.redraw_soon()

    def job_finished(self, job: Job) -> None:
        """A job ended: its images (or its status) at the top, in place of its live ones."""
        self.live = [i for i in self.live if i.job_id != job.id]
        self.items = [i for i in self.items if i.job_id != job.id]
        self.items[:0] = items_of(job)
        self.loaded_jobs += 1
        self.total_jobs += 1
        self._count()
        self.redraw_soon()

    def selected_item(self) -> Item | None:
        items = self.all_items
        return items[self.selected] if 0 <= self.selected < len(items) else None

    def _act(self, op: str) -> None:
        item = self.selected_item()
        if item is not None:
            self.act(op, item)

    # -- drawing -------------------------------------------------------------------------------

    def columns(self) -> int:
        return max(1, self.canvas.winfo_width() // self.cell_w)

    def redraw_soon(self) -> None:
        if not self._redraw_pending:
            self._redraw_pending = True
            self.after_idle(self.redraw)

    def _yview(self, *args: Any) -> None:
        self.canvas.yview(*args)
        self.redraw_soon()

    def _key_move(self, how: int | str, _event: object) -> str:
        return self.move(how)

    def _scrolled(self, first: float | str, last: float | str) -> None:
        self.scrollbar.set(first, last)
        view = (float(first), float(last))
        if view != self._view:  # moved: other cells are in view (a redraw that did not move
            self._view = view  # the view must not ask for another, or it never ends)
            self.redraw_soon()

    def _wheel(self, event: tk.Event[Any]) -> str:
        up = getattr(event, "num", 0) == 4 or getattr(event, "delta", 0) > 0
        self.canvas.yview_scroll(-1 if up else 1, "units")
        self.redraw_soon()
        return "break"

    def visible_range(self) -> tuple[int, int]:
        """The items whose cells are (at least partly) in view."""
        columns = self.columns()
        top = self.canvas.canvasy(0)
        height = max(self.canvas.winfo_height(), self.cell_h)
        first_row = max(0, int(top // self.cell_h))
        last_row = int((top + height) // self.cell_h)
        return first_row * columns, min(len(self.all_items), (last_row + 1) * columns)

    def redraw(self) -> None:
        self._redraw_pending = False
        if not self.winfo_exists():
            return
        items = self.all_items
        columns = self.columns()
        rows = math.ceil(len(items) / columns)
        region = (0, 0, self.canvas.winfo_width(), max(rows * self.cell_h, 1))
        if region != self._region:
            self._region = region
            self.canvas.configure(scrollregion=region, yscrollincrement=self.cell_h // 4)
        self.canvas.delete("cell")
        first, last = self.visible_range()
        shown = items[first:last]
        self.cache.want({i.file for i in shown if i.file})
        font = self.theme.body
        colours = self.theme.colours()
        for n, item in enumerate(shown, start=first):
            row, column = divmod(n, columns)
            x, y = column * self.cell_w, row * self.cell_h
            if n == self.selected:
                self.canvas.create_rectangle(
                    x + 2,
                    y + 2,
                    x + self.cell_w - 2,
                    y + self.cell_h - 2,
                    outline=colours["accent"],
                    width=self.theme.px(2),
                    tags="cell",
                )
            cx, cy = x + self.cell_w // 2, y + self.theme.px(PAD) + self.thumb // 2
            photo = self.cache.get(item.file) if item.file else None
            if photo is not None:
                self.canvas.create_image(cx, cy, image=photo, tags="cell")
            else:
                self.canvas.create_rectangle(
                    cx - self.thumb // 2,
                    cy - self.thumb // 2,
                    cx + self.thumb // 2,
                    cy + self.thumb // 2,
                    outline=colours["muted"],
                    tags="cell",
                )
                if item.file:
                    self.cache.request(item.file, self._ready)
                else:
                    self.canvas.create_text(
                        cx,
                        cy,
                        text=item.status.lower(),
                        fill=colours["failed"],
                        font=font,
                        tags="cell",
                    )
            self.canvas.create_text(
                cx,
                y + self.cell_h - self.theme.px(PAD),
                text=fit_text(font, caption(item), self.cell_w - self.theme.px(4)),
                anchor="s",
                fill=colours["text"],
                font=font,
                tags="cell",
            )
        if last >= len(items) - columns * 2 and self.more:
            self.next_page()

    def _ready(self, path: str) -> None:
        first, last = self.visible_range()
        if any(i.file == path for i in self.all_items[first:last]):
            self.redraw_soon()

    # -- the pointer and the keys --------------------------------------------------------------

    def index_at(self, x: int, y: int) -> int | None:
        column = int(self.canvas.canvasx(x) // self.cell_w)
        row = int(self.canvas.canvasy(y) // self.cell_h)
        if column >= self.columns():
            return None
        n = row * self.columns() + column
        return n if 0 <= n < len(self.all_items) else None

    def _clicked(self, event: tk.Event[Any]) -> None:
        self.canvas.focus_set()
        n = self.index_at(event.x, event.y)
        if n is not None:
            self.select(n)

    def _double(self, event: tk.Event[Any]) -> None:
        n = self.index_at(event.x, event.y)
        if n is not None:
            self.select(n)
            self._act("view")

    def _context(self, event: tk.Event[Any]) -> None:
        n = self.index_at(event.x, event.y)
        if n is not None:
            self.select(n)
            self.menu.tk_popup(event.x_root, event.y_root)

    def select(self, n: int) -> None:
        items = self.all_items
        if not items:
            return
        self.selected = max(0, min(n, len(items) - 1))
        self.see(self.selected)
        self.redraw_soon()
        self._count()

    def _count(self) -> None:
        """The bar: a selected failed job's reason (its cell has no room for it), else counts."""
        item = self.selected_item()
        if item is not None and item.reason:
            self.count.set(f"✗ job {item.job_id[:8]} {item.status.lower()}: {item.reason}")
            return
        shown = len(self.all_items)
        self.count.set(
            f"{self.total_jobs} finished job(s) · {shown} image(s) shown"
            + (" · scroll for more" if self.more else "")
        )

    def move(self, how: int | str) -> str:
        columns = self.columns()
        rows_in_view = max(1, self.canvas.winfo_height() // self.cell_h)
        steps: dict[int | str, int] = {
            "up": -columns,
            "down": columns,
            "pgup": -columns * rows_in_view,
            "pgdn": columns * rows_in_view,
            "home": -len(self.all_items),
            "end": len(self.all_items),
        }
        self.select(self.selected + (how if isinstance(how, int) else steps[how]))
        return "break"

    def see(self, n: int) -> None:
        rows = max(1, math.ceil(len(self.all_items) / self.columns()))
        row = n // self.columns()
        top = self.canvas.canvasy(0)
        y = row * self.cell_h
        height = self.canvas.winfo_height()
        if y < top:
            self.canvas.yview_moveto(y / (rows * self.cell_h))
        elif y + self.cell_h > top + height:
            self.canvas.yview_moveto(max(0, y + self.cell_h - height) / (rows * self.cell_h))

    def file_of(self, item: Item) -> Path | None:
        return Path(item.file) if item.file else None
