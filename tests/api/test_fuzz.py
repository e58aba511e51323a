"""Hypothesis against the API's inputs: whatever a client sends, the answer is never a 500
(a bad body is a 422 that names the field, a bad id a 404, a wrong state a 409)."""

from __future__ import annotations

import urllib.parse
from typing import Any

import hypothesis.strategies as st
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
SUBMIT_KEYS = [
    "spec",
    "specs",
    "prompt",
    "pack",
    "priority",
    "stages",
    "images",
    "seed",
    "size",
    "steps",
    "cfg",
    "sampler",
    "hires",
    "denoise",
]
SPEC_KEYS = ["prompt", "steps", "width", "height", "images", "seed", "inputs", "txt2img", "upscale"]
A1111_KEYS = [
    "prompt",
    "steps",
    "width",
    "height",
    "batch_size",
    "n_iter",
    "seed",
    "sampler_name",
    "override_settings",
    "alwayson_scripts",
    "enable_hr",
    "hr_scale",
    "init_images",
    "mask",
    "resize_mode",
    "denoising_strength",
    "checkpoint",
    "callback_url",
]


def bodies(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), values, max_size=6)


spec_like = bodies(SPEC_KEYS).map(lambda d: {"prompt": "p", **d})
submit_bodies = (
    bodies(SUBMIT_KEYS)
    | spec_like.map(lambda s: {"spec": s})
    | st.lists(spec_like, max_size=3).map(lambda s: {"specs": s})
    | bodies(["name", "text", "sidecar", "wildcards"]).map(lambda p: {"pack": p})
)
ids = st.text(max_size=40).map(lambda t: urllib.parse.quote(t, safe=""))


def ok(answer: Any) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:500])


@FUZZ
@given(body=submit_bodies | values)
def test_submit_never_500s(local_app: TestClient, body: Any) -> None:
    ok(local_app.post("/api/v1/jobs", json=body))


@FUZZ
@given(body=bodies(A1111_KEYS) | values, door=st.sampled_from(["a1111", "agent"]))
def test_the_a1111_doors_never_500(local_app: TestClient, body: Any, door: str) -> None:
    for endpoint in ("txt2img", "img2img"):
        path = (
            f"/api/v1/a1111/{endpoint}"
            if door == "a1111"
            else f"/agent-scheduler/v1/queue/{endpoint}"
        )
        ok(local_app.post(path, json=body))


@FUZZ
@given(raw=st.binary(max_size=200) | st.sampled_from([b'{"prompt": NaN}', b"[Infinity]", b"{"]))
def test_bytes_that_are_not_json_never_500(local_app: TestClient, raw: bytes) -> None:
    for path in ("/api/v1/jobs", "/api/v1/a1111/txt2img", "/api/v1/queue/pause"):
        ok(local_app.post(path, content=raw, headers={"Content-Type": "application/json"}))


@settings(FUZZ, max_examples=50)  # fourteen requests an example
@given(job_id=ids, name=ids, body=values)
def test_job_routes_with_any_id_never_500(
    local_app: TestClient, job_id: str, name: str, body: Any
) -> None:
    base = f"/api/v1/jobs/{job_id}"
    ok(local_app.get(base))
    ok(local_app.get(f"{base}/preview"))
    ok(local_app.get(f"{base}/events"))
    ok(local_app.get(f"{base}/files"))
    ok(local_app.get(f"{base}/files/{name}"))
    ok(local_app.post(f"{base}/cancel", json=body))
    ok(local_app.post(f"{base}/retry", json=body))
    ok(local_app.post(f"{base}/move", json=body))
    ok(local_app.put(f"{base}/spec", json=body))
    ok(local_app.delete(base))
    scheduler = f"/agent-scheduler/v1/task/{job_id}"
    ok(local_app.get(scheduler))
    ok(local_app.get(f"{scheduler}/results"))
    ok(local_app.put(scheduler, json=body))
    ok(local_app.post(f"{scheduler}/move/{name}", json={}))


@FUZZ
@given(
    status=st.lists(st.text(max_size=12), max_size=3),
    limit=st.integers(min_value=-5, max_value=5000) | st.text(max_size=5),
    cursor=st.text(max_size=20),
    search=st.text(max_size=20),
    history=st.sampled_from(["true", "false", "maybe"]),
)
def test_listing_with_any_query_never_500s(
    local_app: TestClient, status: list[str], limit: Any, cursor: str, search: str, history: str
) -> None:
    params = {"status": status, "limit": limit, "cursor": cursor, "search": search}
    ok(local_app.get("/api/v1/jobs", params={**params, "history": history}))
    ok(local_app.get("/agent-scheduler/v1/history", params={"status": search, "limit": limit}))
    ok(local_app.get("/agent-scheduler/v1/queue", params={"limit": limit, "offset": limit}))


@FUZZ
@given(content=st.text(max_size=200) | values.map(lambda v: __import__("json").dumps(v)))
def test_import_and_queue_bodies_never_500(local_app: TestClient, content: str) -> None:
    ok(local_app.post("/agent-scheduler/v1/import", json={"content": content}))
    ok(local_app.post("/api/v1/queue/pause", json={"reason": content}))
    ok(local_app.post("/api/v1/jobs/remove", json={"statuses": [content]}))
    ok(local_app.post("/api/v1/login", json={"token": content}))


NOT_JSON = [
    b'{"prompt": "x", "steps": 1e400}',
    b'{"prompt": "x", "seed": NaN}',
    b'{"prompt": "x", "n_iter": Infinity}',
    b'{"prompt": "x", "batch_size": -Infinity}',
    b'{"prompt": "fz \\ud800"}',
    b'{"pack": {"name": "p", "text": "a \\udfff"}}',
]


def test_what_python_reads_but_json_does_not_have_is_a_422_on_every_door(
    local_app: TestClient,
) -> None:
    """Found by a tester: these were 500s (OverflowError, ValueError, UnicodeEncodeError)."""
    doors = ["/api/v1/jobs", "/api/v1/a1111/txt2img", "/agent-scheduler/v1/queue/txt2img"]
    for raw in NOT_JSON:
        for door in doors:
            answer = local_app.post(door, content=raw, headers={"Content-Type": "application/json"})
            assert answer.status_code == 422, (door, raw, answer.text)
            (message,) = answer.json()["detail"]
            assert message.startswith("body: not valid JSON at character "), message
    assert local_app.get("/api/v1/jobs").json()["total"] == 0  # nothing was queued


def test_a_stream_resumed_past_the_end_of_the_log_replays_it_from_the_start(
    local_app: TestClient,
) -> None:
    """An id from a database since replaced, or a huge one (it was an OverflowError)."""
    local_app.post("/api/v1/queue/pause", json={"reason": "one event"})
    for resume in ({"Last-Event-ID": "99999999999999999999999"}, {"Last-Event-ID": "5000"}):
        with local_app.stream("GET", "/api/v1/events", headers=resume) as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    assert line == "event: queue_paused"
                    break
