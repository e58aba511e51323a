"""End to end against a real `stablenew serve` and the reference backend: submit every way,
follow to the end through the event stream, cancel during a hang, resume after a restart."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image

from stablenew.queue.store import JobStore
from tests.api.conftest import Server, SseReader, fast_config, small


def png(width: int = 64, height: int = 64) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_submit_four_ways_and_follow_each_to_completed_over_sse(
    serve: Callable[..., Server], sse: Callable[..., SseReader]
) -> None:
    server = serve()
    events = sse(f"{server.url}/api/v1/events", after=0)

    by_spec = server.post("/api/v1/jobs", {"spec": small("by spec")})
    by_prompt = server.post(
        "/api/v1/jobs",
        {"prompt": "by prompt", "steps": 2, "size": "64x64", "images": 2, "seed": 9},
    )
    pack = server.post(
        "/api/v1/jobs",
        {
            "pack": {
                "name": "demo",
                "text": "a __animal__ at dawn\n\na second row\n",
                "sidecar": {"preset_data": {"txt2img": {"steps": 2, "width": 64, "height": 64}}},
                "wildcards": {"animal": "fox\nowl\n"},
            },
            "priority": 1,
        },
    )
    a1111 = server.post(
        "/api/v1/a1111/txt2img",
        {
            "prompt": "by a1111",
            "steps": 2,
            "width": 64,
            "height": 64,
            "batch_size": 2,
            "n_iter": 2,
            "seed": 3,
            "send_images": True,
            "my_extension_flag": 1,
        },
    )
    for answer in (by_spec, by_prompt, pack, a1111):
        assert answer.status_code == 201, answer.text
    assert a1111.json()["warnings"] == [
        "my_extension_flag: not an A1111 txt2img field; kept in the job's metadata"
    ]
    ids = [
        *by_spec.json()["ids"],
        *by_prompt.json()["ids"],
        *pack.json()["ids"],
        *a1111.json()["ids"],
    ]
    assert len(ids) == 5  # the pack has two rows
    for job_id in ids:
        frame = events.finished(job_id)
        assert frame.event == "job_completed" and frame.data["status"] == "COMPLETED"
        assert isinstance(frame.id, int)
    jobs = {job_id: server.job(job_id) for job_id in ids}
    assert all(j["status"] == "COMPLETED" for j in jobs.values())
    a1111_job = jobs[ids[-1]]
    assert a1111_job["spec"]["images"] == 4 and len(a1111_job["result"]["images"]) == 4
    assert a1111_job["spec"]["metadata"]["a1111"]["request"]["my_extension_flag"] == 1
    assert jobs[ids[1]]["spec"]["images"] == 2
    prompts = {jobs[i]["spec"]["prompt"] for i in ids[2:4]}
    assert prompts == {"a fox at dawn", "a second row"} or prompts == {
        "a owl at dawn",
        "a second row",
    }
    # the job's files, by name, from its run folder
    names = server.get(f"/api/v1/jobs/{ids[0]}/files").json()
    image = next(n for n in names if n.endswith(".png"))
    got = server.get(f"/api/v1/jobs/{ids[0]}/files/{image}")
    assert got.status_code == 200 and got.content.startswith(b"\x89PNG")
    assert got.content == Path(jobs[ids[0]]["result"]["images"][0]).read_bytes()
    # events carry the store's seq, in order, each once
    seqs = [f.id for f in events.lifecycle()]
    assert seqs == sorted(set(seqs))


def test_img2img_through_the_a1111_door(serve: Callable[..., Server]) -> None:
    server = serve()
    answer = server.post(
        "/api/v1/a1111/img2img",
        {
            "prompt": "repaint",
            "init_images": ["data:image/png;base64," + png(80, 48)],
            "steps": 2,
            "width": 64,
            "height": 64,
            "denoising_strength": 0.4,
        },
    )
    assert answer.status_code == 201, answer.text
    (job_id,) = answer.json()["ids"]
    job = server.wait_status(job_id, "COMPLETED")
    assert job["spec"]["img2img"]["enabled"] and job["spec"]["img2img"]["denoising_strength"] == 0.4
    with Image.open(job["result"]["images"][0]) as made:
        assert made.size == (64, 64)  # resized as A1111 resizes init images


def test_a_variation_batch_through_the_a1111_door_makes_a1111s_images(
    serve: Callable[..., Server],
) -> None:
    """With a variation strength A1111 keeps the seed and counts the variation seed up; the
    door counted the seed up instead, so every image differed from A1111's own."""
    server = serve()
    body = {
        "prompt": "variation test",
        "steps": 3,
        "width": 64,
        "height": 64,
        "batch_size": 2,
        "n_iter": 2,
        "seed": 1234,
        "subseed": 99,
        "subseed_strength": 0.3,
        "sampler_name": "Euler a",
    }
    direct = httpx.post(f"{server.backend_url()}/sdapi/v1/txt2img", json=body, timeout=60).json()
    info = json.loads(direct["info"])
    assert info["all_seeds"] == [1234] * 4 and info["all_subseeds"] == [99, 100, 101, 102]
    answer = server.post("/api/v1/a1111/txt2img", body)
    assert answer.status_code == 201, answer.text
    (job_id,) = answer.json()["ids"]
    job = server.wait_status(job_id, "COMPLETED")
    ours = [Image.open(path) for path in job["result"]["images"]]
    theirs = [Image.open(io.BytesIO(base64.b64decode(b))) for b in direct["images"]]
    assert [i.text["parameters"] for i in ours] == [i.text["parameters"] for i in theirs]
    assert [i.tobytes() for i in ours] == [i.tobytes() for i in theirs]


def test_a_bad_submit_is_422_with_the_messages_and_queues_nothing(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    bad_spec = server.post("/api/v1/jobs", {"specs": [small(), small(steps=900)]})
    assert bad_spec.status_code == 422
    assert any("steps" in m for m in bad_spec.json()["detail"])
    bad_pack = server.post(
        "/api/v1/jobs", {"pack": {"name": "broken", "text": "ok row\n\na __missing__ row\n"}}
    )
    assert bad_pack.status_code == 422
    message = " ".join(bad_pack.json()["detail"])
    assert "broken.txt" in message and "__missing__" in message and "/tmp" not in message
    unknown_sampler = server.post("/api/v1/jobs", {"prompt": "x", "sampler": "No Such Sampler"})
    assert unknown_sampler.status_code == 422
    assert server.get("/api/v1/jobs").json()["total"] == 0
    assert server.get("/api/v1/jobs/nope").status_code == 404
    assert server.get("/api/v1/jobs/nope").json()["detail"]


def test_cancel_during_a_hang_ends_cancelled_in_bounded_time(
    serve: Callable[..., Server], sse: Callable[..., SseReader]
) -> None:
    server = serve()
    server.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": "ignore_interrupt"}})
    events = sse(f"{server.url}/api/v1/events", after=0)
    (job_id,) = server.post("/api/v1/jobs", {"spec": small("hangs")}).json()["ids"]
    events.wait(lambda f: f.event == "stage_started" and f.data["job_id"] == job_id)
    asked = time.monotonic()
    answer = server.post(f"/api/v1/jobs/{job_id}/cancel", {})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in ("RUNNING", "CANCELLED") and answer.json()["id"] == job_id
    frame = events.finished(job_id, timeout=30)
    assert frame.event == "job_cancelled"
    assert time.monotonic() - asked < 15  # cancel_grace is 1 s; generous for a busy machine
    again = server.post(f"/api/v1/jobs/{job_id}/cancel", {})
    assert again.status_code == 409 and again.json()["status"] == "CANCELLED"
    # the stuck backend is restarted before the next job, which completes
    (next_id,) = server.post("/api/v1/jobs", {"spec": small("after")}).json()["ids"]
    ended = events.finished(next_id)
    assert ended.event == "job_completed", server.get(f"/api/v1/jobs/{next_id}").json()["error"]


def test_a_restarted_server_resumes_the_job_it_was_running(
    serve: Callable[..., Server], sse: Callable[..., SseReader], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    server = serve(home=home, config=fast_config("--step-ms", "20"))  # 0.4 s an image
    events = sse(f"{server.url}/api/v1/events", after=0)
    spec = small("resumes", images=12, steps=20)
    (job_id,) = server.post("/api/v1/jobs", {"spec": spec}).json()["ids"]
    events.wait(
        lambda f: (
            f.event == "stage_finished"
            and f.data["job_id"] == job_id
            and f.data["image_index"] == 2
        )
    )
    assert server.stop() == 0  # SIGTERM: the running job goes back to the queue
    events.close()
    store = JobStore(home / "jobs.db")
    try:
        assert store.get(job_id).status.value == "QUEUED"
    finally:
        store.close()
    again = serve(home=home)
    job = again.wait_status(job_id, "COMPLETED", timeout=120)
    assert len(job["result"]["images"]) == 12
    trail = again.get(f"/api/v1/jobs/{job_id}/events").json()
    made = [
        e["image_index"]
        for e in trail
        if e["kind"] == "stage_finished" and not e["fields"].get("resumed")
    ]
    counts = {i: made.count(i) for i in range(1, 13)}
    assert counts[1] == counts[2] == 1  # a finished image is never made again
    assert all(c in (1, 2) for c in counts.values()) and sum(c == 2 for c in counts.values()) <= 1
    assert [e["kind"] for e in trail].count("job_started") == 2
