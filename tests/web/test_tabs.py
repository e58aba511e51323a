"""Many tabs of one browser on one StableNew: a browser allows six HTTP/1.1 connections per
host, so the tabs share one event stream (one tab reads it, the others hear it relayed) and
any number of them load and work; when the reading tab closes, another takes over without
losing or repeating an event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.web.conftest import Page, Server, spec, submit, web_config

TABS = 8


def store_seqs(server: Server) -> list[int]:
    events = server.get("/api/v1/events/recent?limit=5000").json()["events"]
    return [int(e["seq"]) for e in events]


def on_each_tab(driver: WebDriver, tabs: list[str], script: str, *args: Any) -> list[Any]:
    out = []
    for handle in tabs:
        driver.switch_to.window(handle)
        out.append(driver.execute_script(script, *args))
    return out


def seen_everywhere(ui: Page, tabs: list[str], job_id: str, kind: str) -> bool:
    script = (
        "return window.stablenew.log.events"
        ".some(e => e.job_id === arguments[0] && e.kind === arguments[1])"
    )
    return all(on_each_tab(ui.driver, tabs, script, job_id, kind))


def test_eight_tabs_load_share_one_stream_and_survive_the_leader_closing(
    browser: Callable[..., WebDriver], serve: Callable[..., Server]
) -> None:
    server = serve(config=web_config(5))
    ui = Page(browser(), server).open()
    tabs = [ui.driver.current_window_handle]
    for _ in range(TABS - 1):
        ui.driver.switch_to.new_window("tab")
        tabs.append(ui.driver.current_window_handle)
        ui.open()  # a seventh tab never loaded while each tab held a stream of its own
    assert sum(on_each_tab(ui.driver, tabs, "return window.stablenew.stream.leader")) == 1

    # Ctrl+Enter in the first tab queues; every tab sees the job through the relayed stream.
    ui.driver.switch_to.window(tabs[0])
    for field, value in (("c-steps", "2"), ("c-width", "64"), ("c-height", "64")):
        ui.set_value(field, value)
    ui.set_value("c-prompt", "seen by every tab")
    ui.by_id("c-prompt").send_keys(Keys.CONTROL, Keys.ENTER)
    ui.wait_for(lambda: "Queued 1 job" in ui.toast(), "queued")
    first = server.get("/api/v1/jobs?search=seen+by+every+tab").json()["jobs"][0]["id"]
    ui.wait_for(lambda: seen_everywhere(ui, tabs, first, "job_completed"), "in every tab")

    # The reading tab closes: another takes over, from where it was.
    leader = tabs[on_each_tab(ui.driver, tabs, "return window.stablenew.stream.leader").index(True)]
    ui.driver.switch_to.window(leader)
    ui.driver.close()
    tabs.remove(leader)
    ui.wait_for(
        lambda: sum(on_each_tab(ui.driver, tabs, "return window.stablenew.stream.leader")) == 1,
        "a new leader",
    )
    second = submit(server, {"spec": spec("after the leader left")})[0]
    server.wait_status(second, "COMPLETED")
    ui.wait_for(lambda: seen_everywhere(ui, tabs, second, "job_completed"), "still in every tab")
    expected = store_seqs(server)
    ui.wait_for(
        lambda: all(
            seqs == expected
            for seqs in on_each_tab(
                ui.driver, tabs, "return window.stablenew.log.events.map(e => e.seq)"
            )
        ),
        "every tab's log is the store's, each event once",
    )
    for handle in tabs:
        ui.driver.switch_to.window(handle)
        assert ui.errors() == []
