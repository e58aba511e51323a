"""Jobs rebuilt from PNGs: our own `stablenew` chunk exactly, else A1111's infotext.

A1111, Forge and SD.Next write the settings of each image into its PNG `parameters` text chunk
(the "infotext"): the prompt lines, an optional `Negative prompt:` line (the rest of the text from
there on is the negative), then one line of `Key: value` pairs joined by ", ", a value with a
comma, colon or newline JSON-quoted. That line counts only with at least three pairs, as A1111
reads it. Keys become JobSpec fields where one exists; every other key is reported, never
guessed at. StableNew also writes a `stablenew` chunk holding the job's spec itself, which
rebuilds the job exactly.

The PNG is read chunk by chunk (tEXt, zTXt, iTXt) and its pixels are never decoded.
"""

from __future__ import annotations

import contextlib
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from stablenew.errors import SpecError
from stablenew.jobs.presets import merge
from stablenew.jobs.spec import JobSpec, build_spec, problems

# Schedule labels a pre-1.9 sampler name may end with ("DPM++ 2M Karras"); A1111 1.10 and Forge.
SCHEDULE_LABELS = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Align Your Steps GITS",
    "Align Your Steps 11",
    "Align Your Steps 32",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
    "Turbo",
)
# One `Key: value` of the settings line; a value is JSON-quoted, or runs to the next comma.
PAIR = re.compile(r'\s*(\w[\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
NEGATIVE = "Negative prompt:"
# Kept in the spec's metadata: what the image was made with, not a setting to reproduce it.
INFORMATIONAL = ("Model hash", "VAE hash", "Version")


@dataclass(frozen=True)
class ParsedParameters:
    """An infotext as JobSpec fields, with what had no field and what was adjusted."""

    prompt: str
    negative_prompt: str
    fields: dict[str, Any]  # JobSpec fields other than the prompts (nested: txt2img.hr_scale)
    settings: dict[str, str]  # the settings line as written, every key
    unparsed: dict[str, str]  # keys with no JobSpec field: to report to the user
    warnings: list[str] = field(default_factory=list)

    def spec_fields(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt, **self.fields}


def settings_line(line: str) -> dict[str, str] | None:
    """The `Key: value` pairs of the last line, or None when it is not a settings line."""
    pairs = PAIR.findall(line)
    if len(pairs) < 3:
        return None
    out: dict[str, str] = {}
    for key, raw in pairs:
        value = raw.strip()
        if value.startswith('"'):
            with contextlib.suppress(json.JSONDecodeError):  # A1111 keeps such a value as is
                value = str(json.loads(value))
        out.setdefault(key.strip(), value)
    return out


def split_sampler(name: str) -> tuple[str, str | None]:
    """ "DPM++ 2M Karras" -> ("DPM++ 2M", "Karras"), as A1111 splits a legacy combined name."""
    for label in sorted(SCHEDULE_LABELS, key=len, reverse=True):
        if name.endswith(f" {label}") and len(name) > len(label) + 1:
            return name[: -len(label) - 1], label
    return name, None


class _Reader:
    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = settings
        self.fields: dict[str, Any] = {}
        self.unparsed: dict[str, str] = {}
        self.warnings: list[str] = []
        self.info: dict[str, str] = {}

    def set(self, dotted: str, value: Any) -> None:
        self.fields = merge(self.fields, _nest(dotted, value))

    def number(self, key: str, kind: type[int] | type[float]) -> int | float | None:
        text = self.settings[key]
        try:
            return kind(text)
        except ValueError:
            self.unparsed[key] = text
            self.warnings.append(f"{key}: {text!r} is not a number; not used")
            return None

    def read(self) -> None:
        s = self.settings
        hires = any(key.startswith("Hires ") for key in s)
        simple = {
            "Steps": ("steps", int),
            "CFG scale": ("cfg_scale", float),
            "Seed": ("seed", int),
            "Clip skip": ("clip_skip", int),
            "Variation seed": ("subseed", int),
            "Variation seed strength": ("subseed_strength", float),
            "Hires steps": ("txt2img.hr_second_pass_steps", int),
        }
        for key, text in s.items():
            if key in simple:
                target, kind = simple[key]
                value = self.number(key, kind)
                if value is not None:
                    self.set(target, value)
            elif key == "Sampler":
                sampler, schedule = split_sampler(text)
                self.set("sampler", sampler)
                if schedule and "Schedule type" not in s:
                    self.set("scheduler", schedule)
            elif key == "Schedule type":
                self.set("scheduler", text)
            elif key in ("Model", "VAE"):
                self.set(key.lower(), text)
            elif key == "Size":
                self.size(text)
            elif key == "Hires upscale":
                value = self.number(key, float)
                if value is not None:
                    self.set("txt2img.enable_hr", True)
                    self.set("txt2img.hr_scale", value)
            elif key == "Hires upscaler":
                self.set("txt2img.hr_upscaler", text)
            elif key == "Denoising strength":
                self.denoise(text, hires)
            elif key in INFORMATIONAL:
                self.info[key] = text
            else:
                self.unparsed[key] = text

    def size(self, text: str) -> None:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text)
        if not match:
            self.unparsed["Size"] = text
            self.warnings.append(f"Size: {text!r} is not WxH; not used")
            return
        width, height = int(match.group(1)), int(match.group(2))
        if width % 8 or height % 8:
            # The backend makes a multiple of 8 anyway (the latent is size // 8).
            self.warnings.append(
                f"Size: {width}x{height} rounded down to {width // 8 * 8}x{height // 8 * 8}"
            )
        self.set("width", width // 8 * 8)
        self.set("height", height // 8 * 8)

    def denoise(self, text: str, hires: bool) -> None:
        value = self.number("Denoising strength", float)
        if value is None:
            return
        if hires:
            self.set("txt2img.hr_denoising_strength", value)
            return
        self.set("img2img.denoising_strength", value)
        self.warnings.append(
            f"Denoising strength {text} without hires fix: an img2img image; kept as the img2img "
            "denoise, but the job starts from txt2img (the source image is not in the PNG)"
        )


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    target = out
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return out


def parse_parameters(text: str) -> ParsedParameters:
    """An A1111/Forge/SD.Next infotext as JobSpec fields; unknown keys land in `unparsed`."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    settings = settings_line(lines[-1]) if lines else None
    if settings is not None:
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] | None = None
    for line in lines:
        if negative is None and line.startswith(NEGATIVE):
            negative = [line[len(NEGATIVE) :].removeprefix(" ")]
        elif negative is not None:
            negative.append(line)
        else:
            prompt.append(line)
    reader = _Reader(settings or {})
    reader.read()
    if settings is None:
        reader.warnings.append("no settings line (Steps: ..., Sampler: ...): only the prompt read")
    metadata: dict[str, Any] = {}
    if reader.info:
        metadata["infotext"] = reader.info
    if reader.unparsed:
        metadata["infotext_unparsed"] = dict(reader.unparsed)
    fields = merge(reader.fields, {"metadata": metadata}) if metadata else reader.fields
    return ParsedParameters(
        "\n".join(prompt),
        "\n".join(negative or []),
        fields,
        dict(settings or {}),
        reader.unparsed,
        reader.warnings,
    )


# -- PNG text chunks ------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT = 16 * 1024 * 1024  # a compressed chunk may not inflate past this


@dataclass(frozen=True)
class PngMetadata:
    parameters: str | None  # A1111's infotext
    stablenew: dict[str, Any] | None  # {"job_id", "spec_sha256", "stage", "image_index", "spec"}
    warnings: tuple[str, ...] = ()


def _kind(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "a JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WEBP"
    return "not an image StableNew can read"


def _chunks(data: bytes, name: str) -> Iterator[tuple[bytes, bytes]]:
    at = len(PNG_SIGNATURE)
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if len(body) < length:
            raise SpecError(f"{name}: the PNG is truncated (a {kind!r} chunk is cut short)")
        yield kind, body
        if kind == b"IEND":
            return
        at += length + 12  # length, type, data, CRC


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT)
    if inflater.unconsumed_tail:
        raise ValueError(f"a compressed text chunk over {MAX_TEXT} bytes")
    return out


def _text(kind: bytes, body: bytes) -> tuple[str, str] | None:
    """(keyword, text) of a tEXt, zTXt or iTXt chunk; None for other chunks."""
    keyword, _, rest = body.partition(b"\0")
    key = keyword.decode("latin-1")
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        return key, _inflate(rest[1:]).decode("latin-1")
    if kind == b"iTXt":
        compressed = rest[:1] == b"\x01"
        _language, _, rest = rest[2:].partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        return key, (_inflate(text) if compressed else text).decode("utf-8")
    return None


def read_png_metadata(data: bytes, name: str = "the PNG") -> PngMetadata:
    """The `parameters` and `stablenew` text chunks of a PNG (first of each), pixels untouched.

    Not a PNG, a truncated one, or one with neither chunk is a SpecError naming `name`.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise SpecError(f"{name}: not a PNG ({_kind(data)}); StableNew imports PNG files")
    texts: dict[str, str] = {}
    warnings: list[str] = []
    for kind, body in _chunks(data, name):
        try:
            found = _text(kind, body)
        except (ValueError, zlib.error) as exc:
            warnings.append(f"{name}: an unreadable {kind.decode('latin-1')} chunk skipped ({exc})")
            continue
        if found is not None:
            texts.setdefault(*found)
    ours: dict[str, Any] | None = None
    problem = ""  # why our chunk, present, was not used
    if "stablenew" in texts:
        try:
            loaded = json.loads(texts["stablenew"])
        except json.JSONDecodeError as exc:
            loaded = None
            problem = f"its stablenew chunk is not valid JSON ({exc})"
        if isinstance(loaded, dict):
            ours = loaded
        elif loaded is not None:
            problem = "its stablenew chunk is not a JSON object"
    parameters = texts.get("parameters")
    if parameters is None and ours is None and problem:
        raise SpecError(f"{name}: no generation settings in this PNG: {problem}")
    if problem:
        warnings.append(f"{name}: {problem}; not used")
    if parameters is None and ours is None:
        found_keys = ", ".join(sorted(texts)) or "none"
        raise SpecError(
            f"{name}: no generation settings in this PNG: neither a 'parameters' (A1111, Forge, "
            f"SD.Next) nor a 'stablenew' text chunk (text chunks found: {found_keys})"
        )
    return PngMetadata(parameters, ours, tuple(warnings))


# -- a JobSpec from a PNG -------------------------------------------------------------------------


def the_image(spec: JobSpec, ours: dict[str, Any], parameters: str | None) -> JobSpec:
    """Image N of a job as the job that makes it again: one image, its own input, and the seed
    it was made with (a random-seed job's spec says -1, which would make another image). The
    seed is the chunk's; a PNG written before the chunk had one gives it in its infotext."""
    index = ours.get("image_index")
    if not isinstance(index, int) or not 1 <= index <= spec.images:
        return spec
    seed = ours.get("seed")
    if not isinstance(seed, int) or seed < 0:
        found = parse_parameters(parameters).fields.get("seed") if parameters else None
        if isinstance(found, int) and found >= 0:
            seed = found
        else:
            seed = spec.seed + index - 1 if spec.seed >= 0 else -1
    update: dict[str, Any] = {"images": 1, "seed": seed}
    if spec.inputs:
        update["inputs"] = [spec.inputs[index - 1]]
    return JobSpec.model_validate(spec.model_dump() | update)


@dataclass(frozen=True)
class ImportedSpec:
    spec: JobSpec
    source: Literal["stablenew", "infotext"]
    unparsed: dict[str, str]  # infotext keys with no JobSpec field (empty from our chunk)
    warnings: list[str]
    origin: dict[str, Any] = field(default_factory=dict)  # job_id, stage, image_index, ...


def spec_from_png(data: bytes, name: str) -> ImportedSpec:
    """The job that made a PNG: from our `stablenew` chunk exactly, else from its infotext."""
    meta = read_png_metadata(data, name)
    warnings = list(meta.warnings)
    if meta.stablenew is not None:
        origin = {k: v for k, v in meta.stablenew.items() if k != "spec"}
        raw = meta.stablenew.get("spec")
        try:
            if isinstance(raw, str):
                spec = JobSpec.model_validate_json(raw)
            else:
                spec = JobSpec.model_validate(raw)
            spec = the_image(spec, meta.stablenew, meta.parameters)
            return ImportedSpec(spec, "stablenew", {}, warnings, origin)
        except ValidationError as exc:
            why = f"its stablenew chunk holds no valid job spec ({problems(exc)})"
            if meta.parameters is None:
                raise SpecError(f"{name}: {why}") from exc
            warnings.append(f"{name}: {why}; rebuilt from its infotext instead")
    if meta.parameters is None:  # read_png_metadata gives one of the two at least
        raise SpecError(f"{name}: no generation settings in this PNG")
    parsed = parse_parameters(meta.parameters)
    warnings += [f"{name}: {w}" for w in parsed.warnings]
    try:
        spec = build_spec(merge(parsed.spec_fields(), {"metadata": {"imported_from": name}}))
    except SpecError as exc:
        raise SpecError(f"{name}: {exc}") from exc
    return ImportedSpec(spec, "infotext", parsed.unparsed, warnings)
