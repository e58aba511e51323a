"""Input images as users have them on disk: names in another encoding, folders of mixed files,
PNGs with broken metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.cli.clitools import cli, no_traceback

pytestmark = pytest.mark.integration

INFOTEXT = "a red cube\nSteps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: 4242, Size: 64x64"


def test_a_file_name_that_is_not_utf8_is_kept_readable(tmp_path: Path) -> None:
    folder = tmp_path / "nonutf"
    folder.mkdir()
    latin1 = os.fsdecode(bytes(folder) + b"/caf\xe9.png")  # as a Latin-1 system named it
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    Image.new("RGB", (64, 64)).save(latin1, pnginfo=info)

    added = cli(
        tmp_path / "home",
        "queue",
        "add",
        "--init-image",
        str(folder),
        "--stages",
        "upscale",
        "--json",
    )
    no_traceback(added)
    assert added.returncode == 0, added.stderr
    (job_id,) = json.loads(added.stdout)["ids"]
    shown = json.loads(cli(tmp_path / "home", "queue", "show", job_id, "--json").stdout)
    assert shown["job"]["spec"]["inputs"][0]["name"] == "caf\\xe9.png"

    imported = cli(tmp_path / "home", "import", latin1, "--dry-run", "--json")
    no_traceback(imported)
    assert imported.returncode == 0, imported.stderr
    (spec,) = json.loads(imported.stdout)["specs"]
    assert spec["seed"] == 4242 and spec["metadata"]["imported_from"].endswith("caf\\xe9.png")


def test_a_folder_takes_every_image_format_and_names_what_it_skips(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("a.png", "b.bmp", "t.tiff", "j.jpg"):
        Image.new("RGB", (64, 64), (90, 20, 200)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    added = cli(
        tmp_path / "home",
        "queue",
        "add",
        "--init-image",
        str(folder),
        "--stages",
        "upscale",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    assert len(json.loads(added.stdout)["ids"]) == 4
    assert "skipped " in added.stderr and "notes.txt: not an image" in added.stderr
