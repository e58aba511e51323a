"""Compose: prompt, negative, a pack, and the stage chain with each stage's key settings.

Fields sit on one grid per stage, and the columns of every stage line up: each grid column is
as wide as the widest thing any stage puts in it, so no label is cut to a fixed width.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable
from tkinter import filedialog, ttk
from typing import Any

from stablenew.gui.theme import Theme
from stablenew.gui.widgets import FitLabel

FIELDS: dict[str, tuple[str, Any]] = {
    # name: (label, default)
    "model": ("Model", ""),
    "sampler": ("Sampler", "Euler a"),
    "scheduler": ("Scheduler", "Automatic"),
    "steps": ("Steps", 20),
    "cfg_scale": ("CFG", 7.0),
    "width": ("Width", 512),
    "height": ("Height", 512),
    "seed": ("Seed", -1),
    "images": ("Images", 1),
    "img2img.enabled": ("img2img", False),
    "img2img.denoising_strength": ("Denoise", 0.3),
    "img2img.steps": ("Steps", 20),
    "adetailer.enabled": ("ADetailer", False),
    "adetailer.face": ("Face", True),
    "adetailer.hands": ("Hands", False),
    "adetailer.confidence": ("Confidence", 0.3),
    "adetailer.denoise": ("Denoise", 0.4),
    "upscale.enabled": ("Upscale", False),
    "upscale.upscaler": ("Upscaler", "R-ESRGAN 4x+"),
    "upscale.factor": ("Factor", 2.0),
    "upscale.tile_size": ("Tile", 192),
}
COMBOS = ("model", "sampler", "scheduler", "upscale.upscaler")
GRID_COLUMNS = 6  # three label + field pairs
# Each stage: rows of (field, first grid column, columns spanned by its widget)
LAYOUT: dict[str, list[list[tuple[str, int, int]]]] = {
    "txt2img": [
        [("model", 0, 5)],
        [("sampler", 0, 5)],
        [("scheduler", 0, 5)],
        [("steps", 0, 1), ("cfg_scale", 2, 1), ("seed", 4, 1)],
        [("width", 0, 1), ("height", 2, 1), ("images", 4, 1)],
    ],
    "img2img": [
        [("img2img.enabled", 0, 1), ("img2img.denoising_strength", 2, 1), ("img2img.steps", 4, 1)],
    ],
    "adetailer": [
        [("adetailer.enabled", 0, 1), ("adetailer.face", 2, 1), ("adetailer.hands", 4, 1)],
        [("adetailer.confidence", 0, 1), ("adetailer.denoise", 2, 1)],
    ],
    "upscale": [
        [("upscale.enabled", 0, 1), ("upscale.upscaler", 2, 3)],
        [("upscale.factor", 0, 1), ("upscale.tile_size", 2, 1)],
    ],
}
NO_PACK = "no pack: the prompt above is what gets queued"
NUMBER_WIDTH = 6  # characters an entry shows (a seed scrolls)


class ComposePanel(ttk.Frame):
    def __init__(
        self, master: tk.Misc, theme: Theme, on_pack_chosen: Callable[[str], None]
    ) -> None:
        super().__init__(master, padding=theme.px(6))
        self.theme = theme
        self.on_pack_chosen = on_pack_chosen
        self.vars: dict[str, tk.StringVar | tk.BooleanVar] = {}
        self.combos: dict[str, ttk.Combobox] = {}
        self.entries: dict[str, ttk.Entry] = {}
        self.checks: dict[str, ttk.Checkbutton] = {}
        self.stage_grids: list[ttk.LabelFrame] = []
        self._cells: list[tuple[ttk.LabelFrame, int, int, tk.Widget]] = []
        self.columnconfigure(0, weight=1)
        px = theme.px

        ttk.Label(self, text="Prompt").grid(row=0, column=0, sticky="w")
        self.prompt = tk.Text(self, width=40, height=3, wrap="word", undo=True)
        self.prompt.grid(row=1, column=0, sticky="ew")
        ttk.Label(self, text="Negative prompt").grid(row=2, column=0, sticky="w", pady=(px(4), 0))
        self.negative = tk.Text(self, width=40, height=2, wrap="word", undo=True)
        self.negative.grid(row=3, column=0, sticky="ew")

        pack = ttk.Frame(self)
        pack.grid(row=4, column=0, sticky="ew", pady=(px(6), 0))
        pack.columnconfigure(1, weight=1)
        ttk.Label(pack, text="Pack").grid(row=0, column=0, sticky="w")
        self.pack_path = tk.StringVar()
        self.pack_entry = ttk.Entry(pack, textvariable=self.pack_path, width=8)
        self.pack_entry.grid(row=0, column=1, sticky="ew", padx=px(4))
        self.pack_entry.bind("<Return>", lambda _e: self.on_pack_chosen(self.pack_path.get()))
        ttk.Button(pack, text="Browse…", command=self._browse).grid(row=0, column=2)
        ttk.Button(pack, text="Clear", command=self.clear_pack).grid(
            row=0, column=3, padx=(px(4), 0)
        )
        self.pack_preview = FitLabel(pack, NO_PACK, style="Note.TLabel")
        self.pack_preview.grid(row=1, column=0, columnspan=4, sticky="ew")

        for row, (title, rows) in enumerate(LAYOUT.items(), start=5):
            self._stage(title, rows, row)
        self._align_columns()

    # -- layout --------------------------------------------------------------------------------

    def _stage(self, title: str, rows: list[list[tuple[str, int, int]]], row: int) -> None:
        px = self.theme.px
        box = ttk.LabelFrame(self, text=title, padding=(px(6), 0, px(6), px(3)))
        box.grid(row=row, column=0, sticky="ew", pady=(px(3), 0))
        self.stage_grids.append(box)
        for r, fields in enumerate(rows):
            for name, column, span in fields:
                self._field(box, name, r, column, span)

    def _field(self, box: ttk.LabelFrame, name: str, row: int, column: int, span: int) -> None:
        px = self.theme.px
        label, default = FIELDS[name]
        pady = (px(2), px(2))
        if isinstance(default, bool):
            var: tk.StringVar | tk.BooleanVar = tk.BooleanVar(value=default)
            check = ttk.Checkbutton(box, text=label, variable=var)
            self.checks[name] = check
            check.grid(row=row, column=column, columnspan=span + 1, sticky="w", pady=pady)
            if span == 1:
                self._cells.append((box, column, 2, check))
        else:
            var = tk.StringVar(value=str(default))
            text = ttk.Label(box, text=label)
            text.grid(row=row, column=column, sticky="w", padx=(0, px(4)), pady=pady)
            self._cells.append((box, column, 1, text))
            widget: ttk.Entry
            if name in COMBOS:
                widget = self._combo(box, name, var)
            else:
                widget = ttk.Entry(box, textvariable=var, width=NUMBER_WIDTH)
                self.entries[name] = widget
                self._cells.append((box, column + 1, 1, widget))
            widget.grid(
                row=row, column=column + 1, columnspan=span, sticky="ew", padx=(0, px(8)), pady=pady
            )
        self.vars[name] = var

    def _combo(self, box: ttk.LabelFrame, name: str, var: tk.StringVar) -> ttk.Combobox:
        # Each list gets its own style, so its drop-down can be wider than the field when a
        # value is longer than the field is wide (`-postoffset`).
        style = f"{name.replace('.', '_')}.TCombobox"
        combo = ttk.Combobox(box, textvariable=var, width=4, style=style)
        combo.configure(postcommand=lambda: self._widen_list(combo))
        self.combos[name] = combo
        return combo

    def _widen_list(self, combo: ttk.Combobox) -> None:
        font = tkfont.nametofont("SunValleyBodyFont", root=self)
        values = [str(v) for v in combo.cget("values")]
        need = max((font.measure(v) for v in values), default=0) + self.theme.px(40)
        extra = max(0, need - combo.winfo_width())
        ttk.Style(self).configure(str(combo.cget("style")), postoffset=(0, 0, extra, 0))

    def _align_columns(self) -> None:
        """Every stage's grid column as wide as the widest cell any stage has in it."""
        self.update_idletasks()
        widths = [0] * GRID_COLUMNS
        for _box, column, span, widget in self._cells:
            share = widget.winfo_reqwidth() // span + self.theme.px(8 if span == 1 else 4)
            for c in range(column, column + span):
                widths[c] = max(widths[c], share)
        for box in self.stage_grids:
            for c, width in enumerate(widths):
                box.columnconfigure(c, minsize=width, weight=1 if c % 2 else 0)

    # -- behaviour -----------------------------------------------------------------------------

    def bind_submit(self, submit: Callable[[], None]) -> None:
        """Ctrl+Enter submits from the prompt boxes too; "break" keeps the newline out."""

        def handler(_event: tk.Event[Any]) -> str:
            submit()
            return "break"

        for widget in (self.prompt, self.negative, self.pack_entry):
            for sequence in ("<Control-Return>", "<Control-KP_Enter>"):
                widget.bind(sequence, handler)

    def _browse(self) -> None:
        path = filedialog.askopenfilename(
            parent=self,
            title="Choose a prompt pack",
            filetypes=[("Prompt packs", "*.txt *.json")],
        )
        if path:
            self.pack_path.set(path)
            self.on_pack_chosen(path)

    def clear_pack(self) -> None:
        self.pack_path.set("")
        self.pack_preview.set(NO_PACK)

    def pack_chosen(self) -> str:
        return self.pack_path.get().strip()

    def set_choices(self, name: str, values: list[str]) -> None:
        combo = self.combos[name]
        combo.configure(values=values)
        if not self.vars[name].get() and values and name != "model":
            self.set_value(name, values[0])

    def prompt_text(self) -> str:
        return self.prompt.get("1.0", "end-1c").strip()

    def set_prompt(self, prompt: str, negative: str = "") -> None:
        self.prompt.delete("1.0", "end")
        self.prompt.insert("1.0", prompt)
        self.negative.delete("1.0", "end")
        self.negative.insert("1.0", negative)

    def settings(self) -> dict[str, Any]:
        return {name: var.get() for name, var in self.vars.items()}

    def restore(self, saved: dict[str, Any]) -> None:
        for name, value in saved.items():
            if name in self.vars:
                self.set_value(name, value)

    def set_value(self, name: str, value: Any) -> None:
        var = self.vars[name]
        if isinstance(var, tk.BooleanVar):
            var.set(bool(value))
        else:
            var.set(str(value))

    def stages(self) -> list[str]:
        """The stage chain as composed, txt2img first."""
        v = self.settings()
        return ["txt2img"] + [s for s in ("img2img", "adetailer", "upscale") if v[f"{s}.enabled"]]

    def spec_data(self) -> dict[str, Any]:
        """The composed job as JobSpec fields (validated by the caller: errors name fields)."""
        v = self.settings()
        passes: dict[str, Any] = {"face": None, "hands": None}
        ad = {"confidence": v["adetailer.confidence"], "denoising_strength": v["adetailer.denoise"]}
        if v["adetailer.face"]:
            passes["face"] = {"model": "face_yolov8n.pt", **ad}
        if v["adetailer.hands"]:
            passes["hands"] = {"model": "hand_yolov8n.pt", **ad}
        return {
            "prompt": self.prompt_text(),
            "negative_prompt": self.negative.get("1.0", "end-1c").strip(),
            "model": v["model"] or None,
            "sampler": v["sampler"],
            "scheduler": v["scheduler"],
            "steps": v["steps"],
            "cfg_scale": v["cfg_scale"],
            "width": v["width"],
            "height": v["height"],
            "seed": v["seed"],
            "images": v["images"],
            "img2img": {
                "enabled": v["img2img.enabled"],
                "denoising_strength": v["img2img.denoising_strength"],
                "steps": v["img2img.steps"] or None,
            },
            "adetailer": {"enabled": v["adetailer.enabled"], **passes},
            "upscale": {
                "enabled": v["upscale.enabled"],
                "upscaler": v["upscale.upscaler"],
                "factor": v["upscale.factor"],
                "tile_size": v["upscale.tile_size"],
            },
            "provenance": {"source": "gui"},
        }
