"""Details the reference backend copies from A1111 v1.10.1 (reference §2, §9), over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

SMALL = {"steps": 2, "width": 64, "height": 64}


def get(url: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{url}/sdapi/v1/{path}", timeout=30, **kw)


def post(url: str, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(f"{url}/sdapi/v1/{path}", json=body, timeout=30, **kw)


def test_loras_and_embeddings_in_a1111_shapes(sim_url: str) -> None:
    loras = get(sim_url, "loras").json()
    assert {lora["name"] for lora in loras} >= {"add_detail", "lcm-lora-sdv1-5"}
    for lora in loras:
        assert set(lora) == {"name", "alias", "path", "metadata"} and lora["metadata"] == {}
    embeddings = get(sim_url, "embeddings").json()
    assert set(embeddings) == {"loaded", "skipped"} and embeddings["skipped"] == {}
    assert embeddings["loaded"]["EasyNegative"] == {
        "step": None,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
        "shape": 768,
        "vectors": 1,
    }


def test_loras_and_embeddings_are_behind_api_auth(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--api-auth", "alice:s3cret", auth=("alice", "s3cret"))
    for path in ("loras", "embeddings"):
        assert get(sim.url, path).status_code == 401
        assert get(sim.url, path, auth=("alice", "s3cret")).status_code == 200
