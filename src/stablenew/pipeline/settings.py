"""What the pipeline needs from the configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class SizeLimits:
    max_upscale_megapixels: float = 16.0
    on_oversize: Literal["refuse", "scale_down"] = "scale_down"
    tile_min: int = 64
    tile_max: int = 1024


@dataclass(frozen=True)
class PipelineSettings:
    output_root: Path = Path("outputs")
    global_positive: str = ""
    global_negative: str = ""
    limits: SizeLimits = SizeLimits()
