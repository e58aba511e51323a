"""JobSpec: validation that names the field, immutability, JSON round trip, stage order."""

from __future__ import annotations

import pydantic
import pytest

from stablenew.jobs.spec import JobSpec, SpecError, build_spec


def test_round_trip_and_hash_are_stable() -> None:
    spec = build_spec(
        {
            "prompt": "a lighthouse",
            "seed": 42,
            "img2img": {"enabled": True},
            "upscale": {"enabled": True, "factor": 1.5, "mode": "img2img"},
            "provenance": {"source": "pack", "pack_id": "p", "row": 2, "variant": {"a": "b"}},
        }
    )
    again = JobSpec.from_json(spec.to_json())
    assert again == spec and again.sha256() == spec.sha256()
    assert spec.stages() == ["txt2img", "img2img", "upscale"]
    with pytest.raises(pydantic.ValidationError):
        spec.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "field", "why"),
    [
        ({"prompt": "   "}, "prompt", "empty"),
        ({"prompt": "x", "width": 513}, "width", "multiple of 8"),
        ({"prompt": "x", "steps": 0}, "steps", "greater than or equal to 1"),
        ({"prompt": "x", "upscale": {"mode": "magic"}}, "upscale.mode", "'extra' or 'img2img'"),
        ({"prompt": "x", "colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_validation_errors_name_the_field(data: dict, field: str, why: str) -> None:
    with pytest.raises(SpecError) as err:
        build_spec(data)
    assert f"{field}:" in str(err.value) and why in str(err.value)


def test_adetailer_without_passes_is_not_a_stage() -> None:
    spec = build_spec({"prompt": "x", "adetailer": {"enabled": True, "face": None}})
    assert spec.stages() == ["txt2img"]
