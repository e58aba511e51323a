"""Every door builds jobs in one place: the GUI (through Services) and `pack show` (through the
configuration) expand the same pack the same way, configured wildcards folder included."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew.app.config import intents_for, load_config, service_config
from stablenew.app.intents import Overrides, parse_stages
from stablenew.app.services import Services
from stablenew.errors import InputError, PackError


def test_the_gui_and_pack_show_expand_a_pack_identically(tmp_path: Path) -> None:
    home, cards = tmp_path / "home", tmp_path / "my-wildcards"
    home.mkdir()
    cards.mkdir()
    (cards / "weather.txt").write_text("fog\nrain\n")
    (home / "config.toml").write_text(
        f'[packs]\nwildcards_dir = "{cards}"\n[prompts]\nglobal_negative = "lowres"\n'
    )
    pack = tmp_path / "packs" / "coast.txt"
    pack.parent.mkdir()
    pack.write_text("a harbour in __weather__\nneg: blurry\n\na cliff in __weather__\n")
    config = load_config(home)
    shown = intents_for(home, config).pack(pack, Overrides(images=2))
    services = Services(service_config(home, config))
    try:
        gui = services.intents.pack(pack, Overrides(images=2))
        assert [s.to_json() for s in gui.specs] == [s.to_json() for s in shown.specs]
        assert all("__weather__" not in s.prompt for s in gui.specs)
        sent = services.intents.sent_prompts(gui.specs[0])
        assert sent == intents_for(home, config).sent_prompts(shown.specs[0])
        assert sent[1].endswith("lowres")
    finally:
        services.close()
    without = intents_for(tmp_path / "elsewhere", load_config(tmp_path / "elsewhere"))
    with pytest.raises(PackError, match=r"unresolved __weather__"):
        without.pack(pack)  # the default folder (beside the pack) has no weather.txt


def test_stage_lists_are_checked_where_they_are_read() -> None:
    assert parse_stages("txt2img, upscale") == ["txt2img", "upscale"]
    with pytest.raises(InputError, match="unknown stage 'zoom'"):
        parse_stages("txt2img,zoom")
    with pytest.raises(InputError, match="txt2img always runs first"):
        Overrides(stages=parse_stages("img2img")).fields()
    with pytest.raises(InputError, match="starts from images has no txt2img"):
        Overrides(stages=parse_stages("txt2img,upscale")).fields(from_images=True)
