"""Prompt packs: NAME.txt (rows of prompts) and NAME.json (metadata and per-stage presets).

Parsing keeps the users' text as written; expansion turns rows x matrix variants into JobSpecs,
seeded so an expansion can be reproduced. The dynamic-prompts syntax (`{a|b}`, `__name__`) is
expanded by `prompt_syntax`, after the `[[slot]]` matrix.

Problems are collected, not raised one at a time: `check` lists every one (file, row, line,
token) so `pack show` can show a whole pack with all that is wrong with it, and `expand` refuses
a pack with any problem in one PackError that lists them all; nothing from it is queued. A user
may instead drop unresolved tokens or keep them verbatim (`unresolved="drop"|"keep"`), with one
warning per token.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stablenew.errors import PackError, SpecError
from stablenew.jobs.presets import (
    IGNORED_UI_KEYS,
    is_preset,
    merge,
    preset_fields,
    read_json,
    read_text,
    unknown_warning,
)
from stablenew.jobs.prompt_syntax import (
    LEFTOVER,  # noqa: F401 (re-exported: what must not be left in a prompt)
    UNRESOLVED_MODES,
    Issue,
    PromptEngine,
    Unresolved,
    resolve_leftovers,
)
from stablenew.jobs.spec import JobSpec, build_spec

EMBEDDING = re.compile(r"\(\s*<embedding:([^<>:]+)>\s*:\s*([^()]*?)\s*\)|<embedding:([^<>]+)>")
LORA = re.compile(r"<lora:([^<>:]+)(?::([^<>]*))?>")
# `[[slot]]`: letters, digits, `_`, `-`, space, and `/` (real packs name slots "action/pose").
SLOT = re.compile(r"\[\[([A-Za-z0-9_\- /]+)\]\]")
MODES = {
    "fanout": "fanout",
    "grid": "fanout",
    "all": "fanout",
    "rotate": "rotate",
    "sequential": "sequential",
    "round_robin": "sequential",
    "random": "random",
    "per_prompt": "random",
}
DEFAULT_LIMIT = 512
HARD_LIMIT = 8192


@dataclass(frozen=True)
class Weighted:
    name: str
    weight: str  # as written, so sloppy weights survive untouched

    def render_embedding(self) -> str:
        return f"({self.name}:{self.weight})" if self.weight else self.name

    def render_lora(self) -> str:
        return f"<lora:{self.name}:{self.weight}>"


@dataclass
class Row:
    number: int  # 1-based, in the file
    line: int  # where it starts in the file (0: a row of pack_data.slots)
    embeddings: list[Weighted] = field(default_factory=list)
    quality: str = ""
    subject: list[str] = field(default_factory=list)
    loras: list[Weighted] = field(default_factory=list)
    negative_embeddings: list[Weighted] = field(default_factory=list)
    negative_phrases: list[str] = field(default_factory=list)
    source: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    slot_index: int | None = None  # its place in pack_data.slots

    def line_of(self, token: str | None = None) -> int | None:
        """The first line holding `token` (else where the row starts); None for a JSON row."""
        if self.slot_index is not None:
            return None
        return next((n for n, text in self.source if token and token in text), self.line)

    def origin(self, token: str | None = None) -> str:
        """Where the row (or `token` in it) is: "line 3", "pack_data.slots[0]"."""
        line = self.line_of(token)
        return f"pack_data.slots[{self.slot_index}]" if line is None else f"line {line}"

    @property
    def empty(self) -> bool:
        return not (self.quality or self.loras or self.embeddings)

    def positive(self) -> str:
        parts = [
            *(e.render_embedding() for e in self.embeddings),
            self.quality,
            ", ".join(self.subject),
            *(lora.render_lora() for lora in self.loras),
        ]
        return ", ".join(p for p in parts if p.strip())

    def negative(self) -> str:
        parts = [*(e.render_embedding() for e in self.negative_embeddings), *self.negative_phrases]
        return ", ".join(p for p in parts if p.strip())


def _lora_weight(text: str | None) -> str:
    try:
        float(text or "")
    except ValueError:
        return "1.0"  # an unparsable weight means 1.0
    return (text or "").strip()


def _only(pattern: re.Pattern[str], line: str) -> bool:
    return bool(pattern.search(line)) and not pattern.sub("", line).strip(" ,\t")


def _embeddings(text: str) -> list[Weighted]:
    return [
        Weighted((m.group(1) or m.group(3)).strip(), (m.group(2) or "").strip())
        for m in EMBEDDING.finditer(text)
    ]


def parse_rows(text: str) -> list[Row]:
    rows: list[Row] = []
    current: Row | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            current = None  # blank lines separate rows
            continue
        if line.startswith("#"):
            continue
        if not re.search(r"\w", line):
            continue  # blank-looking (",,", "--"): dropped inside a row
        if current is None:
            current = Row(number=len(rows) + 1, line=number)
            rows.append(current)
        current.source.append((number, raw))
        if line.lower().startswith("neg:"):
            body = line[4:]
            current.negative_embeddings += _embeddings(body)
            rest = EMBEDDING.sub("", body)
            current.negative_phrases += [p.strip() for p in rest.split(",") if p.strip()]
        elif _only(EMBEDDING, line):
            current.embeddings += _embeddings(line)
        elif _only(LORA, line):
            current.loras += [
                Weighted(m.group(1).strip(), _lora_weight(m.group(2))) for m in LORA.finditer(line)
            ]
        elif not current.quality:
            current.quality = raw.strip("\r\n").strip()
        else:
            current.subject.append(line)
    kept = [r for r in rows if not r.empty]
    for i, row in enumerate(kept, start=1):
        row.number = i
    return kept


def rows_from_json_slots(slots: list[Any], where: str) -> list[Row]:
    rows = []
    for i, slot in enumerate(slots, start=1):
        if not isinstance(slot, dict):
            raise PackError(f"{where}: pack_data.slots[{i - 1}] is not an object")
        row = Row(number=i, line=0, quality=str(slot.get("text", "")).strip(), slot_index=i - 1)
        row.embeddings = [Weighted(str(e), "") for e in slot.get("positive_embeddings", [])]
        row.negative_embeddings = [
            Weighted(str(e), "") for e in slot.get("negative_embeddings", [])
        ]
        row.loras = [Weighted(str(n), _lora_weight(str(w))) for n, w in slot.get("loras", [])]
        negative = str(slot.get("negative", ""))
        row.negative_phrases = [p.strip() for p in negative.split(",") if p.strip()]
        if not row.empty:
            rows.append(row)
    return rows


# -- NAME.json ------------------------------------------------------------------------------------


@dataclass
class Matrix:
    enabled: bool = False
    mode: str = "fanout"
    limit: int = DEFAULT_LIMIT
    slots: dict[str, list[str]] = field(default_factory=dict)  # a slot may have no values


@dataclass
class Pack:
    name: str
    txt: Path | None
    json_path: Path | None
    rows: list[Row]
    matrix: Matrix
    presets: dict[str, Any]  # JobSpec fields from preset_data
    unknown: dict[str, Any]  # kept in each job's metadata
    warnings: list[str]

    @property
    def where(self) -> str:
        return str(self.txt or self.json_path)

    def file_of(self, row: Row) -> str:
        return str(self.json_path if row.slot_index is not None else self.where)


def pack_files(path: Path) -> tuple[Path | None, Path | None]:
    base = path.with_suffix("") if path.suffix in (".txt", ".json") else path
    txt, js = base.with_suffix(".txt"), base.with_suffix(".json")
    found = (txt if txt.is_file() else None, js if js.is_file() else None)
    if found == (None, None):
        raise PackError(f"{path}: no such pack (looked for {txt.name} and {js.name})")
    return found


def _matrix(raw: Any, path: Path) -> Matrix:
    if raw is None:
        return Matrix()
    if not isinstance(raw, dict):
        raise PackError(f"{path}: pack_data.matrix must be an object")
    mode = str(raw.get("mode", "fanout"))
    if mode not in MODES:
        raise PackError(
            f"{path}: pack_data.matrix.mode {mode!r} is not one of {', '.join(sorted(MODES))}"
        )
    limit = raw.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= HARD_LIMIT:
        raise PackError(f"{path}: pack_data.matrix.limit must be an integer 1..{HARD_LIMIT}")
    slots: dict[str, list[str]] = {}
    for i, slot in enumerate(raw.get("slots", [])):
        if not isinstance(slot, dict) or not isinstance(slot.get("name"), str):
            raise PackError(f"{path}: pack_data.matrix.slots[{i}] needs a name")
        values = slot.get("values") or []
        if not isinstance(values, list):
            raise PackError(
                f"{path}: pack_data.matrix.slots[{i}] ({slot['name']}): values is a list"
            )
        slots[slot["name"]] = [str(v) for v in values]  # none: a problem only where it is used
    return Matrix(bool(raw.get("enabled", True)), MODES[mode], limit, slots)


def load_pack(path: Path) -> Pack:
    txt, js = pack_files(path)
    warnings: list[str] = []
    unknown: dict[str, Any] = {}
    data = read_json(js) if js else {}
    if js and is_preset(data, txt):
        raise PackError(
            f"{js}: a preset (settings without prompts), not a pack: there is no "
            f"{js.with_suffix('.txt').name} beside it and no pack_data.slots; apply it to a "
            'prompt instead (run "PROMPT" --preset FILE)'
        )
    pack_data = data.get("pack_data") or {}
    if not isinstance(pack_data, dict):
        raise PackError(f"{js}: pack_data must be an object")
    for key, value in data.items():
        if key not in ("pack_data", "preset_data"):
            unknown[key] = value
    for key, value in pack_data.items():
        if key not in ("name", "slots", "matrix") and key not in IGNORED_UI_KEYS:
            unknown[f"pack_data.{key}"] = value
    matrix = _matrix(pack_data.get("matrix"), js) if js else Matrix()
    presets = preset_fields(data.get("preset_data"), js, unknown, warnings) if js else {}
    if txt is not None:
        rows = parse_rows(read_text(txt))
    else:
        rows = rows_from_json_slots(pack_data.get("slots", []), str(js))
    if unknown:
        warnings.append(unknown_warning(js, unknown))
    used = {name for row in rows for name in SLOT.findall(row.positive() + row.negative())}
    idle = [name for name, values in matrix.slots.items() if not values and name not in used]
    if idle:
        warnings.append(f"{js}: matrix slots with no values (no row uses them): {', '.join(idle)}")
    name = str(pack_data.get("name") or (txt or js).stem)  # type: ignore[union-attr]
    pack = Pack(name, txt, js, rows, matrix, presets, unknown, warnings)
    if not rows:
        raise PackError(f"{pack.where}: the pack has no prompt rows")
    return pack


# -- problems -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing that keeps a pack from being queued as it is, and where it is."""

    file: str
    row: int | None  # None: the pack's settings, not a row
    line: int | None  # in the .txt; None for pack_data.slots rows and settings
    origin: str | None  # "line 3" or "pack_data.slots[0]"
    token: str | None
    message: str  # says what to do
    kind: Literal["unresolved", "syntax", "file", "invalid"]

    def __str__(self) -> str:
        if self.row is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}: row {self.row} ({self.origin}): {self.message}"


class PackProblems(PackError):
    """A pack refused for every problem it has; `problems` lists them for a door to show."""

    def __init__(self, pack: Pack, problems: list[Problem]) -> None:
        self.problems = problems
        if len(problems) == 1:
            message = str(problems[0])
        else:
            lines = "\n".join(f"  {p}" for p in problems)
            message = f"{pack.where}: {len(problems)} problems; nothing is queued:\n{lines}"
        super().__init__(message)


def _problem(pack: Pack, row: Row, issue: Issue) -> Problem:
    return Problem(
        pack.file_of(row),
        row.number,
        row.line_of(issue.token),
        row.origin(issue.token),
        issue.token,
        issue.message,
        issue.kind,
    )


# -- expansion ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    positive: str
    negative: str
    values: dict[str, str]  # "[slot]" or "__wildcard__" -> value used


@dataclass
class Expansion:
    pack: Pack
    specs: list[JobSpec]
    variants_per_row: list[int]
    warnings: list[str] = field(default_factory=list)  # dropped or kept tokens, one per token

    @property
    def total_images(self) -> int:
        return sum(s.images for s in self.specs)

    def preview(self) -> dict[str, Any]:
        return {
            "pack": self.pack.name,
            "rows": len(self.pack.rows),
            "variants_per_row": self.variants_per_row,
            "jobs": len(self.specs),
            "images": self.total_images,
            "warnings": [*self.pack.warnings, *self.warnings],
        }


def _slot_choices(
    row: Row, text: str, matrix: Matrix, row_offset: int, seed: int
) -> list[dict[str, str]]:
    names = list(dict.fromkeys(SLOT.findall(text)))
    if not names or not matrix.enabled:
        return [{}]
    names = [n for n in names if matrix.slots.get(n)]  # the rest are unresolved tokens
    if not names:
        return [{}]
    values = [matrix.slots[n] for n in names]
    if matrix.mode == "fanout":
        combos = itertools.islice(itertools.product(*values), matrix.limit)
        return [dict(zip(names, c, strict=True)) for c in combos]
    if matrix.mode == "rotate":
        count = min(max(len(v) for v in values), matrix.limit)
        return [
            {n: v[i % len(v)] for n, v in zip(names, values, strict=True)} for i in range(count)
        ]
    if matrix.mode == "sequential":
        return [{n: v[row_offset % len(v)] for n, v in zip(names, values, strict=True)}]
    rng = random.Random(f"{seed}:{row.number}")
    return [{n: rng.choice(v) for n, v in zip(names, values, strict=True)}]


@dataclass
class _Run:
    """One pass over a pack: the specs it made, and everything it found on the way."""

    specs: list[JobSpec] = field(default_factory=list)
    per_row: list[int] = field(default_factory=list)
    problems: dict[str, Problem] = field(default_factory=dict)  # by text: each once
    warnings: dict[str, str] = field(default_factory=dict)

    def problem(self, problem: Problem) -> None:
        self.problems.setdefault(str(problem), problem)


def _run(
    pack: Pack,
    seed: int,
    wildcards_dir: Path | None,
    overrides: dict[str, Any],
    unresolved: Unresolved,
) -> _Run:
    if unresolved not in UNRESOLVED_MODES:
        raise PackError(f"unresolved: {unresolved!r} is not one of {', '.join(UNRESOLVED_MODES)}")
    folder = wildcards_dir or ((pack.txt or pack.json_path).parent / "wildcards")  # type: ignore[union-attr]
    engine = PromptEngine(folder)
    run = _Run()
    base = merge(pack.presets, overrides)
    settings_ok = _check_settings(pack, base, run)
    for offset, row in enumerate(pack.rows):
        positive, negative = row.positive(), row.negative()
        choices = _slot_choices(row, positive + "\n" + negative, pack.matrix, offset, seed)
        run.per_row.append(len(choices))
        for v_index, choice in enumerate(choices):
            variant = _fill(
                pack, row, (positive, negative), choice, engine, seed, v_index, run, unresolved
            )
            if variant is not None and settings_ok:
                _build(pack, row, base, variant, run)
    return run


def _check_settings(pack: Pack, base: dict[str, Any], run: _Run) -> bool:
    """The pack's settings (presets and overrides) once, rather than once per variant."""
    try:
        build_spec(merge(base, {"prompt": "x"}))
    except SpecError as exc:
        where = str(pack.json_path or pack.where)
        run.problem(Problem(where, None, None, None, None, str(exc), "invalid"))
        return False
    return True


def _build(pack: Pack, row: Row, base: dict[str, Any], variant: Variant, run: _Run) -> None:
    data = merge(
        base,
        {
            "prompt": variant.positive,
            "provenance": {
                "source": "pack",
                "pack_id": pack.name,
                "row": row.number,
                "variant": variant.values,
            },
            "metadata": {"pack_unknown_keys": pack.unknown} if pack.unknown else {},
        },
    )
    preset_negative = str(base.get("negative_prompt") or "")
    data["negative_prompt"] = ", ".join(p for p in (variant.negative, preset_negative) if p)
    try:
        run.specs.append(build_spec(data))
    except SpecError as exc:
        run.problem(_problem(pack, row, Issue("invalid", "", str(exc))))


def _fill(
    pack: Pack,
    row: Row,
    texts: tuple[str, str],
    choice: dict[str, str],
    engine: PromptEngine,
    seed: int,
    v_index: int,
    run: _Run,
    unresolved: Unresolved,
) -> Variant | None:
    """One variant of a row, or None when it has a problem (recorded in `run`)."""
    values = {f"[{k}]": v for k, v in choice.items()}
    rng = random.Random(f"{seed}:{row.number}:{v_index}:wildcards")
    filled: list[str] = []
    failed = False

    def hint(token: str) -> str:
        return _hint(pack, engine, token)

    for text in texts:
        text = SLOT.sub(lambda m: choice.get(m.group(1), m.group(0)), text)
        expanded = engine.expand(text, rng)
        values |= expanded.values
        resolved = resolve_leftovers(expanded.text, unresolved, hint)
        for issue in [*expanded.issues, *resolved.errors]:
            run.problem(_problem(pack, row, issue))
            failed = True
        for issue in resolved.warnings:
            warning = str(_problem(pack, row, issue))
            run.warnings.setdefault(warning, warning)
        filled.append(resolved.text)
    return None if failed else Variant(filled[0], filled[1], values)


def _hint(pack: Pack, engine: PromptEngine, token: str) -> str:
    """What would resolve `token`, from what the pack has."""
    if not token.startswith("[["):
        return engine.wildcards.hint(token.strip("_"))
    name, js = token[2:-2], pack.json_path
    sidecar = js.name if js else f"{pack.name}.json"
    if js is None:
        return f"define the slot in {sidecar} pack_data.matrix.slots (there is no {sidecar})"
    if name in pack.matrix.slots and not pack.matrix.enabled:
        return f"the matrix in {sidecar} is disabled (pack_data.matrix.enabled is false)"
    if name in pack.matrix.slots:
        return f"slot {name!r} has no values in {sidecar} pack_data.matrix.slots"
    if not pack.matrix.enabled and pack.matrix.slots:
        return f"the matrix in {sidecar} is disabled and has no slot {name!r}"
    return f"define the slot in {sidecar} pack_data.matrix.slots"


def expand(
    pack: Pack,
    *,
    seed: int = 0,
    wildcards_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    unresolved: Unresolved = "error",
) -> Expansion:
    """Rows x variants into JobSpecs. Overrides (e.g. from the command line) beat presets.

    Any problem refuses the whole pack with one PackProblems that lists every problem.
    `unresolved` says what an unresolved `[[slot]]` or `__name__` is: "error" (the default),
    "drop" (removed with its separator) or "keep" (sent verbatim); each dropped or kept token
    is one warning in `Expansion.warnings`. Syntax errors are always problems.
    """
    run = _run(pack, seed, wildcards_dir, overrides or {}, unresolved)
    if run.problems:
        raise PackProblems(pack, list(run.problems.values()))
    return Expansion(pack, run.specs, run.per_row, list(run.warnings.values()))


def check(
    pack: Pack,
    wildcards_dir: Path | None = None,
    *,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> list[Problem]:
    """Every problem of the pack, as `expand` with unresolved="error" would refuse it."""
    return list(_run(pack, seed, wildcards_dir, overrides or {}, "error").problems.values())


def survey(
    pack: Pack,
    wildcards_dir: Path | None = None,
    *,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> tuple[Expansion, list[Problem]]:
    """For `pack show`: the whole pack and every problem, never an exception for a problem.

    The expansion holds every job that can be built, unresolved tokens kept verbatim (a row
    with a syntax error has no job); the problems are those `check` finds.
    """
    run = _run(pack, seed, wildcards_dir, overrides or {}, "keep")
    expansion = Expansion(pack, run.specs, run.per_row, list(run.warnings.values()))
    return expansion, check(pack, wildcards_dir, seed=seed, overrides=overrides)
