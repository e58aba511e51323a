"""Security: the token off loopback (Bearer or the login cookie), DNS rebinding refused on
loopback, no state change without JSON, no CORS unless configured, nothing served from
outside a job's run folder."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from stablenew.api.app import create_app
from stablenew.api.security import Security, host_name, is_loopback
from stablenew.app.services import Services
from tests.api.conftest import Server, SseReader, small


def test_off_loopback_every_request_needs_the_token(
    serve: Callable[..., Server], sse: Callable[..., SseReader]
) -> None:
    server = serve("--host", "0.0.0.0")
    assert stat.S_IMODE((server.home / "api_token").stat().st_mode) == 0o600
    token = server.token
    port = server.url.rsplit(":", 1)[1]
    foreign = {"Host": f"stablenew.example:{port}"}  # as if reached from another machine
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/api/v1/queue", headers=foreign).status_code == 401
        assert c.get("/api/v1/queue").status_code == 401  # loopback peers too: it is the bind
        wrong = c.get("/api/v1/queue", headers={"Authorization": "Bearer nope", **foreign})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        for path in ("/api/v1/events", "/metrics", "/docs", "/openapi.json", "/api/v1/jobs"):
            assert c.get(path, headers=foreign).status_code == 401, path
        refused = c.post("/api/v1/jobs", json={"spec": small()}, headers=foreign)
        assert refused.status_code == 401
        bearer = {"Authorization": f"Bearer {token}", **foreign}
        assert c.get("/api/v1/queue", headers=bearer).status_code == 200
        assert c.post("/api/v1/jobs", json={"spec": small()}, headers=bearer).status_code == 201
        # a browser: the login page, then the HttpOnly SameSite=Strict cookie
        assert c.get("/login", headers=foreign).status_code == 200
        bad = c.post("/api/v1/login", json={"token": "nope"}, headers=foreign)
        assert bad.status_code == 401 and "set-cookie" not in bad.headers
        good = c.post("/api/v1/login", json={"token": token}, headers=foreign)
        assert good.status_code == 200
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert c.get("/api/v1/queue", headers=foreign).status_code == 200  # the jar has it
    # EventSource sends the cookie, no token in the URL
    events = sse(
        f"{server.url}/api/v1/events",
        {"Cookie": f"stablenew_token={token}", **foreign},
        after=0,
    )
    events.wait(lambda f: f.event == "job_queued")


def test_loopback_refuses_a_rebinding_host(serve: Callable[..., Server]) -> None:
    server = serve()
    port = server.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        rebound = c.get("/api/v1/queue", headers={"Host": f"attacker.example:{port}"})
        assert rebound.status_code == 403
        post = c.post("/api/v1/jobs", json={"spec": small()}, headers={"Host": "attacker.example"})
        assert post.status_code == 403
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
            assert c.get("/api/v1/queue", headers={"Host": host}).status_code == 200, host
    assert server.get("/api/v1/jobs").json()["total"] == 0


def test_no_state_change_without_json(local_app: TestClient) -> None:
    form = local_app.post("/api/v1/jobs", data={"prompt": "x"})
    assert form.status_code == 415
    multipart = local_app.post("/api/v1/jobs", files={"pack": ("p.txt", b"a row")})
    assert multipart.status_code == 415
    plain = local_app.post(
        "/api/v1/jobs", content=b'{"prompt": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415
    bare = local_app.post("/api/v1/queue/pause")  # no body, no content type: a cross-site POST
    assert bare.status_code == 415
    assert local_app.get("/api/v1/queue").json()["paused"] is False
    assert local_app.post("/api/v1/queue/pause", json={}).status_code == 200  # `{}` is fine
    assert local_app.post("/api/v1/queue/resume", json={}).status_code == 200
    ok = local_app.post("/api/v1/jobs", json={"prompt": "x", "steps": 2})
    assert ok.status_code == 201
    assert local_app.get("/api/v1/jobs").json()["total"] == 1


def test_no_cors_headers_unless_configured(local_app: TestClient, local_services: Services) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    answer = local_app.get("/api/v1/queue", headers=origin)
    assert not any(k.lower().startswith("access-control") for k in answer.headers)
    preflight = local_app.options(
        "/api/v1/jobs",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    security = Security.for_bind("127.0.0.1", "t", ["https://ui.example"])
    with TestClient(
        create_app(local_services, security), base_url="http://localhost"
    ) as configured:
        allowed = configured.options(
            "/api/v1/jobs",
            headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
        )
        assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
        other = configured.get("/api/v1/queue", headers=origin)
        assert "access-control-allow-origin" not in other.headers


def test_files_only_from_the_jobs_run_folder(
    local_app: TestClient, local_services: Services, tmp_path: Path
) -> None:
    """A finished job's folder, made the way the pipeline makes it; names that lead out of it
    are refused however they are spelled."""
    (job_id,) = local_app.post("/api/v1/jobs", json={"prompt": "files"}).json()["ids"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "1_txt2img.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.txt").write_text("not yours")
    (run / "escape.png").symlink_to(tmp_path / "secret.txt")
    store = local_services._store
    with store._tx() as c:  # the test stands in for the runner that would have finished it
        c.execute(
            "UPDATE jobs SET status = 'COMPLETED', result = ? WHERE id = ?",
            (f'{{"run_dir": "{run}", "images": ["{run / "1_txt2img.png"}"]}}', job_id),
        )
    base = f"/api/v1/jobs/{job_id}/files"
    assert local_app.get(base).json() == ["1_txt2img.png"]
    assert local_app.get(f"{base}/1_txt2img.png").content == b"\x89PNG fake"
    for name in (
        "..%2Fsecret.txt",
        "%2E%2E%2Fsecret.txt",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "escape.png",
        "sub%2F..%2F..%2Fsecret.txt",
    ):
        answer = local_app.get(f"{base}/{name}")
        assert answer.status_code == 400, (name, answer.status_code)
        assert b"not yours" not in answer.content
    assert local_app.get(f"{base}/missing.png").status_code == 404


def test_host_names() -> None:
    assert host_name("[::1]:8000") == "::1" and host_name("localhost:1") == "localhost"
    assert host_name("example.com") == "example.com" and host_name("::1") == "::1"
    assert all(
        is_loopback(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "a.localhost")
    )
    assert not any(is_loopback(h) for h in ("example.com", "0.0.0.0", "10.0.0.1", "localhost.evil"))
