"""`stablenew serve` owns the home like `worker`: `run`, `queue add` and a GUI-like client
submit as its clients (every job completes once, the backend is never touched), a second owner
refuses, a port in use is an error naming it, SIGTERM and SIGHUP stop it cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import psutil

from stablenew.observe.events import EventKind
from stablenew.queue.store import JobStore
from tests.api.conftest import ROOT, Server, small, wait_for
from tests.hostile.conftest import cli

GUI_LIKE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from stablenew.app.config import load_config, service_config
    from stablenew.app.services import Role, Services
    from stablenew.jobs.spec import JobSpec

    home = Path(sys.argv[1])
    services = Services(service_config(home, load_config(home)))
    try:
        assert services.open() == Role.CLIENT, "the server owns the home"
        spec = JobSpec(prompt="from the gui", steps=2, width=64, height=64, seed=1)
        services.jobs.add_to_job([spec], source="gui")
        print(" ".join(services.jobs.submit_draft(source="gui")))
    finally:
        services.close()
    """
)


def backend_pid(home: Path) -> int:
    return int((home / "backend.pid").read_text().split()[0])


def test_run_queue_add_and_the_gui_submit_to_the_serving_owner(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    server = serve(home=home)
    pid = backend_pid(home)
    (api_id,) = server.post("/api/v1/jobs", {"spec": small("from the api")}).json()["ids"]
    ran = cli(home, "run", "from run", "--images", "2", "--seed", "3")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    added = cli(home, "queue", "add", "from queue add", "--json")
    assert added.returncode == 0, added.stderr
    gui = subprocess.run(
        [sys.executable, "-c", GUI_LIKE, str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert gui.returncode == 0, gui.stderr
    ids = [api_id, *__import__("json").loads(added.stdout)["ids"], *gui.stdout.split()]
    for job_id in ids:
        server.wait_status(job_id, "COMPLETED")
    store = JobStore(home / "jobs.db")
    try:
        jobs = store.list_jobs()
        log = store.events_since(0, limit=100_000)
    finally:
        store.close()
    assert len(jobs) == 4 and all(j.status.value == "COMPLETED" for j in jobs)
    assert all(j.attempts == 1 for j in jobs)  # each ran once
    started = [e.job_id for e in log if e.kind == EventKind.JOB_STARTED]
    assert sorted(started) == sorted(j.id for j in jobs)
    assert [e.kind for e in log].count(EventKind.BACKEND_STARTING) == 1
    assert psutil.pid_exists(pid) and backend_pid(home) == pid  # nobody touched it


def test_a_second_owner_refuses_and_a_port_in_use_is_named(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    server = serve(home=home)
    second = cli(home, "serve", "--port", "0", timeout=60)
    assert second.returncode == 2, second.stderr
    assert f"pid {server.proc.pid}" in second.stderr and "Traceback" not in second.stderr
    worker = cli(home, "worker", timeout=60)
    assert worker.returncode == 2
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        busy = cli(tmp_path / "other", "serve", "--port", str(port), timeout=60)
    finally:
        taken.close()
    assert busy.returncode == 2
    assert f"port {port}" in busy.stderr and "in use" in busy.stderr
    assert "Traceback" not in busy.stderr
    assert not (tmp_path / "other" / "backend.pid").exists()  # refused before starting anything


def test_sighup_stops_serve_cleanly_and_requeues_the_running_job(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    from tests.api.conftest import fast_config

    home = tmp_path / "home"
    server = serve(home=home, config=fast_config("--step-ms", "50"))
    pid = backend_pid(home)
    (job_id,) = server.post("/api/v1/jobs", {"spec": small("long", images=50)}).json()["ids"]
    wait_for(lambda: server.job(job_id)["status"] == "RUNNING", 60, "the job to start")
    assert server.stop(signal.SIGHUP) == 0
    assert "serve stopped (SIGHUP)" in "".join(server.stderr)
    wait_for(lambda: not psutil.pid_exists(pid), 30, "the backend to stop")
    store = JobStore(home / "jobs.db")
    try:
        assert store.get(job_id).status.value == "QUEUED"
    finally:
        store.close()
