"""A client nobody here wrote (PyPI `webuiapi`) drives the reference backend unmodified."""

from __future__ import annotations

import threading
import time

import pytest
import webuiapi
from PIL import Image

pytestmark = pytest.mark.integration


def test_webuiapi_end_to_end(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "30")
    host, port = sim.url.removeprefix("http://").rsplit(":", 1)
    api = webuiapi.WebUIApi(host=host, port=int(port), steps=3)
    assert api.has_controlnet is False  # it probed /sdapi/v1/scripts at construction

    result = api.txt2img(prompt="a quiet harbour", seed=42, width=64, height=64)
    assert result.image.size == (64, 64)
    assert result.info["all_seeds"] == [42]
    assert result.image.info["parameters"].startswith("a quiet harbour\nSteps: 3")

    refined = api.img2img(
        images=[result.image],
        prompt="oil painting",
        width=64,
        height=64,
        denoising_strength=0.4,
        seed=1,
    )
    assert refined.image.size == (64, 64)

    upscaled = api.extra_single_image(
        image=refined.image, upscaler_1="R-ESRGAN 4x+", upscaling_resize=2
    )
    assert upscaled.image.size == (128, 128)

    holder: dict[str, object] = {}
    worker = threading.Thread(
        target=lambda: holder.update(r=api.txt2img(prompt="long", steps=200, width=64, height=64))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while api.get_progress()["state"]["sampling_step"] < 1:
        assert time.monotonic() < deadline
    assert api.get_progress()["progress"] > 0
    api.interrupt()
    worker.join(10)
    assert not worker.is_alive()
    assert isinstance(holder["r"].image, Image.Image)  # type: ignore[attr-defined]
