"""Nothing overwritten, nothing lost on resume: random seeds, relative paths, the images a
failed or cancelled job leaves behind."""

from __future__ import annotations

import json
import os
import signal
import struct
from pathlib import Path

from PIL import Image

from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from stablenew.queue.store import JobStore
from tests.helpers import start_worker
from tests.hostile.conftest import (
    backend_config,
    cli,
    events,
    small,
    spawn,
    wait_for,
    write_config,
)


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.tobytes()


def without_provenance(png: bytes) -> bytes:
    """The PNG minus StableNew's own `stablenew` chunk (it names the job id)."""
    out, pos = bytearray(png[:8]), 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        chunk = png[pos : pos + 12 + length]
        if not (chunk[4:8] in (b"tEXt", b"iTXt") and chunk[8:18] == b"stablenew\0"):
            out += chunk
        pos += 12 + length
    return bytes(out)


def finished_images(home: Path, job_id: str) -> int:
    return sum(1 for e in events(home) if e.kind == EventKind.STAGE_FINISHED and e.job_id == job_id)


def test_a_random_seed_job_killed_mid_stage_keeps_its_finished_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, backend_config("--step-ms", "150"))
    store = JobStore(home / "jobs.db")
    spec = JobSpec.model_validate({**small("random seeds"), "seed": -1, "images": 4, "steps": 4})
    job_id = store.submit(spec)
    worker = start_worker(home)
    wait_for(lambda: finished_images(home, job_id) >= 2, 60, "two finished images")
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    checkpoint = store.get(job_id).checkpoint
    assert checkpoint is not None and len(checkpoint.seeds) == 4  # fixed before the first call
    done = {r.file: Path(r.file).read_bytes() for r in store.image_records(job_id)}
    stamps = {f: os.stat(f).st_mtime_ns for f in done}
    assert len(done) >= 2

    worker = start_worker(home)
    try:
        wait_for(lambda: store.get(job_id).status == JobStatus.COMPLETED, 90, "the resume")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    job = store.get(job_id)
    assert job.result.seeds == checkpoint.seeds
    for file, data in done.items():
        assert Path(file).read_bytes() == data and os.stat(file).st_mtime_ns == stamps[file]
    # Every image, the one in flight at the kill included, is what its seed makes.
    expected = run_to_the_end(
        tmp_path / "reference",
        {**small("random seeds"), "steps": 4, "images": 4, "seed": checkpoint.seeds[0]},
    )
    got = [without_provenance(Path(p).read_bytes()) for p in job.result.images]
    assert got == [without_provenance(Path(p).read_bytes()) for p in expected]


def run_to_the_end(home: Path, spec: dict[str, object]) -> list[str]:
    """A fault-free run of one spec; its final images."""
    write_config(home, backend_config())
    store = JobStore(home / "jobs.db")
    job_id = store.submit(JobSpec.model_validate(spec))
    worker = start_worker(home)
    try:
        wait_for(lambda: store.get(job_id).status == JobStatus.COMPLETED, 90, "the reference")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    return store.get(job_id).result.images


def test_a_relative_out_folder_survives_a_resume_from_another_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, backend_config("--step-ms", "150"))
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    run = spawn(home, "run", "relative", "--images", "3", "--out", "outputs", cwd=here)
    wait_for(lambda: any(e.kind == EventKind.STAGE_FINISHED for e in events(home)), 60)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(10)
    worker = start_worker(home)  # from the repository root, not from `here`
    store = JobStore(home / "jobs.db")
    try:
        wait_for(
            lambda: all(j.status == JobStatus.COMPLETED for j in store.list_jobs()), 90, "resume"
        )
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    job = store.list_jobs()[0]
    assert job.spec.output.root == str(here / "outputs")  # recorded, absolute, at submit
    assert all(Path(p).is_relative_to(here / "outputs") for p in job.result.images)
    assert len(job.result.images) == 3


def test_jobs_queued_by_a_run_write_under_its_own_out(tmp_path: Path) -> None:
    """The owner's --out is the owner's: a client's jobs keep the folder they were given."""
    home = tmp_path / "home"
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    worker = start_worker(home)
    try:
        done = cli(home, "run", "mine", "--out", str(mine), "--json")
        assert done.returncode == 0, done.stderr
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    images = json.loads(done.stdout)["jobs"][0]["result"]["images"]
    assert images and all(Path(p).is_relative_to(mine) for p in images)
    assert not theirs.exists()


def test_a_failed_job_counts_the_images_it_left_on_disk(tmp_path: Path) -> None:
    write_config(tmp_path, backend_config("--fault", "http_error:upscale:5:oom"))
    failed = cli(
        tmp_path, "run", "half way", "--images", "2", "--stages", "txt2img,upscale", "--json"
    )
    assert failed.returncode == 1
    job = json.loads(failed.stdout)["jobs"][0]
    images = job["result"]["images"]
    assert job["status"] == "FAILED" and len(images) == 2  # the txt2img images kept
    assert all(Path(p).is_file() for p in images)
    assert all(Path(p).with_suffix(".json").is_file() for p in images)  # with manifests
    human = cli(tmp_path, "history")
    assert "FAILED" in human.stdout
