"""The page's event stream survives a server restart mid-job (no event lost, none shown twice);
the backend view (state, pool, models, restart, output) and the lifecycle log with its job
filter."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from tests.api.conftest import start_serve
from tests.web.conftest import Page, Server, spec, submit, web_config


def store_events(server: Server) -> list[dict[str, Any]]:
    return list(server.get("/api/v1/events/recent?limit=5000").json()["events"])


def page_seqs(ui: Page) -> list[int]:
    return [int(s) for s in ui.js("return window.stablenew.log.events.map(e => e.seq)")]


def test_reconnects_after_a_server_restart_mid_job_without_losing_or_repeating(
    page: Callable[..., Page], serve: Callable[..., Server]
) -> None:
    server = serve(config=web_config(20))
    ui = page(server)
    ui.show("backend")  # the log on screen
    job_id = submit(server, {"spec": spec("through a restart", steps=20, images=8)})[0]
    ui.wait_for(lambda: ui.text("#run-image") in ("image 2/8", "image 3/8"), "mid-job")

    port = server.url.rsplit(":", 1)[1]
    assert server.stop(signal.SIGTERM) == 0  # the job goes back to the queue, to resume
    ui.wait_for(lambda: ui.js("return document.body.dataset.stream") == "reconnecting", "lost")
    again = start_serve(server.home, "--port", port)  # the same address, the same home
    try:
        ui.wait_for(lambda: ui.js("return document.body.dataset.stream") == "live", "back")
        ui.wait_for(
            lambda: ui.job_ids("#q-recent li[data-status='COMPLETED']")[:1] == [job_id],
            "the job resumed and completed",
            timeout=120,
        )
        kinds = [e["kind"] for e in again.get(f"/api/v1/jobs/{job_id}/events").json()]
        assert "job_recovered" in kinds or kinds.count("job_started") == 2, kinds
        # Every event of the store, in order, each once: nothing lost, nothing twice.
        ui.wait_for(
            lambda: page_seqs(ui) == [e["seq"] for e in store_events(again)], "the same log"
        )
        shown = ui.log_seqs()
        assert shown == sorted(set(shown)), "a row twice, or out of order"
        assert shown == page_seqs(ui)[-len(shown) :]
        trail = [
            int(s)
            for s in ui.js(
                "return [...document.querySelectorAll('#l-list li')]"
                ".filter(li => li.dataset.jobId === arguments[0]).map(li => li.dataset.seq)",
                job_id,
            )
        ]
        expected = [e["seq"] for e in again.get(f"/api/v1/jobs/{job_id}/events").json()]
        assert trail == expected
        assert ui.js("return window.stablenew.stats.resumed") >= 1
        assert ui.text("#run-idle") and ui.by_id("run-card").get_attribute("hidden") is not None
    finally:
        again.stop()


def facts_of(ui: Page) -> dict[str, str]:
    return dict(zip(ui.texts("#b-state dt"), ui.texts("#b-state dd"), strict=True))


def test_backend_view_and_the_log_filtered_by_job(page: Callable[..., Page]) -> None:
    ui = page()
    server = ui.server
    ids = submit(server, {"specs": [spec("first of two"), spec("second of two")]})
    for job_id in ids:
        server.wait_status(job_id, "COMPLETED")
    ui.click("#tab-backend")
    ui.wait_for(lambda: "READY" in ui.texts("#b-state dd"), "the state")
    facts = facts_of(ui)
    assert facts["What"] == "reference backend (simulated images)"
    assert facts["Restarts"] == "0"
    assert ui.texts("#b-pool tbody th") == ["default"]
    tail = server.get("/api/v1/backend/tail").json()
    last = (tail["stdout"] or tail["stderr"]).strip().splitlines()[-1]
    ui.wait_for(lambda: last in ui.text("#b-tail"), "its output")
    ui.click("#b-models-box summary")
    ui.wait_for(lambda: len(ui.els("#b-models li")) > 0, "models")
    assert any("sim-v15-base" in m for m in ui.texts("#b-models li"))

    # The log: both jobs' trails live; a job filter shows one job's whole trail
    ui.wait_for(lambda: len(ui.els(f"#l-list li[data-job-id='{ids[1]}']")) > 0, "in the log")
    ui.set_value("l-job", ids[0][:8])
    expected = [e["seq"] for e in server.get(f"/api/v1/jobs/{ids[0]}/events").json()]
    ui.wait_for(lambda: ui.log_seqs() == expected, "one job's trail")
    ui.click("#l-all")
    ui.wait_for(lambda: len(ui.els(f"#l-list li[data-job-id='{ids[1]}']")) > 0, "all again")
    ui.click(f"#l-list li[data-job-id='{ids[1]}'] .job-link")  # a job's id filters by it
    expected = [e["seq"] for e in server.get(f"/api/v1/jobs/{ids[1]}/events").json()]
    ui.wait_for(lambda: ui.log_seqs() == expected, "the other job's trail")
    assert ui.by_id("l-job").get_attribute("value") == ids[1]

    # Restart: the state goes round and comes back; the restart is counted
    ui.click("#b-restart")
    ui.wait_for(lambda: "Restarting" in ui.toast(), "restarting")
    ui.wait_for(lambda: "The backend is ready" in ui.toast(), "ready again", timeout=90)
    ui.wait_for(lambda: facts_of(ui).get("Restarts") == "1", "counted")
    assert ui.text("#backend-pill") == "backend ready"
    ui.set_value("l-job", "")
    ui.wait_for(lambda: "backend_restarting" in ui.texts("#l-list li .kind"), "in the log")
    assert ui.errors() == []
