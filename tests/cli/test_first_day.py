"""The mistakes of a first day with StableNew: each one a readable error with the exit code of
its kind (2 bad input, 3 the backend did not start), never a traceback, never a long silence."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stablenew.queue.store import JobStore
from tests.cli.clitools import cli, document, no_traceback, one_line_error, write_config
from tests.conftest import SimFactory

pytestmark = pytest.mark.integration

README_COMMAND = '["python", "launch.py", "--api", "--nowebui", "--port", "7861"]'


def _nothing_queued(home: Path) -> None:
    if (home / "jobs.db").exists():
        assert JobStore(home / "jobs.db").list_jobs() == []


@pytest.mark.parametrize("command", ["run", "worker"])
def test_a_backend_command_that_does_not_exist(tmp_path: Path, command: str) -> None:
    write_config(tmp_path, '[backend]\ncommand = ["/nonexistent/sd/python", "launch.py"]\n')
    args = ("run", "a cat") if command == "run" else ("worker",)
    done = cli(tmp_path, *args)
    assert done.returncode == 3
    assert "the backend command '/nonexistent/sd/python' was not found" in one_line_error(done)


def test_a_backend_folder_that_does_not_exist(tmp_path: Path) -> None:
    # The README's own example, on a machine without /opt/stable-diffusion-webui.
    write_config(
        tmp_path,
        f"[backend]\ncommand = {README_COMMAND}\ncwd = '/opt/stable-diffusion-webui-nowhere'\n",
    )
    done = cli(tmp_path, "run", "a cat")
    assert done.returncode == 3
    assert "cwd = '/opt/stable-diffusion-webui-nowhere' does not exist" in one_line_error(done)
    doctor = cli(tmp_path, "doctor")
    no_traceback(doctor)
    assert doctor.returncode == 1 and "FAIL backend: the backend's folder" in doctor.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0 is not UTF-8)"),
        ("a cat\n\na dog\n".encode("utf-16"), "it looks like UTF-16"),
        (b"caf\xe9 au lait\n", "not UTF-8 text (byte 3 is not UTF-8)"),
    ],
    ids=["binary", "utf-16", "latin-1"],
)
def test_a_pack_that_is_not_utf8(tmp_path: Path, content: bytes, needle: str) -> None:
    pack = tmp_path / "pack.txt"
    pack.write_bytes(content)
    for args in (("run", "--pack", str(pack)), ("pack", "show", str(pack))):
        done = cli(tmp_path, *args)
        assert done.returncode == 2, done.stderr
        error = one_line_error(done)
        assert str(pack) in error and needle in error
    _nothing_queued(tmp_path)


def test_a_utf8_bom_is_stripped_from_a_pack(tmp_path: Path) -> None:
    pack = tmp_path / "bom.txt"
    pack.write_bytes("\ufeffa lighthouse at dusk\n".encode())
    shown = document(cli(tmp_path, "pack", "show", str(pack), "--json"), "pack")
    assert shown["jobs"][0]["positive"] == "a lighthouse at dusk"


def test_a_utf16_config(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes("[limits]\ntile_max = 512\n".encode("utf-16"))
    for args in (("config", "show"), ("run", "a cat"), ("doctor",)):
        done = cli(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "config.toml: not UTF-8 text (it looks like UTF-16" in one_line_error(done)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("queue", "add", "x", "--priority", "99999999999999999999"), "'--priority'"),
        (("run", "x", "--priority", "-99999999999999999999"), "'--priority'"),
        (("run", "x", "--seed", "99999999999999999999"), "seed: Input should be less than"),
        (("queue", "add", "x", "--images", "0"), "'--images'"),
        (("queue", "list", "--limit", "0"), "'--limit'"),
        (("queue", "add", "x", "--stages", "upscale"), "txt2img always runs first"),
    ],
)
def test_numbers_out_of_range(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    done = cli(tmp_path, *args)
    no_traceback(done)
    assert done.returncode == 2 and needle in done.stderr, done.stderr
    _nothing_queued(tmp_path)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (
            "[limits]\ntile_min = 2000\ntile_max = 1000\n",
            "tile_min (2000) is greater than tile_max",
        ),
        ('[backend]\nurl = "not a url"\n', "backend.url: "),
        ("[backend]\ncommand = []\n", "backend.command: "),
        ('[backend]\nmode = "attached"\n', "backend.url is required"),
        ("[limits]\ntile_min = 'big'\n", "limits.tile_min"),
        ("[backend]\nstartup_timeout = -1\n", "backend.startup_timeout"),
        ("[backend\n", "not valid TOML"),
    ],
    ids=["tiles", "url", "command", "attached", "type", "negative", "toml"],
)
def test_config_values_that_cannot_work(tmp_path: Path, config: str, needle: str) -> None:
    write_config(tmp_path, config)
    for args in (("config", "show"), ("run", "a cat")):
        done = cli(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        error = one_line_error(done)
        assert "config.toml: " in error and needle in error
    _nothing_queued(tmp_path)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def test_a_closed_port_fails_at_once(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    for args, code in ((("run", "a cat"), 3), (("worker",), 3), (("doctor",), 1)):
        sent = time.monotonic()
        done = cli(tmp_path, *args, "--backend", url)
        # Generous for a loaded machine, far below the 120 s an attached backend gets to start.
        assert time.monotonic() - sent < 30, f"{args} waited for a port nobody listens on"
        assert done.returncode == code, (args, done.stdout, done.stderr)
        no_traceback(done)
        assert "connection refused" in done.stdout + done.stderr
    _nothing_queued(tmp_path)


def test_doctor_timeout_bounds_a_backend_that_never_answers(tmp_path: Path, mute_port: int) -> None:
    sent = time.monotonic()
    done = cli(tmp_path, "doctor", "--backend", f"http://127.0.0.1:{mute_port}", "--timeout", "1")
    assert time.monotonic() - sent < 20
    assert done.returncode == 1 and "FAIL backend" in done.stdout, done.stdout
    checks = document(
        cli(
            tmp_path,
            "doctor",
            "--backend",
            f"http://127.0.0.1:{mute_port}",
            "--timeout",
            "1",
            "--json",
        ),
        "checks",
    )
    assert next(c for c in checks if c["name"] == "backend")["ok"] is False


def test_wrong_credentials_are_named(tmp_path: Path, start_sim: SimFactory) -> None:
    sim = start_sim("--api-auth", "user:right", auth=("user", "right"))
    write_config(tmp_path, '[backend]\nusername = "user"\npassword = "n0t-th1s-0ne"\n')
    for args, code in ((("run", "a cat"), 3), (("worker",), 3), (("doctor",), 1)):
        sent = time.monotonic()
        done = cli(tmp_path, *args, "--backend", sim.url)
        assert time.monotonic() - sent < 30  # far below the 120 s start-up timeout
        assert done.returncode == code, (args, done.stdout, done.stderr)
        no_traceback(done)
        said = done.stdout + done.stderr
        assert "rejected the credentials" in said and "n0t-th1s-0ne" not in said
    _nothing_queued(tmp_path)


def test_json_errors_for_first_day_mistakes(tmp_path: Path) -> None:
    write_config(tmp_path, "[limits]\ntile_min = 2000\ntile_max = 1000\n")
    done = cli(tmp_path, "run", "a cat", "--json")
    assert done.returncode == 2 and done.stdout == ""
    error = json.loads(done.stderr)
    assert error["schema"] == 1
    assert error["error"]["type"] == "ConfigError" and error["error"]["exit_code"] == 2
    assert "tile_min (2000) is greater than tile_max" in error["error"]["message"]
