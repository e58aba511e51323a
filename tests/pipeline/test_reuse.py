"""A StableNew PNG rebuilds the job that makes it again, wherever the PNG went: its own seed,
its own input, the images its extensions used; a queue moves to another home whole."""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from stablenew.app import studio
from stablenew.app.intents import Overrides
from stablenew.jobs.infotext import spec_from_png
from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import EventKind
from tests.helpers import Waiter

pytestmark = pytest.mark.integration


def test_image_n_of_a_random_seed_job_rebuilds_with_its_own_seed(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    spec = JobSpec(prompt="a face", images=2, steps=2, width=64, height=64)
    job_id = services.jobs.submit_pipeline_run(spec)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    job = services.jobs.get_job(job_id)
    second = Path(job.result.images[1])
    seed = job.result.seeds[1]

    cli_door = services.intents.png(second)  # `stablenew import`
    assert (cli_door.spec.seed, cli_door.spec.images) == (seed, 1)
    assert services.intents.png(second, reroll_seed=True).spec.seed == -1
    gui_door = studio.reuse_png(second)
    assert (gui_door.spec.seed, gui_door.spec.images, gui_door.seed) == (seed, 1, seed)
    api_door = spec_from_png(second.read_bytes(), second.name)  # POST /api/v1/import/png
    assert (api_door.spec.seed, api_door.spec.images) == (seed, 1)
    rest = {"seed", "images", "output", "provenance"}
    assert cli_door.spec.model_dump(exclude=rest) == job.spec.model_dump(exclude=rest)


def random_png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_moved_png_finds_its_controlnet_image_in_the_input_store(
    make_services, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    image = base64.b64encode(random_png((128, 128))).decode()
    unit = {"enabled": True, "module": "canny", "image": image}
    spec = JobSpec.model_validate(
        {
            "prompt": "a tower",
            "steps": 2,
            "width": 64,
            "height": 64,
            "txt2img": {"alwayson_scripts": {"controlnet": {"args": [unit]}}},
        }
    )
    job_id = services.jobs.submit_pipeline_run(spec)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    job = services.jobs.get_job(job_id)
    moved = tmp_path / "moved" / "tower.png"
    moved.parent.mkdir()
    shutil.copy(job.result.images[0], moved)

    rebuilt = services.intents.png(moved).spec
    assert rebuilt.txt2img.alwayson_scripts == job.spec.txt2img.alwayson_scripts
    # The desktop app's and the web UI's "load this PNG" find it too (they left it out).
    for reused in (
        studio.reuse_png(moved, store=services.jobs.inputs),
        studio.reuse_png_data(moved.read_bytes(), "tower.png", store=services.jobs.inputs),
    ):
        assert reused.spec.txt2img.alwayson_scripts == job.spec.txt2img.alwayson_scripts
        assert reused.warnings == []


def test_every_image_in_a_spec_is_a_reference_in_the_manifest_and_the_chunk(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    large = "data:image/png;base64," + base64.b64encode(random_png((256, 256))).decode()
    small = base64.b64encode(random_png((8, 8))).decode()  # well under 256 characters
    nested = {"enabled": True, "image": {"image": large, "mask": None}}  # ControlNet's form
    flat = {"enabled": True, "image": small}
    spec = JobSpec.model_validate(
        {
            "prompt": "a tower",
            "steps": 2,
            "width": 64,
            "height": 64,
            "txt2img": {"alwayson_scripts": {"controlnet": {"args": [nested, flat]}}},
        }
    )
    job_id = services.jobs.submit_pipeline_run(spec)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    job = services.jobs.get_job(job_id)
    manifest = Path(job.result.manifests[0]).read_text()
    chunk = spec_from_png_chunk(Path(job.result.images[0]))
    for text in (manifest, chunk):
        assert large.partition(",")[2][:64] not in text and small not in text
    assert len(manifest) < 20_000 and len(chunk) < 4_000
    rebuilt = services.intents.png(Path(job.result.images[0])).spec
    assert rebuilt.txt2img.alwayson_scripts == spec.txt2img.alwayson_scripts


def spec_from_png_chunk(png: Path) -> str:
    with Image.open(png) as image:
        return str(image.text["stablenew"])


def test_the_chunk_of_a_one_job_over_many_inputs_stays_small(make_services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):
        Image.new("RGB", (64, 48), (i * 6, 80, 160)).save(folder / f"p{i:02d}.png")
    (spec,) = services.intents.images(
        [str(folder)], Overrides(stages=["upscale"], upscaler="Lanczos"), one_job=True
    )
    job_id = services.jobs.submit_pipeline_run(spec)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=120)
    job = services.jobs.get_job(job_id)
    last = Path(job.result.images[-1])
    assert len(spec_from_png_chunk(last)) < 3_000  # 40 inputs listed made it 6 KB
    rebuilt = services.intents.png(last).spec
    assert rebuilt.inputs == [spec.inputs[-1]] and rebuilt.images == 1
