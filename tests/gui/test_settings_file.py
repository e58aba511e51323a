"""config.toml as the desktop app writes it, and the look for a backend (no window needed)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from stablenew.app import discovery, settings_file
from stablenew.app.config import Config, load_config
from stablenew.errors import ConfigError


def test_written_settings_read_back_the_same_owner_only_with_a_backup(tmp_path: Path) -> None:
    data = Config().model_dump()
    data["backend"].update(
        mode="attached",
        url="http://127.0.0.1:7860",
        username="me",
        password='p"ss\\wörd\x7f',
        env={"A VAR": "1"},
    )
    data["limits"]["tile_max"] = 512
    data["output"]["root"] = str(tmp_path / "out put")
    config = settings_file.validate(data)
    path = settings_file.write(tmp_path, config)
    assert load_config(tmp_path) == config
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings_file.write(tmp_path, Config())  # the previous one is kept, as private
    backup = tmp_path / "config.toml.bak"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert "attached" in backup.read_text(encoding="utf-8")
    assert load_config(tmp_path) == Config()
    assert "password" not in path.read_text(encoding="utf-8")  # defaults are not written


def test_a_pool_and_webhooks_are_written_as_arrays_of_tables(tmp_path: Path) -> None:
    """Found by a tester: saving a config with [[webhooks]] raised AttributeError."""
    (tmp_path / "config.toml").write_text(
        '[[backends]]\nname = "gpu0"\nurl = "http://127.0.0.1:7861"\nlabels = ["sdxl"]\n'
        '[backends.env]\nCUDA_VISIBLE_DEVICES = "0"\n'
        '[[backends]]\nname = "box2"\nmode = "attached"\nurl = "http://192.0.2.5:7860"\n'
        '[[webhooks]]\nurl = "http://127.0.0.1:9/hook"\nevents = ["job_completed"]\n'
        'secret = "a-secret-of-sixteen+"\n'
    )
    config = load_config(tmp_path)
    settings_file.write(tmp_path, config)
    assert load_config(tmp_path) == config
    text = (tmp_path / "config.toml").read_text()
    assert text.count("[[backends]]") == 2 and "[backends.env]" in text


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("backend", "url", "not a url", "backend.url"),
        ("limits", "tile_min", 4096, "limits"),
        ("backend", "startup_timeout", "soon", "backend.startup_timeout"),
        ("backend", "command", [], "backend.command"),
    ],
)
def test_values_that_cannot_work_are_refused_by_key(
    section: str, key: str, value: object, named: str
) -> None:
    data = Config().model_dump()
    data[section][key] = value
    with pytest.raises(ConfigError, match=named):
        settings_file.validate(data)


def test_discovery_is_wanted_only_for_the_default_backend() -> None:
    assert settings_file.discovery_wanted(Config())
    data = Config().model_dump()
    data["backend"]["discover"] = False
    assert not settings_file.discovery_wanted(settings_file.validate(data))
    data = Config().model_dump()
    data["backend"].update(mode="attached", url="http://127.0.0.1:7860")
    assert not settings_file.discovery_wanted(settings_file.validate(data))


def test_a_port_where_nothing_listens_is_refused_at_once() -> None:
    result = discovery.probe("http://127.0.0.1:9")  # discard: nothing listens
    assert result.verdict is discovery.Verdict.REFUSED and not result.ok
    assert discovery.discover(ports=[9]) == []


def test_a_launch_command_is_checked_without_starting_it(tmp_path: Path) -> None:
    assert discovery.check_launch(None, None).ok
    assert not discovery.check_launch(["no-such-program"], None).ok
    assert "does not exist" in discovery.check_launch(["python3"], str(tmp_path / "x")).message
    script = tmp_path / "launch.py"
    script.write_text("", encoding="utf-8")
    assert discovery.check_launch(["launch.py"], str(tmp_path)).ok
