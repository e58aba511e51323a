"""Each injected fault, observed from outside the reference backend's process."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from stablenew.webui_sim.faults import FaultBoard, FaultSpec, parse_fault_flag

pytestmark = pytest.mark.integration

SMALL = {"steps": 4, "width": 64, "height": 64}


def txt2img(url: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/sdapi/v1/txt2img", json=SMALL, timeout=timeout)


def test_fault_flag_grammar() -> None:
    assert parse_fault_flag("crash:txt2img:1").crash.nth == 1  # type: ignore[union-attr]
    hang = parse_fault_flag("hang:upscale:2:ignore_interrupt").hang
    assert hang is not None and (hang.nth, hang.mode, hang.at) == (2, "ignore_interrupt", "middle")
    at_end = parse_fault_flag("hang:upscale:1:honour_interrupt:end").hang
    assert at_end is not None and at_end.at == "end"
    err = parse_fault_flag("http_error:upscale:2:503").http_error
    assert err is not None and (err.count, err.status) == (2, 503)
    assert parse_fault_flag("http_error:txt2img:1:oom").http_error.kind == "oom"  # type: ignore[union-attr]
    bad_flags = (
        "crash",
        "boom:txt2img:1",
        "crash:nowhere:1",
        "hang:upscale:1:maybe",
        "hang:upscale:1:honour_interrupt:later",
    )
    for bad in bad_flags:
        with pytest.raises(ValueError):
            parse_fault_flag(bad)


def test_fault_board_counts_per_stage() -> None:
    board = FaultBoard(FaultSpec.model_validate({"crash": {"stage": "img2img", "nth": 2}}))
    assert not board.draw("txt2img").crash
    assert not board.draw("img2img").crash
    assert board.draw("img2img").crash
    assert not board.draw("img2img").crash  # fired once, then gone


def test_http_error_then_recovers_and_oom_body(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--fault", "http_error:txt2img:2")
    for _ in range(2):
        r = txt2img(sim.url)
        assert r.status_code == 500
        assert set(r.json()) == {"error", "detail", "body", "errors"}
    assert txt2img(sim.url).status_code == 200
    sim.faults({"http_error": {"stage": "txt2img", "kind": "oom"}})
    oom = txt2img(sim.url)
    assert oom.status_code == 500 and "CUDA out of memory" in oom.json()["errors"]
    assert "Traceback" in sim.manager.get_tail_logs()["stderr"]


def test_crash_kills_the_process_mid_request(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    sim.faults({"crash": {"stage": "txt2img", "nth": 2}})
    assert txt2img(sim.url).status_code == 200
    with pytest.raises(httpx.TransportError):
        txt2img(sim.url)
    deadline = time.monotonic() + 10
    while sim.manager.is_process_alive():
        assert time.monotonic() < deadline, "the crash fault must end the process"
        time.sleep(0.05)
    # The output pump reads the last lines a moment after the exit.
    while "illegal memory access" not in sim.manager.get_tail_logs()["stderr"]:
        assert time.monotonic() < deadline, "the crash must say why on stderr"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["honour_interrupt", "ignore_interrupt"])
def test_hang_until_interrupt_or_forever(start_sim, mode: str) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    sim.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": mode}})
    box: dict[str, httpx.Response | Exception] = {}

    def call() -> None:
        try:
            box["r"] = txt2img(sim.url, timeout=60)
        except httpx.HTTPError as exc:
            box["r"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{sim.url}/sdapi/v1/progress").json()["state"]["sampling_step"] < 2:
        assert time.monotonic() < deadline
    frozen = httpx.get(f"{sim.url}/sdapi/v1/progress").json()["state"]
    worker.join(1.0)
    assert worker.is_alive(), "a hung call does not return by itself"
    assert httpx.get(f"{sim.url}/sdapi/v1/progress").json()["state"] == frozen
    httpx.post(f"{sim.url}/sdapi/v1/interrupt")
    worker.join(1.5 if mode == "ignore_interrupt" else 10)
    if mode == "honour_interrupt":
        assert box["r"].status_code == 200  # type: ignore[union-attr]
    else:
        assert worker.is_alive(), "ignore_interrupt is only freed by a restart"
        sim.manager.restart_and_wait_ready(30)
        worker.join(10)
        assert isinstance(box["r"], httpx.HTTPError)
    assert sim.stats()["interrupts"] == (1 if mode == "honour_interrupt" else 0)


@pytest.mark.parametrize("kind", ["not_json", "missing_images", "bad_base64"])
def test_garbage_responses(start_sim, kind: str) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--fault", f"garbage:txt2img:1:{kind}")
    r = txt2img(sim.url)
    assert r.status_code == 200
    if kind == "not_json":
        with pytest.raises(ValueError):
            r.json()
    elif kind == "missing_images":
        assert "images" not in r.json()
    else:
        assert r.json()["images"] == ["!!not base64!!"]
    assert txt2img(sim.url).json()["images"][0].startswith("iVBOR")


def test_faults_endpoint_validates_and_clears(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    bad = httpx.post(f"{sim.url}/sim/faults", json={"crash": {"stage": "nowhere"}})
    assert bad.status_code == 422
    sim.faults({"crash": {"stage": "upscale"}, "http_error": {"stage": "txt2img"}})
    assert set(sim.stats()["active_faults"]) == {"crash", "http_error"}
    sim.faults({})
    assert sim.stats()["active_faults"] == {}


def test_fail_start_and_slow_start(start_sim) -> None:  # type: ignore[no-untyped-def]
    from stablenew.webui.process import BackendStartError

    with pytest.raises(BackendStartError, match="simulated start-up failure"):
        start_sim("--fail-start")
    slow = start_sim("--slow-start", "0.5")
    assert "Startup time:" in slow.manager.get_tail_logs()["stdout"]
