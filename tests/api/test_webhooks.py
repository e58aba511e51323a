"""Webhooks against a real local receiver: retried with backoff and signed; a delivery pending
when the server is killed (-9) is delivered after the restart; agent-scheduler's multipart
callback when a task finishes."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.api.conftest import Server, fast_config, small, wait_for

SECRET = "a-webhook-secret-for-tests"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that answers 500 to the first `fail` requests."""

    fail: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = 500 if receiver.fail > 0 else 200
                    receiver.fail -= 1
                    receiver.received.append(Received(dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.answered == 200]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    made.start()
    yield made
    made.stop()


def hooks(url: str, events: str = '["job_completed", "job_failed", "job_cancelled"]') -> str:
    return f'[[webhooks]]\nurl = "{url}"\nevents = {events}\nsecret = "{SECRET}"\n'


def verify(received: Received) -> dict[str, object]:
    headers = {k.lower(): v for k, v in received.headers.items()}
    timestamp = headers["x-stablenew-timestamp"]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    assert headers["x-stablenew-signature"] == f"sha256={expected}"
    assert headers["content-type"] == "application/json"
    return json.loads(received.body)  # type: ignore[no-any-return]


def test_a_failing_receiver_gets_the_delivery_on_the_third_try_signed(
    serve: Callable[..., Server], receiver: Receiver
) -> None:
    receiver.fail = 2
    server = serve(config=fast_config(extra=hooks(receiver.url)))
    (job_id,) = server.post("/api/v1/jobs", {"spec": small("hooked", images=2)}).json()["ids"]
    wait_for(lambda: receiver.delivered(), 60, "the third delivery")
    attempts = receiver.received
    assert [r.answered for r in attempts] == [500, 500, 200]
    ids = {r.headers["X-StableNew-Delivery"] for r in attempts}
    assert len(ids) == 1  # the same delivery, retried
    assert all(r.body == attempts[0].body for r in attempts)
    body = verify(attempts[-1])
    assert attempts[-1].headers["X-StableNew-Event"] == "job_completed"
    assert body["job_id"] == job_id and body["status"] == "COMPLETED"
    assert len(body["images"]) == 2 and body["error"] is None  # type: ignore[arg-type]
    tampered = Received(attempts[-1].headers, attempts[-1].body + b" ", 200)
    with pytest.raises(AssertionError):
        verify(tampered)
    metrics = server.get("/metrics").text
    assert 'stablenew_webhook_attempts_total{outcome="failed"} 2.0' in metrics
    assert 'stablenew_webhook_attempts_total{outcome="delivered"} 1.0' in metrics
    assert 'stablenew_webhook_outbox{state="delivered"} 1.0' in metrics


def test_a_delivery_pending_at_a_kill_is_sent_after_the_restart(
    serve: Callable[..., Server], receiver: Receiver, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    receiver.fail = 10**6  # down, as far as the server can tell
    server = serve(home=home, config=fast_config(extra=hooks(receiver.url)))
    (job_id,) = server.post("/api/v1/jobs", {"spec": small("survives")}).json()["ids"]
    wait_for(lambda: receiver.received, 60, "a first (failed) attempt")
    server.proc.kill()  # kill -9, the delivery still pending in the outbox
    server.proc.wait(30)
    receiver.fail = 0
    serve(home=home)
    wait_for(lambda: receiver.delivered(), 60, "the delivery after the restart")
    body = verify(receiver.delivered()[0])
    assert body["job_id"] == job_id and body["status"] == "COMPLETED"
    assert len(receiver.delivered()) == 1


def test_an_event_recorded_by_another_process_is_delivered(
    serve: Callable[..., Server], receiver: Receiver, tmp_path: Path
) -> None:
    """A queued job cancelled from a shell (`stablenew queue cancel`) is an event the server
    never heard on its bus: it is read from the store's log."""
    from tests.hostile.conftest import cli

    home = tmp_path / "home"
    server = serve(home=home, config=fast_config(extra=hooks(receiver.url)))
    server.post("/api/v1/queue/pause", {"reason": "hold"})
    (job_id,) = server.post("/api/v1/jobs", {"spec": small("cancelled elsewhere")}).json()["ids"]
    done = cli(home, "queue", "cancel", job_id)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: receiver.delivered(), 60, "the cancellation's delivery")
    body = verify(receiver.delivered()[0])
    assert body["job_id"] == job_id and body["status"] == "CANCELLED"
    assert receiver.delivered()[0].headers["X-StableNew-Event"] == "job_cancelled"


def test_agent_scheduler_callback_is_a_multipart_post_with_the_images(
    serve: Callable[..., Server], receiver: Receiver
) -> None:
    server = serve()
    answer = server.post(
        "/agent-scheduler/v1/queue/txt2img",
        {
            "prompt": "called back",
            "steps": 2,
            "width": 64,
            "height": 64,
            "batch_size": 2,
            "callback_url": receiver.url,
            "checkpoint": "sim-v15-base",
        },
    )
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["task_id"]
    wait_for(lambda: receiver.delivered(), 60, "the callback")
    got = receiver.delivered()[0]
    kind = got.headers["Content-Type"]
    assert kind.startswith("multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode() + got.body
    )
    parts = {}
    files = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == "files":
            files.append(
                (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
            )
        else:
            parts[name] = part.get_payload(decode=True).decode()
    assert parts == {"task_id": task_id, "status": "done"}
    assert len(files) == 2 and all(
        t == "image/png" and d.startswith(b"\x89PNG") for _, t, d in files
    )
    task = server.get(f"/agent-scheduler/v1/task/{task_id}").json()
    assert task["success"] and task["data"]["status"] == "done"
    assert task["data"]["api_task_callback"] == receiver.url
    assert task["data"]["params"]["checkpoint"] == "sim-v15-base"
    results = server.get(f"/agent-scheduler/v1/task/{task_id}/results").json()
    assert results["success"] and len(results["data"]) == 2
    assert results["data"][0]["image"].startswith("data:image/png;base64,")
    assert "Steps: 2" in results["data"][0]["infotext"]


def test_webhooks_are_delivered_by_whichever_process_runs_the_jobs(
    receiver: Receiver, tmp_path: Path
) -> None:
    """No `serve`: a plain `stablenew run` owns the home, runs the job and delivers (before it
    exits, or the next owner does from the outbox)."""
    from tests.hostile.conftest import cli

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(fast_config(extra=hooks(receiver.url)))
    done = cli(home, "run", "hooked from the command line", "--steps", "2", "--size", "64x64")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: receiver.delivered(), 30, "the delivery from `run`")
    body = verify(receiver.delivered()[0])
    assert body["status"] == "COMPLETED"
