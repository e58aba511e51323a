"""The jobs users actually run, from the command line: every setting, input images, presets,
PNG import, edits, export and import, pack problems, the event stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.hostile.conftest import cli

pytestmark = pytest.mark.integration

# What a real A1111 v1.10.1 wrote (reference §9), as a PNG carries it.
A1111_INFOTEXT = (
    "a red cube\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M, Schedule type: Karras, "
    "CFG scale: 6.5, Seed: 4242, Size: 64x64, Model hash: f8cb43a67d, Model: random-sd15, "
    "Clip skip: 2, Version: 1.10.1"
)


def queued(home: Path, *args: str) -> dict[str, object]:
    done = cli(home, "queue", "add", *args, "--json")
    assert done.returncode == 0, done.stderr
    (job_id,) = json.loads(done.stdout)["ids"]
    shown = cli(home, "queue", "show", job_id, "--json")
    job: dict[str, object] = json.loads(shown.stdout)["job"]
    return job


def test_every_generation_setting_reaches_the_spec(tmp_path: Path) -> None:
    job = queued(
        tmp_path,
        "a fox",
        *("--negative", "blurry", "--model", "sim-xl-photo", "--vae", "Automatic"),
        *("--sampler", "DPM++ 2M", "--scheduler", "Karras", "--steps", "12", "--cfg", "5.5"),
        *("--size", "768x512", "--seed", "7", "--clip-skip", "2", "--images", "2"),
        *("--hires", "1.5", "--hires-upscaler", "Lanczos", "--hires-steps", "4"),
        *("--hires-denoise", "0.4", "--stages", "txt2img,img2img,upscale", "--denoise", "0.3"),
        *("--upscaler", "R-ESRGAN 4x+", "--on", "default"),
    )
    spec = job["spec"]
    assert isinstance(spec, dict)
    assert (spec["prompt"], spec["negative_prompt"], spec["model"]) == (
        "a fox",
        "blurry",
        "sim-xl-photo",
    )
    assert (spec["sampler"], spec["scheduler"], spec["steps"], spec["cfg_scale"]) == (
        "DPM++ 2M",
        "Karras",
        12,
        5.5,
    )
    assert (spec["width"], spec["height"], spec["seed"], spec["clip_skip"]) == (768, 512, 7, 2)
    assert spec["txt2img"]["enable_hr"] and spec["txt2img"]["hr_scale"] == 1.5
    assert (
        spec["txt2img"]["hr_upscaler"] == "Lanczos"
        and spec["txt2img"]["hr_denoising_strength"] == 0.4
    )
    assert spec["img2img"] == spec["img2img"] | {"enabled": True, "denoising_strength": 0.3}
    assert spec["upscale"]["enabled"] and spec["upscale"]["upscaler"] == "R-ESRGAN 4x+"
    assert spec["backend"] == "default" and spec["images"] == 2
    bad = cli(tmp_path, "queue", "add", "x", "--size", "768 by 512")
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr


def test_typed_prompts_use_the_dynamic_prompts_syntax(tmp_path: Path) -> None:
    job = queued(tmp_path, "a {red|blue} car", "--seed", "3")
    assert job["spec"]["prompt"] in ("a red car", "a blue car")  # type: ignore[index]
    unresolved = cli(tmp_path, "queue", "add", "a __colors/warm__ car")
    assert unresolved.returncode == 2 and "__colors/warm__" in unresolved.stderr


def test_upscale_only_over_a_folder_through_the_cli(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 48), (40 * i, 90, 120)).save(photos / f"p{i}.png")
    done = cli(
        tmp_path,
        "run",
        "--init-image",
        str(photos),
        "--stages",
        "upscale",
        "--upscaler",
        "Lanczos",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    jobs = json.loads(done.stdout)["jobs"]
    assert len(jobs) == 3 and all(j["status"] == "COMPLETED" for j in jobs)
    assert [j["spec"]["inputs"][0]["name"] for j in jobs] == ["p0.png", "p1.png", "p2.png"]
    with Image.open(jobs[0]["result"]["images"][0]) as image:
        assert image.size == (128, 96)
    (photos / "notes.png").write_text("not an image")
    bad = cli(tmp_path, "queue", "add", "--init-image", str(photos), "--stages", "upscale")
    assert bad.returncode == 2 and "notes.png: not an image" in bad.stderr


def test_import_rebuilds_ours_exactly_and_a1111s_from_its_infotext(tmp_path: Path) -> None:
    made = cli(tmp_path, "run", "a lantern at night", "--seed", "99", "--steps", "3", "--json")
    assert made.returncode == 0, made.stderr
    ours = json.loads(made.stdout)["jobs"][0]
    png = Path(ours["result"]["images"][0])
    moved = tmp_path / "elsewhere" / "lantern.png"
    moved.parent.mkdir()
    moved.write_bytes(png.read_bytes())  # a PNG that has left its run folder
    dry = cli(tmp_path, "import", str(moved), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    (rebuilt,) = json.loads(dry.stdout)["specs"]
    expected = {k: v for k, v in ours["spec"].items() if k not in ("output", "provenance")}
    assert {k: v for k, v in rebuilt.items() if k in expected} == expected
    assert rebuilt["provenance"]["source"] == "import"

    theirs = tmp_path / "a1111.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_INFOTEXT)
    Image.new("RGB", (64, 64)).save(theirs, pnginfo=info)
    dry = cli(tmp_path, "import", str(theirs), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    (spec,) = json.loads(dry.stdout)["specs"]
    assert (spec["prompt"], spec["negative_prompt"], spec["steps"]) == ("a red cube", "blurry", 3)
    assert (spec["sampler"], spec["scheduler"], spec["cfg_scale"]) == ("DPM++ 2M", "Karras", 6.5)
    assert (spec["seed"], spec["width"], spec["clip_skip"], spec["model"]) == (
        4242,
        64,
        2,
        "random-sd15",
    )
    queued_ = cli(tmp_path, "import", str(theirs), "--new-seed")
    assert queued_.returncode == 0 and "queued" in queued_.stdout
    blank = tmp_path / "blank.png"
    Image.new("RGB", (8, 8)).save(blank)
    none = cli(tmp_path, "import", str(blank))
    assert none.returncode == 2 and "no generation settings" in none.stderr


def test_edit_retry_export_and_import_through_the_cli(tmp_path: Path) -> None:
    job = queued(tmp_path, "a kite", "--steps", "20")
    job_id = str(job["id"])
    edited = cli(tmp_path, "queue", "edit", job_id[:8], "--set", "steps=30", "--set", "width=640")
    assert edited.returncode == 0 and "steps" in edited.stdout, edited.stderr
    bad = cli(tmp_path, "queue", "edit", job_id[:8], "--set", "steps=0")
    assert bad.returncode == 2 and "steps" in bad.stderr
    export = tmp_path / "queue.json"
    assert cli(tmp_path, "queue", "export", str(export)).returncode == 0
    exported = json.loads(export.read_text())
    assert exported["schema"] == 1 and exported["jobs"][0]["spec"]["steps"] == 30
    assert cli(tmp_path, "queue", "cancel", "--all-pending").returncode == 0
    assert cli(tmp_path, "queue", "clear").returncode == 0
    imported = cli(tmp_path, "queue", "import", str(export), "--json")
    assert imported.returncode == 0, imported.stderr
    (new_id,) = json.loads(imported.stdout)["ids"]
    again = json.loads(cli(tmp_path, "queue", "show", new_id, "--json").stdout)["job"]["spec"]
    assert again == exported["jobs"][0]["spec"]
    cli(tmp_path, "queue", "cancel", new_id[:8])
    retried = cli(tmp_path, "queue", "retry", new_id[:8], "--set", "steps=10")
    assert retried.returncode == 0, retried.stderr
    export.write_text('{"schema": 1, "jobs": [{"spec": {"prompt": "x", "steps": 0}}]}')
    refused = cli(tmp_path, "queue", "import", str(export))
    assert refused.returncode == 2 and "steps" in refused.stderr


def test_presets_and_unresolved_slots(tmp_path: Path) -> None:
    preset = tmp_path / "portrait.json"
    preset.write_text(
        json.dumps(
            {"preset_data": {"txt2img": {"sampler_name": "Euler", "steps": 14, "width": 640}}}
        )
    )
    job = queued(tmp_path, "a portrait", "--preset", str(preset))
    assert (job["spec"]["sampler"], job["spec"]["steps"], job["spec"]["width"]) == (
        "Euler",
        14,
        640,
    )  # type: ignore[index]
    pack = tmp_path / "slots.txt"
    pack.write_text("a [[person]] in the rain\n\na quiet street\n")
    shown = cli(tmp_path, "pack", "show", str(pack))
    assert (
        shown.returncode == 1 and "[[person]]" in shown.stdout and "a quiet street" in shown.stdout
    )
    refused = cli(tmp_path, "queue", "add", "--pack", str(pack))
    assert refused.returncode == 2
    dropped = cli(tmp_path, "queue", "add", "--pack", str(pack), "--unresolved", "drop", "--json")
    assert dropped.returncode == 0 and "[[person]]" in dropped.stderr  # one warning per token
    assert len(json.loads(dropped.stdout)["ids"]) == 2


def test_run_streams_its_events_as_ndjson(tmp_path: Path) -> None:
    done = cli(tmp_path, "run", "a stream", "--json-events")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [line["event"]["kind"] for line in lines if "event" in line]
    assert "job_started" in kinds and "stage_finished" in kinds and kinds[-1] == "job_completed"
    assert "jobs" in lines[-1] and lines[-1]["completed"] == 1  # the summary, on one line


def test_options_the_chain_would_ignore_are_refused(tmp_path: Path) -> None:
    for args, why in (
        (("--denoise", "0.5"), "denoise: needs img2img in the stages"),
        (("--upscaler", "Lanczos"), "upscaler: needs upscale in the stages"),
        (("--hires-steps", "10"), "hires_steps: needs hires fix turned on (give hires SCALE)"),
    ):
        done = cli(tmp_path, "queue", "add", "a fox", *args)
        assert done.returncode == 2 and why in done.stderr, done.stderr
    listed = cli(tmp_path, "queue", "list", "--json")
    assert json.loads(listed.stdout)["jobs"] == []
    job = queued(tmp_path, "a fox", "--stages", "txt2img,img2img", "--denoise", "0.5")
    assert job["spec"]["img2img"]["denoising_strength"] == 0.5  # type: ignore[index]
    hires_on = tmp_path / "hires.json"
    hires_on.write_text(json.dumps({"prompt": "a fox", "txt2img": {"enable_hr": True}}))
    job = queued(tmp_path, "--spec", str(hires_on), "--hires-steps", "10")
    assert job["spec"]["txt2img"]["hr_second_pass_steps"] == 10  # type: ignore[index]
