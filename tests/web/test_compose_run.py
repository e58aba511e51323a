"""Compose and queue from the browser, watch the job run with live progress to the end, see the
API's own validation messages as you type, cancel a job whose backend hangs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from tests.web.conftest import Page, Server, web_config


def ctrl_enter(page: Page) -> None:
    ActionChains(page.driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(
        Keys.CONTROL
    ).perform()


def running_state(page: Page) -> dict[str, Any]:
    return dict(
        page.js(
            """
            const card = document.getElementById('run-card');
            return {
              shown: !card.hidden,
              job: card.dataset.jobId || '',
              image: document.getElementById('run-image').textContent,
              step: document.getElementById('run-step').textContent,
              progress: document.getElementById('run-progress').value,
              stages: [...document.querySelectorAll('#run-stages li')].map(
                li => [li.dataset.stage, li.dataset.state]),
              preview: document.getElementById('run-preview').naturalWidth || 0,
            };
            """
        )
    )


def record_timeline(page: Page) -> None:
    """Every state the stage timeline shows, in order (a stage can be shorter than a poll)."""
    page.js(
        """
        window.__timeline = [];
        new MutationObserver((changes) => {
          for (const change of changes) {
            const li = change.target;
            if (li.dataset && li.dataset.state) {
              window.__timeline.push([li.dataset.stage, li.dataset.state]);
            }
          }
        }).observe(document.getElementById('run-stages'),
                   {subtree: true, attributes: true, attributeFilter: ['data-state']});
        """
    )


def test_compose_queue_with_ctrl_enter_and_watch_it_complete(page: Callable[..., Page]) -> None:
    ui = page()
    ui.set_value("c-prompt", "a lighthouse at dusk")
    ui.set_value("c-steps", "24")
    ui.set_value("c-width", "64")
    ui.set_value("c-height", "64")
    ui.set_value("c-images", "2")
    ui.set_value("c-seed", "42")
    ui.click("#s-img2img > summary input")  # img2img (refine), on
    ui.set_value("c-i2i-denoise", "0.5")
    ui.click("#s-upscale > summary input")  # and upscale
    ui.wait_for(lambda: ui.text("#c-summary") == "1 job, 2 images", "the check")
    assert ui.text("#c-messages") == ""
    record_timeline(ui)
    ui.by_id("c-prompt").click()
    ctrl_enter(ui)  # from the prompt box
    ui.wait_for(lambda: "Queued 1 job" in ui.toast(), "queued")

    # Live: the running panel follows the job through its stages, image i/N, step progress.
    seen: dict[str, Any] = {"images": set(), "steps": set(), "stages": set(), "preview": 0}

    def watch() -> bool:
        state = running_state(ui)
        if state["shown"]:
            seen["images"].add(state["image"])
            seen["steps"].add(state["step"])
            seen["stages"].update(s for s, st in state["stages"] if st == "active")
            seen["preview"] = max(seen["preview"], state["preview"])
        recent = ui.els("#q-recent li[data-status='COMPLETED']")
        return bool(recent) and len(seen["images"]) > 0

    ui.wait_for(watch, "the job runs and completes")
    assert {"image 1/2", "image 2/2"} <= seen["images"], seen
    assert any("step" in s and "/24" in s for s in seen["steps"]), seen["steps"]
    timeline = ui.js("return window.__timeline")
    assert ["txt2img", "active"] in timeline and ["img2img", "active"] in timeline, timeline
    assert ["txt2img", "done"] in timeline and ["img2img", "done"] in timeline, timeline
    assert timeline.index(["txt2img", "done"]) < timeline.index(["img2img", "active"])
    assert seen["preview"] > 0, "a live preview was shown"
    job_id = ui.el("#q-recent li").get_attribute("data-job-id")
    job = ui.server.job(str(job_id))
    assert job["status"] == "COMPLETED" and job["spec"]["seed"] == 42
    assert job["spec"]["upscale"]["enabled"] and job["spec"]["images"] == 2
    assert (
        job["spec"]["img2img"] | {"enabled": True, "denoising_strength": 0.5}
        == job["spec"]["img2img"]
    )
    assert sorted(job["result"]["stages"]) == ["img2img", "txt2img", "upscale"]
    # ... and the gallery has it, newest first
    ui.show("gallery")
    ui.wait_for(lambda: ui.job_ids("#g-grid li")[:1] == [job_id], "in the gallery")
    assert ui.errors() == []


def test_validation_messages_are_the_apis_as_you_type(page: Callable[..., Page]) -> None:
    ui = page()
    ui.set_value("c-prompt", "a fox")
    ui.set_value("c-steps", "0")
    ui.set_value("c-width", "65")

    def messages() -> list[str]:
        return list(
            ui.js(
                "return [...document.querySelectorAll('#c-messages li')].map(li => li.textContent)"
            )
        )

    ui.wait_for(lambda: len(messages()) == 2, "two messages")
    api = ui.server.post("/api/v1/jobs", {"spec": {"prompt": "a fox", "steps": 0, "width": 65}})
    assert api.status_code == 422
    assert messages() == api.json()["detail"]  # word for word
    assert ui.by_id("c-steps").get_attribute("aria-invalid") == "true"
    assert ui.by_id("c-width").get_attribute("aria-invalid") == "true"
    assert ui.by_id("c-prompt").get_attribute("aria-invalid") is None
    # A name the backend does not have: the catalog's message, as the API gives it
    ui.set_value("c-steps", "4")
    ui.set_value("c-width", "64")
    ui.set_value("c-prompt", "a fox <lora:nope:1>")
    ui.wait_for(lambda: any("LoRA" in m for m in messages()), "the LoRA message")
    ui.click("#c-queue")
    ui.wait_for(lambda: "Nothing was queued" in ui.toast(), "refused")
    assert ui.server.get("/api/v1/jobs").json()["total"] == 0
    # Fixed: the messages go, the field is valid again
    ui.set_value("c-prompt", "a fox")
    ui.wait_for(lambda: messages() == [], "no messages")
    assert ui.text("#c-summary") == "1 job, 1 image"


def test_cancel_during_a_hang(page: Callable[..., Page], serve: Callable[..., Server]) -> None:
    server = serve(config=web_config())
    ui = page(server)
    server.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": "ignore_interrupt"}})
    ui.set_value("c-prompt", "this one hangs")
    ui.set_value("c-steps", "10")
    ui.set_value("c-width", "64")
    ui.set_value("c-height", "64")
    ui.click("#c-queue")
    ui.wait_for(lambda: running_state(ui)["shown"], "running")
    job_id = running_state(ui)["job"]
    ui.wait_for(lambda: "step" in running_state(ui)["step"], "sampling (then it hangs)")
    ui.click("#run-cancel")
    ui.wait_for(lambda: "Cancelling" in ui.text("#run-cancel"), "cancelling")
    ui.wait_for(lambda: not running_state(ui)["shown"], "no longer running", timeout=30)
    ui.wait_for(
        lambda: ui.job_ids("#q-recent li[data-status='CANCELLED']")[:1] == [job_id], "cancelled"
    )
    assert server.job(job_id)["status"] == "CANCELLED"
    assert "cancelled" in ui.text("#run-last").lower()


def test_adetailer_passes_and_hires_fix_into_the_spec(page: Callable[..., Page]) -> None:
    ui = page()
    ui.set_value("c-prompt", "a portrait with hands")
    for field, value in (("c-steps", "2"), ("c-width", "64"), ("c-height", "64")):
        ui.set_value(field, value)
    ui.click("#s-txt2img > summary")  # the txt2img stage's settings
    ui.click("#c-hr")  # hires fix
    ui.set_value("c-hr-scale", "1.5")
    ui.click("#s-adetailer > summary input")
    ui.click("#c-ad-face")
    ui.click("#c-ad-hands")
    ui.set_value("c-ad-hands-conf", "0.45")
    ui.set_value("c-ad-hands-prompt", "detailed hands")
    ui.wait_for(lambda: ui.text("#c-summary") == "1 job, 1 image", "checked")
    built = ui.js("return window.stablenew.compose.spec()")
    assert built["txt2img"]["enable_hr"] is True and built["txt2img"]["hr_scale"] == 1.5
    assert built["adetailer"]["enabled"] is True
    assert built["adetailer"]["face"] is None  # the face pass, off
    hands = built["adetailer"]["hands"]
    assert (hands["model"], hands["confidence"], hands["prompt"]) == (
        "hand_yolov8n.pt",
        0.45,
        "detailed hands",
    )
    assert ui.by_id("c-ad-face-model").get_attribute("disabled") is not None
    ui.click("#c-queue")
    ui.wait_for(lambda: ui.els("#q-recent li[data-status='COMPLETED']"), "ran")
    job = ui.server.job(ui.job_ids("#q-recent li")[0])
    assert job["spec"]["adetailer"]["hands"]["prompt"] == "detailed hands"
    assert sorted(job["result"]["stages"]) == ["adetailer", "txt2img"]
