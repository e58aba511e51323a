"""A pool's config.toml: what would break placement or the one-call-at-a-time rule is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew.app.config import load_config
from stablenew.errors import ConfigError


def config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            'mode = "attached"\nurl = "http://127.0.0.1:22501"',
            'mode = "attached"\nurl = "http://127.0.0.1:22501/"',
        ),
        (
            'command = ["stablenew", "webui-sim", "--port", "22502"]',
            'command = ["stablenew", "webui-sim", "--port", "22502", "--step-ms", "5"]',
        ),
        ('mode = "attached"\nurl = "http://Box2:80"', 'mode = "attached"\nurl = "http://box2"'),
    ],
)
def test_one_backend_listed_twice_is_an_error_naming_both(
    tmp_path: Path, first: str, second: str
) -> None:
    config(
        tmp_path,
        f'[[backends]]\nname = "a"\n{first}\n\n[[backends]]\nname = "b"\n{second}\n',
    )
    with pytest.raises(ConfigError, match=r"'a' and 'b' are the same backend"):
        load_config(tmp_path)


def test_free_ports_and_different_ports_are_different_backends(tmp_path: Path) -> None:
    config(
        tmp_path,
        '[[backends]]\nname = "a"\ncommand = ["stablenew", "webui-sim", "--port", "0"]\n'
        '[[backends]]\nname = "b"\ncommand = ["stablenew", "webui-sim", "--port", "0"]\n'
        '[[backends]]\nname = "c"\nmode = "attached"\nurl = "http://127.0.0.1:22503"\n'
        '[[backends]]\nname = "d"\nmode = "attached"\nurl = "http://127.0.0.1:22504"\n',
    )
    assert [b.name for b in load_config(tmp_path).backends] == ["a", "b", "c", "d"]


def test_a_label_that_is_another_backends_name_is_an_error(tmp_path: Path) -> None:
    config(
        tmp_path,
        '[[backends]]\nname = "a"\nlabels = ["b"]\n\n[[backends]]\nname = "b"\n'
        'command = ["stablenew", "webui-sim", "--port", "0"]\n',
    )
    with pytest.raises(ConfigError, match=r"'a' has the label 'b', the name of another backend"):
        load_config(tmp_path)
