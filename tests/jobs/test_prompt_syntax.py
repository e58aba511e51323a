"""The dynamic-prompts syntax as users write it: choices, picks, weights, nested wildcards; seeded
and reproducible; the text around the syntax kept byte for byte; every leftover an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew.errors import SpecError
from stablenew.jobs.prompt_syntax import drop_token, expand_prompt, render_prompt


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    folder = tmp_path / "wildcards"
    (folder / "colors").mkdir(parents=True)
    (folder / "colors" / "warm.txt").write_text("# warm ones\nred\n\norange\nyellow\n")
    (folder / "colors" / "cold.txt").write_text("blue\ngreen\n")
    (folder / "animal.txt").write_text("__colors/warm__ fox\n{big|small} __colors/cold__ whale\n")
    (folder / "loop.txt").write_text("again __loop__\n")
    return folder


def picks(text: str, folder: Path | None, seeds: range = range(40)) -> list[str]:
    return [expand_prompt(text, folder, seed) for seed in seeds]


def test_a_choice_picks_one_option_and_the_seed_decides(cards: Path) -> None:
    out = picks("a {red|blue} car", cards)
    assert set(out) == {"a red car", "a blue car"}
    assert out == picks("a {red|blue} car", cards)  # same seeds, same prompts


def test_several_picks_are_distinct_and_joined_by_comma_space(cards: Path) -> None:
    for text in picks("{2$$a|b|c}", cards):
        first, second = text.split(", ")
        assert {first, second} <= {"a", "b", "c"} and first != second
    counts = {len(t.split(", ")) for t in picks("{1-3$$a|b|c}", cards)}
    assert counts == {1, 2, 3}
    for text in picks("{2$$ and $$a|b|c}", cards):
        assert len(text.split(" and ")) == 2


def test_weights_bias_the_pick(cards: Path) -> None:
    out = picks("{0.01::rare|100::common}", cards, range(60))
    assert out.count("common") >= 55 and set(out) <= {"rare", "common"}


def test_nested_wildcards_folders_options_and_globs(cards: Path) -> None:
    out = picks("__animal__", cards)
    warm = {f"{c} fox" for c in ("red", "orange", "yellow")}
    cold = {f"{s} {c} whale" for s in ("big", "small") for c in ("blue", "green")}
    assert set(out) <= warm | cold and set(out) & warm and set(out) & cold
    assert set(picks("{__colors/warm__|plain}", cards)) == {"red", "orange", "yellow", "plain"}
    assert set(picks("__colors/*__", cards)) == {"red", "orange", "yellow", "blue", "green"}
    two = picks("{2$$__colors/cold__}", cards)
    assert set(two) == {"blue, green", "green, blue"}


def test_the_wildcard_values_used_are_recorded(cards: Path) -> None:
    rendered = render_prompt("a __colors/warm__ sky", cards, 7)
    assert rendered.text == f"a {rendered.values['__colors/warm__']} sky"


def test_text_around_the_syntax_is_kept_byte_for_byte(cards: Path) -> None:
    # The library alone would read `#` as a comment, `$` as a variable and `%` as a wrapper.
    text = "50% gray, #ff0000 /* not a comment */ $5 (masterpiece:1.2) [a:b:0.5] <lora:x:0.6>\n  x"
    assert expand_prompt(text, cards, 1) == text
    assert expand_prompt(text + " {a|a}", cards, 1) == text + " a"


LITERAL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="{}[]_"),
    max_size=40,
)


# Inside a group the library's grammar applies (`!`, `@`, `~` start a sampling method, spaces
# around an option are trimmed), so options are drawn from plain text.
OPTION = st.text(alphabet="abcXYZ019 ,.()<>'-=+", min_size=1, max_size=12).filter(
    lambda o: o == o.strip()
)


@settings(max_examples=150, deadline=None)
@given(before=LITERAL, after=LITERAL, options=st.lists(OPTION, min_size=1, max_size=4))
def test_a_group_becomes_one_option_and_nothing_else_changes(
    before: str, after: str, options: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    assert expand_prompt(before + after, folder, 3) == before + after
    out = expand_prompt(before + "{" + "|".join(options) + "}" + after, folder, 3)
    assert out.startswith(before) and out.endswith(after)
    assert out[len(before) : len(out) - len(after)] in options


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a { b", "unbalanced { at character 3"),
        ("a } b", "unbalanced } at character 3"),
        ("{a|b", "it is never closed"),
        ("x {a|$b}", "cannot read '{a|$b}'"),
        ("__loop__", "refer to each other in a loop"),
        ("a __nowhere__ here", "unresolved __nowhere__: add nowhere.txt to the wildcards folder"),
        ("a [[slot]]", "unresolved [[slot]]: a [[slot]] is filled only in a prompt pack"),
    ],
)
def test_what_cannot_be_expanded_is_an_error_naming_the_token(
    cards: Path, text: str, message: str
) -> None:
    with pytest.raises(
        SpecError,
        match="^prompt: .*"
        + message.replace("[", r"\[").replace("$", r"\$").replace("{", r"\{").replace("|", r"\|"),
    ):
        expand_prompt(text, cards, 0)


def test_every_problem_is_named_at_once(cards: Path) -> None:
    with pytest.raises(SpecError) as err:
        expand_prompt("__one__ and __two__ in [[three]]", cards, 0)
    assert all(t in str(err.value) for t in ("__one__", "__two__", "[[three]]"))


def test_braces_are_always_the_syntax(cards: Path) -> None:
    # A balanced group is expanded even when it was meant literally, as the A1111 extension
    # does; there is no literal brace, so JSON-looking text loses its braces (documented).
    assert expand_prompt('style {"a": 1}', cards, 0) == 'style "a": 1'
    assert expand_prompt("{}", cards, 0) == ""


def test_no_wildcards_folder_says_how_to_set_one() -> None:
    with pytest.raises(SpecError, match=r"no wildcards folder is set \(\[packs\] wildcards_dir"):
        expand_prompt("__weather__", None, 0)


def test_drop_and_keep_warn_once_per_token(cards: Path) -> None:
    dropped = render_prompt("a, __gone__, b [[x]]", cards, 0, unresolved="drop")
    assert dropped.text == "a, b"
    assert len(dropped.warnings) == 2 and "__gone__ dropped" in dropped.warnings[0]
    kept = render_prompt("a, __gone__, b", cards, 0, unresolved="keep")
    assert kept.text == "a, __gone__, b" and "kept as written" in kept.warnings[0]
    with pytest.raises(SpecError, match="unbalanced"):  # syntax errors are never dropped
        render_prompt("a { __gone__", cards, 0, unresolved="drop")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a, T, b", "a, b"),
        ("a, T", "a"),
        ("T, b", "b"),
        ("a T b", "a b"),
        ("a T, b", "a, b"),
        ("a, T b", "a, b"),
        ("T", ""),
        ("line one,\nT, b", "line one,\nb"),
        ("(x, T)", "(x)"),
    ],
)
def test_drop_removes_the_token_with_its_separator(text: str, expected: str) -> None:
    at = text.index("T")
    assert drop_token(text, at, at + 1) == expected


def test_a_wildcard_file_in_another_encoding_is_an_error_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_bytes("fog\nrain\n".encode("utf-16"))
    with pytest.raises(SpecError, match="looks like UTF-16"):
        expand_prompt("__w__", tmp_path, 0)
    (tmp_path / "bom.txt").write_bytes("\ufefffog\n".encode())
    assert expand_prompt("__bom__", tmp_path, 0) == "fog"


TEMPLATE = "{a|b|c|d|e} {2$$x|y|z} {0.5::p|2::q|1::r} __colors/*__ __animal__"
# Pinned: a dynamicprompts upgrade that changes what a seed picks breaks reproducibility.
GOLDEN = [
    "d x, z q red small blue whale",
    "c x, y q orange red fox",
    "a z, y q green yellow fox",
]


def test_the_same_seed_gives_the_same_prompt_in_every_process(cards: Path) -> None:
    assert picks(TEMPLATE, cards, range(3)) == GOLDEN
    code = (
        "import json, sys; from pathlib import Path; "
        "from stablenew.jobs.prompt_syntax import expand_prompt; "
        "print(json.dumps([expand_prompt(sys.argv[1], Path(sys.argv[2]), s) for s in range(3)]))"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": src}
        out = subprocess.run(
            [sys.executable, "-c", code, TEMPLATE, str(cards)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert json.loads(out.stdout) == GOLDEN
