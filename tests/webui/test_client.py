"""WebUIClient against the reference backend: typed results, typed errors, bounded GET retries."""

from __future__ import annotations

import base64
import socket

import httpx
import pytest

from stablenew.errors import (
    BackendApplicationError,
    BackendAuthRejected,
    BackendBadResponse,
    BackendOutOfMemory,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnavailable,
)
from stablenew.webui.classify import error_kind
from stablenew.webui.client import Health, WebUIClient, decode_b64_image

SMALL = {"steps": 2, "width": 64, "height": 64}
PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
        "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_generation_results_are_typed(start_sim) -> None:  # type: ignore[no-untyped-def]
    client = start_sim().client
    result = client.txt2img(
        {**SMALL, "prompt": "a kite", "seed": 10, "batch_size": 2, "save_images": True}
    )
    assert [i.seed for i in result.images] == [10, 11]  # the grid is skipped
    assert all(i.format == "png" and i.data.startswith(b"\x89PNG") for i in result.images)
    assert (
        result.images[1].infotext.startswith("a kite\n") and "Seed: 11" in result.images[1].infotext
    )
    refined = client.img2img(
        {**SMALL, "init_images": [base64.b64encode(result.images[0].data).decode()]}
    )
    assert len(refined.images) == 1
    up = client.extra_single_image(
        {"image": PNG_1PX, "upscaler_1": "Lanczos", "upscaling_resize": 8}
    )
    assert up.image.format == "png" and up.html_info.startswith("<p>")
    client.set_options({"samples_format": "jpg"})
    assert client.txt2img(SMALL).images[0].format == "jpeg"  # sniffed from the magic bytes


def test_decode_accepts_data_urls_and_rejects_non_images() -> None:
    assert decode_b64_image(f"data:image/png;base64,{PNG_1PX}", "/x", None)[1] == "png"
    with pytest.raises(BackendBadResponse, match="not valid base64"):
        decode_b64_image("!!", "/x", "txt2img")
    with pytest.raises(BackendBadResponse, match="not PNG"):
        decode_b64_image(base64.b64encode(b"GIF89a....").decode(), "/x", "txt2img")


@pytest.mark.integration
def test_model_and_vae_switches_are_verified(start_sim) -> None:  # type: ignore[no-untyped-def]
    client = start_sim("--model-load-ms", "200").client
    target = client.sd_models()[1]
    assert client.set_model(target["model_name"]) == target["title"]
    assert client.get_options()["sd_model_checkpoint"] == target["title"]
    with pytest.raises(BackendRejected, match="unknown model 'nope'"):
        client.set_model("nope")
    vae = client.sd_vae()[0]["model_name"]
    assert client.set_vae(vae) == vae
    with pytest.raises(BackendApplicationError, match="VAE"):  # deterministic: not restarted
        client.set_vae("missing.vae")


@pytest.mark.integration
def test_errors_are_typed_with_context(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    client = sim.client
    sim.faults({"http_error": {"stage": "txt2img"}})
    with pytest.raises(BackendServerError) as server_error:
        client.txt2img(SMALL)
    err = server_error.value
    assert (err.status, err.stage, err.endpoint) == (500, "txt2img", "/sdapi/v1/txt2img")
    assert "simulated failure" in err.snippet
    sim.faults({"http_error": {"stage": "img2img", "kind": "oom"}})
    with pytest.raises(BackendOutOfMemory, match="CUDA out of memory"):
        client.img2img({**SMALL, "init_images": [PNG_1PX]})
    with pytest.raises(BackendRejected) as rejected:
        client.img2img(SMALL)
    assert rejected.value.status == 404
    for kind in ("not_json", "missing_images", "bad_base64"):
        sim.faults({"garbage": {"stage": "txt2img", "kind": kind}})
        with pytest.raises(BackendBadResponse):
            client.txt2img(SMALL)
    sim.faults({"hang": {"stage": "txt2img", "mode": "ignore_interrupt"}})
    short = WebUIClient(sim.url, timeouts=client.timeouts.__class__(generate=0.5))
    with pytest.raises(BackendTimeout):
        short.txt2img({**SMALL, "steps": 4})
    sim.manager.restart_and_wait_ready(30)
    sim.faults({"crash": {"stage": "txt2img"}})
    with pytest.raises(BackendUnavailable):
        client.txt2img({**SMALL, "steps": 4})
    with pytest.raises(BackendUnavailable):
        WebUIClient(f"http://127.0.0.1:{closed_port()}").sd_models()


@pytest.mark.integration
def test_basic_auth(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--api-auth", "bob:pw", auth=("bob", "pw"))
    assert sim.client.txt2img(SMALL).images
    with pytest.raises(BackendAuthRejected, match="rejected the credentials") as denied:
        WebUIClient(sim.url).sd_models()
    assert denied.value.status == 401
    assert WebUIClient(sim.url).health() is Health.AUTH_REJECTED
    assert WebUIClient(sim.url, auth=("bob", "pw")).health() is Health.OK


def test_get_retries_are_bounded_and_posts_never_retried() -> None:
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ConnectError("refused", request=request)

    client = WebUIClient("http://127.0.0.1:9", get_retries=2, transport=httpx.MockTransport(refuse))
    with pytest.raises(BackendUnavailable):
        client.sd_models()
    assert calls == ["GET"] * 3
    calls.clear()
    with pytest.raises(BackendUnavailable):
        client.txt2img(SMALL)
    assert calls == ["POST"]


def a1111(error: str, errors: str) -> dict[str, str]:
    return {"error": error, "detail": "", "body": "", "errors": errors}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        # reference §9: answers of a real A1111 v1.10.1 that a restart does not change
        (500, a1111("AssertionError", "could not find upscaler named X"), BackendApplicationError),
        (500, a1111("HTTPException", "Invalid encoded image"), BackendApplicationError),
        (500, a1111("Exception", "could not find upscaler named Y"), BackendApplicationError),
        (500, a1111("RuntimeError", "model 'x' not found"), BackendApplicationError),
        (500, a1111("OutOfMemoryError", "CUDA out of memory. Tried ..."), BackendOutOfMemory),
        (500, a1111("RuntimeError", "CUDA error: out of memory"), BackendOutOfMemory),
        # a backend in a bad state: a restart may cure it
        (500, a1111("RuntimeError", "CUDA error: an illegal memory access"), BackendServerError),
        (502, None, BackendServerError),
        (401, {"detail": "Not authenticated"}, BackendAuthRejected),
        (403, None, BackendAuthRejected),
        (422, {"detail": [{"loc": ["body", "steps"]}]}, BackendRejected),
    ],
)
def test_a1111_answers_are_classified_by_their_error_body(status, body, kind) -> None:  # type: ignore[no-untyped-def]
    import json as _json

    assert error_kind(status, body, _json.dumps(body) if body else "Bad Gateway") is kind
