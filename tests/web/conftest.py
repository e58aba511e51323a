"""What the web UI tests share: a real `stablenew serve` (see tests/api) and a real headless
Chromium driven by Selenium.

The browser is Debian's `chromium` with its `chromium-driver` (`.ci/run` installs both); nothing
is downloaded. Each test gets a fresh profile. Every wait is a WebDriverWait on a condition
with a generous bound; nothing sleeps to paper over a race.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.api import conftest as api
from tests.api.conftest import Server, fast_config, small, wait_for

serve = api.serve  # the same fixture: `stablenew serve` processes, stopped afterwards
sse = api.sse
local_services = api.local_services
local_app = api.local_app
__all__ = [
    "Server",
    "fast_config",
    "local_app",
    "local_services",
    "serve",
    "small",
    "sse",
    "wait_for",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
# The README's pictures are written only when asked (`python -m devtools.screenshots`); a test
# run goes through the same flow and leaves the working tree alone.
SCREENSHOTS = Path(
    os.environ.get("STABLENEW_SCREENSHOTS") or tempfile.mkdtemp(prefix="stablenew-web-shots-")
)
DESKTOP = (1440, 900)
PHONE = (390, 844)

pytestmark = pytest.mark.integration


def web_config(step_ms: int = 20, *flags: str) -> str:
    """The reference backend at `step_ms` a step, live previews as often as allowed."""
    config = fast_config("--step-ms", str(step_ms), *flags)
    return config.replace("[recovery]\n", "[recovery]\npreview_interval = 0.2\n")


def browser_missing() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
    return None


def chrome(size: tuple[int, int] = DESKTOP) -> tuple[WebDriver, Path]:
    """A headless Chromium with a fresh profile; nothing it does leaves the machine."""
    profile = Path(tempfile.mkdtemp(prefix="stablenew-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # as root, Chromium needs it
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
        "--password-store=basic",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    viewport(driver, size)
    return driver, profile


def viewport(driver: WebDriver, size: tuple[int, int], mobile: bool | None = None) -> None:
    """The page's viewport exactly (a phone: 390x844, touch and all)."""
    phone = size[0] < 600 if mobile is None else mobile
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": phone},
    )


def color_scheme(driver: WebDriver, scheme: str) -> None:
    """What the system says: light or dark."""
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


@dataclass
class Page:
    """The web UI in a browser, with waits on conditions."""

    driver: WebDriver
    server: Server

    def open(self, path: str = "/") -> Page:
        self.driver.get(self.server.url + path)
        return self._ready()

    def reload(self, path: str = "/") -> Page:
        """A fresh load of the page (a new address differing only in its #view would not)."""
        self.driver.get(self.server.url + path)
        self.driver.refresh()
        return self._ready()

    def _ready(self) -> Page:
        self.wait_for(lambda: self.js("return document.body.dataset.ready") == "true", "ready")
        self.wait_for(lambda: self.js("return document.body.dataset.stream") == "live", "live")
        return self

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait_for(self, condition: Callable[[], Any], what: str = "", timeout: float = 60) -> Any:
        def check(_: WebDriver) -> Any:
            try:
                return condition()
            except (StaleElementReferenceException, JavascriptException):
                return False

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            check, f"timed out waiting for {what or condition}"
        )

    def el(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def els(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def by_id(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, css: str) -> str:
        return str(
            self.js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css
            )
        )

    def click(self, css: str) -> None:
        element = self.el(css)
        self.js("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def show(self, view: str) -> None:
        self.js("window.stablenew.show(arguments[0])", view)

    def set_value(self, element_id: str, value: str) -> None:
        """Type into a field as a user does: select what is there, then type over it."""
        field = self.by_id(element_id)
        self.js("arguments[0].scrollIntoView({block: 'center'})", field)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(value or Keys.BACKSPACE)

    def choose(self, element_id: str, value: str) -> None:
        self.js(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
            "s.dispatchEvent(new Event('change', {bubbles: true}))",
            element_id,
            value,
        )

    def toast(self) -> str:
        return self.text("#toast")

    def errors(self) -> list[dict[str, Any]]:
        """Console errors and CSP violations the page logged (an API call answered 4xx on
        purpose, such as a 422 while the user types, is the API's answer, not an error)."""

        def expected(entry: dict[str, Any]) -> bool:
            message = str(entry.get("message", ""))
            return (
                entry.get("source") == "network"
                and "/api/v1/" in message
                and "status of 4" in message
            )

        return [
            e
            for e in self.driver.get_log("browser")
            if e.get("level") == "SEVERE" and not expected(e)
        ]

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"web-{name}.png"
        data = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def job_ids(self, css: str) -> list[str]:
        return [str(e.get_attribute("data-job-id")) for e in self.els(css)]

    def texts(self, css: str) -> list[str]:
        script = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)"
        return [str(t) for t in self.js(script, css)]

    def log_seqs(self) -> list[int]:
        script = "return [...document.querySelectorAll('#l-list li')].map(li => li.dataset.seq)"
        return [int(s) for s in self.js(script)]


@pytest.fixture
def browser() -> Iterator[Callable[..., WebDriver]]:
    """Start browsers (`browser(size)`); every one is closed afterwards."""
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    started: list[tuple[WebDriver, Path]] = []

    def make(size: tuple[int, int] = DESKTOP) -> WebDriver:
        driver, profile = chrome(size)
        started.append((driver, profile))
        return driver

    yield make
    for driver, profile in started:
        with contextlib.suppress(WebDriverException):
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(
    browser: Callable[..., WebDriver],
    serve: Callable[..., Server],
) -> Callable[..., Page]:
    """`page(server=None, size=DESKTOP)`: the web UI of a server (a fresh one by default, the
    reference backend at 20 ms a step so a job is slow enough to watch), opened and live."""

    def make(
        server: Server | None = None, size: tuple[int, int] = DESKTOP, path: str = "/"
    ) -> Page:
        server = server or serve(config=web_config())
        return Page(browser(size), server).open(path)

    return make


def spec(prompt: str = "a web test", **extra: Any) -> dict[str, Any]:
    """A small, quick job's spec."""
    return {**small(prompt), **extra}


def submit(server: Server, body: dict[str, Any]) -> list[str]:
    answer = server.post("/api/v1/jobs", body)
    assert answer.status_code == 201, answer.text
    return list(answer.json()["ids"])


def pretty(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)[:4000]
