"""The API's routes in process (no runner): the contract's shapes, pagination, the queue,
agent-scheduler's shapes, the offline docs, metrics."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from stablenew.app.services import Services


def submit(client: TestClient, n: int = 1, **extra: object) -> list[str]:
    specs = [{"prompt": f"job {i}", "steps": 2, **extra} for i in range(n)]
    answer = client.post("/api/v1/jobs", json={"specs": specs})
    assert answer.status_code == 201, answer.text
    return answer.json()["ids"]  # type: ignore[no-any-return]


def test_the_job_object_is_the_cli_one(local_app: TestClient, local_services: Services) -> None:
    from stablenew.app.views import job_record

    (job_id,) = submit(local_app)
    served = local_app.get(f"/api/v1/jobs/{job_id}").json()
    assert served == job_record(local_services.jobs.get_job(job_id))
    assert served["status"] == "QUEUED" and served["created_at"].endswith("Z")
    assert local_app.get(f"/api/v1/jobs/{job_id[:8]}").json()["id"] == job_id  # a prefix too
    missing = local_app.get("/api/v1/jobs/0000")
    assert missing.status_code == 404 and missing.json()["detail"]


def test_exactly_one_way_to_submit(local_app: TestClient) -> None:
    for body in (
        {},
        {"prompt": "a", "spec": {"prompt": "b"}},
        {"spec": {"prompt": "b"}, "steps": 3},
    ):
        answer = local_app.post("/api/v1/jobs", json=body)
        assert answer.status_code == 422, body
        assert isinstance(answer.json()["detail"], list)
    prompt = local_app.post(
        "/api/v1/jobs",
        json={"prompt": "a fox", "stages": ["txt2img", "upscale"], "size": [768, 512], "cfg": 5},
    )
    assert prompt.status_code == 201
    job = local_app.get(f"/api/v1/jobs/{prompt.json()['ids'][0]}").json()
    assert job["spec"]["upscale"]["enabled"] and job["spec"]["width"] == 768
    assert job["spec"]["cfg_scale"] == 5
    typo = local_app.post("/api/v1/jobs", json={"prompt": "a", "stepz": 3})
    assert typo.status_code == 422 and "stepz" in " ".join(typo.json()["detail"])


def test_a_prompt_takes_the_clis_pin(local_app: TestClient) -> None:
    """Found by a tester: a prompt's `on` (the CLI's --on) and `backend` (JobSpec's name) were
    both refused with 422 "Extra inputs are not permitted"."""
    for key in ("on", "backend"):
        answer = local_app.post("/api/v1/jobs", json={"prompt": "pinned", key: "default"})
        assert answer.status_code == 201, answer.text
        job = local_app.get(f"/api/v1/jobs/{answer.json()['ids'][0]}").json()
        assert job["spec"]["backend"] == "default"
    nowhere = local_app.post("/api/v1/jobs", json={"prompt": "pinned", "on": "gpu9"})
    assert nowhere.status_code == 422 and "gpu9" in str(nowhere.json()["detail"]), nowhere.text
    both = local_app.post(
        "/api/v1/jobs", json={"prompt": "pinned", "on": "default", "backend": "gpu9"}
    )
    assert both.status_code == 422 and "on" in str(both.json()["detail"]), both.text


def test_cursor_pagination_walks_every_job_once(local_app: TestClient) -> None:
    ids = submit(local_app, 7)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"status": ["QUEUED", "RUNNING"], "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = local_app.get("/api/v1/jobs", params=params).json()
        assert page["total"] == 7
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # run order is submit order here
    assert local_app.get("/api/v1/jobs", params={"status": "NOPE"}).status_code == 422
    assert local_app.get("/api/v1/jobs", params={"cursor": "!!"}).status_code == 422
    assert local_app.get("/api/v1/jobs", params={"search": "job 3"}).json()["total"] == 1


def test_pages_neither_skip_nor_repeat_jobs_that_others_cancel_or_add(
    local_app: TestClient,
) -> None:
    """The cursor was an offset: cancelling 5 jobs of page 1 made page 2 skip 5 others."""
    ids = submit(local_app, 30)

    def page(cursor: str | None, **more: object) -> dict[str, Any]:
        params: dict[str, object] = {"status": "QUEUED", "limit": 10, **more}
        return local_app.get("/api/v1/jobs", params={**params, "cursor": cursor or ""}).json()

    first = page(None)
    assert [j["id"] for j in first["jobs"]] == ids[:10]
    for job_id in ids[:5]:  # a user, or the runner, takes some of what page 1 showed
        local_app.post(f"/api/v1/jobs/{job_id}/cancel", json={})
    urgent = [
        local_app.post("/api/v1/jobs", json={"prompt": f"urgent {n}", "priority": 5}).json()
        for n in range(3)
    ]
    assert all(u["ids"] for u in urgent)
    second = page(first["next_cursor"])
    assert [j["id"] for j in second["jobs"]] == ids[10:20]
    local_app.post(f"/api/v1/jobs/{ids[29]}/move", json={"to": "front"})
    third = page(second["next_cursor"])
    assert [j["id"] for j in third["jobs"]] == ids[20:29] and third["next_cursor"] is None
    # The history pages the same way, newest first.
    history = local_app.get("/api/v1/jobs", params={"history": "true", "limit": 2}).json()
    assert [j["id"] for j in history["jobs"]] == ids[4:2:-1]
    rest = local_app.get(
        "/api/v1/jobs", params={"history": "true", "limit": 10, "cursor": history["next_cursor"]}
    ).json()
    assert [j["id"] for j in rest["jobs"]] == ids[2::-1] and rest["next_cursor"] is None
    assert local_app.get("/api/v1/jobs", params={"cursor": "WzFd"}).status_code == 422  # [1]


def test_cancel_retry_move_remove(local_app: TestClient) -> None:
    a, b, c = submit(local_app, 3)
    cancelled = local_app.post(f"/api/v1/jobs/{a}/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    again = local_app.post(f"/api/v1/jobs/{a}/cancel", json={})
    assert again.status_code == 409 and again.json()["id"] == a
    retried = local_app.post(f"/api/v1/jobs/{a}/retry", json={})
    assert retried.status_code == 201
    (d,) = retried.json()["ids"]
    assert local_app.get(f"/api/v1/jobs/{d}").json()["retried_from"] == a
    assert local_app.post(f"/api/v1/jobs/{b}/retry", json={}).status_code == 409  # queued
    order = lambda: [  # noqa: E731
        j["id"] for j in local_app.get("/api/v1/jobs", params={"status": "QUEUED"}).json()["jobs"]
    ]
    assert order() == [b, c, d]
    assert local_app.post(f"/api/v1/jobs/{d}/move", json={"to": "front"}).status_code == 200
    assert order() == [d, b, c]
    assert local_app.post(f"/api/v1/jobs/{d}/move", json={"position": 1}).status_code == 200
    assert order() == [b, d, c]
    assert local_app.post(f"/api/v1/jobs/{d}/move", json={"position": 99}).status_code == 200
    assert order() == [b, c, d]
    assert local_app.post(f"/api/v1/jobs/{d}/move", json={}).status_code == 422
    assert local_app.post(f"/api/v1/jobs/{a}/move", json={"to": "up"}).status_code == 409
    assert local_app.delete(f"/api/v1/jobs/{a}").json() == {"count": 1}
    assert local_app.delete(f"/api/v1/jobs/{a}").status_code == 404
    edited = local_app.put(f"/api/v1/jobs/{b}/spec", json={"spec": {"prompt": "edited"}})
    assert edited.status_code == 200 and edited.json()["spec"]["prompt"] == "edited"
    assert local_app.post("/api/v1/jobs/cancel-pending", json={}).json() == {"count": 3}
    assert local_app.post("/api/v1/jobs/clear-finished", json={}).json() == {"count": 3}
    assert local_app.get("/api/v1/jobs").json()["total"] == 0


def test_queue_pause_resume_and_state(local_app: TestClient) -> None:
    submit(local_app, 2)
    paused = local_app.post("/api/v1/queue/pause", json={"reason": "lunch"}).json()
    assert paused["paused"] and paused["reason"] == "lunch" and paused["depth"] == 2
    assert local_app.post("/api/v1/queue/resume", json={}).json()["paused"] is False
    state = local_app.get("/api/v1/queue").json()
    assert state["running"] is None and state["finished"]["COMPLETED"] == 0


def test_preview_is_404_until_there_is_one(local_app: TestClient, local_services: Services) -> None:
    (job_id,) = submit(local_app)
    assert local_app.get(f"/api/v1/jobs/{job_id}/preview").status_code == 404
    local_services.previews.put(job_id, b"\x89PNG preview")
    got = local_app.get(f"/api/v1/jobs/{job_id}/preview")
    assert got.status_code == 200 and got.content == b"\x89PNG preview"
    assert got.headers["content-type"] == "image/png" and got.headers["x-preview-number"] == "1"


def test_agent_scheduler_shapes(local_app: TestClient) -> None:
    base = "/agent-scheduler/v1"
    task = local_app.post(f"{base}/queue/txt2img", json={"prompt": "t", "checkpoint": "m1"})
    assert task.status_code == 200 and set(task.json()) == {"task_id"}
    task_id = task.json()["task_id"]
    second = local_app.post(f"{base}/queue/txt2img", json={"prompt": "u"}).json()["task_id"]
    queue = local_app.get(f"{base}/queue").json()
    assert set(queue) == {"current_task_id", "pending_tasks", "total_pending_tasks", "paused"}
    assert queue["total_pending_tasks"] == 2 and queue["current_task_id"] is None
    first = queue["pending_tasks"][0]
    assert first["id"] == task_id and first["status"] == "pending" and first["position"] == 0
    assert first["type"] == "txt2img" and first["params"]["checkpoint"] == "m1"
    assert isinstance(first["created_at"], int)  # epoch milliseconds in lists
    one = local_app.get(f"{base}/task/{task_id}").json()
    assert one["success"] and one["data"]["position"] == 0
    assert local_app.get(f"{base}/task/nope").json() == {
        "success": False,
        "message": "Task not found",
    }
    assert local_app.get(f"{base}/task/{second}/position").json()["data"] == {
        "status": "pending",
        "position": 1,
    }
    moved = local_app.post(f"{base}/task/{second}/move/top", json={})
    assert moved.json()["success"]
    assert local_app.get(f"{base}/task/{second}/position").json()["data"]["position"] == 0
    assert local_app.post(f"{base}/queue/pause", json={}).json()["success"]
    assert local_app.get(f"{base}/queue").json()["paused"] is True
    assert local_app.post(f"{base}/resume", json={}).json()["success"]  # the old spelling
    results = local_app.get(f"{base}/task/{task_id}/results").json()
    assert results == {"success": False, "message": "Task is pending"}
    updated = local_app.put(f"{base}/task/{task_id}", json={"params": {"steps": 7}})
    assert updated.json()["success"]
    assert local_app.get(f"/api/v1/jobs/{task_id}").json()["spec"]["steps"] == 7
    exported = local_app.get(f"{base}/export").json()
    assert len(exported) == 2
    imported = local_app.post(
        f"{base}/import", json={"content": __import__("json").dumps(exported)}
    ).json()
    assert imported["success"]
    assert local_app.delete(f"{base}/task/{task_id}").json()["message"] == "Task deleted"
    assert local_app.get(f"{base}/history", params={"status": "all"}).json() == {
        "tasks": [],
        "total": 0,
    }
    assert local_app.post(f"{base}/queue/clear", json={}).json()["success"]
    assert local_app.get(f"{base}/queue").json()["total_pending_tasks"] == 0


def test_docs_work_offline(local_app: TestClient) -> None:
    page = local_app.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
    assert urls and all(u.startswith("/static/") for u in urls), urls
    assert "cdn" not in page.text and "https://" not in page.text
    for url in urls:
        assert local_app.get(url).status_code == 200, url
    spec = local_app.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/events",
        "/api/v1/a1111/txt2img",
        "/api/v1/a1111/img2img",
        "/agent-scheduler/v1/queue/txt2img",
        "/metrics",
    ):
        assert path in paths, path
    assert "JobSpec" in spec["components"]["schemas"]
    assert local_app.get("/login").status_code == 200


def test_metrics_in_prometheus_text(local_app: TestClient) -> None:
    submit(local_app, 3)
    text = local_app.get("/metrics").text
    assert 'stablenew_jobs{status="QUEUED"} 3.0' in text
    assert "stablenew_queue_depth 3.0" in text
    assert 'stablenew_backend_state{backend="default",state="STOPPED"} 1.0' in text
    for name in (
        "stablenew_stage_duration_seconds",
        "stablenew_recoveries",
        "stablenew_backend_restarts",
        "stablenew_webhook_attempts",
        "stablenew_webhook_outbox",
        "stablenew_event_stream_clients",
    ):
        assert f"# TYPE {name}" in text, name


def test_an_imported_img2img_task_keeps_its_init_image(
    local_app: TestClient, local_services: Services
) -> None:
    """Found reading the code: agent-scheduler's /import queued img2img tasks whose init
    images were never kept, so the jobs failed when they started."""
    import base64
    import io
    import json

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "teal").save(buffer, format="PNG")
    task = {
        "type": "img2img",
        "params": {
            "prompt": "again",
            "init_images": [base64.b64encode(buffer.getvalue()).decode()],
        },
    }
    answer = local_app.post("/agent-scheduler/v1/import", json={"content": json.dumps([task])})
    assert answer.json()["success"], answer.text
    (job,) = local_services.jobs.pending()
    (image,) = job.spec.inputs
    assert local_services.jobs.inputs is not None and local_services.jobs.inputs.has(image.sha256)


def test_the_submit_body_takes_every_override_the_cli_takes() -> None:
    """The overrides are declared once (app.intents.Overrides); a field the body lacked would
    break every prompt submitted over HTTP."""
    from stablenew.api.models import OVERRIDE_NAMES, SubmitBody

    assert "steps" in OVERRIDE_NAMES and "backend" not in OVERRIDE_NAMES
    assert set(OVERRIDE_NAMES) <= set(SubmitBody.model_fields)
