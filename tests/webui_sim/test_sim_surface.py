"""The reference backend's own surface: who it says it is, who may drive it, what it received."""

from __future__ import annotations

import httpx
import pytest

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
