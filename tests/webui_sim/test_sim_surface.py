"""The reference backend's own surface: who it says it is, who may drive it, what it received."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

import stablenew
from stablenew.webui_sim import catalog

pytestmark = pytest.mark.integration

HEADER = "X-StableNew-Reference-Backend"
SMALL = {"steps": 2, "width": 64, "height": 64}


def test_every_response_names_the_reference_backend(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--api-auth", "alice:s3cret", auth=("alice", "s3cret"))
    ok = httpx.get(f"{sim.url}/sdapi/v1/sd-models", auth=("alice", "s3cret"))
    assert ok.status_code == 200 and ok.headers[HEADER] == catalog.VERSION
    denied = httpx.get(f"{sim.url}/sdapi/v1/sd-models")
    assert denied.status_code == 401 and denied.headers[HEADER] == catalog.VERSION
    for response in (
        httpx.get(f"{sim.url}/no/such/route"),
        httpx.post(f"{sim.url}/sdapi/v1/txt2img", json={"steps": "abc"}, auth=("alice", "s3cret")),
        httpx.post(
            f"{sim.url}/sdapi/v1/options",
            json={"sd_model_checkpoint": "nope"},
            auth=("alice", "s3cret"),
        ),
    ):
        assert response.status_code in (404, 422, 500)
        assert response.headers[HEADER] == catalog.VERSION


def test_sim_endpoints_take_the_api_credentials(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--api-auth", "alice:s3cret", auth=("alice", "s3cret"))
    calls = (
        ("GET", "/sim/faults", None),
        ("POST", "/sim/faults", {}),
        ("GET", "/sim/stats", None),
        ("GET", "/sim/requests", None),
        ("DELETE", "/sim/requests", None),
    )
    missing_body = {
        "error": "HTTPException",
        "detail": "Not authenticated",
        "body": "",
        "errors": "401: Not authenticated",
    }
    wrong_body = {
        "error": "HTTPException",
        "detail": "Incorrect username or password",
        "body": "",
        "errors": "401: Incorrect username or password",
    }
    for method, path, body in calls:
        url = f"{sim.url}{path}"
        missing = httpx.request(method, url, json=body, timeout=5)
        assert (missing.status_code, missing.json()) == (401, missing_body), path
        wrong = httpx.request(method, url, json=body, auth=("alice", "nope"), timeout=5)
        assert (wrong.status_code, wrong.json()) == (401, wrong_body), path
        assert "www-authenticate" not in wrong.headers
        right = httpx.request(method, url, json=body, auth=("alice", "s3cret"), timeout=5)
        assert right.status_code == 200, path


def test_sim_endpoints_are_open_without_api_auth(sim_url: str) -> None:
    assert httpx.get(f"{sim_url}/sim/stats").status_code == 200
    assert httpx.get(f"{sim_url}/sim/faults").json() == {}


def test_models_flag_limits_the_checkpoints(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--models", "sim-xl-photo,anime_sim-toon-mix")
    api = f"{sim.url}/sdapi/v1"
    models = httpx.get(f"{api}/sd-models").json()
    assert [m["model_name"] for m in models] == ["sim-xl-photo", "anime_sim-toon-mix"]
    assert httpx.get(f"{api}/options").json()["sd_model_checkpoint"] == models[0]["title"]

    def model_in_infotext(**body: object) -> str:
        r = httpx.post(f"{api}/txt2img", json={**SMALL, **body}, timeout=30)
        last = json.loads(r.json()["info"])["infotexts"][0].splitlines()[-1]
        return dict(pair.split(": ", 1) for pair in last.split(", "))["Model"]

    assert model_in_infotext() == "sim-xl-photo"
    # A catalog model this instance does not have is as unknown as a typo, in both places.
    absent = httpx.post(f"{api}/options", json={"sd_model_checkpoint": "sim-v15-base"})
    assert absent.status_code == 500
    assert absent.json() == {
        "error": "RuntimeError",
        "detail": "",
        "body": "",
        "errors": "model 'sim-v15-base' not found",
    }
    assert model_in_infotext(override_settings={"sd_model_checkpoint": "sim-v15-base"}) == (
        "sim-xl-photo"
    )
    assert model_in_infotext(override_settings={"sd_model_checkpoint": "anime_sim-toon-mix"}) == (
        "anime_sim-toon-mix"
    )
    switch = httpx.post(f"{api}/options", json={"sd_model_checkpoint": "anime_sim-toon-mix"})
    assert switch.status_code == 200 and switch.json() is None
    assert httpx.get(f"{api}/options").json()["sd_model_checkpoint"] == models[1]["title"]


def test_models_flag_rejects_an_unknown_name_at_start() -> None:
    src = str(Path(stablenew.__file__).parent.parent)
    path = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "300"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stablenew",
            "webui-sim",
            "--port",
            "0",
            "--models",
            "sim-v15-base,nope",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    message = " ".join(done.stderr.replace("│", " ").split())  # however typer boxes it
    assert "unknown model 'nope'; choose from: sim-v15-base, sim-xl-photo, anime_sim-toon-mix" in (
        message
    )
    assert "Running on local URL" not in done.stdout


# Written by hand, not by json.dumps: odd spacing, key order, a float spelled 0.80, escapes and a
# non-ASCII prompt all have to survive the trip unchanged.
CONTROLNET_BODY = (
    r'{"prompt": "a caf\u00e9 \u2014 \"night\" über", "steps": 2,"width":64, "height": 64,'
    "\n"
    r' "alwayson_scripts": {"ControlNet": {"args": [{"enabled": true, "module": "canny",'
    r' "model": "control_v11p_sd15_canny [d14c016b]", "weight": 0.80, "image": "iVBORw0KGgo=",'
    r' "guidance_start": 0.0, "guidance_end": 1e0, "processor_res": 512,'
    r' "threshold_a": 100, "threshold_b": 200, "control_mode": "Balanced",'
    r' "path": "C:\\models\/cn"}]}}}'
)


def test_requests_log_keeps_raw_bodies(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    r = httpx.post(
        f"{sim.url}/sdapi/v1/txt2img",
        content=CONTROLNET_BODY.encode(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200
    log = httpx.get(f"{sim.url}/sim/requests").json()
    assert log == [{"endpoint": "/sdapi/v1/txt2img", "body": CONTROLNET_BODY}]

    # And whatever an ordinary client serializes: compare with the bytes it put on the wire.
    sent: list[bytes] = []
    unit = json.loads(CONTROLNET_BODY)["alwayson_scripts"]["ControlNet"]["args"][0]
    payload = {**SMALL, "prompt": "über", "alwayson_scripts": {"ControlNet": {"args": [unit]}}}
    with httpx.Client(event_hooks={"request": [lambda req: sent.append(req.read())]}) as client:
        client.post(f"{sim.url}/sdapi/v1/img2img", json={**payload, "init_images": []})
    log = httpx.get(f"{sim.url}/sim/requests").json()
    assert log[-1] == {"endpoint": "/sdapi/v1/img2img", "body": sent[0].decode()}


def test_requests_log_keeps_the_last_50_generation_calls(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    api = f"{sim.url}/sdapi/v1"
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (9, 99, 199)).save(buf, format="PNG")
    pixel = base64.b64encode(buf.getvalue()).decode()
    httpx.post(f"{api}/txt2img", json=SMALL, timeout=30).raise_for_status()
    httpx.post(f"{api}/img2img", json={**SMALL, "init_images": [pixel]}, timeout=30)
    httpx.post(f"{api}/extra-single-image", json={"image": pixel}, timeout=30)
    httpx.post(f"{api}/options", json={"samples_format": "png"}).raise_for_status()
    httpx.get(f"{api}/progress").raise_for_status()
    log = httpx.get(f"{sim.url}/sim/requests").json()
    assert [entry["endpoint"] for entry in log] == [
        "/sdapi/v1/txt2img",
        "/sdapi/v1/img2img",
        "/sdapi/v1/extra-single-image",
    ]
    assert json.loads(log[1]["body"])["init_images"] == [pixel]

    # Rejected bodies were received too; only the newest 50 are kept, newest last.
    for i in range(55):
        bad = httpx.post(f"{api}/txt2img", content=f'{{"steps": "x{i}"}}'.encode())
        assert bad.status_code == 422
    log = httpx.get(f"{sim.url}/sim/requests").json()
    assert len(log) == 50
    assert log[0]["body"] == '{"steps": "x5"}' and log[-1]["body"] == '{"steps": "x54"}'
    assert httpx.delete(f"{sim.url}/sim/requests").json() == {"cleared": 50}
    assert httpx.get(f"{sim.url}/sim/requests").json() == []
