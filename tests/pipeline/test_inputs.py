"""Jobs that start from image files: upscale-only and img2img chains over a folder, a resume
that no longer needs the source folder, files that are not images."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from stablenew.app.config import load_config
from stablenew.app.config import service_config as config_for
from stablenew.app.intents import Overrides
from stablenew.app.services import Services
from stablenew.errors import InputError
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from stablenew.queue.store import JobStore
from tests.helpers import Waiter, start_worker
from tests.pipeline.conftest import service_config, sim_stats

pytestmark = pytest.mark.integration


def folder_of_pngs(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:02d}.png"
        Image.new("RGB", size, (i * 20 % 256, 80, 160)).save(path)
        paths.append(path)
    (folder / "notes.txt").write_text("not an image, and not one of the images")
    return paths


def test_upscale_only_over_a_folder_of_twelve_pngs(make_services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    folder_of_pngs(tmp_path / "photos", 12)
    specs = services.intents.images(
        [str(tmp_path / "photos")], Overrides(stages=["upscale"], upscaler="Lanczos")
    )
    assert len(specs) == 12 and [s.inputs[0].name for s in specs][:2] == [
        "photo_00.png",
        "photo_01.png",
    ]
    assert all(s.stages() == ["upscale"] and not s.prompt for s in specs)
    ids = services.jobs.submit_many(specs)
    for job_id in ids:
        waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=120)
    for job_id in ids:
        result = services.jobs.get_job(job_id).result
        with Image.open(result.images[0]) as image:
            assert image.size == (128, 96)
    stats = sim_stats(services)
    assert stats["stages"] == {"upscale": 12} and "txt2img" not in stats["completed"]


def test_one_job_with_all_the_images_and_an_img2img_chain(make_services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    folder_of_pngs(tmp_path / "photos", 3)
    (spec,) = services.intents.images(
        [str(tmp_path / "photos" / "*.png")],
        Overrides(stages=["img2img", "upscale"], denoise=0.4, steps=2),
        prompt="make it dusk",
        one_job=True,
    )
    assert spec.images == 3 and spec.img2img.denoising_strength == 0.4
    job_id = services.jobs.submit_pipeline_run(spec)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=120)
    job = services.jobs.get_job(job_id)
    assert len(job.result.images) == 3
    run_dir = Path(job.result.run_dir or "")
    assert len(list((run_dir / "inputs").iterdir())) == 3  # the job's own copies


def test_a_file_that_is_not_an_image_is_named_and_nothing_is_kept(tmp_path: Path) -> None:
    services = Services(service_config(tmp_path / "home"))
    try:
        folder_of_pngs(tmp_path / "photos", 2)
        fake = tmp_path / "photos" / "broken.png"
        fake.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
        with pytest.raises(InputError, match=r"broken\.png: not an image"):
            services.intents.images([str(tmp_path / "photos")], Overrides(stages=["upscale"]))
        assert not (tmp_path / "home" / "inputs").exists()  # checked before anything is kept
        with pytest.raises(InputError, match="no such file"):
            services.intents.images([str(tmp_path / "nope.png")], Overrides(stages=["upscale"]))
        with pytest.raises(InputError, match="say what to do"):
            services.intents.images([str(tmp_path / "photos" / "photo_00.png")], Overrides())
    finally:
        services.close()


def test_a_killed_worker_resumes_mid_folder_with_the_source_folder_gone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home).mkdir()
    command = [sys.executable, "-m", "stablenew", "webui-sim", "--port", "0"]
    command += ["--upscale-ms-per-mp", "4000"]  # slow enough to be killed mid-folder
    (home / "config.toml").write_text(f"[backend]\ncommand = {json.dumps(command)}\n")
    folder_of_pngs(tmp_path / "photos", 6, size=(256, 256))
    submitter = Services(config_for(home, load_config(home)))
    try:
        specs = submitter.intents.images(
            [str(tmp_path / "photos")], Overrides(stages=["upscale"]), one_job=True
        )
        job_id = submitter.jobs.submit_pipeline_run(specs[0])
    finally:
        submitter.close()
    store = JobStore(home / "jobs.db")
    worker = start_worker(home)
    deadline = time.monotonic() + 60
    while len(store.image_records(job_id)) < 2:
        assert time.monotonic() < deadline, "two upscales never finished"
        time.sleep(0.05)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    shutil.rmtree(tmp_path / "photos")  # the user tidied up meanwhile
    worker = start_worker(home)
    try:
        deadline = time.monotonic() + 90
        while store.get(job_id).status != JobStatus.COMPLETED:
            assert time.monotonic() < deadline, store.get(job_id)
            time.sleep(0.1)
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    job = store.get(job_id)
    assert len(job.result.images) == 6 and job.attempts == 2
