"""No secret written: a backend password wherever the user put it (the launch command's
--api-auth, the config's password, a URL, a token in the environment) appears in no file
StableNew writes and in nothing it prints, after runs that crash, hang and fail."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from stablenew.api.app import create_app
from stablenew.api.security import Security, load_or_create_token
from stablenew.app import settings_file
from stablenew.app.config import load_config, service_config
from stablenew.app.services import Services
from stablenew.app.studio import save_preset
from stablenew.gui.prefs import Prefs
from stablenew.jobs.spec import JobSpec
from stablenew.queue.home import HomeLock
from tests.conftest import SimFactory
from tests.helpers import start_worker
from tests.hostile.conftest import cli, sim_command, write_config

PASSWORD = "Tr0ub4dor-and-3"
TOKEN = "hf_tok3n_s3cr3t_value"


def secret_config(extra_flags: tuple[str, ...] = ()) -> str:
    command = sim_command("--api-auth", f"ann:{PASSWORD}", "--step-ms", "20", *extra_flags)
    return (
        "[backend]\n"
        f"command = {json.dumps(command)}\n"
        'username = "ann"\n'
        f'password = "{PASSWORD}"\n'
        "[backend.env]\n"
        f'HF_TOKEN = "{TOKEN}"\n'
        "[recovery]\n"
        "stall_timeout = 1.5\nstall_grace = 0.5\n"
    )


def leaks(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and path.name != "config.toml":  # the user's own file
                data = path.read_bytes()
                if PASSWORD.encode() in data or TOKEN.encode() in data:
                    found.append(str(path))
    return found


def test_the_password_is_in_no_file_after_crash_hang_and_failure(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    write_config(home, secret_config() + f'[output]\nroot = "{out}"\n')
    worker = start_worker(home)
    try:
        auth = ("ann", PASSWORD)
        for fault, prompt in (
            ({"crash": {"stage": "txt2img", "nth": 1}}, "crash"),
            ({"hang": {"stage": "txt2img", "nth": 1, "mode": "ignore_interrupt"}}, "hang"),
            ({"http_error": {"stage": "txt2img", "kind": "oom"}}, "fail"),
        ):
            httpx.post(f"{worker.url}/sim/faults", json=fault, auth=auth, timeout=5)
            done = cli(home, "run", prompt, "--json")
            assert "Traceback" not in done.stderr
            worker.url = (
                json.loads(  # the backend may have a new port after a restart
                    (home / "owner.json").read_text()
                ).get("backend_url")
                or worker.url
            )
    finally:
        worker.proc.terminate()
        worker.proc.wait(30)
    failures = list(out.rglob("webui_tail.log"))
    assert len(failures) >= 3, "the crash, the hang and the failure wrote artifacts"
    backend_log = "".join(p.read_text() for p in (home / "logs").glob("webui_*.log"))
    assert "Launching API server with arguments:" in backend_log  # it printed its arguments...
    assert "--api-auth ***" in backend_log  # ...which StableNew wrote without the password
    assert leaks(home, out) == []
    shown = cli(home, "config", "show")
    assert PASSWORD not in shown.stdout and TOKEN not in shown.stdout
    assert "***" in shown.stdout


def test_a_password_in_a_backend_url_is_never_printed(tmp_path: Path) -> None:
    url = f"http://ann:{PASSWORD}@127.0.0.1:9"
    done = cli(tmp_path, "run", "x", "--backend", url)
    assert done.returncode == 3
    assert PASSWORD not in done.stdout + done.stderr
    assert leaks(tmp_path) == []


def test_a_password_in_an_attached_backends_url_is_in_no_file_and_no_answer(
    tmp_path: Path, start_sim: SimFactory
) -> None:
    """Found by a tester: doctor printed it, every manifest kept it under backend.url and
    GET /api/v1/backends answered it."""
    sim = start_sim("--api-auth", f"ann:{PASSWORD}", auth=("ann", PASSWORD))
    url = sim.url.replace("://", f"://ann:{PASSWORD}@")
    home = tmp_path / "home"
    write_config(
        home,
        f'[[backends]]\nname = "att"\nmode = "attached"\nurl = "{url}"\n'
        f'[[backends]]\nname = "off"\nmode = "attached"\nurl = "http://127.0.0.1:9"\n',
    )
    done = cli(home, "run", "a cat", "--on", "att", "--json")
    assert done.returncode == 0, done.stderr
    doctor = cli(home, "doctor")
    assert "backend att" in doctor.stdout
    printed = done.stdout + done.stderr + doctor.stdout + doctor.stderr
    for args in (
        ("run", "a dog", "--on", "att"),
        ("backend", "list"),
        ("backend", "list", "--json"),
    ):
        shown = cli(home, *args)
        printed += shown.stdout + shown.stderr
    app = create_app(
        Services(service_config(home, load_config(home))), Security.for_bind("127.0.0.1", "t")
    )
    with TestClient(app, base_url="http://127.0.0.1:7870") as api:
        printed += api.get("/api/v1/backends").text + api.get("/api/v1/backends/att").text
    assert PASSWORD not in printed
    assert leaks(home) == []


@pytest.mark.parametrize("made_by", ["stablenew", "the user (0755)"])
def test_files_that_hold_prompts_or_secrets_are_owner_only(
    tmp_path: Path, made_by: str, sim_url: str
) -> None:
    """Whoever made the home, every file StableNew writes into it is 0600 and every folder it
    makes 0700: the database, logs, inputs, the GUI's prefs (the last prompt), the API token,
    owner.json, the webhook cursor, exports, presets, config.toml and its backup."""
    home = tmp_path / "home"
    if made_by != "stablenew":
        home.mkdir(mode=0o755)
        os.chmod(home, 0o755)  # whatever the umask
    picture = tmp_path / "start.png"
    Image.new("RGB", (64, 64)).save(picture)
    done = cli(home, "run", "a private prompt", "--init-image", str(picture), "--stages", "img2img")
    assert done.returncode == 0, done.stderr
    hooked = (
        f'[backend]\nmode = "attached"\nurl = "{sim_url}"\n'
        '[[webhooks]]\nurl = "http://127.0.0.1:22601/hook"\nsecret = "0123456789abcdef"\n'
    )
    write_config(home, hooked)  # the user's own file: its mode is theirs
    os.chmod(home / "config.toml", 0o644)
    assert cli(home, "run", "another private prompt").returncode == 0
    assert cli(home, "queue", "add", "a queued prompt").returncode == 0
    assert cli(home, "queue", "export", str(home / "queue.json")).returncode == 0
    prefs = Prefs(home / "gui.json")
    prefs.set("prompt", "the last prompt")
    prefs.save()
    load_or_create_token(home / "api_token")
    save_preset(home / "mine.json", JobSpec(prompt="a preset prompt"))
    write_config(home, f'[backend]\nmode = "attached"\nurl = "{sim_url}"\n')
    settings_file.write(home, load_config(home))  # as the settings dialog saves it (twice:
    settings_file.write(home, load_config(home))  # the second keeps the first as .bak)
    lock = HomeLock(home)
    assert lock.try_acquire()
    try:
        written = {
            str(p.relative_to(home)): stat.S_IMODE(p.stat().st_mode)
            for p in home.rglob("*")
            if "outputs" not in p.relative_to(home).parts  # the images, meant to be shared
        }
    finally:
        lock.release()
    expected = {
        "jobs.db",
        "logs/events.jsonl",
        "gui.json",
        "api_token",
        "owner.json",
        "webhooks.seq",
        "queue.json",
        "mine.json",
        "config.toml",
        "config.toml.bak",
        "inputs",
    }
    assert expected <= set(written), sorted(written)
    assert any(n.startswith("inputs/") and (home / n).is_file() for n in written)
    assert any(n.startswith("logs/webui_") for n in written), sorted(written)  # the managed run
    wrong = {
        name: oct(mode)
        for name, mode in written.items()
        if mode != (0o700 if (home / name).is_dir() else 0o600)
    }
    assert wrong == {}
    if made_by == "stablenew":
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
