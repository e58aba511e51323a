"""Compose: prompt, negative, a pack, and the stage chain with each stage's key settings."""

from __future__ import annotations

import tkinter as tk
from tkinter import filedialog, ttk
from typing import Any

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


class ComposePanel(ttk.Frame):
    def __init__(self, master: tk.Misc, on_pack_chosen: Any) -> None:
        super().__init__(master, padding=6)
        self.on_pack_chosen = on_pack_chosen
        self.vars: dict[str, tk.Variable] = {}
        self.combos: dict[str, ttk.Combobox] = {}
        self.columnconfigure(0, weight=1)

        ttk.Label(self, text="Prompt").grid(row=0, column=0, sticky="w")
        self.prompt = tk.Text(self, width=52, height=3, wrap="word", undo=True)
        self.prompt.grid(row=1, column=0, sticky="ew")
        ttk.Label(self, text="Negative prompt").grid(row=2, column=0, sticky="w", pady=(4, 0))
        self.negative = tk.Text(self, width=52, height=2, wrap="word", undo=True)
        self.negative.grid(row=3, column=0, sticky="ew")

        pack = ttk.Frame(self)
        pack.grid(row=4, column=0, sticky="ew", pady=(6, 0))
        pack.columnconfigure(1, weight=1)
        ttk.Label(pack, text="Pack").grid(row=0, column=0, sticky="w")
        self.pack_path = tk.StringVar()
        entry = ttk.Entry(pack, textvariable=self.pack_path)
        entry.grid(row=0, column=1, sticky="ew", padx=4)
        entry.bind("<Return>", lambda _e: self.on_pack_chosen(self.pack_path.get()))
        ttk.Button(pack, text="Browse…", command=self._browse).grid(row=0, column=2)
        ttk.Button(pack, text="Clear", command=self.clear_pack).grid(row=0, column=3, padx=(4, 0))
        self.pack_preview = ttk.Label(pack, text="no pack: the prompt above is used")
        self.pack_preview.grid(row=1, column=0, columnspan=4, sticky="w")

        self._stage(
            "txt2img",
            [
                "model",
                "sampler",
                "scheduler",
                "steps",
                "cfg_scale",
                "width",
                "height",
                "seed",
                "images",
            ],
            row=5,
        )
        self._stage(
            "img2img", ["img2img.enabled", "img2img.denoising_strength", "img2img.steps"], row=6
        )
        self._stage(
            "adetailer",
            [
                "adetailer.enabled",
                "adetailer.face",
                "adetailer.hands",
                "adetailer.confidence",
                "adetailer.denoise",
            ],
            row=7,
        )
        self._stage(
            "upscale",
            ["upscale.enabled", "upscale.upscaler", "upscale.factor", "upscale.tile_size"],
            row=8,
        )

    def _stage(self, title: str, names: list[str], row: int) -> None:
        box = ttk.LabelFrame(self, text=title, padding=(4, 0, 4, 2))
        box.grid(row=row, column=0, sticky="ew", pady=(3, 0))
        for i, name in enumerate(names):
            label, default = FIELDS[name]
            r, c = divmod(i, 3)
            cell = ttk.Frame(box)
            cell.grid(row=r, column=c, sticky="w", padx=2, pady=0)
            if isinstance(default, bool):
                var: tk.Variable = tk.BooleanVar(value=default)
                ttk.Checkbutton(cell, text=label, variable=var).pack(side="left")
            else:
                var = tk.StringVar(value=str(default))
                ttk.Label(cell, text=label, width=8).pack(side="left")
                if name in ("model", "sampler", "scheduler", "upscale.upscaler"):
                    combo = ttk.Combobox(cell, textvariable=var, width=11)
                    combo.pack(side="left")
                    self.combos[name] = combo
                else:
                    ttk.Entry(cell, textvariable=var, width=6).pack(side="left")
            self.vars[name] = var

    def _browse(self) -> None:
        path = filedialog.askopenfilename(
            title="Choose a prompt pack", filetypes=[("Prompt packs", "*.txt *.json")]
        )
        if path:
            self.pack_path.set(path)
            self.on_pack_chosen(path)

    def clear_pack(self) -> None:
        self.pack_path.set("")
        self.pack_preview.configure(text="no pack: the prompt above is used")

    def set_choices(self, name: str, values: list[str]) -> None:
        combo = self.combos[name]
        combo.configure(values=values)
        if not self.vars[name].get() and values and name != "model":
            self.vars[name].set(values[0])

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
                self.vars[name].set(value)

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
