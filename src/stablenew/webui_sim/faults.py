"""Faults the reference backend injects on demand: `--fault` at start, `POST /sim/faults` later.

One object per kind, for example `{"crash": {"stage": "txt2img", "nth": 1}}`; `{}` clears them all.
Each generation call draws its fate once, before it runs, from the faults active for its stage.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Stage = Literal["txt2img", "img2img", "adetailer", "upscale", "any"]
STAGES = ("txt2img", "img2img", "adetailer", "upscale")


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Stage


class HttpErrorFault(_Fault):
    count: int = Field(1, ge=1)
    status: int = Field(500, ge=400, le=599)
    kind: Literal["error", "oom"] = "error"


class CrashFault(_Fault):
    nth: int = Field(1, ge=1)


class HangFault(_Fault):
    nth: int = Field(1, ge=1)
    mode: Literal["honour_interrupt", "ignore_interrupt"] = "honour_interrupt"
    # middle: frozen halfway through sampling; end: after the last step, progress at 100%
    # (A1111 stuck in VAE decode or saving, the "hangs at 100%" reports).
    at: Literal["middle", "end"] = "middle"


class GarbageFault(_Fault):
    count: int = Field(1, ge=1)
    kind: Literal["not_json", "missing_images", "bad_base64"] = "not_json"


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    http_error: HttpErrorFault | None = None
    crash: CrashFault | None = None
    hang: HangFault | None = None
    garbage: GarbageFault | None = None


@dataclass(frozen=True)
class Fate:
    """What happens to one generation call."""

    http_error: HttpErrorFault | None = None
    crash: bool = False
    hang: Literal["honour_interrupt", "ignore_interrupt"] | None = None
    hang_at: Literal["middle", "end"] = "middle"
    garbage: Literal["not_json", "missing_images", "bad_base64"] | None = None


F = TypeVar("F", bound=_Fault)


def _due(fault: F | None, stage: str) -> F | None:
    """The fault when it applies to this stage."""
    return fault if fault is not None and fault.stage in (stage, "any") else None


class FaultBoard:
    """The active faults and how far each has counted; safe to use from any thread."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self._lock = threading.Lock()
        self._spec = FaultSpec()
        self._seen: dict[str, int] = {}
        self.replace(spec or FaultSpec())

    def replace(self, spec: FaultSpec) -> None:
        with self._lock:
            self._spec = spec.model_copy(deep=True)
            self._seen = {"crash": 0, "hang": 0}

    def active(self) -> dict[str, object]:
        with self._lock:
            return self._spec.model_dump(exclude_none=True)

    def draw(self, stage: str) -> Fate:
        with self._lock:
            spec = self._spec
            garbage = None
            crash = False
            hang = None
            hang_at: Literal["middle", "end"] = "middle"
            if (error := _due(spec.http_error, stage)) is not None:
                remaining = error.count - 1
                spec.http_error = (
                    error.model_copy(update={"count": remaining}) if remaining else None
                )
                return Fate(http_error=error)
            if (crashing := _due(spec.crash, stage)) is not None:
                self._seen["crash"] += 1
                if self._seen["crash"] == crashing.nth:
                    spec.crash, crash = None, True
            if (hanging := _due(spec.hang, stage)) is not None:
                self._seen["hang"] += 1
                if self._seen["hang"] == hanging.nth:
                    hang, hang_at, spec.hang = hanging.mode, hanging.at, None
            if (junk := _due(spec.garbage, stage)) is not None and not (crash or hang):
                garbage = junk.kind
                remaining = junk.count - 1
                spec.garbage = junk.model_copy(update={"count": remaining}) if remaining else None
            return Fate(crash=crash, hang=hang, hang_at=hang_at, garbage=garbage)


def parse_fault_flag(flag: str) -> FaultSpec:
    """`kind:stage[:number[:option]]`, e.g. `crash:txt2img:1`, `hang:upscale:1:ignore_interrupt`,
    `hang:upscale:1:ignore_interrupt:end`, `http_error:upscale:2:503`, `http_error:txt2img:1:oom`,
    `garbage:txt2img:1:bad_base64`."""
    parts = flag.split(":")
    if len(parts) < 2:
        raise ValueError(f"fault {flag!r}: expected kind:stage[:number[:option]]")
    kind, stage, rest = parts[0], parts[1], parts[2:]
    body: dict[str, object] = {"stage": stage}
    number_key = {"http_error": "count", "garbage": "count", "crash": "nth", "hang": "nth"}.get(
        kind
    )
    if number_key is None:
        raise ValueError(
            f"fault {flag!r}: unknown kind {kind!r} (http_error, crash, hang, garbage)"
        )
    if rest:
        body[number_key] = rest[0]
    if len(rest) > 1:
        option = rest[1]
        if kind == "http_error":
            body["kind" if option == "oom" else "status"] = option
        elif kind == "hang":
            body["mode"] = option
            if len(rest) > 2:
                body["at"] = rest[2]
        elif kind == "garbage":
            body["kind"] = option
        else:
            raise ValueError(f"fault {flag!r}: crash takes no option")
    try:
        return FaultSpec.model_validate({kind: body})
    except ValidationError as exc:
        raise ValueError(f"fault {flag!r}: {exc.errors()[0]['msg']}") from exc


def merge(specs: list[FaultSpec]) -> FaultSpec:
    merged: dict[str, object] = {}
    for spec in specs:
        merged.update(spec.model_dump(exclude_none=True))
    return FaultSpec.model_validate(merged)
