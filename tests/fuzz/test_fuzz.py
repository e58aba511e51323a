"""Fuzzing: bad input is always a clear, typed error; never a crash, never a hang."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablenew.errors import BackendError
from stablenew.jobs.spec import SpecError, build_spec
from stablenew.webui.client import Timeouts, WebUIClient

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)
KEYS = st.sampled_from(
    [
        "prompt",
        "negative_prompt",
        "seed",
        "steps",
        "cfg_scale",
        "width",
        "height",
        "images",
        "sampler",
        "img2img",
        "upscale",
        "adetailer",
        "txt2img",
        "provenance",
        "version",
        "clip_skip",
        "unknown",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_jobspec_validation_is_total(data: dict) -> None:
    try:
        spec = build_spec(data)
    except SpecError as exc:
        assert str(exc).startswith("invalid job spec: ")
    else:
        assert spec.stages()  # something to do
        assert spec.prompt.strip() or spec.inputs  # and a prompt unless it starts from images
        assert (spec.stages()[0] == "txt2img") == (not spec.inputs)


class Canned:
    """What the fake server answers next: status, body, and optionally a stall."""

    status = 200
    body = b"{}"
    stall = 0.0


class Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(Canned.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(Canned.body)))
        self.end_headers()
        if Canned.stall:
            time.sleep(Canned.stall)  # the server misbehaving on purpose: a stalled body
        self.wfile.write(Canned.body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
        "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()

BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda s: json.dumps(s)[: max(1, len(json.dumps(s)) // 2)].encode(),
        st.dictionaries(st.text(max_size=5), st.integers(), min_size=1),
    ),  # truncated JSON
    st.builds(lambda v: json.dumps({"images": v, "info": "{}"}).encode(), VALUES),
    st.builds(lambda v: json.dumps({"images": [PNG], "info": v}).encode(), VALUES),
    st.builds(lambda v: json.dumps({"image": v, "html_info": 3}).encode(), VALUES),
    st.builds(lambda s: json.dumps({"images": [s]}).encode(), st.text(max_size=40)),
    st.just(json.dumps({"images": [base64.b64encode(b"GIF89a fake").decode()]}).encode()),
    st.just(
        json.dumps({"images": [PNG], "info": json.dumps({"index_of_first_image": 9})}).encode()
    ),
    st.just(json.dumps({"state": "nope"}).encode()),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(status=st.sampled_from([200, 200, 200, 404, 422, 500, 503]), body=BODIES)
def test_client_turns_malformed_answers_into_typed_errors(
    server: str, status: int, body: bytes
) -> None:
    Canned.status, Canned.body, Canned.stall = status, body, 0.0
    client = WebUIClient(server, timeouts=Timeouts(generate=5, query=5, control=5), get_retries=0)
    for call in (
        lambda: client.txt2img({}),
        lambda: client.extra_single_image({}),
        client.progress,
        client.sd_models,
    ):
        with contextlib.suppress(BackendError):
            call()
    client.close()


def test_huge_and_stalled_bodies(server: str) -> None:
    client = WebUIClient(server, timeouts=Timeouts(generate=1.0), get_retries=0)
    Canned.status, Canned.body, Canned.stall = 200, b"[" * (20 * 1024 * 1024), 0.0
    with pytest.raises(BackendError):
        client.txt2img({})
    Canned.body, Canned.stall = json.dumps({"images": [PNG]}).encode(), 3.0
    started = time.monotonic()
    with pytest.raises(BackendError):
        client.txt2img({})
    assert time.monotonic() - started < 10  # bounded by the read timeout, not by the server
    Canned.stall = 0.0
    client.close()
