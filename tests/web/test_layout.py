"""Desktop and phone layouts, light and dark, labelled controls and the keyboard; the
screenshots in docs/screenshots (web-*.png) are taken here, from the real flow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from tests.web.conftest import DESKTOP, PHONE, Page, color_scheme, spec, submit, viewport

NAMED_ROLES = {
    "button",
    "checkbox",
    "combobox",
    "link",
    "searchbox",
    "spinbutton",
    "tab",
    "textbox",
    "slider",
}


THUMBS_LOADED = (
    "return [...document.querySelectorAll('#g-grid img')].every(i => i.complete && i.naturalWidth)"
)


def unnamed_controls(ui: Page) -> list[dict[str, Any]]:
    """Controls the browser's accessibility tree gives no name (what a screen reader reads)."""
    tree = ui.driver.execute_cdp_cmd("Accessibility.getFullAXTree", {})
    missing = []
    for node in tree["nodes"]:
        role = (node.get("role") or {}).get("value")
        if node.get("ignored") or role not in NAMED_ROLES:
            continue
        if not str((node.get("name") or {}).get("value") or "").strip():
            missing.append({"role": role, "node": node.get("backendDOMNodeId")})
    return missing


def overflow(ui: Page) -> int:
    return int(ui.js("return document.documentElement.scrollWidth - window.innerWidth"))


def test_labelled_controls_and_the_keyboard(page: Callable[..., Page]) -> None:
    ui = page()
    server = ui.server
    done = submit(server, {"spec": spec("labelled", images=2)})[0]
    server.wait_status(done, "COMPLETED")
    for view in ("compose", "gallery", "backend"):
        ui.show(view)
        ui.wait_for(lambda: ui.js("return document.body.dataset.view") == view, view)  # noqa: B023
        assert unnamed_controls(ui) == [], view
    ui.show("gallery")
    ui.wait_for(lambda: ui.els("#g-grid .thumb"), "a card")
    ui.el("#g-grid .thumb").send_keys(Keys.ENTER)  # a card opens from the keyboard
    ui.wait_for(lambda: ui.js("return document.getElementById('lightbox').open"), "lightbox")
    assert unnamed_controls(ui) == [], "lightbox"
    ActionChains(ui.driver).send_keys(Keys.ESCAPE).perform()
    ui.wait_for(lambda: not ui.js("return document.getElementById('lightbox').open"), "closed")

    # The view tabs: arrow keys move between them
    ui.by_id("tab-gallery").click()
    ActionChains(ui.driver).send_keys(Keys.ARROW_RIGHT).perform()
    ui.wait_for(lambda: ui.js("return document.body.dataset.view") == "backend", "→")
    assert ui.js("return document.activeElement.id") == "tab-backend"
    ActionChains(ui.driver).send_keys(Keys.HOME).perform()
    ui.wait_for(lambda: ui.js("return document.body.dataset.view") == "compose", "Home")
    # Tab from the top reaches the prompt box, and Ctrl+Enter queues from there
    ui.driver.get(server.url + "/")
    ui.wait_for(lambda: ui.js("return document.body.dataset.ready") == "true", "ready")
    for _ in range(12):
        ActionChains(ui.driver).send_keys(Keys.TAB).perform()
        if ui.js("return document.activeElement.id") == "c-prompt":
            break
    assert ui.js("return document.activeElement.id") == "c-prompt"


def test_phone_layout_one_view_at_a_time(page: Callable[..., Page]) -> None:
    ui = page(size=PHONE)
    server = ui.server
    done = submit(server, {"spec": spec("on a phone", images=3)})[0]
    server.wait_status(done, "COMPLETED")
    tabs = [t for t in ui.els("[role=tab]") if t.is_displayed()]
    assert [t.text for t in tabs] == ["Compose", "Running", "Gallery", "Backend"]
    bar = ui.el(".tabs").rect
    assert abs(bar["y"] + bar["height"] - PHONE[1]) < 1, "the views in a bottom bar"
    for view, shown, hidden in (
        ("compose", "#view-compose", "#view-queue"),
        ("queue", "#view-queue", "#view-compose"),
        ("gallery", "#view-gallery", "#view-queue"),
        ("backend", "#view-backend", "#view-gallery"),
    ):
        ui.by_id(f"tab-{view}").click()
        ui.wait_for(lambda: ui.el(shown).is_displayed(), view)  # noqa: B023
        assert not ui.el(hidden).is_displayed(), view
        assert overflow(ui) <= 0, f"{view}: wider than the phone"
    ui.by_id("tab-gallery").click()
    ui.wait_for(lambda: ui.els("#g-grid li"), "a card")
    cards = [c.rect for c in ui.els("#g-grid li")]
    assert cards[0]["width"] < PHONE[0] / 2, "two columns"
    # Compose on the phone: queue from the bottom bar's first view
    ui.by_id("tab-compose").click()
    ui.set_value("c-prompt", "queued from a phone")
    for field, value in (("c-steps", "2"), ("c-width", "64"), ("c-height", "64")):
        ui.set_value(field, value)
    ui.click("#c-queue")
    ui.wait_for(lambda: "Queued 1 job" in ui.toast(), "queued")
    assert overflow(ui) <= 0


def test_screenshots_desktop_and_phone_light_and_dark(page: Callable[..., Page]) -> None:
    """docs/screenshots/web-{desktop,phone}-{light,dark}-{view}.png, from a real session."""
    ui = page()
    server = ui.server
    prompts = [
        "a lighthouse at dusk, oil painting",
        "a red fox in fresh snow, golden hour",
        "an old harbour town, watercolour",
        "portrait of an owl, studio light",
        "a quiet forest lake at dawn",
        "a neon city street in the rain",
    ]
    ids = submit(
        server,
        {
            "specs": [
                spec(p, seed=100 + n, width=256, height=256, images=1 + n % 3, steps=4)
                for n, p in enumerate(prompts)
            ]
        },
    )
    for job_id in ids:
        server.wait_status(job_id, "COMPLETED")
    server.faults({"http_error": {"stage": "txt2img", "count": 1, "kind": "oom"}})
    failed = submit(server, {"spec": spec("a castle on a cliff, storm clouds")})[0]
    server.wait_status(failed, "FAILED")
    ui.driver.refresh()
    ui.open()
    # Something running (slow), something waiting
    running = submit(
        server,
        {
            "spec": spec(
                "a mountain village, morning mist",
                steps=150,
                images=3,
                width=256,
                height=256,
                upscale={"enabled": True},
            )
        },
    )[0]
    submit(server, {"specs": [spec("a sailing ship at sea"), spec("a desert at night, stars")]})
    ui.set_value("c-prompt", "a cabin in the woods, <lora:add_detail:0.6>, cinematic")
    ui.set_value("c-negative", "blurry, low quality")
    ui.wait_for(lambda: ui.by_id("run-card").get_attribute("data-job-id") == running, "running")
    ui.wait_for(
        lambda: ui.js("return document.getElementById('run-preview').naturalWidth") > 0, "a preview"
    )

    ui.js("document.activeElement.blur()")
    for scheme in ("light", "dark"):
        color_scheme(ui.driver, scheme)
        viewport(ui.driver, DESKTOP)
        for view in ("compose", "gallery", "backend"):
            ui.show(view)
            ui.wait_for(lambda: ui.js("return document.body.dataset.view") == view, view)  # noqa: B023
            if view == "gallery":
                ui.wait_for(lambda: ui.js(THUMBS_LOADED), "thumbnails")
            ui.screenshot(f"desktop-{scheme}-{view}")
        viewport(ui.driver, PHONE)
        for view in ("compose", "queue", "gallery"):
            ui.show(view)
            ui.js("window.scrollTo(0, 0)")
            ui.screenshot(f"phone-{scheme}-{'running' if view == 'queue' else view}")
    ui.show("gallery")
    viewport(ui.driver, DESKTOP)
    color_scheme(ui.driver, "light")
    ui.click(f"#g-grid li[data-job-id='{ids[1]}'] .thumb")
    ui.wait_for(lambda: ui.js("return document.getElementById('lb-img').naturalWidth") > 0, "image")
    ui.wait_for(lambda: "Steps" in ui.text("#lb-infotext"), "infotext")
    ui.screenshot("desktop-light-lightbox")
    ActionChains(ui.driver).send_keys(Keys.ESCAPE).perform()
    ui.click(f"#g-grid li[data-job-id='{failed}'] button[aria-label$='failed']")
    ui.wait_for(lambda: ui.js("return document.getElementById('failure').open"), "details")
    ui.screenshot("desktop-light-failure")
    server.post(f"/api/v1/jobs/{running}/cancel")
