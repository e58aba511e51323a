"""Guards: at most one upscale in flight per run, and upscale sizes kept inside safe limits.

Every decision is returned as text so the pipeline can put it in the events and the manifest:
nothing is changed silently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from stablenew.errors import GuardViolation, UpscaleRefused
from stablenew.pipeline.settings import SizeLimits


class UpscaleGuard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: int | None = None

    @contextmanager
    def active(self, image_index: int) -> Iterator[None]:
        with self._lock:
            if self._active is not None:
                raise GuardViolation(
                    f"upscale of image {image_index} requested while image {self._active} "
                    "is still upscaling; upscales run one at a time"
                )
            self._active = image_index
        try:
            yield
        finally:
            with self._lock:
                self._active = None


@dataclass(frozen=True)
class UpscalePlan:
    source: tuple[int, int]
    target: tuple[int, int]
    factor: float
    tile: int
    decisions: list[str] = field(default_factory=list)


def _floor8(value: float) -> int:
    return max(8, int(value) // 8 * 8)


def plan_upscale(
    source: tuple[int, int], factor: float, tile: int, limits: SizeLimits
) -> UpscalePlan:
    decisions: list[str] = []
    w, h = source
    target = (_floor8(w * factor), _floor8(h * factor))
    megapixels = target[0] * target[1] / 1_000_000
    if megapixels > limits.max_upscale_megapixels:
        if limits.on_oversize == "refuse":
            raise UpscaleRefused(
                f"upscale x{factor:g} of {w}x{h} would make {target[0]}x{target[1]} "
                f"({megapixels:.1f} MP), over the {limits.max_upscale_megapixels:g} MP limit"
            )
        scaled = (limits.max_upscale_megapixels * 1_000_000 / (w * h)) ** 0.5
        old = target
        target = (_floor8(w * scaled), _floor8(h * scaled))
        decisions.append(
            f"scaled down: x{factor:g} would make {old[0]}x{old[1]} ({megapixels:.1f} MP), "
            f"over the {limits.max_upscale_megapixels:g} MP limit; using x{scaled:.3f} "
            f"= {target[0]}x{target[1]}"
        )
        factor = scaled
    clamped = min(max(tile, limits.tile_min), limits.tile_max)
    if clamped != tile:
        safe = f"{limits.tile_min}..{limits.tile_max}"
        decisions.append(f"tile size {tile} clamped to {clamped} (safe range {safe})")
    return UpscalePlan(source, target, factor, clamped, decisions)
