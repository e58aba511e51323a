"""The web UI's security: user text is text everywhere (a prompt with <script> and <img onerror>,
a file name, an error message), a strict Content-Security-Policy on every answer, nothing
requested from another origin, and off loopback the login page and its HttpOnly cookie (the
token never in an address)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image
from selenium.webdriver.remote.webdriver import WebDriver

from tests.web.conftest import Page, Server, web_config

WEB = Path(__file__).resolve().parents[2] / "src" / "stablenew" / "web"
HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> & "q"'


def no_injection(ui: Page) -> None:
    assert ui.js("return window.__xss === undefined"), "a script ran"
    assert ui.js("return document.querySelectorAll('img[src=\"x\"], img[onerror]').length") == 0
    scripts = ui.js("return [...document.scripts].map(s => s.getAttribute('src'))")
    assert scripts == ["/web/js/main.js"], scripts


def test_hostile_text_is_shown_as_text_everywhere(
    page: Callable[..., Page], tmp_path: Path
) -> None:
    ui = page()
    server = ui.server
    ui.set_value("q-reason", HOSTILE)  # a pause reason, too
    ui.click("#q-pause")
    ui.wait_for(lambda: ui.text("#q-paused") == f"Paused: {HOSTILE}", "paused, as text")

    # An input image whose file name is markup
    name = '<img src=x onerror="window.__xss = 3">.png'
    picture = tmp_path / name
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, format="PNG")
    picture.write_bytes(buffer.getvalue())
    ui.by_id("c-files").send_keys(str(picture))
    ui.wait_for(lambda: ui.texts("#c-inputs .name") == [name], "the file name, as text")
    ui.click("#c-inputs button")  # removed again: this job starts from txt2img

    ui.set_value("c-prompt", HOSTILE)
    ui.set_value("c-negative", HOSTILE)
    for field, value in (("c-steps", "20"), ("c-width", "64"), ("c-height", "64")):
        ui.set_value(field, value)
    ui.wait_for(lambda: ui.text("#c-summary") == "1 job, 1 image", "valid")
    ui.click("#c-queue")
    ui.wait_for(lambda: len(ui.els("#q-list li")) == 1, "waiting")
    job_id = ui.job_ids("#q-list li")[0]
    assert ui.text("#q-list li .prompt-text") == HOSTILE
    no_injection(ui)

    ui.click("#q-resume")
    ui.wait_for(lambda: ui.text("#run-prompt") == HOSTILE, "running, as text")
    ui.wait_for(lambda: ui.job_ids("#q-recent li")[:1] == [job_id], "finished")
    assert ui.text("#q-recent li .prompt-text") == HOSTILE
    ui.show("gallery")
    ui.wait_for(
        lambda: ui.text(f"#g-grid li[data-job-id='{job_id}'] .prompt-text") == HOSTILE, "card"
    )
    ui.click(f"#g-grid li[data-job-id='{job_id}'] .thumb")
    ui.wait_for(lambda: HOSTILE in ui.text("#lb-infotext"), "infotext, as text")
    assert ui.text("#lb-prompt") == HOSTILE
    ui.click("#lb-load")
    ui.wait_for(lambda: ui.by_id("c-prompt").get_attribute("value") == HOSTILE, "loaded")
    no_injection(ui)

    # An error message that quotes what was typed: the API's words, as text
    ui.js(
        "window.stablenew.compose.load({prompt: 'x', sampler: arguments[0], steps: 2,"
        " width: 64, height: 64})",
        HOSTILE,
    )
    ui.wait_for(lambda: any("sampler" in m for m in ui.texts("#c-messages li")), "refused")
    assert any(HOSTILE in m for m in ui.texts("#c-messages li"))
    ui.show("backend")  # the log holds the job's trail
    ui.wait_for(lambda: len(ui.log_seqs()) > 0, "the log")
    no_injection(ui)
    assert ui.errors() == []
    assert server.job(job_id)["spec"]["prompt"] == HOSTILE


def test_csp_on_every_answer_and_nothing_from_another_origin(page: Callable[..., Page]) -> None:
    ui = page()
    base = ui.server.url
    for path in ("/", "/web/app.css", "/web/js/main.js", "/api/v1/queue", "/login", "/nope"):
        answer = httpx.get(base + path, timeout=10)
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy, path
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
    docs = httpx.get(base + "/docs", timeout=10)
    assert re.search(
        r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+'", docs.headers["content-security-policy"]
    )
    # Everything the page loaded came from StableNew itself
    ui.show("gallery")
    ui.show("backend")
    urls = ui.js(
        "return [performance.getEntriesByType('navigation')[0].name,"
        " ...performance.getEntriesByType('resource').map(e => e.name)]"
    )
    assert urls and all(u.startswith(base + "/") for u in urls), urls
    assert ui.errors() == []  # no CSP violation, no error
    # /docs (Swagger UI) works offline under its policy
    ui.driver.get(base + "/docs")
    ui.wait_for(lambda: "StableNew API" in ui.text(".swagger-ui .info .title"), "the docs")
    assert ui.errors() == []


def test_no_markup_from_data_in_the_code() -> None:
    """Text goes in as text: no innerHTML and friends, no eval, no address of another site."""
    for path in sorted(WEB.rglob("*")):
        if path.suffix not in (".js", ".html", ".css"):
            continue
        code = path.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert banned not in code, f"{path.name}: {banned}"
        assert "new Function" not in code, path.name
        assert not re.search(r"https?://", code), f"{path.name}: an address of another site"
        if path.suffix == ".html":
            assert not re.search(r"<script>|<style>| style=| on[a-z]+=", code), path.name


def test_off_loopback_the_login_page_then_a_cookie(
    browser: Callable[..., WebDriver], serve: Callable[..., Server]
) -> None:
    server = serve("--host", "0.0.0.0", config=web_config())
    driver = browser()
    ui = Page(driver, server)
    driver.get(server.url + "/")
    ui.wait_for(lambda: driver.current_url == server.url + "/login", "sent to the login page")
    assert httpx.get(server.url + "/api/v1/queue", timeout=10).status_code == 401
    ui.set_value("token", "not the token")
    ui.click("button[type=submit]")
    ui.wait_for(lambda: "not the token" in ui.text("#said"), "refused")
    ui.set_value("token", server.token)
    ui.click("button[type=submit]")
    ui.wait_for(lambda: ui.js("return document.body.dataset.ready") == "true", "the web UI")
    ui.wait_for(lambda: ui.js("return document.body.dataset.stream") == "live", "its stream")
    assert driver.current_url.startswith(server.url + "/#")
    cookie = next(c for c in driver.get_cookies() if c["name"] == "stablenew_token")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert ui.js("return document.cookie") == ""  # the page's scripts cannot read it
    urls = ui.js(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    assert not any(server.token in u for u in urls), "the token in an address"
    # It works: the UI queues and the stream follows, all on the cookie
    ui.set_value("c-prompt", "behind a login")
    for field, value in (("c-steps", "2"), ("c-width", "64"), ("c-height", "64")):
        ui.set_value(field, value)
    ui.click("#c-queue")
    ui.wait_for(lambda: ui.texts("#q-recent li .status")[:1] == ["completed"], "done")
    # A cookie gone meanwhile (another tab logged out): loading an image into compose goes to
    # the login page, as every other call does (it failed quietly).
    ui.show("gallery")
    ui.wait_for(lambda: len(ui.job_ids("#g-grid li")) == 1, "the job's card")
    driver.delete_cookie("stablenew_token")
    ui.click("#g-grid li button[aria-label^='Load job']")
    ui.wait_for(lambda: driver.current_url == server.url + "/login", "sent to the login page")
    ui.set_value("token", server.token)
    ui.click("button[type=submit]")
    ui.wait_for(lambda: ui.js("return document.body.dataset.ready") == "true", "the web UI")
    assert not ui.by_id("logout").get_attribute("hidden")
    ui.click("#logout")
    ui.wait_for(lambda: driver.current_url == server.url + "/login", "logged out")
    assert not any(c["name"] == "stablenew_token" for c in driver.get_cookies())
