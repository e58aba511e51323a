"""What the pipeline needs from the configuration. `SizeLimits` is the `[limits]` section of
config.toml itself: one declaration, one default, validated where it is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SizeLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_upscale_megapixels: float = Field(16.0, gt=0)
    on_oversize: Literal["refuse", "scale_down"] = "scale_down"
    tile_min: int = Field(64, ge=0)
    tile_max: int = Field(1024, ge=1)

    @model_validator(mode="after")
    def _tiles_ordered(self) -> SizeLimits:
        if self.tile_min > self.tile_max:
            raise ValueError(
                f"tile_min ({self.tile_min}) is greater than tile_max ({self.tile_max})"
            )
        return self


@dataclass(frozen=True)
class PipelineSettings:
    output_root: Path = Path("outputs")  # made absolute by the configuration that builds this
    global_positive: str = ""
    global_negative: str = ""
    limits: SizeLimits = field(default_factory=SizeLimits)
    inputs_dir: Path | None = None  # the home's input store (images jobs start from)
