"""The queue in the browser: pause with a reason, reorder by drag-and-drop (and by keyboard),
edit a queued job, cancel one, several, or all that wait; resume."""

from __future__ import annotations

from collections.abc import Callable

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import alert_is_present
from selenium.webdriver.support.ui import WebDriverWait

from tests.web.conftest import Page, spec, submit


def pending(page: Page, limit: int = 50) -> list[str]:
    answer = page.server.get(f"/api/v1/jobs?status=QUEUED&limit={limit}")
    return [j["id"] for j in answer.json()["jobs"]]


def paused_with(page: Page, reason: str) -> None:
    page.set_value("q-reason", reason)
    page.click("#q-pause")
    page.wait_for(lambda: page.text("#q-paused") == f"Paused: {reason}", "paused")
    assert page.server.get("/api/v1/queue").json()["reason"] == reason


def test_reorder_by_drag_and_drop_and_by_keyboard(page: Callable[..., Page]) -> None:
    ui = page()
    paused_with(ui, "reordering first")
    ids = [submit(ui.server, {"spec": spec(f"job {n}")})[0] for n in range(1, 5)]
    ui.wait_for(lambda: ui.job_ids("#q-list li") == ids, "four waiting, in order")

    # Drag the third job's handle above the first one, as a mouse does.
    handle = ui.el(f"#q-list li[data-job-id='{ids[2]}'] .handle")
    first = ui.el(f"#q-list li[data-job-id='{ids[0]}']")
    box = first.rect
    ActionChains(ui.driver).click_and_hold(handle).move_by_offset(
        0, -5
    ).move_to_element_with_offset(first, 0, -int(box["height"] * 0.4)).release().perform()
    moved = [ids[2], ids[0], ids[1], ids[3]]
    ui.wait_for(lambda: pending(ui) == moved, "the store's order")
    ui.wait_for(lambda: ui.job_ids("#q-list li") == moved, "the list's order")
    assert "moved to position 1" in ui.toast()

    # Down past the end, then the keyboard: ↓ on a focused handle moves that job one down.
    last = ui.el(f"#q-list li[data-job-id='{ids[0]}'] .handle")
    ActionChains(ui.driver).click_and_hold(last).move_by_offset(0, 4).move_to_element_with_offset(
        ui.el(f"#q-list li[data-job-id='{ids[3]}']"), 0, 10
    ).release().perform()
    moved = [ids[2], ids[1], ids[3], ids[0]]
    ui.wait_for(lambda: pending(ui) == moved, "moved to the end")
    ui.wait_for(lambda: ui.job_ids("#q-list li") == moved, "the list's order")
    ui.el(f"#q-list li[data-job-id='{ids[2]}'] .handle").send_keys(Keys.ARROW_DOWN)
    moved = [ids[1], ids[2], ids[3], ids[0]]
    ui.wait_for(lambda: pending(ui) == moved, "moved down by keyboard")
    ui.wait_for(lambda: ui.job_ids("#q-list li") == moved, "the list after ↓")
    focused = ui.js("return document.activeElement.closest('li').dataset.jobId")
    assert focused == ids[2], "the handle keeps the focus"

    # Another client moves and removes: the list follows from the event stream, well before
    # the page's 10-second safety re-read.
    assert ui.server.post(f"/api/v1/jobs/{ids[0]}/move", {"to": "front"}).status_code == 200
    moved = [ids[0], ids[1], ids[2], ids[3]]
    ui.wait_for(lambda: ui.job_ids("#q-list li") == moved, "moved by another client", timeout=8)
    with ui.server.client() as other:
        assert other.delete(f"/api/v1/jobs/{ids[1]}").status_code == 200
    left = [ids[0], ids[2], ids[3]]
    ui.wait_for(lambda: ui.job_ids("#q-list li") == left, "removed by another client", timeout=8)
    assert ui.errors() == []


def test_edit_cancel_bulk_pause_resume(page: Callable[..., Page]) -> None:
    ui = page()
    paused_with(ui, "a look before it runs")
    ids = submit(ui.server, {"specs": [spec(f"queued {n}") for n in range(1, 6)]})
    ui.wait_for(lambda: ui.job_ids("#q-list li") == ids, "five waiting")

    # Edit a queued job: into compose, change, save: the same job, a new spec.
    ui.click(f"#q-list li[data-job-id='{ids[1]}'] button[aria-label^='Edit']")
    ui.wait_for(lambda: not ui.by_id("c-editing").get_attribute("hidden"), "editing")
    assert ui.by_id("c-prompt").get_attribute("value") == "queued 2"
    assert ids[1][:8] in ui.text("#c-editing-text")
    ui.set_value("c-prompt", "queued 2, edited")
    ui.set_value("c-steps", "3")
    ui.click("#c-queue")
    ui.wait_for(lambda: "changed" in ui.toast(), "saved")
    job = ui.server.job(ids[1])
    assert job["spec"]["prompt"] == "queued 2, edited" and job["spec"]["steps"] == 3
    assert job["status"] == "QUEUED"
    assert ui.by_id("c-editing").get_attribute("hidden") is not None
    assert ui.server.get("/api/v1/jobs").json()["total"] == 5  # nothing new queued

    # One cancel, then two selected, then all that wait.
    ui.click(f"#q-list li[data-job-id='{ids[0]}'] button[aria-label^='Cancel']")
    ui.wait_for(lambda: ids[0] not in ui.job_ids("#q-list li"), "cancelled one")
    for job_id in ids[1:3]:
        ui.click(f"#q-list li[data-job-id='{job_id}'] input[type=checkbox]")
    ui.wait_for(lambda: ui.text("#q-cancel-selected") == "Cancel selected (2)", "two selected")
    ui.click("#q-cancel-selected")
    ui.wait_for(lambda: ui.job_ids("#q-list li") == ids[3:], "two more cancelled")
    statuses = [ui.server.job(i)["status"] for i in ids]
    assert statuses == ["CANCELLED", "CANCELLED", "CANCELLED", "QUEUED", "QUEUED"]
    ui.click("#q-resume")
    ui.wait_for(lambda: ui.by_id("q-paused").get_attribute("hidden") is not None, "resumed")
    assert ui.server.get("/api/v1/queue").json()["paused"] is False
    for job_id in ids[3:]:
        ui.server.wait_status(job_id, "COMPLETED")
    paused_with(ui, "stop again")
    # Cancel all asks first, with the count: no, then yes.
    more = submit(ui.server, {"specs": [spec("then 1"), spec("then 2")]})
    ui.wait_for(lambda: ui.job_ids("#q-list li") == more, "two waiting")
    ui.click("#q-cancel-all")
    asked = WebDriverWait(ui.driver, 30).until(alert_is_present(), "asked first")
    assert asked.text == "Cancel all 2 waiting jobs? This cannot be undone."
    asked.dismiss()
    assert [ui.server.job(i)["status"] for i in more] == ["QUEUED", "QUEUED"]
    ui.click("#q-cancel-all")
    WebDriverWait(ui.driver, 30).until(alert_is_present(), "asked again").accept()
    ui.wait_for(lambda: "Cancelled 2 waiting jobs" in ui.toast(), "cancel all")
    ui.wait_for(lambda: ui.job_ids("#q-list li") == [], "none wait")
    assert ui.text("#q-depth") == ""
    assert not ui.by_id("q-empty").get_attribute("hidden")


def test_every_waiting_job_is_reachable_past_the_first_page(page: Callable[..., Page]) -> None:
    ui = page()
    paused_with(ui, "a long queue")
    ids = submit(ui.server, {"specs": [spec(f"waiting {n}") for n in range(1, 206)]})
    ui.wait_for(lambda: len(ui.els("#q-list li")) == 200, "the first page")
    assert ui.text("#q-depth") == "(205 waiting)"
    assert ui.text("#q-more") == "Show 5 more (5 not shown)"

    # ↓ on the last row shown moves it past the page's end, and it stays shown and focused
    ui.el(f"#q-list li[data-job-id='{ids[199]}'] .handle").send_keys(Keys.ARROW_DOWN)
    moved = [*ids[:199], ids[200], ids[199], *ids[201:]]
    ui.wait_for(lambda: pending(ui, 300) == moved, "moved down past the page")
    ui.wait_for(lambda: ui.job_ids("#q-list li") == moved[:201], "the list grew to show it")
    focused = ui.js("return document.activeElement.closest('li').dataset.jobId")
    assert focused == ids[199]

    ui.click("#q-more")
    ui.wait_for(lambda: ui.job_ids("#q-list li") == moved, "every waiting job")
    assert ui.by_id("q-more").get_attribute("hidden") is not None
    assert ui.errors() == []
