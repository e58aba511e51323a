"""Prompt packs as users write them: grammar, rendering, presets, variants, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew.jobs.packs import (
    HARD_LIMIT,
    LEFTOVER,
    PackError,
    PackProblems,
    check,
    expand,
    load_pack,
    parse_rows,
    survey,
)

PORTRAITS = """# portraits
<embedding:my_quality_pos>
(masterpiece, best quality) soft studio light, 85mm
portrait of a [[person]] in a [[place]], looking at the viewer
<lora:detail_slider:0.6> <lora:film_grain:0.9134615384615383>
neg: <embedding:my_bad_hands>
neg: blurry, lowres, watermark,, text

 ,,

oil painting, muted palette
a lighthouse keeper at dusk, __weather__
(<embedding:soft_light>:0.8)
<lora:odd:abc>
neg: frame, signature
"""


def write_pack(folder: Path, txt: str | None, data: dict | None, name: str = "p") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if txt is not None:
        (folder / f"{name}.txt").write_text(txt)
    if data is not None:
        (folder / f"{name}.json").write_text(json.dumps(data))
    return folder / f"{name}.txt"


def test_grammar_and_rendering_keep_the_text_as_written() -> None:
    rows = parse_rows(PORTRAITS)
    assert len(rows) == 2
    first, second = rows
    assert first.positive() == (
        "my_quality_pos, (masterpiece, best quality) soft studio light, 85mm, "
        "portrait of a [[person]] in a [[place]], looking at the viewer, "
        "<lora:detail_slider:0.6>, <lora:film_grain:0.9134615384615383>"
    )
    assert first.negative() == "my_bad_hands, blurry, lowres, watermark, text"
    assert second.positive() == (
        "(soft_light:0.8), oil painting, muted palette, a lighthouse keeper at dusk, "
        "__weather__, <lora:odd:1.0>"
    )
    assert second.negative() == "frame, signature"
    assert (first.line, second.line) == (2, 11)


def test_rows_without_text_loras_or_embeddings_are_not_rows() -> None:
    assert parse_rows("# only a comment\n\nneg: blurry\n\n,,,\n") == []
    assert [r.positive() for r in parse_rows("<lora:x:0.5>\n\n<embedding:e>")] == [
        "<lora:x:0.5>",
        "e",
    ]


def test_json_presets_aliases_and_unknown_keys(tmp_path: Path) -> None:
    data = {
        "pack_data": {
            "name": "portraits",
            "show_preview": True,
            "colour": "teal",
            "matrix": {
                "enabled": True,
                "mode": "fanout",
                "limit": 4,
                "slots": [
                    {"name": "person", "values": ["sailor", "baker"]},
                    {"name": "place", "values": ["harbor", "market"]},
                ],
            },
        },
        "preset_data": {
            "txt2img": {
                "model_name": "sim-xl-photo",
                "vae_name": "v.safetensors",
                "sampler_name": "DPM++ 2M",
                "scheduler": "Karras",
                "steps": 30,
                "cfg_scale": 6.5,
                "width": 832,
                "height": 1216,
                "seed": 5,
                "clip_skip": 2,
                "enable_hr": False,
                "hr_scale": 1.5,
                "hr_upscaler": "Latent",
                "denoising_strength": 0.35,
                "mystery": 1,
            },
            "img2img": {"steps": 15, "cfg_scale": 6.0, "denoising_strength": 0.3},
            "adetailer": {
                "ad_model": "face_yolov8s.pt",
                "adetailer_confidence": 0.35,
                "ad_denoising_strength": 0.32,
            },
            "upscale": {
                "upscaler": "R-ESRGAN 4x+",
                "upscale_mode": "single",
                "upscaling_resize": 1.5,
                "tile_size": 512,
            },
            "pipeline": {
                "images_per_prompt": 2,
                "txt2img_enabled": True,
                "img2img_enabled": True,
                "adetailer_enabled": True,
                "upscale_enabled": True,
            },
        },
    }
    pack = load_pack(write_pack(tmp_path, PORTRAITS, data))
    (tmp_path / "wildcards").mkdir()
    (tmp_path / "wildcards" / "weather.txt").write_text("# skies\nfog\nrain\n")
    expansion = expand(pack, seed=3)
    assert expansion.variants_per_row == [4, 1]
    assert expansion.preview() | {"warnings": []} == {
        "pack": "portraits",
        "rows": 2,
        "variants_per_row": [4, 1],
        "jobs": 5,
        "images": 10,
        "warnings": [],
    }
    assert (
        len(pack.warnings) == 1 and "colour" in pack.warnings[0] and "mystery" in pack.warnings[0]
    )
    spec = expansion.specs[0]
    assert (spec.model, spec.vae, spec.sampler, spec.scheduler) == (
        "sim-xl-photo",
        "v.safetensors",
        "DPM++ 2M",
        "Karras",
    )
    assert (spec.steps, spec.cfg_scale, spec.width, spec.height, spec.seed, spec.clip_skip) == (
        30,
        6.5,
        832,
        1216,
        5,
        2,
    )
    assert spec.stages() == ["txt2img", "img2img", "adetailer", "upscale"]
    assert spec.adetailer.face is not None and spec.adetailer.face.model == "face_yolov8s.pt"
    assert (spec.adetailer.face.confidence, spec.adetailer.face.denoising_strength) == (0.35, 0.32)
    assert (spec.upscale.mode, spec.upscale.factor, spec.upscale.tile_size) == ("extra", 1.5, 512)
    assert spec.images == 2 and spec.txt2img.hr_denoising_strength == 0.35
    assert spec.metadata["pack_unknown_keys"]["preset_data.txt2img.mystery"] == 1
    assert spec.provenance.model_dump() == {
        "source": "pack",
        "pack_id": "portraits",
        "row": 1,
        "variant": {"[person]": "sailor", "[place]": "harbor"},
    }
    assert "portrait of a sailor in a harbor" in spec.prompt
    last = expansion.specs[-1]
    assert last.provenance.variant["__weather__"] in ("fog", "rain")
    assert [s.prompt for s in expand(pack, seed=3).specs] == [s.prompt for s in expansion.specs]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("fanout", [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "y")]),
        ("grid", [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "y")]),
        ("rotate", [("a", "x"), ("b", "y"), ("c", "x")]),
        ("sequential", [("a", "x")]),
    ],
)
def test_matrix_modes(tmp_path: Path, mode: str, expected: list[tuple[str, str]]) -> None:
    data = {
        "pack_data": {
            "matrix": {
                "mode": mode,
                "slots": [
                    {"name": "one", "values": ["a", "b", "c"]},
                    {"name": "two", "values": ["x", "y"]},
                ],
            }
        }
    }
    pack = load_pack(write_pack(tmp_path, "[[one]] and [[two]]\n\nsecond [[one]]", data))
    specs = expand(pack).specs
    first_row = [s for s in specs if s.provenance.row == 1]
    assert [
        (s.provenance.variant["[one]"], s.provenance.variant["[two]"]) for s in first_row
    ] == expected
    if mode == "sequential":  # one variant per row, rows walk through the values
        assert [s.prompt for s in specs] == ["a and x", "second b"]


def test_random_mode_is_seeded_and_limit_caps(tmp_path: Path) -> None:
    data = {
        "pack_data": {
            "matrix": {
                "mode": "per_prompt",
                "slots": [{"name": "s", "values": [str(i) for i in range(50)]}],
            }
        }
    }
    pack = load_pack(write_pack(tmp_path, "value [[s]]", data))
    assert expand(pack, seed=1).specs[0].prompt == expand(pack, seed=1).specs[0].prompt
    assert {expand(pack, seed=n).specs[0].prompt for n in range(10)} != {"value 0"}
    capped = {
        "pack_data": {
            "matrix": {"limit": 7, "slots": [{"name": "s", "values": [str(i) for i in range(50)]}]}
        }
    }
    assert len(expand(load_pack(write_pack(tmp_path / "c", "v [[s]]", capped))).specs) == 7


@pytest.mark.parametrize(
    ("txt", "data", "message"),
    [
        (
            "a [[ghost]] here",
            {"pack_data": {"matrix": {"slots": [{"name": "x", "values": ["1"]}]}}},
            "p.txt: row 1 (line 1): unresolved [[ghost]]",
        ),
        ("first\n\nsecond __nowhere__", None, "row 2 (line 3): unresolved __nowhere__"),
        (
            "a [[x]]",
            {
                "pack_data": {
                    "matrix": {"enabled": False, "slots": [{"name": "x", "values": ["1"]}]}
                }
            },
            "unresolved [[x]]",
        ),
        (
            "a",
            {"preset_data": {"txt2img": {"steps": "thirty"}}},
            "steps: Input should be a valid integer",
        ),
        ("a", {"preset_data": {"upscale": {"upscale_mode": "zoom"}}}, "upscale_mode 'zoom'"),
        ("a", {"pack_data": {"matrix": {"limit": HARD_LIMIT + 1}}}, "limit must be an integer"),
        ("a", {"pack_data": {"matrix": {"mode": "shuffle"}}}, "mode 'shuffle' is not one of"),
        ("# nothing\n", None, "no prompt rows"),
        ("a castle\nfog\x00\x00\x01", None, "line 2 has a NUL byte: is it a text file?"),
    ],
)
def test_bad_packs_are_errors_that_say_where(
    tmp_path: Path, txt: str, data: dict | None, message: str
) -> None:
    with pytest.raises(
        PackError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        expand(load_pack(write_pack(tmp_path, txt, data)))


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = write_pack(tmp_path, "a", None)
    (tmp_path / "p.json").write_text('{\n  "pack_data": {,}\n}')
    with pytest.raises(PackError, match=r"p\.json:2: invalid JSON"):
        load_pack(path)


def test_json_only_pack_uses_its_slots(tmp_path: Path) -> None:
    data = {
        "pack_data": {
            "slots": [
                {
                    "index": 0,
                    "text": "a harbour",
                    "negative": "blurry",
                    "positive_embeddings": ["q"],
                    "negative_embeddings": ["bad"],
                    "loras": [["grain", 0.4]],
                }
            ]
        }
    }
    write_pack(tmp_path, None, data)
    spec = expand(load_pack(tmp_path / "p.json")).specs[0]
    assert spec.prompt == "q, a harbour, <lora:grain:0.4>"
    assert spec.negative_prompt == "bad, blurry"


LINES = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
        st.sampled_from(
            [
                "",
                "# c",
                "neg: a,, b",
                "<lora:x:0.5>",
                "<embedding:e>",
                "(<embedding:w>:0.7)",
                "[[s]] text",
                "__w__",
                ",,",
            ]
        ),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(LINES)
def test_parser_never_crashes_and_rows_have_content(lines: list[str]) -> None:
    for row in parse_rows("\n".join(lines)):
        assert row.positive()


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    limit=st.integers(1, 40),
    mode=st.sampled_from(["fanout", "rotate", "sequential", "random"]),
)
def test_expansion_counts_limits_and_leaves_no_tokens(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], limit: int, mode: str
) -> None:
    folder = tmp_path_factory.mktemp("pack")
    slots = [
        {"name": f"s{i}", "values": [f"v{i}_{j}" for j in range(n)]} for i, n in enumerate(sizes)
    ]
    text = " ".join(f"[[s{i}]]" for i in range(len(sizes)))
    data = {"pack_data": {"matrix": {"mode": mode, "limit": limit, "slots": slots}}}
    expansion = expand(load_pack(write_pack(folder, f"{text}\n\nplain row", data)), seed=9)
    product = 1
    for n in sizes:
        product *= n
    expected = {"fanout": min(product, limit), "rotate": min(max(sizes), limit)}.get(mode, 1)
    assert expansion.variants_per_row == [expected, 1]
    assert len(expansion.specs) == expected + 1
    assert not any(LEFTOVER.search(s.prompt) for s in expansion.specs)


# -- every problem at once, and what a user may do about unresolved tokens ------------------------

MESSY = """a [[ghost]] portrait
in a [[hair]] mood

second row
with __nowhere__ weather

third, [[empty]], row

fourth {red|blue row
"""
MESSY_JSON = {
    "pack_data": {
        "matrix": {
            "slots": [
                {"name": "hair", "values": ["red", "black"]},
                {"name": "empty", "values": []},
                {"name": "unused", "values": []},
            ]
        }
    }
}


def test_check_lists_every_problem_with_file_row_line_and_token(tmp_path: Path) -> None:
    pack = load_pack(write_pack(tmp_path, MESSY, MESSY_JSON))
    assert any("no row uses them): unused" in w for w in pack.warnings)
    problems = check(pack)
    assert [(p.row, p.line, p.token, p.kind) for p in problems] == [
        (1, 1, "[[ghost]]", "unresolved"),
        (2, 5, "__nowhere__", "unresolved"),
        (3, 7, "[[empty]]", "unresolved"),
        (4, 9, "{", "syntax"),
    ]
    assert all(p.file == str(tmp_path / "p.txt") for p in problems)
    assert "slot 'empty' has no values in p.json" in problems[2].message
    with pytest.raises(PackProblems) as err:
        expand(pack)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'p.txt'}: 4 problems; nothing is queued")
    assert "p.txt: row 2 (line 5): unresolved __nowhere__: add nowhere.txt" in message
    assert err.value.problems == problems


def test_drop_removes_tokens_with_their_separator_and_warns_once_per_token(tmp_path: Path) -> None:
    pack = load_pack(
        write_pack(tmp_path, MESSY.replace("{red|blue row", "{red|blue} row"), MESSY_JSON)
    )
    expansion = expand(pack, unresolved="drop", seed=4)
    prompts = {s.provenance.row: s.prompt for s in expansion.specs}
    assert expansion.variants_per_row == [2, 1, 1, 1]
    assert prompts[1] in ("a portrait, in a red mood", "a portrait, in a black mood")
    assert prompts[2] == "second row, with weather"
    assert prompts[3] == "third, row"
    assert prompts[4] in ("fourth red row", "fourth blue row")
    assert len(expansion.warnings) == 3  # [[ghost]] is in both variants of row 1: one warning
    assert "row 1 (line 1): unresolved [[ghost]] dropped" in expansion.warnings[0]
    assert expansion.preview()["warnings"][-3:] == expansion.warnings
    kept = expand(pack, unresolved="keep")
    assert kept.specs[0].prompt.startswith("a [[ghost]] portrait")
    assert len(kept.warnings) == 3


def test_a_disabled_matrix_can_be_run_by_dropping_its_tokens(tmp_path: Path) -> None:
    data = {"pack_data": {"matrix": {"enabled": False, "slots": [{"name": "x", "values": ["1"]}]}}}
    pack = load_pack(write_pack(tmp_path, "portrait of [[x]], soft light", data))
    (problem,) = check(pack)
    assert "the matrix in p.json is disabled" in problem.message
    assert expand(pack, unresolved="drop").specs[0].prompt == "portrait of, soft light"


def test_a_json_only_pack_names_the_slot_it_came_from(tmp_path: Path) -> None:
    data = {
        "pack_data": {
            "slots": [{"text": "a"}, {"text": "a [[action/pose]] b"}],
            "matrix": {"mode": "random", "slots": [{"name": "action/pose", "values": []}]},
        }
    }
    write_pack(tmp_path, None, data)
    (problem,) = check(load_pack(tmp_path / "p.json"))
    assert str(problem).startswith(f"{tmp_path / 'p.json'}: row 2 (pack_data.slots[1]): ")
    assert problem.line is None and problem.token == "[[action/pose]]"


def test_settings_problems_are_reported_once_not_per_row(tmp_path: Path) -> None:
    data = {"preset_data": {"txt2img": {"steps": 0}}}
    pack = load_pack(write_pack(tmp_path, "a\n\nb\n\nc __gone__", data))
    problems = check(pack)
    assert [p.row for p in problems] == [None, 3]
    assert str(problems[0]).startswith(f"{tmp_path / 'p.json'}: invalid job spec: steps:")


def test_an_unknown_policy_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="unresolved: 'ignore' is not one of error, drop, keep"):
        expand(load_pack(write_pack(tmp_path, "a", None)), unresolved="ignore")  # type: ignore[arg-type]


def test_pack_rows_use_the_dynamic_prompts_syntax_seeded(tmp_path: Path) -> None:
    cards = tmp_path / "wildcards" / "colors"
    cards.mkdir(parents=True)
    (cards / "warm.txt").write_text("red\norange\n")
    data = {"pack_data": {"matrix": {"slots": [{"name": "s", "values": ["x", "y"]}]}}}
    text = "a {small|big} [[s]] in __colors/warm__, {2$$fog|rain|snow}\nneg: {blurry|noisy}"
    pack = load_pack(write_pack(tmp_path, text, data))
    specs = expand(pack, seed=11).specs
    assert len(specs) == 2
    for spec in specs:
        assert re.fullmatch(
            r"a (small|big) [xy] in (red|orange), (fog|rain|snow), (fog|rain|snow)", spec.prompt
        )
        assert spec.negative_prompt in ("blurry", "noisy")
        assert spec.provenance.variant["__colors/warm__"] in ("red", "orange")
    assert [s.prompt for s in expand(pack, seed=11).specs] == [s.prompt for s in specs]
    many = {s.prompt for n in range(30) for s in expand(pack, seed=n).specs}
    assert len(many) > 10


def test_survey_shows_the_whole_pack_and_every_problem_without_raising(tmp_path: Path) -> None:
    pack = load_pack(write_pack(tmp_path, MESSY, MESSY_JSON))
    expansion, problems = survey(pack)
    assert problems == check(pack) and len(problems) == 4
    assert [s.provenance.row for s in expansion.specs] == [1, 1, 2, 3]  # row 4: a syntax error
    assert "[[ghost]]" in expansion.specs[0].prompt and len(expansion.warnings) == 3


def test_a_json_with_neither_prompts_nor_settings_is_a_pack_without_rows(tmp_path: Path) -> None:
    write_pack(tmp_path, None, {"pack_data": {"name": "x", "matrix": {"slots": []}}})
    with pytest.raises(PackError, match="the pack has no prompt rows"):
        load_pack(tmp_path / "p.json")
