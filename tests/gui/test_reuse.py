"""The reuse loop, driven like a user: a history job back into the form and run again with the
same seed (byte-identical images), PNGs dropped onto the window (A1111's infotext and ours),
File > Import PNG, a queued job edited in place, a failed job retried with changes."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from tkinter import filedialog

import httpx
import pytest
from PIL import Image, PngImagePlugin

from stablenew.gui.compose import NEW_JOB
from stablenew.jobs.status import JobStatus
from tests.gui.conftest import Gui

pytestmark = pytest.mark.integration

FAST = {"steps": "3", "width": "64", "height": "64", "images": "2", "seed": "4242"}
# Verbatim from the reference notes (§9, A1111 v1.10.1 observed).
A1111_PLAIN = (
    "a red cube\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, Schedule type: Automatic, "
    "CFG scale: 7.0, Seed: 123, Size: 64x64, Model hash: 220b5e9e8d, Model: random-sd15, "
    "Version: 1.10.1"
)
A1111_HIRES = (
    "a lighthouse\nSteps: 2, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 77, "
    "Size: 64x64, Model hash: f8cb43a67d, Model: random-sd15, Denoising strength: 0.45, "
    "Clip skip: 2, Hires upscale: 2.0, Hires steps: 2, Hires upscaler: Lanczos, Version: 1.10.1"
)


def without_stablenew_chunk(data: bytes) -> bytes:
    """A PNG's bytes with its `stablenew` text chunk left out (it names the job)."""
    out, at = [data[:8]], 8
    while at < len(data):
        length = struct.unpack(">I", data[at : at + 4])[0]
        kind = data[at + 4 : at + 8]
        chunk = data[at : at + 12 + length]
        body = data[at + 8 : at + 8 + length]
        if not (kind in (b"tEXt", b"iTXt", b"zTXt") and body.startswith(b"stablenew\0")):
            out.append(chunk)
        at += 12 + length
    return b"".join(out)


def a1111_png(path: Path, infotext: str) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    Image.new("RGB", (64, 64), "teal").save(path, format="PNG", pnginfo=info)
    return path


def completed(gui: Gui, n: int) -> list[str]:
    jobs = gui.window.jobs
    gui.pump_until(lambda: jobs.count([JobStatus.COMPLETED]) >= n, 90, f"{n} completed job(s)")
    return [j.id for j in jobs.history([JobStatus.COMPLETED])]


def test_a_history_job_into_the_form_runs_again_with_the_same_seed(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    window.compose.restore({**FAST, "img2img.enabled": True, "txt2img.enable_hr": True})
    window.compose.restore({"txt2img.hr_scale": "1.5", "txt2img.hr_upscaler": "Lanczos"})
    gui.type_prompt("a paper crane, <lora:add_detail:0.5>")
    gui.click("Run Now")
    [first] = completed(gui, 1)
    original = window.jobs.get_job(first)

    window.compose.set_prompt("something else entirely")
    window.compose.restore({"steps": "9", "seed": "-1", "img2img.enabled": False})
    gui.click_tab(window.tabs, "History")
    gui.click_row(window.history.tree, first, "job")
    gui.click("Use settings", within=window.history)
    gui.pump_until(lambda: window.compose.prompt_text().startswith("a paper crane"), 10)
    assert window.compose.vars["seed"].get() == "4242"
    assert window.compose.vars["img2img.enabled"].get() is True
    assert window.compose.vars["txt2img.hr_upscaler"].get() == "Lanczos"
    gui.key("ctrl+Return")
    ids = completed(gui, 2)
    again = window.jobs.get_job(next(i for i in ids if i != first))
    assert again.spec.model_dump(exclude={"provenance"}) == original.spec.model_dump(
        exclude={"provenance"}
    )
    assert len(again.result.images) == 2
    for old, new in zip(original.result.images, again.result.images, strict=True):
        assert old != new  # a new run folder
        assert without_stablenew_chunk(Path(old).read_bytes()) == without_stablenew_chunk(
            Path(new).read_bytes()
        )

    # One image from the gallery: its own seed, one image, the same bytes again.
    gui.click_tab(window.tabs, "Gallery")
    second = next(i for i in window.gallery.all_items if i.file == original.result.images[1])
    window.gallery.select(window.gallery.all_items.index(second))
    gui.click("Use settings", within=window.gallery)
    gui.pump_until(lambda: window.compose.vars["images"].get() == "1", 10)
    assert window.compose.vars["seed"].get() == "4243"
    gui.key("ctrl+Return")
    ids = completed(gui, 3)
    third = window.jobs.get_job(ids[0])
    assert without_stablenew_chunk(Path(third.result.images[0]).read_bytes()) == (
        without_stablenew_chunk(Path(original.result.images[1]).read_bytes())
    )

    # "New seed" loads the same settings with a random one.
    gui.click("New seed", within=window.gallery)
    gui.pump_until(lambda: window.compose.vars["seed"].get() == "-1", 10)


def test_drop_pngs_onto_the_window(make_gui, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    compose = window.compose
    window.drop([str(a1111_png(tmp_path / "a1111.png", A1111_PLAIN))])
    gui.pump_until(lambda: compose.prompt_text() == "a red cube", 10, "the infotext loaded")
    assert compose.negative_text() == "blurry"
    values = {k: compose.vars[k].get() for k in ("steps", "sampler", "scheduler", "cfg_scale")}
    assert values == {
        "steps": "2",
        "sampler": "Euler a",
        "scheduler": "Automatic",
        "cfg_scale": "7.0",
    }
    assert (compose.vars["seed"].get(), compose.vars["width"].get()) == ("123", "64")
    assert compose.vars["model"].get() == "random-sd15"
    # The reference backend has no random-sd15: said as submit would say it, before submit.
    gui.pump_until(lambda: "model: the backend has no 'random-sd15'" in compose.problem.full_text)
    assert "model" in compose.problem_fields

    window.drop([str(a1111_png(tmp_path / "hires.png", A1111_HIRES))])
    gui.pump_until(lambda: compose.prompt_text() == "a lighthouse", 10)
    hires = {
        k: compose.vars[k].get()
        for k in (
            "txt2img.enable_hr",
            "txt2img.hr_scale",
            "txt2img.hr_second_pass_steps",
            "txt2img.hr_upscaler",
            "txt2img.hr_denoising_strength",
            "clip_skip",
        )
    }
    assert hires == {
        "txt2img.enable_hr": True,
        "txt2img.hr_scale": "2.0",
        "txt2img.hr_second_pass_steps": "2",
        "txt2img.hr_upscaler": "Lanczos",
        "txt2img.hr_denoising_strength": "0.45",
        "clip_skip": "2",
    }
    assert compose.sections["Hires fix"].opened

    # One of ours: the job exactly, for that image.
    compose.restore({**FAST, "model": "", "upscale.enabled": True, "upscale.factor": "2.5"})
    gui.type_prompt("a glass owl")
    gui.click("Run Now")
    [job_id] = completed(gui, 1)
    job = window.jobs.get_job(job_id)
    compose.set_prompt("")
    window.drop([str(tmp_path / "notes.txt"), job.result.images[1]])
    gui.pump_until(lambda: compose.prompt_text() == "a glass owl", 10, "our PNG loaded")
    assert compose.vars["upscale.enabled"].get() is True
    assert compose.vars["upscale.factor"].get() == "2.5"
    assert (compose.vars["seed"].get(), compose.vars["images"].get()) == ("4243", "1")

    # File > Import PNG goes the same way (the file dialog answers as a user would).
    original = filedialog.askopenfilename
    filedialog.askopenfilename = lambda **_kw: str(tmp_path / "a1111.png")  # type: ignore[assignment]
    try:
        window.menus.menus["File"].invoke("Import PNG…")
    finally:
        filedialog.askopenfilename = original
    gui.pump_until(lambda: compose.prompt_text() == "a red cube", 10)

    # Not a PNG with settings: said, and the form is left as it was.
    plain = tmp_path / "plain.png"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    plain.write_bytes(buf.getvalue())
    window.drop([str(plain)])
    gui.pump_until(lambda: "no generation settings" in window.message.full_text, 10)
    assert compose.prompt_text() == "a red cube"


def test_edit_a_queued_job_in_place(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    window.compose.restore(FAST)
    gui.click_tab(window.tabs, "Queue")
    gui.click(window.queue.auto_run_button)  # paused: the job waits in the queue
    gui.pump_until(lambda: window.state.paused is not None, 10)
    gui.type_prompt("a tin robot")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: len(window.state.queue) == 1, 10, "the job queued")
    job_id = window.state.queue[0].id
    gui.pump_until(lambda: window.queue.tree.exists(job_id), 10, "the queue row")
    prompt_at = window.compose.prompt.winfo_rooty()
    gui.click_row(window.queue.tree, job_id, "job", double=True)
    gui.pump_until(lambda: window.mode == ("edit", job_id), 10, "editing")
    assert window.primary.cget("text") == f"Save to {job_id[:8]} (Ctrl+Enter)"
    assert window.compose.banner.winfo_ismapped()
    gui.settle()  # the banner whole, the form where it was, the status line agreeing with Save
    banner = window.compose.banner_text
    assert str(banner.cget("text")) == banner.full_text and job_id[:8] in banner.full_text
    assert window.compose.prompt.winfo_rooty() == prompt_at, "the form moved"
    assert "queues it" not in window.message.full_text, window.message.full_text
    assert "Save" in window.message.full_text, window.message.full_text
    gui.retype(window.compose.entries["steps"], "5")
    window.compose.set_prompt("a tin robot, rusty")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: window.mode is None, 10, "saved")
    job = window.jobs.get_job(job_id)
    assert (job.status, job.spec.steps, job.spec.prompt) == (
        JobStatus.QUEUED,
        5,
        "a tin robot, rusty",
    )
    assert window.jobs.count() == 1  # changed in place, nothing new queued

    # Once it runs, it can no longer be changed: the edit ends there and says so (a tester saw
    # the banner promise a save to a job that had already completed); the changes stay.
    window.edit_queued(job_id)
    gui.pump_until(lambda: window.mode == ("edit", job_id), 10)
    window.compose.set_prompt("a tin robot, too late")
    said: list[str] = []
    say = window.say
    window.say = lambda text: (said.append(text), say(text))  # type: ignore[method-assign,func-returns-value]
    gui.click(window.queue.auto_run_button)
    completed(gui, 1)
    gui.pump_until(lambda: window.mode is None, 10, "the edit to end")
    assert any("started before your changes were saved" in text for text in said), said
    assert window.compose.banner_text.full_text == NEW_JOB
    assert not window.compose.stop_editing.winfo_ismapped()
    assert window.primary.cget("text") == "Add to Queue (Ctrl+Enter)"
    assert window.compose.prompt_text() == "a tin robot, too late"
    gui.key("ctrl+Return")  # the changes, as a new job
    completed(gui, 2)
    assert window.jobs.get_job(job_id).spec.prompt == "a tin robot, rusty"


def test_retry_a_failed_job_with_changes(make_gui) -> None:  # type: ignore[no-untyped-def]
    gui: Gui = make_gui()
    window = gui.window
    url = window.services.backend.url
    httpx.post(f"{url}/sim/faults", json={"http_error": {"stage": "txt2img", "kind": "oom"}})
    window.compose.restore({**FAST, "images": "1", "width": "1024", "height": "1024"})
    gui.type_prompt("too big for the card")
    gui.click("Run Now")
    gui.pump_until(lambda: window.jobs.count([JobStatus.FAILED]) == 1, 60, "the failure")
    failed = window.jobs.history([JobStatus.FAILED])[0]
    gui.click_tab(window.tabs, "History")
    gui.click_row(window.history.tree, failed.id, "job")
    gui.click("Use settings", within=window.history)
    gui.pump_until(lambda: window.mode == ("retry", failed.id), 10)
    assert window.primary.cget("text") == f"Retry {failed.short_id} (Ctrl+Enter)"
    gui.settle()
    banner = window.compose.banner_text
    assert str(banner.cget("text")) == banner.full_text and failed.short_id in banner.full_text
    assert "queues it" not in window.message.full_text, window.message.full_text
    gui.retype(window.compose.entries["width"], "64")
    gui.retype(window.compose.entries["height"], "64")
    gui.key("ctrl+Return")
    gui.pump_until(lambda: window.jobs.count([JobStatus.COMPLETED]) == 1, 60, "the retry")
    retried = window.jobs.history([JobStatus.COMPLETED])[0]
    assert (retried.spec.width, retried.spec.prompt) == (64, "too big for the card")
    gui.pump_until(lambda: window.mode is None, 10, "the retry mode ended")
