"""What the API gained for the web UI (and any other client): checking a submit without queueing
it, input images as base64 in JSON, a PNG's or a preset's settings, the spec's defaults, the
log's end, the pool, embeddings, thumbnails, the session; the CSP and its companions on every
answer; the login page for a browser off loopback; Last-Event-ID beating `?after=`."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from stablenew.api.app import create_app
from stablenew.api.security import Security
from stablenew.app.services import Services
from stablenew.jobs.spec import JobSpec
from tests.api.conftest import Server, SseReader


def png(color: tuple[int, int, int] = (1, 2, 3), parameters: str | None = None) -> bytes:
    buffer = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    Image.new("RGB", (72, 48), color).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_check_says_what_a_submit_would_do_and_queues_nothing(local_app: TestClient) -> None:
    good = {"spec": {"prompt": "a fox", "images": 3, "steps": 2}}
    answer = local_app.post("/api/v1/jobs/check", json=good)
    assert answer.status_code == 200 and answer.json() == {"jobs": 1, "images": 3, "warnings": []}
    many = local_app.post("/api/v1/jobs/check", json={"specs": [good["spec"]] * 2})
    assert many.json()["jobs"] == 2 and many.json()["images"] == 6
    bad = {"spec": {"prompt": "", "steps": 0, "width": 65}}
    checked = local_app.post("/api/v1/jobs/check", json=bad)
    submitted = local_app.post("/api/v1/jobs", json=bad)
    assert checked.status_code == submitted.status_code == 422
    assert checked.json() == submitted.json()  # the same words
    assert local_app.post("/api/v1/jobs/check", json={}).status_code == 422
    pack = {
        "pack": {
            "name": "p",
            "text": "a __animal__\n\nsecond row\n",
            "wildcards": {"animal": "fox"},
        }
    }
    assert local_app.post("/api/v1/jobs/check", json=pack).json()["jobs"] == 2
    assert local_app.get("/api/v1/jobs").json()["total"] == 0  # nothing queued, ever


def test_input_images_as_base64_in_json(local_app: TestClient, local_services: Services) -> None:
    data = png(parameters="a red square\nSteps: 5, Seed: 9")
    answer = local_app.post("/api/v1/inputs", json={"name": "../../red.png", "data": b64(data)})
    assert answer.status_code == 201, answer.text
    image = answer.json()
    assert image == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "name": "red.png",  # a name, never a path
        "size": [72, 48],
        "infotext": "a red square\nSteps: 5, Seed: 9",
    }
    uri = local_app.post(
        "/api/v1/inputs", json={"name": "red.png", "data": "data:image/png;base64," + b64(data)}
    )
    assert uri.json()["sha256"] == image["sha256"]  # the same image, kept once
    back = local_app.get(f"/api/v1/inputs/{image['sha256']}")
    assert back.status_code == 200 and back.content == data
    assert back.headers["content-type"] == "image/png"
    assert local_app.get("/api/v1/inputs/../jobs.db").status_code in (400, 404)
    assert local_app.get("/api/v1/inputs/" + "0" * 64).status_code == 404
    assert local_app.get("/api/v1/inputs/abc").status_code == 400
    not_b64 = local_app.post("/api/v1/inputs", json={"name": "x.png", "data": "%%%"})
    assert not_b64.status_code == 422 and "x.png is not base64" in not_b64.json()["detail"][0]
    not_image = local_app.post("/api/v1/inputs", json={"name": "notes.png", "data": b64(b"hi")})
    assert not_image.status_code == 422
    assert not_image.json()["detail"][0].startswith("notes.png: not an image")
    assert "BytesIO" not in not_image.json()["detail"][0]  # no Python internals in the words
    # A job that starts from it
    spec = {"inputs": [image], "images": 1, "upscale": {"enabled": True}}
    assert local_app.post("/api/v1/jobs", json={"spec": spec}).status_code == 201
    # Hires fix on a job from images would be dropped without a word: refused, as by the CLI
    hires = {**spec, "txt2img": {"enable_hr": True, "hr_scale": 2.0}}
    for path in ("/api/v1/jobs/check", "/api/v1/jobs"):
        refused = local_app.post(path, json={"spec": hires})
        assert refused.status_code == 422, refused.text
        assert "hires fix needs txt2img" in refused.json()["detail"][0]


def test_a_pngs_settings_and_a_presets_fields(local_app: TestClient) -> None:
    infotext = (
        "a lighthouse\nNegative prompt: blurry\nSteps: 12, Sampler: DPM++ 2M, Schedule type: "
        "Karras, CFG scale: 5.5, Seed: 1234, Size: 640x448, Model: sim-xl-photo"
    )
    answer = local_app.post(
        "/api/v1/import/png", json={"name": "a.png", "data": b64(png(parameters=infotext))}
    )
    assert answer.status_code == 200, answer.text
    imported = answer.json()
    assert imported["source"] == "infotext"
    spec = imported["spec"]
    assert (spec["prompt"], spec["negative_prompt"], spec["steps"], spec["seed"]) == (
        "a lighthouse",
        "blurry",
        12,
        1234,
    )
    assert (spec["width"], spec["height"], spec["cfg_scale"]) == (640, 448, 5.5)
    bare = local_app.post("/api/v1/import/png", json={"name": "bare.png", "data": b64(png())})
    assert bare.status_code == 422 and "bare.png" in bare.json()["detail"][0]

    preset = {"txt2img": {"steps": 7, "cfg_scale": 4.5, "sampler_name": "DDIM"}}
    fields = local_app.post("/api/v1/import/preset", json={"name": "fast", "sidecar": preset})
    assert fields.status_code == 200, fields.text
    assert fields.json()["name"] == "fast"
    assert (
        fields.json()["fields"] | {"steps": 7, "cfg_scale": 4.5, "sampler": "DDIM"}
        == fields.json()["fields"]
    )
    empty = local_app.post("/api/v1/import/preset", json={"name": "none", "sidecar": {"x": 1}})
    assert empty.status_code == 422 and "none.json" in empty.json()["detail"][0]
    assert "/tmp" not in empty.json()["detail"][0]  # the upload's name, not a temp folder


def test_defaults_the_logs_end_the_session(local_app: TestClient) -> None:
    defaults = local_app.get("/api/v1/spec/defaults").json()
    assert defaults == JobSpec.model_construct().model_dump(mode="json")
    assert defaults["steps"] == 20 and defaults["prompt"] == ""
    for n in range(3):
        local_app.post("/api/v1/jobs", json={"spec": {"prompt": f"job {n}"}})
    recent = local_app.get("/api/v1/events/recent?limit=2").json()
    seqs = [e["seq"] for e in recent["events"]]
    assert seqs == sorted(seqs) and len(seqs) == 2 and recent["last_seq"] == seqs[-1]
    everything = local_app.get("/api/v1/events/recent?limit=5000").json()
    assert [e["seq"] for e in everything["events"]][-2:] == seqs
    assert local_app.get("/api/v1/session").json()["token_required"] is False
    words = local_app.get("/api/v1/failure-reasons").json()
    assert words["out_of_memory"] == "the backend ran out of memory"


def test_every_answer_carries_the_policy(local_app: TestClient) -> None:
    for answer in (
        local_app.get("/"),
        local_app.get("/web/js/main.js"),
        local_app.get("/api/v1/queue"),
        local_app.get("/nope"),
        local_app.post("/api/v1/jobs", content=b"x"),  # refused by the guard (415)
        local_app.get("/", headers={"Host": "evil.example"}),  # refused (403)
    ):
        policy = answer.headers["content-security-policy"]
        assert policy.startswith("default-src 'none'") and "'unsafe-inline'" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
    page = local_app.get("/")
    assert page.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/web/js/main.js">' in page.text
    big = local_app.get("/web/js/compose.js", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"


@pytest.fixture
def lan_app(local_services: Services) -> Iterator[TestClient]:
    app = create_app(local_services, Security.for_bind("0.0.0.0", "lan-token"))
    with TestClient(app, base_url="http://192.168.1.20:7870", follow_redirects=False) as client:
        yield client


def test_off_loopback_a_browser_is_sent_to_the_login_page(lan_app: TestClient) -> None:
    page = lan_app.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert lan_app.get("/").status_code == 401  # a script: the API's answer
    api_call = lan_app.get("/api/v1/queue", headers={"Accept": "text/html"})
    assert api_call.status_code == 401
    for open_path in ("/login", "/web/login.js", "/web/app.css", "/web/icon.svg"):
        assert lan_app.get(open_path).status_code == 200, open_path
    assert lan_app.get("/web/js/main.js").status_code == 401
    assert lan_app.post("/api/v1/login", json={"token": "lan-token"}).status_code == 200
    assert lan_app.get("/").status_code == 200  # the cookie
    assert lan_app.get("/api/v1/session").json()["token_required"] is True


def test_last_event_id_beats_after_and_the_pool_and_thumbnails(
    serve: Callable[..., Server], sse: Callable[..., SseReader]
) -> None:
    server = serve()
    job = server.post(
        "/api/v1/jobs",
        {"spec": {"prompt": "thumbs", "steps": 2, "width": 64, "height": 64, "images": 2}},
    ).json()["ids"][0]
    done = server.wait_status(job, "COMPLETED")
    last = server.get("/api/v1/events/recent").json()["last_seq"]
    # A browser's EventSource reconnects to its first URL (?after=0) with Last-Event-ID
    stream = sse(f"{server.url}/api/v1/events", {"Last-Event-ID": str(last - 2)}, after=0)
    stream.wait(lambda f: f.id == last)
    assert [f.id for f in stream.lifecycle()] == [last - 1, last]
    pool = server.get("/api/v1/backends").json()
    assert [b["name"] for b in pool] == ["default"] and pool[0]["state"] == "READY"
    embeddings = server.get("/api/v1/backend/embeddings").json()
    assert embeddings["loaded"]
    name = done["result"]["images"][1].rsplit("/", 1)[1]
    thumb = httpx.get(f"{server.url}/api/v1/jobs/{job}/thumbs/{name}?size=128", timeout=10)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 64)  # never made larger
    assert httpx.get(f"{server.url}/api/v1/jobs/{job}/thumbs/{name}?size=100").status_code == 422
    assert httpx.get(f"{server.url}/api/v1/jobs/{job}/thumbs/../jobs.db").status_code in (400, 404)
    assert httpx.get(f"{server.url}/api/v1/jobs/{job}/thumbs/events.jsonl").status_code == 415
