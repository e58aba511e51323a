"""Compose: the prompt, the negative prompt, a pack, and every setting the engine has, grouped in
collapsible sections so the common case stays short (model and sampling, size and seed open;
hires fix, refiner, img2img, ADetailer, upscale, input images, output and presets closed until
wanted, each closed section saying in one line what is set inside).

The form is a view of a JobSpec: it starts from the spec's own defaults (read from the model,
never copied here), or from a job loaded into it, and `spec_data()` is that spec with the
form's values over it, so whatever the form does not show (extension arguments, settings
overrides, metadata) goes through unchanged. Values are checked as the user types by the same
`build_spec` that checks them at submit, with the same words.
"""

from __future__ import annotations

import copy
import tkinter as tk
import tkinter.font as tkfont
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Literal

from stablenew.app.studio import PickerLists
from stablenew.errors import SpecError
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import FitLabel, ScrollFrame, Section, tab_moves_focus, tip
from stablenew.jobs.presets import AD_DEFAULT_MODELS
from stablenew.jobs.spec import (
    ADetailerPass,
    InputImage,
    JobSpec,
    UpscaleConfig,
    build_spec,
)

Kind = Literal["entry", "combo", "choice", "bool"]


@dataclass(frozen=True)
class Field:
    key: str  # the JobSpec field, dotted (adetailer.face.confidence)
    label: str
    kind: Kind = "entry"
    tip: str = ""
    picks: str = ""  # the PickerLists list a combo offers
    optional: bool = False  # empty means None (the backend's, or the job's, own value)
    wide: bool = False  # takes a whole row


def _pass_fields(which: str) -> list[Field]:
    k = f"adetailer.{which}"
    return [
        Field(
            k,
            f"{which.capitalize()} pass",
            "bool",
            f"Detect {'faces' if which == 'face' else 'hands'} and inpaint them",
        ),
        Field(f"{k}.model", "Model", "combo", "The detection model", "adetailer_models", wide=True),
        Field(f"{k}.confidence", "Confidence", tip="Detections below this are ignored"),
        Field(f"{k}.denoising_strength", "Denoise", tip="How much the inpainted area changes"),
        Field(f"{k}.steps", "Steps", tip="Empty: the job's steps", optional=True),
        Field(f"{k}.cfg_scale", "CFG", tip="Empty: the job's CFG", optional=True),
        Field(f"{k}.mask_blur", "Mask blur"),
        Field(f"{k}.dilate_erode", "Dilate", tip="Grow (+) or shrink (-) each mask, pixels"),
        Field(f"{k}.inpaint_padding", "Padding", tip="Context around each mask, pixels"),
        Field(f"{k}.inpaint_only_masked", "Only masked", "bool", "Inpaint at the mask's size"),
        Field(f"{k}.prompt", "Prompt", tip="Empty: the job's prompt", wide=True),
        Field(f"{k}.negative_prompt", "Negative", tip="Empty: the job's negative", wide=True),
    ]


# Section title -> its fields, in order; (title, opened at first)
SECTIONS: dict[tuple[str, bool], list[Field]] = {
    ("Model and sampling", True): [
        Field(
            "model",
            "Model",
            "combo",
            "Empty: whatever the backend has loaded",
            "models",
            optional=True,
            wide=True,
        ),
        Field(
            "vae",
            "VAE",
            "combo",
            "Empty: the backend's current VAE; Automatic: the model's own",
            "vaes",
            True,
            True,
        ),
        Field("sampler", "Sampler", "combo", "", "samplers", wide=True),
        Field("scheduler", "Scheduler", "combo", "", "schedulers", wide=True),
        Field("steps", "Steps"),
        Field("cfg_scale", "CFG", tip="How closely the image follows the prompt"),
        Field(
            "clip_skip",
            "Clip skip",
            tip="Skip the last CLIP layers: 1 none, 2 for many anime models",
        ),
    ],
    ("Size, seed and count", True): [
        Field("width", "Width"),
        Field("height", "Height"),
        Field("seed", "Seed", tip="-1: a new random seed; the images get seed, seed+1, …"),
        Field("images", "Images", tip="How many images this job makes"),
    ],
    ("Hires fix", False): [
        Field("txt2img.enable_hr", "Hires fix", "bool", "Generate small, then upscale and refine"),
        Field("txt2img.hr_scale", "Scale"),
        Field(
            "txt2img.hr_second_pass_steps", "Steps", tip="Second pass steps; 0: as the first pass"
        ),
        Field("txt2img.hr_upscaler", "Upscaler", "combo", "", "hr_upscalers", wide=True),
        Field("txt2img.hr_denoising_strength", "Denoise"),
    ],
    ("Refiner", False): [
        Field(
            "txt2img.refiner_checkpoint",
            "Checkpoint",
            "combo",
            "Empty: no refiner; otherwise the model that finishes the image",
            "models",
            True,
            True,
        ),
        Field("txt2img.refiner_switch_at", "Switch at", tip="Fraction of the steps (0-1)"),
    ],
    ("img2img (refine)", False): [
        Field("img2img.enabled", "img2img", "bool", "Run each image through img2img"),
        Field("img2img.denoising_strength", "Denoise"),
        Field("img2img.steps", "Steps", tip="Empty: the job's steps", optional=True),
        Field("img2img.cfg_scale", "CFG", tip="Empty: the job's CFG", optional=True),
    ],
    ("ADetailer", False): [
        Field("adetailer.enabled", "ADetailer", "bool", "Fix faces and hands after generation"),
        *_pass_fields("face"),
        *_pass_fields("hands"),
    ],
    ("Upscale", False): [
        Field("upscale.enabled", "Upscale", "bool", "Upscale each image as the last stage"),
        Field("upscale.upscaler", "Upscaler", "combo", "", "upscalers", wide=True),
        Field("upscale.factor", "Factor"),
        Field("upscale.mode", "Mode", "choice", "extra: the upscaler alone; img2img: with SD"),
        Field("upscale.tile_size", "Tile", tip="Tile size in pixels; 0: no tiling"),
        Field("upscale.denoising_strength", "Denoise", tip="img2img mode only"),
    ],
    ("Input images", False): [],
    ("Output and backend", False): [
        Field(
            "output.label",
            "Label",
            tip="The run folder's name; empty: from the prompt",
            optional=True,
            wide=True,
        ),
        Field(
            "output.root",
            "Folder",
            tip="Empty: the configured output folder",
            optional=True,
            wide=True,
        ),
        Field(
            "backend",
            "Backend",
            "combo",
            "Run only on this backend of the pool (a name or a label); empty: any",
            "backends",
            True,
            True,
        ),
    ],
    ("Presets and global prompts", False): [],
}
FIELDS: dict[str, Field] = {f.key: f for fields in SECTIONS.values() for f in fields}
COMBOS = tuple(key for key, f in FIELDS.items() if f.kind in ("combo", "choice"))
PASSES = ("face", "hands")
SIZES = (
    "512x512",
    "512x768",
    "768x512",
    "768x768",
    "1024x1024",
    "832x1216",
    "1216x832",
    "896x1152",
    "1152x896",
)
PACK_READ_DELAY_MS = 500  # after the last key typed into the pack entry
NEW_JOB = "New job"  # the form's title when it edits or retries nothing
NO_PACK = "no pack: the prompt above is what gets queued"
NUMBER_WIDTH = 6  # characters an entry shows (a seed scrolls)
GRID_COLUMNS = 4  # label, field, label, field
BLANK = " "


def defaults() -> dict[str, Any]:
    """Every JobSpec field at its model default (JSON data), the prompts empty."""
    return JobSpec.model_construct().model_dump(mode="json")


def pass_defaults(which: str) -> dict[str, Any]:
    return ADetailerPass.model_construct(model=AD_DEFAULT_MODELS[which]).model_dump(mode="json")


def choices_of(key: str) -> list[str]:
    if key == "upscale.mode":
        return [str(a) for a in typing.get_args(UpscaleConfig.model_fields["mode"].annotation)]
    return []


def get_path(data: dict[str, Any], key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    target = data
    for part in parents:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[last] = value


def shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return str(value)


class ComposePanel(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        on_pack_chosen: Callable[[str, bool], None],  # (path, chosen: not just typed)
        on_changed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(master, padding=theme.px(6))
        self.theme = theme
        self.on_pack_chosen = on_pack_chosen
        self.on_changed = on_changed or (lambda: None)
        self.vars: dict[str, tk.StringVar | tk.BooleanVar] = {}
        self.combos: dict[str, ttk.Combobox] = {}
        self.entries: dict[str, ttk.Entry] = {}
        self.checks: dict[str, ttk.Checkbutton] = {}
        self.widgets: dict[str, tk.Widget] = {}
        self.sections: dict[str, Section] = {}
        self.lists = PickerLists()
        self.base: dict[str, Any] = defaults()  # what the form does not show comes from here
        self.passes: dict[str, dict[str, Any]] = {w: pass_defaults(w) for w in PASSES}
        self.inputs: list[InputImage] = []
        self.actions: dict[str, Callable[[], None]] = {}  # set by the window: presets, inputs
        self._cells: list[tuple[ttk.Frame, int, int, tk.Widget]] = []
        self._loading = False
        self._pass_rows: dict[str, list[tk.Widget]] = {w: [] for w in PASSES}
        self.columnconfigure(0, weight=1)
        self.rowconfigure(6, weight=1)
        px = theme.px

        # The form's title, which becomes the edit/retry banner: always there at the height of
        # its button, so entering or leaving a mode never moves the form below it.
        self.banner = ttk.Frame(self, padding=px(4))
        self.banner.grid(row=0, column=0, sticky="ew", pady=(0, px(4)))
        self.banner.columnconfigure(0, weight=1)
        self.banner_text = FitLabel(self.banner, NEW_JOB, style="Title.TLabel")
        self.banner_text.grid(row=0, column=0, sticky="ew")
        self.stop_editing = ttk.Button(self.banner, text="Stop editing")
        self.banner.rowconfigure(0, minsize=self.stop_editing.winfo_reqheight())

        head = ttk.Frame(self)
        head.grid(row=1, column=0, sticky="ew")
        head.columnconfigure(0, weight=1)
        ttk.Label(head, text="Prompt").grid(row=0, column=0, sticky="w")
        self.lora_button = ttk.Button(head, text="LoRA…", style="Small.TButton")
        self.lora_button.grid(row=0, column=1)
        tip(self.lora_button, "Insert <lora:name:weight> from the backend's LoRAs")
        self.embedding_button = ttk.Button(head, text="Embedding…", style="Small.TButton")
        self.embedding_button.grid(row=0, column=2, padx=(px(4), 0))
        tip(self.embedding_button, "Insert <embedding:name> from the backend's embeddings")
        self.prompt = tk.Text(self, width=40, height=3, wrap="word", undo=True)
        self.prompt.grid(row=2, column=0, sticky="ew")
        ttk.Label(self, text="Negative prompt").grid(row=3, column=0, sticky="w", pady=(px(2), 0))
        self.negative = tk.Text(self, width=40, height=2, wrap="word", undo=True)
        self.negative.grid(row=4, column=0, sticky="ew")
        for text in (self.prompt, self.negative):
            text.bind("<<Modified>>", self._text_modified, add="+")
            tab_moves_focus(text)

        pack = ttk.Frame(self)
        pack.grid(row=5, column=0, sticky="ew", pady=(px(4), 0))
        pack.columnconfigure(1, weight=1)
        ttk.Label(pack, text="Pack").grid(row=0, column=0, sticky="w")
        self.pack_path = tk.StringVar()
        self.pack_entry = ttk.Entry(pack, textvariable=self.pack_path, width=8)
        self.pack_entry.grid(row=0, column=1, sticky="ew", padx=px(4))
        self.pack_entry.bind("<Return>", lambda _e: self.choose_pack(self.pack_path.get()))
        # What is typed counts as it is typed: the hint under it never speaks of another pack
        # (or of none) while Ctrl+Enter would queue what the entry names.
        self._pack_pending: str | None = None
        self.pack_path.trace_add("write", self._pack_typed)
        tip(self.pack_entry, "A prompt pack (.txt or .json): its jobs are queued instead")
        ttk.Button(pack, text="Browse…", command=self.browse_pack).grid(row=0, column=2)
        ttk.Button(pack, text="Clear", command=self.clear_pack).grid(
            row=0, column=3, padx=(px(4), 0)
        )
        self.pack_preview = FitLabel(pack, NO_PACK, style="Note.TLabel")
        self.pack_preview.grid(row=1, column=0, columnspan=4, sticky="ew")

        self.scroll = ScrollFrame(self)
        self.scroll.grid(row=6, column=0, sticky="nsew", pady=(px(4), 0))
        # The wheel scrolls the form; over a dropdown Tk's own binding also changed its value
        # (silently, and that value was queued). Dropdowns change by click or keys only.
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            self.bind_class("TCombobox", sequence, "")
        form = self.scroll.interior
        form.columnconfigure(0, weight=1)
        for row, ((title, opened), fields) in enumerate(SECTIONS.items()):
            section = Section(form, title, px, opened)
            section.toggle.configure(command=partial(self._flip, section))
            section.on_toggle = self._toggled
            section.grid(row=row, column=0, sticky="ew", pady=(0, px(2)))
            self.sections[title] = section
            self._fields(section.body, fields)
        self._size_tools(self.sections["Size, seed and count"].body)
        self._inputs_section(self.sections["Input images"].body)
        self._presets_section(self.sections["Presets and global prompts"].body)
        self.problem = FitLabel(self, BLANK, style="Failed.TLabel")
        self.problem.grid(row=7, column=0, sticky="ew", pady=(px(2), 0))
        self.problem_fields: set[str] = set()
        self._align_columns()
        self.scroll.follow_focus()
        for var in self.vars.values():
            var.trace_add("write", lambda *_a: self._changed())
        self._summaries()

    # -- layout --------------------------------------------------------------------------------

    def _fields(self, box: ttk.Frame, fields: list[Field]) -> None:
        row, column = 0, 0
        for f in fields:
            if f.wide and column:
                row, column = row + 1, 0
            self._field(box, f, row, column)
            column += 4 if f.wide else 2
            if column >= GRID_COLUMNS:
                row, column = row + 1, 0
            if f.key in ("adetailer.enabled", "adetailer.face.negative_prompt"):
                row, column = row + (1 if column else 0), 0  # each pass starts its own row

    def _field(self, box: ttk.Frame, f: Field, row: int, column: int) -> None:
        px = self.theme.px
        pady = (px(2), px(2))
        default = get_path(self.base, f.key)
        widget: tk.Widget
        if f.key.startswith("adetailer.") and f.key.count(".") == 2:
            which, name = f.key.split(".")[1:]
            default = self.passes[which][name]
        if f.kind == "bool":
            if f.key in ("adetailer.face", "adetailer.hands"):
                default = get_path(self.base, f.key) is not None
            var: tk.StringVar | tk.BooleanVar = tk.BooleanVar(value=bool(default))
            check = ttk.Checkbutton(box, text=f.label, variable=var)
            self.checks[f.key] = check
            check.grid(row=row, column=column, columnspan=2, sticky="w", pady=pady)
            self._cells.append((box, column, 2, check))
            widget = check
        else:
            var = tk.StringVar(value=shown(default))
            text = ttk.Label(box, text=f.label)
            text.grid(row=row, column=column, sticky="w", padx=(0, px(4)), pady=pady)
            self._cells.append((box, column, 1, text))
            span = 3 if f.wide else 1
            if f.kind in ("combo", "choice"):
                widget = self._combo(box, f, var)
            else:
                widget = ttk.Entry(box, textvariable=var, width=NUMBER_WIDTH)
                self.entries[f.key] = widget
            if not f.wide:
                self._cells.append((box, column + 1, 1, widget))
            widget.grid(
                row=row,
                column=column + 1,
                columnspan=span,
                sticky="ew",
                padx=(0, px(8)),
                pady=pady,
            )
            if f.key.startswith("adetailer.") and f.key.count(".") == 2:
                self._pass_rows[f.key.split(".")[1]].append(text)
        if f.key.startswith("adetailer.") and f.key.count(".") == 2:
            self._pass_rows[f.key.split(".")[1]].append(widget)
        if f.tip:
            tip(widget, f.tip)
        self.vars[f.key] = var
        self.widgets[f.key] = widget

    def _combo(self, box: ttk.Frame, f: Field, var: tk.StringVar) -> ttk.Combobox:
        # Each list gets its own style, so its drop-down can be wider than the field when a
        # value is longer than the field is wide (`-postoffset`).
        style = f"{f.key.replace('.', '_')}.TCombobox"
        state = "readonly" if f.kind == "choice" else "normal"
        combo = ttk.Combobox(box, textvariable=var, width=4, style=style, state=state)
        if f.kind == "choice":
            combo.configure(values=choices_of(f.key))
        combo.configure(postcommand=lambda: self._widen_list(combo))
        self.combos[f.key] = combo
        return combo

    def _widen_list(self, combo: ttk.Combobox) -> None:
        font = tkfont.nametofont("SunValleyBodyFont", root=self)
        values = [str(v) for v in combo.cget("values")]
        need = max((font.measure(v) for v in values), default=0) + self.theme.px(40)
        extra = max(0, need - combo.winfo_width())
        ttk.Style(self).configure(str(combo.cget("style")), postoffset=(0, 0, extra, 0))

    def _size_tools(self, box: ttk.Frame) -> None:
        px = self.theme.px
        tools = ttk.Frame(box)
        tools.grid(row=box.grid_size()[1], column=0, columnspan=GRID_COLUMNS, sticky="w")
        ttk.Label(tools, text="Size").grid(row=0, column=0, padx=(0, px(4)))
        self.size_preset = ttk.Combobox(tools, values=SIZES, width=10, state="readonly")
        self.size_preset.grid(row=0, column=1)
        self.size_preset.bind("<<ComboboxSelected>>", lambda _e: self._size_chosen())
        tip(self.size_preset, "Common sizes (width x height)")
        swap = ttk.Button(tools, text="⇄ Swap", style="Small.TButton", command=self.swap_size)
        swap.grid(row=0, column=2, padx=(px(4), 0))
        tip(swap, "Swap width and height")
        rand = ttk.Button(
            tools, text="Random seed", style="Small.TButton", command=self.random_seed
        )
        rand.grid(row=1, column=1, sticky="w", pady=(px(2), 0))
        tip(rand, "Seed -1: a new random seed for each run")
        self.reuse_seed_button = ttk.Button(
            tools, text="Last seed", style="Small.TButton", command=self.reuse_last_seed
        )
        self.reuse_seed_button.grid(row=1, column=2, padx=(px(4), 0), pady=(px(2), 0))
        tip(self.reuse_seed_button, "The seed of the last finished image")
        self.last_seed: int | None = None

    def _inputs_section(self, box: ttk.Frame) -> None:
        px = self.theme.px
        box.columnconfigure(0, weight=1)
        ttk.Label(
            box,
            text="Jobs start from these images (no txt2img): "
            "turn on img2img, ADetailer or upscale.",
            style="Note.TLabel",
            wraplength=px(360),
        ).grid(row=0, column=0, columnspan=2, sticky="w")
        self.input_list = tk.Listbox(box, height=3, activestyle="none")
        self.input_list.grid(row=1, column=0, sticky="ew", pady=px(2))
        buttons = ttk.Frame(box)
        buttons.grid(row=1, column=1, sticky="n", padx=(px(4), 0))
        for i, (text, name) in enumerate(
            (("Files…", "add_input_files"), ("Folder…", "add_input_folder"), ("Clear", "clear"))
        ):
            command = partial(self._action, name) if name != "clear" else self.clear_inputs
            ttk.Button(buttons, text=text, style="Small.TButton", command=command).grid(
                row=i, column=0, sticky="ew", pady=(0, px(2))
            )
        self.one_job = tk.BooleanVar(value=False)
        one = ttk.Checkbutton(box, text="One job with all of them", variable=self.one_job)
        one.grid(row=2, column=0, sticky="w")
        self.one_job_check = one
        tip(one, "Off: one job per image")
        self.one_job.trace_add("write", lambda *_a: self._changed())

    def _presets_section(self, box: ttk.Frame) -> None:
        px = self.theme.px
        box.columnconfigure(1, weight=1)
        row = ttk.Frame(box)
        row.grid(row=0, column=0, columnspan=2, sticky="w")
        apply = ttk.Button(
            row, text="Apply preset…", command=lambda: self.actions["apply_preset"]()
        )
        apply.grid(row=0, column=0)
        tip(
            apply, "A pack's JSON or a preset file: its settings over the form's (the prompt stays)"
        )
        save = ttk.Button(
            row, text="Save as preset…", command=lambda: self.actions["save_preset"]()
        )
        save.grid(row=0, column=1, padx=(px(4), 0))
        tip(save, "Write the form's settings as a preset file a pack can use")
        ttk.Label(box, text="Global positive").grid(row=1, column=0, sticky="w", pady=(px(4), 0))
        self.global_positive = FitLabel(box, "", style="Note.TLabel")
        self.global_positive.grid(row=1, column=1, sticky="ew", pady=(px(4), 0))
        ttk.Label(box, text="Global negative").grid(row=2, column=0, sticky="w")
        self.global_negative = FitLabel(box, "", style="Note.TLabel")
        self.global_negative.grid(row=2, column=1, sticky="ew")
        edit = ttk.Button(
            box, text="Edit global prompts…", command=lambda: self.actions["settings"]()
        )
        edit.grid(row=3, column=0, columnspan=2, sticky="w", pady=(px(2), 0))
        tip(edit, "Added to every job's prompts by the engine (Settings; from the next start)")

    def _action(self, name: str) -> None:
        self.actions[name]()

    def _toggled(self) -> None:
        self.scroll.refresh()  # coalesced there: opening every group costs one

    def _flip(self, section: Section) -> None:
        section.flip()
        self._summaries()

    def show_global(self, positive: str, negative: str) -> None:
        self.global_positive.set(positive or "(none)")
        self.global_negative.set(negative or "(none)")

    def _align_columns(self) -> None:
        """Every section's grid column as wide as the widest cell any section has in it."""
        self.update_idletasks()
        widths = [0] * GRID_COLUMNS
        for _box, column, span, widget in self._cells:
            share = widget.winfo_reqwidth() // span + self.theme.px(8 if span == 1 else 4)
            for c in range(column, column + span):
                widths[c] = max(widths[c], share)
        for box in {cell[0] for cell in self._cells}:
            for c, width in enumerate(widths):
                box.columnconfigure(c, minsize=width, weight=1 if c % 2 else 0)

    # -- behaviour -----------------------------------------------------------------------------

    def bind_submit(self, submit: Callable[[], None], run_now: Callable[[], None]) -> None:
        """Ctrl+Enter submits and Ctrl+Shift+Enter runs now from the prompt boxes too; "break"
        keeps the newline out. Both are bound here: a box's Ctrl+Enter alone would also take
        Ctrl+Shift+Enter (Tk matches the closest binding) and stop it reaching the window's.
        """

        def handler(action: Callable[[], None], _event: tk.Event[Any]) -> str:
            action()
            return "break"

        for widget in (self.prompt, self.negative, self.pack_entry):
            for key in ("Return", "KP_Enter"):
                widget.bind(f"<Control-{key}>", partial(handler, submit))
                widget.bind(f"<Control-Shift-{key}>", partial(handler, run_now))

    def browse_pack(self) -> None:
        path = filedialog.askopenfilename(
            parent=self,
            title="Choose a prompt pack",
            filetypes=[("Prompt packs", "*.txt *.json")],
        )
        if path:
            self.choose_pack(path)

    def choose_pack(self, path: str) -> None:
        self.pack_path.set(path)
        self._cancel_pack_read()
        self.on_pack_chosen(path, True)

    def clear_pack(self) -> None:
        self.pack_path.set("")

    def _pack_typed(self, *_args: object) -> None:
        self._cancel_pack_read()
        path = self.pack_chosen()
        if not path:
            self.pack_preview.set(NO_PACK)
            return
        self.pack_preview.set(f"{Path(path).name}: read when you stop typing…")
        self._pack_pending = self.after(PACK_READ_DELAY_MS, self._read_typed_pack)

    def _read_typed_pack(self) -> None:
        self._pack_pending = None
        self.on_pack_chosen(self.pack_chosen(), False)

    def _cancel_pack_read(self) -> None:
        if self._pack_pending is not None:
            self.after_cancel(self._pack_pending)
            self._pack_pending = None

    def pack_chosen(self) -> str:
        return self.pack_path.get().strip()

    def set_lists(self, lists: PickerLists, backends: list[str] | None = None) -> None:
        """The backend's names into every picker; an empty field takes the first name only
        where a value is required (never the model: empty means the loaded one)."""
        self.lists = lists
        for key, combo in self.combos.items():
            f = FIELDS[key]
            if f.kind == "choice":
                continue
            values = list(getattr(lists, f.picks, [])) if f.picks != "backends" else backends
            combo.configure(values=values or [])
            if values and not f.optional and key != "model" and not self.vars[key].get():
                self.set_value(key, values[0])

    def set_choices(self, name: str, values: list[str]) -> None:
        self.combos[name].configure(values=values)

    def prompt_text(self) -> str:
        return self.prompt.get("1.0", "end-1c").strip()

    def negative_text(self) -> str:
        return self.negative.get("1.0", "end-1c").strip()

    def show_mode(self, text: str | None) -> None:
        """The banner of an edit or retry (with Stop editing), or the plain title with None."""
        px = self.theme.px
        if text is None:
            self.banner.configure(style="TFrame")
            self.banner_text.configure(style="Title.TLabel")
            self.banner_text.set(NEW_JOB)
            self.stop_editing.grid_remove()
        else:
            self.banner.configure(style="Banner.TFrame")
            self.banner_text.configure(style="Banner.TLabel")
            self.banner_text.set(text)
            self.stop_editing.grid(row=0, column=1, padx=(px(4), 0))

    def set_prompt(self, prompt: str, negative: str = "") -> None:
        self.prompt.delete("1.0", "end")
        self.prompt.insert("1.0", prompt)
        self.negative.delete("1.0", "end")
        self.negative.insert("1.0", negative)
        self._changed()

    def insert_token(self, token: str, negative: bool = False) -> None:
        """Put a token (a LoRA, an embedding) at the prompt's cursor, set off by a comma."""
        box = self.negative if negative else self.prompt
        before = box.get("1.0", "insert").rstrip()
        after = box.get("insert", "end-1c").lstrip()
        text = token
        if before and not before.endswith(","):
            text = ", " + text
        elif before:
            text = " " + text
        if after and not after.startswith(","):
            text += ", "
        box.insert("insert", text)
        box.focus_set()
        self._changed()

    def _text_modified(self, event: tk.Event[Any]) -> None:
        widget = event.widget
        if isinstance(widget, tk.Text) and widget.edit_modified():
            widget.edit_modified(False)
            self._changed()

    def set_value(self, name: str, value: Any) -> None:
        var = self.vars[name]
        if isinstance(var, tk.BooleanVar):
            var.set(str(value).lower() in ("1", "true") if isinstance(value, str) else bool(value))
        else:
            var.set(shown(value))

    # -- sizes and seeds -----------------------------------------------------------------------

    def _size_chosen(self) -> None:
        width, _, height = self.size_preset.get().partition("x")
        self.set_value("width", width)
        self.set_value("height", height)

    def swap_size(self) -> None:
        width, height = self.vars["width"].get(), self.vars["height"].get()
        self.set_value("width", height)
        self.set_value("height", width)

    def random_seed(self) -> None:
        self.set_value("seed", -1)

    def reuse_last_seed(self) -> None:
        if self.last_seed is not None:
            self.set_value("seed", self.last_seed)

    # -- input images --------------------------------------------------------------------------

    def add_inputs(self, images: list[InputImage]) -> None:
        known = {i.sha256 for i in self.inputs}
        self.inputs += [i for i in images if i.sha256 not in known]
        self._show_inputs()

    def clear_inputs(self) -> None:
        self.inputs = []
        self._show_inputs()

    def _show_inputs(self) -> None:
        self.input_list.delete(0, "end")
        for image in self.inputs:
            self.input_list.insert("end", f"{image.name}  {image.size[0]}x{image.size[1]}")
        if self.inputs:
            self.sections["Input images"].set_open(True)
        self._changed()

    # -- the spec ------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """What the form holds (to remember it): every field as shown, and the rest."""
        out: dict[str, Any] = {name: var.get() for name, var in self.vars.items()}
        out["prompt"] = self.prompt.get("1.0", "end-1c")
        out["negative_prompt"] = self.negative.get("1.0", "end-1c")
        out["base"] = self.base
        out["passes"] = self.passes
        out["inputs"] = [i.model_dump(mode="json") for i in self.inputs]
        out["one_job"] = self.one_job.get()
        out["open"] = [title for title, s in self.sections.items() if s.opened]
        return out

    def restore(self, saved: dict[str, Any]) -> None:
        """Set fields by their JobSpec names (and what `settings()` remembered)."""
        self._loading = True
        try:
            if isinstance(saved.get("base"), dict):
                self.base = merge_defaults(saved["base"])
            for which in PASSES:
                got = (
                    saved.get("passes", {}).get(which)
                    if isinstance(saved.get("passes"), dict)
                    else None
                )
                if isinstance(got, dict):
                    self.passes[which] = {**pass_defaults(which), **got}
            if "prompt" in saved or "negative_prompt" in saved:
                self.set_prompt(str(saved.get("prompt", "")), str(saved.get("negative_prompt", "")))
            if isinstance(saved.get("inputs"), list):
                try:
                    self.inputs = [InputImage.model_validate(i) for i in saved["inputs"]]
                except ValueError:
                    self.inputs = []
                self._show_inputs()
            if "one_job" in saved:
                self.one_job.set(bool(saved["one_job"]))
            for name, value in saved.items():
                if name in self.vars:
                    self.set_value(name, value)
            if isinstance(saved.get("open"), list):
                for title, section in self.sections.items():
                    section.set_open(title in saved["open"])
        finally:
            self._loading = False
        self._changed()

    def load_spec(self, spec: JobSpec) -> None:
        """Every field of a job into the form (the seed as the spec has it)."""
        data = spec.model_dump(mode="json")
        self._loading = True
        try:
            self.base = data
            for which in PASSES:
                got = data["adetailer"].get(which)
                self.passes[which] = got if isinstance(got, dict) else pass_defaults(which)
            self.set_prompt(spec.prompt, spec.negative_prompt)
            for key, f in FIELDS.items():
                if key in ("adetailer.face", "adetailer.hands"):
                    self.set_value(key, data["adetailer"].get(key.split(".")[1]) is not None)
                elif key.startswith("adetailer.") and key.count(".") == 2:
                    which, name = key.split(".")[1:]
                    self.set_value(key, self.passes[which][name])
                elif f.kind == "bool":
                    self.set_value(key, bool(get_path(data, key)))
                else:
                    self.set_value(key, get_path(data, key))
            self.inputs = list(spec.inputs)
            self.one_job.set(len(spec.inputs) > 1)
            self._show_inputs()
            self.clear_pack()
            for title, section in self.sections.items():
                if not section.opened and self._differs(title, data):
                    section.set_open(True)
        finally:
            self._loading = False
        self._changed()

    def _differs(self, title: str, data: dict[str, Any]) -> bool:
        """A section holding something other than the defaults (opened when a job loads)."""
        base = defaults()
        opened = {
            "Hires fix": data["txt2img"]["enable_hr"],
            "Refiner": data["txt2img"]["refiner_checkpoint"] is not None,
            "img2img (refine)": data["img2img"]["enabled"],
            "ADetailer": data["adetailer"]["enabled"],
            "Upscale": data["upscale"]["enabled"],
            "Input images": bool(data["inputs"]),
            "Output and backend": data["output"] != base["output"] or data["backend"] is not None,
        }
        return bool(opened.get(title, False))

    def stages(self) -> list[str]:
        """The stage chain as composed, txt2img first (unless the job starts from images)."""
        v = {k: var.get() for k, var in self.vars.items()}
        first = [] if self.inputs else ["txt2img"]
        return first + [s for s in ("img2img", "adetailer", "upscale") if v[f"{s}.enabled"]]

    def spec_data(self) -> dict[str, Any]:
        """The composed job as JobSpec data: the base spec with every field of the form over it
        (validated by the caller: errors name fields). Input images: all of them."""
        data = copy.deepcopy(self.base)
        data["prompt"] = self.prompt_text()
        data["negative_prompt"] = self.negative_text()
        passes = {w: dict(self.passes[w]) for w in PASSES}
        for key, var in self.vars.items():
            f = FIELDS[key]
            if key in ("adetailer.face", "adetailer.hands"):
                continue
            value: Any = var.get()
            if isinstance(value, str):
                value = value.strip()
                if f.optional and value == "":
                    value = None
            if key.startswith("adetailer.") and key.count(".") == 2:
                which, name = key.split(".")[1:]
                passes[which][name] = value
            else:
                set_path(data, key, value)
        for which in PASSES:
            on = self.vars[f"adetailer.{which}"].get()
            data["adetailer"][which] = passes[which] if on else None
        data["inputs"] = [i.model_dump(mode="json") for i in self.inputs]
        if self.inputs:
            data["images"] = len(self.inputs)
        data["provenance"] = {"source": "gui"}
        return data

    def specs_data(self) -> list[dict[str, Any]]:
        """One job's data, or, for input images without "one job", one job per image."""
        data = self.spec_data()
        if len(self.inputs) <= 1 or self.one_job.get():
            return [data]
        out = []
        for image in self.inputs:
            one = copy.deepcopy(data)
            one["inputs"] = [image.model_dump(mode="json")]
            one["images"] = 1
            if not one["output"].get("label"):
                one["output"]["label"] = Path(image.name).stem
            out.append(one)
        return out

    # -- validation as the user types ----------------------------------------------------------

    def _changed(self) -> None:
        if self._loading:
            return
        self._summaries()
        self.on_changed()

    def check(self) -> JobSpec | None:
        """Validate the form now with the submit-time rules; show and mark what is wrong."""
        try:
            spec = build_spec(self.spec_data())
        except SpecError as exc:
            self.show_problems(str(exc).removeprefix("invalid job spec: "))
            return None
        self.show_problems("")
        return spec

    def show_problems(self, text: str, names: list[str] | None = None) -> None:
        """The first problem's words in the problem line; every field named is marked."""
        self.problem.set(f"✗ {text}" if text else BLANK)
        marked: set[str] = set()
        for part in [*(text.split("; ") if text else []), *(names or [])]:
            field = part.split(":")[0].strip()
            if field in self.widgets:
                marked.add(field)
        for key in self.problem_fields - marked:
            widget = self.widgets.get(key)
            if isinstance(widget, ttk.Entry):
                widget.state(["!invalid"])
        for key in marked:
            widget = self.widgets[key]
            if isinstance(widget, ttk.Entry):
                widget.state(["invalid"])
            section = next(t for t, fs in SECTIONS.items() if any(f.key == key for f in fs))
            self.sections[section[0]].set_open(True)
        self.problem_fields = marked

    def _summaries(self) -> None:
        v = {k: str(var.get()) for k, var in self.vars.items()}

        def on(key: str) -> bool:
            return self.vars[key].get() is True

        text = {
            "Model and sampling": f"{v['model'] or 'loaded model'} · {v['sampler']} · "
            f"{v['steps']} steps · CFG {v['cfg_scale']}",
            "Size, seed and count": f"{v['width']}x{v['height']} · seed {v['seed']} · "
            f"{v['images']} image(s)",
            "Hires fix": f"on · {v['txt2img.hr_scale']}x {v['txt2img.hr_upscaler']}"
            if on("txt2img.enable_hr")
            else "off",
            "Refiner": v["txt2img.refiner_checkpoint"] or "off",
            "img2img (refine)": f"on · denoise {v['img2img.denoising_strength']}"
            if on("img2img.enabled")
            else "off",
            "ADetailer": "on · " + " + ".join(w for w in PASSES if on(f"adetailer.{w}"))
            if on("adetailer.enabled")
            else "off",
            "Upscale": f"on · {v['upscale.factor']}x {v['upscale.upscaler']}"
            if on("upscale.enabled")
            else "off",
            "Input images": f"{len(self.inputs)} image(s)" if self.inputs else "none: txt2img",
            "Output and backend": " · ".join(
                p for p in (v["output.label"], v["output.root"], v["backend"]) if p
            )
            or "defaults",
            "Presets and global prompts": "",
        }
        for title, section in self.sections.items():
            section.summary.set("" if section.opened else text.get(title, ""))


def merge_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Saved spec data over today's defaults (a field added since is not lost)."""
    out = defaults()
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
