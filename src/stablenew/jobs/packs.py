"""Prompt packs: NAME.txt (rows of prompts) and NAME.json (metadata and per-stage presets).

Parsing keeps the users' text as written; expansion turns rows x matrix variants into JobSpecs,
seeded so an expansion can be reproduced. Any problem is a PackError naming the file, the row
or key, and what to fix; a pack with a problem queues nothing.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stablenew.errors import PackError, SpecError
from stablenew.jobs.spec import JobSpec, build_spec

EMBEDDING = re.compile(r"\(\s*<embedding:([^<>:]+)>\s*:\s*([^()]*?)\s*\)|<embedding:([^<>]+)>")
LORA = re.compile(r"<lora:([^<>:]+)(?::([^<>]*))?>")
SLOT = re.compile(r"\[\[([A-Za-z0-9_\- ]+)\]\]")
WILDCARD = re.compile(r"__([A-Za-z0-9_\-]+)__")
LEFTOVER = re.compile(r"\[\[[^\]]*\]\]|__[A-Za-z0-9_\-]+__")
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
    line: int  # where it starts in the file
    embeddings: list[Weighted] = field(default_factory=list)
    quality: str = ""
    subject: list[str] = field(default_factory=list)
    loras: list[Weighted] = field(default_factory=list)
    negative_embeddings: list[Weighted] = field(default_factory=list)
    negative_phrases: list[str] = field(default_factory=list)

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
        row = Row(number=i, line=0, quality=str(slot.get("text", "")).strip())
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

STAGE_KEYS: dict[str, dict[str, str]] = {
    "txt2img": {
        "model": "model",
        "model_name": "model",
        "vae": "vae",
        "vae_name": "vae",
        "sampler_name": "sampler",
        "sampler": "sampler",
        "scheduler": "scheduler",
        "steps": "steps",
        "cfg_scale": "cfg_scale",
        "width": "width",
        "height": "height",
        "seed": "seed",
        "clip_skip": "clip_skip",
        "negative_prompt": "negative_prompt",
        "enable_hr": "txt2img.enable_hr",
        "hr_scale": "txt2img.hr_scale",
        "hr_upscaler": "txt2img.hr_upscaler",
        "denoising_strength": "txt2img.hr_denoising_strength",
        "hr_second_pass_steps": "txt2img.hr_second_pass_steps",
        "refiner_checkpoint": "txt2img.refiner_checkpoint",
        "refiner_switch_at": "txt2img.refiner_switch_at",
    },
    "img2img": {
        "steps": "img2img.steps",
        "cfg_scale": "img2img.cfg_scale",
        "denoising_strength": "img2img.denoising_strength",
        "enabled": "img2img.enabled",
    },
    "adetailer": {
        "adetailer_enabled": "adetailer.enabled",
        "ad_enabled": "adetailer.enabled",
        "enabled": "adetailer.enabled",
        "adetailer_model": "adetailer.face.model",
        "ad_model": "adetailer.face.model",
        "adetailer_confidence": "adetailer.face.confidence",
        "ad_confidence": "adetailer.face.confidence",
        "adetailer_denoise": "adetailer.face.denoising_strength",
        "ad_denoising_strength": "adetailer.face.denoising_strength",
        "adetailer_prompt": "adetailer.face.prompt",
        "ad_prompt": "adetailer.face.prompt",
        "adetailer_negative_prompt": "adetailer.face.negative_prompt",
        "ad_negative_prompt": "adetailer.face.negative_prompt",
        "adetailer_steps": "adetailer.face.steps",
        "ad_steps": "adetailer.face.steps",
        "adetailer_mask_blur": "adetailer.face.mask_blur",
        "ad_mask_blur": "adetailer.face.mask_blur",
        "adetailer_hands_model": "adetailer.hands.model",
        "ad_hands_model": "adetailer.hands.model",
    },
    "upscale": {
        "upscaler": "upscale.upscaler",
        "upscale_mode": "upscale.mode",
        "upscaling_resize": "upscale.factor",
        "upscale_factor": "upscale.factor",
        "tile_size": "upscale.tile_size",
        "enabled": "upscale.enabled",
        "denoising_strength": "upscale.denoising_strength",
    },
    "pipeline": {
        "images_per_prompt": "images",
        "txt2img_enabled": "",
        "img2img_enabled": "img2img.enabled",
        "adetailer_enabled": "adetailer.enabled",
        "upscale_enabled": "upscale.enabled",
    },
}
UPSCALE_MODES = {"single": "extra", "extra": "extra", "extras": "extra", "img2img": "img2img"}
IGNORED_UI_KEYS = {"show_preview"}


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


@dataclass
class Matrix:
    enabled: bool = False
    mode: str = "fanout"
    limit: int = DEFAULT_LIMIT
    slots: dict[str, list[str]] = field(default_factory=dict)


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


def read_text(path: Path) -> str:
    """A pack or wildcard file as users save it: UTF-8, a BOM from a Windows editor dropped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        hint = "it looks like UTF-16" if utf16 else f"byte {exc.start} is not UTF-8"
        raise PackError(f"{path}: not UTF-8 text ({hint}); save it as UTF-8") from exc


def pack_files(path: Path) -> tuple[Path | None, Path | None]:
    base = path.with_suffix("") if path.suffix in (".txt", ".json") else path
    txt, js = base.with_suffix(".txt"), base.with_suffix(".json")
    found = (txt if txt.is_file() else None, js if js.is_file() else None)
    if found == (None, None):
        raise PackError(f"{path}: no such pack (looked for {txt.name} and {js.name})")
    return found


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise PackError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise PackError(f"{path}: the top level must be an object")
    return data


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
        values = slot.get("values", [])
        if not isinstance(values, list) or not values:
            raise PackError(f"{path}: pack_data.matrix.slots[{i}] ({slot['name']}) has no values")
        slots[slot["name"]] = [str(v) for v in values]
    return Matrix(bool(raw.get("enabled", True)), MODES[mode], limit, slots)


def _presets(raw: Any, path: Path, unknown: dict[str, Any]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PackError(f"{path}: preset_data must be an object")
    fields: dict[str, Any] = {}
    for section, values in raw.items():
        keys = STAGE_KEYS.get(section)
        if keys is None or not isinstance(values, dict):
            unknown[f"preset_data.{section}"] = values
            continue
        for key, value in values.items():
            if key in IGNORED_UI_KEYS:
                continue
            target = keys.get(key)
            if target is None:
                unknown[f"preset_data.{section}.{key}"] = value
            elif target:
                if target == "upscale.mode":
                    if str(value) not in UPSCALE_MODES:
                        raise PackError(
                            f"{path}: preset_data.upscale.upscale_mode {value!r}: "
                            f"use one of {', '.join(UPSCALE_MODES)}"
                        )
                    value = UPSCALE_MODES[str(value)]
                _set(fields, target, value)
    if fields.get("adetailer", {}).get("face", {}) and "model" not in fields["adetailer"]["face"]:
        fields["adetailer"]["face"]["model"] = "face_yolov8n.pt"
    return fields


def load_pack(path: Path) -> Pack:
    txt, js = pack_files(path)
    warnings: list[str] = []
    unknown: dict[str, Any] = {}
    data = _read_json(js) if js else {}
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
    presets = _presets(data.get("preset_data"), js, unknown) if js else {}
    if txt is not None:
        rows = parse_rows(read_text(txt))
    else:
        rows = rows_from_json_slots(pack_data.get("slots", []), str(js))
    if unknown:
        warnings.append(
            f"{js}: unknown keys kept in each job's metadata: {', '.join(sorted(unknown))}"
        )
    name = str(pack_data.get("name") or (txt or js).stem)  # type: ignore[union-attr]
    pack = Pack(name, txt, js, rows, matrix, presets, unknown, warnings)
    if not rows:
        raise PackError(f"{pack.where}: the pack has no prompt rows")
    return pack


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
            "warnings": self.pack.warnings,
        }


class Wildcards:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._cache: dict[str, list[str]] = {}

    def values(self, name: str) -> list[str] | None:
        if name not in self._cache:
            path = self.folder / f"{name}.txt" if self.folder else None
            if path is None or not path.is_file():
                return None
            lines = read_text(path).splitlines()
            self._cache[name] = [v.strip() for v in lines if v.strip() and not v.startswith("#")]
        return self._cache[name]


def _slot_choices(
    row: Row, text: str, matrix: Matrix, row_offset: int, seed: int
) -> list[dict[str, str]]:
    names = list(dict.fromkeys(SLOT.findall(text)))
    if not names or not matrix.enabled:
        return [{}]
    names = [n for n in names if n in matrix.slots]  # the rest are reported as leftovers
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


def expand(
    pack: Pack,
    *,
    seed: int = 0,
    wildcards_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Expansion:
    """Rows x variants into JobSpecs. Overrides (e.g. from the command line) beat presets."""
    folder = wildcards_dir or ((pack.txt or pack.json_path).parent / "wildcards")  # type: ignore[union-attr]
    wildcards = Wildcards(folder)
    specs: list[JobSpec] = []
    per_row: list[int] = []
    base = _merge(pack.presets, overrides or {})
    for offset, row in enumerate(pack.rows):
        positive, negative = row.positive(), row.negative()
        choices = _slot_choices(row, positive + "\n" + negative, pack.matrix, offset, seed)
        per_row.append(len(choices))
        for v_index, choice in enumerate(choices):
            variant = _fill(pack, row, positive, negative, choice, wildcards, seed, v_index)
            data = _merge(
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
            preset_negative = str(base.get("negative_prompt", ""))
            data["negative_prompt"] = ", ".join(p for p in (variant.negative, preset_negative) if p)
            try:
                specs.append(build_spec(data))
            except SpecError as exc:
                raise PackError(f"{pack.json_path or pack.where}: {exc}") from exc
    return Expansion(pack, specs, per_row)


def _fill(
    pack: Pack,
    row: Row,
    positive: str,
    negative: str,
    choice: dict[str, str],
    wildcards: Wildcards,
    seed: int,
    v_index: int,
) -> Variant:
    values = {f"[{k}]": v for k, v in choice.items()}

    def slot(m: re.Match[str]) -> str:
        return choice.get(m.group(1), m.group(0))

    rng = random.Random(f"{seed}:{row.number}:{v_index}:wildcards")

    def wildcard(m: re.Match[str]) -> str:
        options = wildcards.values(m.group(1))
        if not options:
            return m.group(0)
        picked = rng.choice(options)
        values[m.group(0)] = picked
        return picked

    filled = [WILDCARD.sub(wildcard, SLOT.sub(slot, text)) for text in (positive, negative)]
    for text in filled:
        leftover = LEFTOVER.search(text)
        if leftover:
            token = leftover.group(0)
            hint = (
                f"define the slot in {pack.name}.json pack_data.matrix.slots"
                if token.startswith("[[")
                else f"add {token.strip('_')}.txt to the wildcards folder {wildcards.folder}"
            )
            raise PackError(
                f"{pack.where}: row {row.number} (line {row.line}): unresolved {token}: {hint}"
            )
    return Variant(filled[0], filled[1], values)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
