"""Every control group of the compose form reaches the JobSpec that is queued, one test per
group: the section is opened with a click, one field is typed into as a user does, the others
are set, and the job queued (on a paused queue) carries every value."""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from tkinter import filedialog
from typing import Any

import pytest
from PIL import Image

from stablenew.app import settings_file
from stablenew.gui.pickers import TokenPicker
from stablenew.jobs.job import Job
from stablenew.jobs.presets import load_preset
from stablenew.jobs.spec import JobSpec
from tests.gui.conftest import Gui

pytestmark = pytest.mark.integration

BASE = {"steps": "3", "width": "64", "height": "64", "images": "1", "seed": "11"}


def paused(make_gui: Any) -> Gui:
    gui: Gui = make_gui()
    window = gui.window
    window.ui.run(lambda: window.jobs.pause("tests look at the queued spec", source="gui"))
    gui.pump_until(lambda: window.state.paused is not None, 10, "paused")
    window.compose.restore(BASE)
    gui.type_prompt("a brass key")
    return gui


def queued(gui: Gui, n: int = 1) -> list[Job]:
    window = gui.window
    gui.key("ctrl+Return")
    gui.pump_until(lambda: window.jobs.count() >= n, 15, f"{n} job(s) queued")
    return window.jobs.pending()


def open_section(gui: Gui, title: str) -> None:
    section = gui.window.compose.sections[title]
    if not section.opened:
        gui.window.compose.scroll.see(section)
        gui.click(section.toggle)
    assert section.opened and section.body.winfo_ismapped()


def form_click(gui: Gui, target: str | tk.Misc) -> None:
    """Click a control of the form, scrolled into view first (as a user scrolls to it)."""
    compose = gui.window.compose
    widget = gui.button(target, within=compose) if isinstance(target, str) else target
    compose.scroll.see(widget)
    gui.click(widget)


def typed(gui: Gui, key: str, text: str) -> None:
    """Type into a field as a user does (scrolled into view first)."""
    widget = gui.window.compose.widgets[key]
    gui.window.compose.scroll.see(widget)
    gui.retype(widget, text)


GROUPS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # title: (the field typed, the fields set, the spec expected)
    "Model and sampling": (
        "steps",
        {
            "model": "sim-xl-photo",
            "vae": "sim-xl-vae.safetensors",
            "sampler": "DPM++ 2M",
            "scheduler": "Karras",
            "cfg_scale": "5.5",
            "clip_skip": "2",
        },
        {
            "steps": 7,
            "model": "sim-xl-photo",
            "vae": "sim-xl-vae.safetensors",
            "sampler": "DPM++ 2M",
            "scheduler": "Karras",
            "cfg_scale": 5.5,
            "clip_skip": 2,
        },
    ),
    "Size, seed and count": (
        "seed",
        {"width": "96", "height": "128", "images": "3"},
        {"seed": 7, "width": 96, "height": 128, "images": 3},
    ),
    "Hires fix": (
        "txt2img.hr_scale",
        {
            "txt2img.enable_hr": True,
            "txt2img.hr_upscaler": "Lanczos",
            "txt2img.hr_second_pass_steps": "4",
            "txt2img.hr_denoising_strength": "0.55",
        },
        {
            "txt2img.enable_hr": True,
            "txt2img.hr_scale": 1.5,
            "txt2img.hr_upscaler": "Lanczos",
            "txt2img.hr_second_pass_steps": 4,
            "txt2img.hr_denoising_strength": 0.55,
        },
    ),
    "Refiner": (
        "txt2img.refiner_switch_at",
        {"txt2img.refiner_checkpoint": "sim-v15-base"},
        {"txt2img.refiner_checkpoint": "sim-v15-base", "txt2img.refiner_switch_at": 0.7},
    ),
    "img2img (refine)": (
        "img2img.steps",
        {"img2img.enabled": True, "img2img.denoising_strength": "0.25", "img2img.cfg_scale": "6"},
        {
            "img2img.enabled": True,
            "img2img.steps": 7,
            "img2img.denoising_strength": 0.25,
            "img2img.cfg_scale": 6.0,
        },
    ),
    "ADetailer": (
        "adetailer.face.confidence",
        {
            "adetailer.enabled": True,
            "adetailer.face.model": "face_yolov8s.pt",
            "adetailer.face.denoising_strength": "0.3",
            "adetailer.face.steps": "12",
            "adetailer.face.mask_blur": "6",
            "adetailer.face.prompt": "a calm face",
            "adetailer.hands": True,
            "adetailer.hands.model": "hand_yolov8n.pt",
            "adetailer.hands.inpaint_padding": "48",
            "adetailer.hands.inpaint_only_masked": False,
        },
        {
            "adetailer.enabled": True,
            "adetailer.face.model": "face_yolov8s.pt",
            "adetailer.face.confidence": 0.7,
            "adetailer.face.denoising_strength": 0.3,
            "adetailer.face.steps": 12,
            "adetailer.face.mask_blur": 6,
            "adetailer.face.prompt": "a calm face",
            "adetailer.face.cfg_scale": None,
            "adetailer.hands.model": "hand_yolov8n.pt",
            "adetailer.hands.inpaint_padding": 48,
            "adetailer.hands.inpaint_only_masked": False,
        },
    ),
    "Upscale": (
        "upscale.tile_size",
        {
            "upscale.enabled": True,
            "upscale.upscaler": "ESRGAN_4x",
            "upscale.factor": "1.5",
            "upscale.mode": "img2img",
            "upscale.denoising_strength": "0.15",
        },
        {
            "upscale.enabled": True,
            "upscale.upscaler": "ESRGAN_4x",
            "upscale.factor": 1.5,
            "upscale.mode": "img2img",
            "upscale.tile_size": 256,
            "upscale.denoising_strength": 0.15,
        },
    ),
    "Output and backend": (
        "output.label",
        {"backend": "default"},
        {"output.label": "brass", "backend": "default"},
    ),
}


TYPED = {
    "steps": "7",
    "seed": "7",
    "txt2img.hr_scale": "1.5",
    "txt2img.refiner_switch_at": "0.7",
    "img2img.steps": "7",
    "adetailer.face.confidence": "0.7",
    "upscale.tile_size": "256",
    "output.label": "brass",
}


def value(spec: JobSpec, dotted: str) -> Any:
    out: Any = spec
    for part in dotted.split("."):
        out = getattr(out, part)
    return out


@pytest.mark.parametrize("title", list(GROUPS))
def test_a_form_group_reaches_the_queued_spec(make_gui, title: str) -> None:  # type: ignore[no-untyped-def]
    gui = paused(make_gui)
    compose = gui.window.compose
    typed_key, settings, expected = GROUPS[title]
    open_section(gui, title)
    compose.restore(settings)
    typed(gui, typed_key, TYPED[typed_key])
    [job] = queued(gui)
    got = {k: value(job.spec, k) for k in expected}
    assert got == expected
    # Whatever the form does not show stays at the model's defaults.
    default = JobSpec(prompt="x")
    untouched = {"subseed", "subseed_strength", "metadata"}
    for name in untouched:
        assert getattr(job.spec, name) == getattr(default, name)


def test_values_are_checked_as_typed_with_the_words_of_submit(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = paused(make_gui)
    window = gui.window
    compose = window.compose
    typed(gui, "steps", "500")
    gui.pump_until(lambda: "steps" in compose.problem_fields, 10, "the problem shown")
    shown = compose.problem.full_text
    assert shown.startswith("✗ steps: Input should be less than or equal to 150")
    assert "invalid" in compose.entries["steps"].state()
    gui.key("ctrl+Return")  # submit refuses with the same words
    gui.pump_until(lambda: "Nothing queued: steps" in window.message.full_text, 10)
    assert window.message.full_text.removeprefix("Nothing queued: ") == shown.removeprefix("✗ ")
    typed(gui, "steps", "5")
    gui.pump_until(lambda: not compose.problem_fields, 10, "the problem gone")
    typed(gui, "width", "65")
    gui.pump_until(lambda: "width" in compose.problem_fields, 10)
    assert "not a multiple of 8" in compose.problem.full_text
    typed(gui, "width", "64")
    compose.restore({"sampler": "Eulr a"})  # a name the backend lacks: as submit names it
    gui.pump_until(lambda: "sampler" in compose.problem_fields, 10)
    assert "sampler: the backend has no 'Eulr a' (did you mean" in compose.problem.full_text


def test_size_presets_swap_and_seeds(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = paused(make_gui)
    compose = gui.window.compose
    compose.size_preset.set("832x1216")
    compose.size_preset.event_generate("<<ComboboxSelected>>")
    form_click(gui, "⇄ Swap")
    assert (compose.vars["width"].get(), compose.vars["height"].get()) == ("1216", "832")
    form_click(gui, "Random seed")
    assert compose.vars["seed"].get() == "-1"
    compose.last_seed = 31337
    form_click(gui, "Last seed")
    [job] = queued(gui)
    assert (job.spec.width, job.spec.height, job.spec.seed) == (1216, 832, 31337)


def test_input_images_from_files_and_folders(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gui = paused(make_gui)
    window = gui.window
    compose = window.compose
    folder = tmp_path / "in"
    folder.mkdir()
    for n, colour in enumerate(("red", "blue")):
        Image.new("RGB", (64, 64), colour).save(folder / f"{n}.png")
    open_section(gui, "Input images")
    original = filedialog.askdirectory
    filedialog.askdirectory = lambda **_kw: str(folder)  # type: ignore[assignment]
    try:
        form_click(gui, "Folder…")
    finally:
        filedialog.askdirectory = original
    gui.pump_until(lambda: len(compose.inputs) == 2, 15, "the images listed")
    compose.restore({"upscale.enabled": True})
    assert compose.stages() == ["upscale"]
    jobs = queued(gui, 2)  # one job per image
    assert sorted(len(j.spec.inputs) for j in jobs) == [1, 1]
    assert {j.spec.stages()[0] for j in jobs} == {"upscale"}
    store = window.services.config.home / "inputs"
    assert all((store / i.sha256[:2] / i.sha256).is_file() for j in jobs for i in j.spec.inputs)
    form_click(gui, compose.one_job_check)
    gui.key("ctrl+Return")
    gui.pump_until(lambda: window.jobs.count() == 3, 15)
    one = window.jobs.pending()[-1]
    assert (len(one.spec.inputs), one.spec.images) == (2, 2)
    # An image dropped onto the input list is added the same way.
    Image.new("RGB", (64, 64), "green").save(tmp_path / "green.jpg")
    window.drop([str(tmp_path / "green.jpg")], target="inputs")
    gui.pump_until(lambda: len(compose.inputs) == 3, 15)


def test_presets_apply_and_save(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gui = paused(make_gui)
    window = gui.window
    compose = window.compose
    preset = tmp_path / "portrait.json"
    preset.write_text(
        '{"txt2img": {"steps": 9, "sampler_name": "DPM++ 2M", "enable_hr": true, "hr_scale": 1.5},'
        ' "upscale": {"enabled": true, "upscaler": "Lanczos", "upscale_factor": 3},'
        ' "adetailer": {"ad_enabled": true, "ad_confidence": 0.6}}'
    )
    original = filedialog.askopenfilename
    filedialog.askopenfilename = lambda **_kw: str(preset)  # type: ignore[assignment]
    try:
        open_section(gui, "Presets and global prompts")
        form_click(gui, "Apply preset…")
    finally:
        filedialog.askopenfilename = original
    gui.pump_until(lambda: compose.vars["steps"].get() == "9", 15, "the preset applied")
    assert compose.prompt_text() == "a brass key"  # the prompt stays
    saved = tmp_path / "mine.json"
    window.save_preset_file(saved)
    gui.pump_until(saved.is_file, 10)
    [job] = queued(gui)
    spec = job.spec
    assert (spec.steps, spec.sampler, spec.txt2img.enable_hr, spec.txt2img.hr_scale) == (
        9, "DPM++ 2M", True, 1.5,
    )  # fmt: skip
    assert (spec.upscale.upscaler, spec.upscale.factor, spec.adetailer.enabled) == (
        "Lanczos", 3.0, True,
    )  # fmt: skip
    assert spec.adetailer.face is not None and spec.adetailer.face.confidence == 0.6
    again = load_preset(saved).spec("a brass key")
    assert again.model_dump(exclude={"metadata", "provenance", "output"}) == spec.model_dump(
        exclude={"metadata", "provenance", "output"}
    )


def test_lora_and_embedding_pickers_insert_tokens(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui = paused(make_gui)
    window = gui.window
    compose = window.compose
    gui.pump_until(lambda: bool(compose.lists.loras), 15, "the backend's lists")
    compose.prompt.mark_set("insert", "end")
    gui.click("LoRA…")
    gui.pump_until(lambda: any(isinstance(w, TokenPicker) for w in gui.toplevels()), 10)
    picker = next(w for w in gui.toplevels() if isinstance(w, TokenPicker))
    assert picker.shown() == sorted(compose.lists.loras, key=str.casefold)
    gui.xdo("type", "--delay", "2", "film")
    gui.pump_until(lambda: picker.shown() == ["film_grain"], 10)
    picker.weight.set("0.6")
    gui.click("Insert", within=picker)
    assert compose.prompt_text() == "a brass key, <lora:film_grain:0.6>"
    gui.click("Embedding…")
    gui.pump_until(lambda: any(isinstance(w, TokenPicker) for w in gui.toplevels()), 10)
    picker = next(w for w in gui.toplevels() if isinstance(w, TokenPicker))
    gui.xdo("type", "--delay", "2", "Easy")
    gui.pump_until(lambda: picker.shown() == ["EasyNegative"], 10)
    gui.key("Return")
    assert compose.prompt_text() == "a brass key, <lora:film_grain:0.6>, <embedding:EasyNegative>"
    [job] = queued(gui)
    assert job.spec.prompt.endswith("<embedding:EasyNegative>")


def test_global_prompts_are_shown_and_edited_in_settings(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gui = paused(make_gui)
    window = gui.window
    compose = window.compose
    open_section(gui, "Presets and global prompts")
    assert compose.global_positive.full_text == "(none)"
    form_click(gui, "Edit global prompts…")
    gui.pump_until(lambda: bool(gui.toplevels()), 10, "the settings")
    dialog = gui.toplevels()[-1]
    gui.retype(dialog.entries["prompts.global_positive"], "masterpiece")  # type: ignore[attr-defined]
    gui.click("Save", within=dialog)
    gui.pump_until(lambda: not dialog.winfo_exists(), 10)
    config = settings_file.read(window.home)
    assert config.prompts.global_positive == "masterpiece"


def test_the_wheel_over_a_dropdown_scrolls_the_form_and_changes_nothing(make_gui) -> None:  # type: ignore[no-untyped-def]
    """A tester scrolled the form with the wheel: the Sampler under the pointer went from
    "Euler a" to "Euler", and that was queued."""
    gui: Gui = make_gui()
    window = gui.window
    window.open_sections(True)  # tall: the form scrolls
    gui.settle()
    combo = window.compose.combos["sampler"]
    before = combo.get()
    canvas = window.compose.scroll.canvas
    x, y = combo.winfo_rootx() + 10, combo.winfo_rooty() + combo.winfo_height() // 2
    top = canvas.yview()[0]
    gui.xdo("mousemove", str(x), str(y))
    gui.settle()
    assert str(gui.root.winfo_containing(x, y)) == str(combo), "the pointer is over it"
    for _ in range(3):
        gui.xdo("click", "5")  # the wheel, down
        gui.settle()
        assert combo.get() == before
    assert canvas.yview()[0] > top, "the form scrolled"
