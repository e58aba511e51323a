"""Every way of creating or changing a job checks its names, whoever owns the home: `queue
add` and `import` next to an attached backend with no worker, `queue edit`, `queue retry
--set` and the API's PUT of a spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from stablenew.api.app import create_app
from stablenew.api.security import Security
from stablenew.app.config import load_config, service_config
from stablenew.app.services import Services
from stablenew.queue.store import JobStore
from tests.cli.clitools import cli, one_line_error, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path, sim_url: str) -> Path:
    """A home attached to a running reference backend, with no worker."""
    write_config(tmp_path, f'[backend]\nmode = "attached"\nurl = "{sim_url}"\n')
    return tmp_path


def queued(home: Path) -> list[str]:
    store = JobStore(home / "jobs.db")
    try:
        return [job.id for job in store.pending()]
    finally:
        store.close()


def test_queue_add_and_import_check_names_with_no_worker(home: Path) -> None:
    done = cli(home, "queue", "add", "a fox", "--sampler", "NoSuchSampler")
    assert done.returncode != 0
    assert "sampler: the backend has no 'NoSuchSampler' (did you mean" in one_line_error(done)
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters", "a fox\nSteps: 4, Sampler: Eulr a, CFG scale: 7, Seed: 1, Size: 64x64"
    )
    Image.new("RGB", (64, 64)).save(home / "a.png", pnginfo=info)
    done = cli(home, "import", str(home / "a.png"))
    assert done.returncode != 0
    assert "sampler: the backend has no 'Eulr a' (did you mean 'Euler a'" in one_line_error(done)
    assert queued(home) == []
    done = cli(home, "queue", "add", "a fox", "--sampler", "euler a")
    assert done.returncode == 0, done.stderr
    (job_id,) = queued(home)
    store = JobStore(home / "jobs.db")
    try:
        assert store.get(job_id).spec.sampler == "Euler a"
    finally:
        store.close()


def test_queue_edit_and_retry_check_names(home: Path) -> None:
    assert cli(home, "queue", "add", "a fox").returncode == 0
    (job_id,) = queued(home)
    done = cli(home, "queue", "edit", job_id, "--set", "sampler=Nope", "--set", "model=nosuch")
    assert done.returncode != 0
    line = one_line_error(done)
    assert (
        "sampler: the backend has no 'Nope'" in line
        and "model: the backend has no 'nosuch'" in line
    )
    assert cli(home, "queue", "cancel", job_id).returncode == 0
    done = cli(home, "queue", "retry", job_id, "--set", "sampler=Nope")
    assert done.returncode != 0
    assert "sampler: the backend has no 'Nope'" in one_line_error(done)
    assert queued(home) == []


@pytest.fixture
def app(home: Path) -> Iterator[TestClient]:
    services = Services(service_config(home, load_config(home)))
    app = create_app(services, Security.for_bind("127.0.0.1", "local-token"))
    with TestClient(app, base_url="http://127.0.0.1:7870") as client:
        yield client
    services.close()


def test_the_api_checks_names_when_a_spec_is_replaced(app: TestClient) -> None:
    answer = app.post("/api/v1/jobs", json={"spec": {"prompt": "a fox", "steps": 2}})
    (job_id,) = answer.json()["ids"]
    edited = app.put(
        f"/api/v1/jobs/{job_id}/spec", json={"spec": {"prompt": "a", "sampler": "Nope"}}
    )
    assert edited.status_code == 422
    assert "sampler: the backend has no 'Nope'" in edited.text
    assert app.get(f"/api/v1/jobs/{job_id}").json()["spec"]["prompt"] == "a fox"
