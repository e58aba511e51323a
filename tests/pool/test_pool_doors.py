"""The pool as the command line shows it: `doctor` and `backend list` name every backend."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.cli.clitools import Lines, cli, popen
from tests.conftest import SimFactory
from tests.helpers import start_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def sim(*flags: str) -> str:
    command = [sys.executable, "-m", "stablenew", "webui-sim", "--port", "0", *flags]
    return json.dumps(command)


def pool_config(home: Path) -> None:
    (home / "config.toml").write_text(
        f"""
[[backends]]
name = "gpu0"
command = {sim("--models", "sim-v15-base")}
labels = ["sd15"]

[[backends]]
name = "gpu1"
command = {sim("--models", "sim-xl-photo")}

[[backends]]
name = "box2"
mode = "attached"
url = "http://127.0.0.1:9"
username = "me"
password = "hunter2-pool-secret"
startup_timeout = 2
"""
    )


def test_doctor_checks_every_backend_of_the_pool(tmp_path: Path) -> None:
    pool_config(tmp_path)
    result = cli(tmp_path, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.returncode == 1  # box2 does not answer
    assert checks["backend gpu0"]["ok"] and checks["backend gpu1"]["ok"]
    assert checks["models gpu0"]["detail"] == "sim-v15-base"
    assert checks["models gpu1"]["detail"] == "sim-xl-photo"
    assert not checks["backend box2"]["ok"]
    assert "hunter2" not in result.stdout + result.stderr


def test_backend_list_shows_each_backend_while_another_process_owns_the_pool(
    tmp_path: Path,
) -> None:
    pool_config(tmp_path)
    (tmp_path / "config.toml").write_text(
        (tmp_path / "config.toml").read_text().split('[[backends]]\nname = "box2"')[0]
    )
    worker = popen(tmp_path, "worker")
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().startswith("worker running against http://")
        lines = [worker.stdout.readline() for _ in range(2)]  # a pool: one line per backend
        assert [line.split()[1] for line in lines] == ["gpu0:", "gpu1:"], lines
        listed = cli(tmp_path, "backend", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        backends = {b["name"]: b for b in json.loads(listed.stdout)["backends"]}
        assert set(backends) == {"gpu0", "gpu1"}
        assert backends["gpu0"]["labels"] == ["sd15"]
        assert all(b["state"] == "READY" for b in backends.values()), backends
        assert backends["gpu1"]["loaded_model"].startswith("sim-xl-photo")
        doctor = cli(tmp_path, "doctor", "--json")
        names = [c["name"] for c in json.loads(doctor.stdout)["checks"]]
        assert "backend gpu0" in names and "backend gpu1" in names, doctor.stdout
        assert doctor.returncode == 0, doctor.stdout
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_the_api_shows_each_backend_and_restarts_one_by_name(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from stablenew.api.app import create_app
    from stablenew.api.security import Security
    from tests.pool.conftest import backend

    services = make_pool(
        [
            backend(tmp_path, "gpu0", "--models", "sim-v15-base", labels=("sd15",)),
            backend(tmp_path, "gpu1", "--models", "sim-xl-photo"),
        ]
    )
    app = create_app(services, Security.for_bind("127.0.0.1", "t"))
    with TestClient(app, base_url="http://127.0.0.1:7870") as api:
        pool = {b["name"]: b for b in api.get("/api/v1/backends").json()}
        assert set(pool) == {"gpu0", "gpu1"} and pool["gpu0"]["labels"] == ["sd15"]
        assert all(b["state"] == "READY" for b in pool.values())
        models = api.get("/api/v1/backends/gpu1/models").json()
        assert [m["model_name"] for m in models] == ["sim-xl-photo"]
        before = api.get("/api/v1/backends/gpu1").json()["restarts"]
        restarted = api.post("/api/v1/backends/gpu1/restart", json={})
        assert restarted.status_code == 200, restarted.text
        assert restarted.json()["restarts"] == before + 1
        assert restarted.json()["state"] == "READY"
        assert api.get("/api/v1/backends/gpu0").json()["restarts"] == 0  # only that one
        assert "stdout" in api.get("/api/v1/backends/gpu0/tail?lines=5").json()
        missing = api.get("/api/v1/backends/gpu9")
        assert missing.status_code == 404 and "gpu0, gpu1" in missing.json()["detail"]
        metrics = api.get("/metrics").text
        assert 'stablenew_backend_restarts_total{backend="gpu1"} 1.0' in metrics


def test_backend_list_from_another_process_shows_what_the_owner_knows(
    tmp_path: Path, start_sim: SimFactory
) -> None:
    """Found by a tester: a client probed each URL itself, so `held` was always empty and
    restarts 0, and an attached backend with `user:pass@` in its URL showed FAILED (the client
    probed the masked URL the owner published and got 401)."""
    secret = "pool-doors-Pw-1234"
    attached = start_sim(
        "--api-auth", f"ann:{secret}", "--models", "sim-xl-photo", auth=("ann", secret)
    )
    url = attached.url.replace("://", f"://ann:{secret}@")
    (tmp_path / "config.toml").write_text(
        f"""
[recovery]
breaker_cooldown = 3600

[[backends]]
name = "steady"
command = {sim("--models", "sim-v15-base")}

[[backends]]
name = "fragile"
command = {sim("--models", "sim-v15-base", "--fault", "crash:txt2img:1")}
crash_loop_limit = 2

[[backends]]
name = "att"
mode = "attached"
url = "{url}"
"""
    )
    worker = start_worker(tmp_path)
    try:
        queued = cli(tmp_path, "queue", "add", "crash it", "--on", "fragile", "--stages", "txt2img")
        assert queued.returncode == 0, queued.stderr
        deadline = time.monotonic() + 90
        while True:  # the owner publishes what changed at most every half second
            listed = cli(tmp_path, "backend", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            backends = {b["name"]: b for b in json.loads(listed.stdout)["backends"]}
            if backends["fragile"]["held"]:
                break
            assert time.monotonic() < deadline, f"fragile was never shown set aside: {backends}"
        assert backends["fragile"]["restarts"] >= 1, backends["fragile"]
        assert backends["att"]["state"] == "READY", backends["att"]
        assert backends["att"]["loaded_model"].startswith("sim-xl-photo"), backends["att"]
        assert backends["steady"]["state"] == "READY", backends["steady"]
        assert secret not in listed.stdout
    finally:
        worker.proc.terminate()
        worker.proc.wait(timeout=30)


def test_worker_lines_name_the_backend_of_a_pool(tmp_path: Path) -> None:
    """Found by a tester: a pool's worker wrote "backend CRASHED: process exited with code -9",
    "backend STARTING: restarting", naming no backend."""
    pool_config(tmp_path)
    (tmp_path / "config.toml").write_text(
        (tmp_path / "config.toml").read_text().split('[[backends]]\nname = "box2"')[0]
    )
    worker = popen(tmp_path, "worker")
    lines = Lines(worker.stdout)
    try:
        lines.expect("  backend gpu1: http://")  # the banner: both are up
        os.kill(int((tmp_path / "backend-gpu1.pid").read_text().split()[0]), signal.SIGKILL)
        crashed = lines.expect(lambda line: "CRASHED" in line)
        assert "backend gpu1 CRASHED: " in crashed, crashed
        lines.expect(lambda line: "backend gpu1 READY: http://" in line)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_serve_and_run_show_every_backend_of_the_pool(tmp_path: Path) -> None:
    """Found by a tester: `serve` printed "backend: None" when the first backend was down, and
    `run` printed only the first backend's URL."""
    (tmp_path / "config.toml").write_text(
        f"""
[[backends]]
name = "away"
mode = "attached"
url = "http://127.0.0.1:9"
startup_timeout = 1

[[backends]]
name = "up"
command = {sim("--step-ms", "2")}
"""
    )
    ran = cli(tmp_path, "run", "a cat", "--on", "up", "--steps", "2")
    assert ran.returncode == 0, ran.stderr
    notes = [line for line in ran.stderr.splitlines() if "backends: " in line]
    assert notes and "away did not start" in notes[0], ran.stderr
    assert "up http://127.0.0.1:" in notes[0], ran.stderr
    server = popen(tmp_path, "serve", "--port", "0")
    errors = Lines(server.stderr)
    try:
        docs = errors.expect("docs: http://")
        assert "backends: away did not start" in docs and ", up http://127.0.0.1:" in docs, docs
    finally:
        server.terminate()
        server.wait(timeout=30)
