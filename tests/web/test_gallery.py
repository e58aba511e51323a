"""Gallery and history in the browser: the grid, filters and search, the lightbox (full image,
stage siblings, infotext, download), load a finished job into compose and run it again, reuse a
seed; a failed job's reason on its card and its envelope and artifacts one click away."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import httpx
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from stablenew.jobs.status import REASON_TEXT, FailureReason
from tests.web.conftest import Page, Server, spec, submit, wait_for


def png_data_uri(color: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def finished(server: Server, ids: list[str]) -> None:
    for job_id in ids:
        server.wait_status(job_id, "COMPLETED", "FAILED", "CANCELLED")


def test_lightbox_then_load_into_compose_and_run_it_again(page: Callable[..., Page]) -> None:
    ui = page()
    server = ui.server
    first = submit(
        server,
        {"spec": spec("a red fox in the snow", images=2, seed=77, upscale={"enabled": True})},
    )[0]
    other = submit(server, {"spec": spec("a blue whale")})[0]
    finished(server, [first, other])
    ui.show("gallery")
    ui.wait_for(lambda: ui.job_ids("#g-grid li") == [other, first], "both, newest first")
    assert ui.text("#g-count") == "2 jobs"
    # Thumbnails are small WebP copies, loaded from the API
    thumb = ui.el(f"#g-grid li[data-job-id='{first}'] img")
    ui.wait_for(lambda: ui.js("return arguments[0].naturalWidth", thumb) > 0, "a thumbnail")
    assert "/thumbs/" in str(thumb.get_attribute("src"))

    # Search narrows the grid (the API's search)
    ui.set_value("g-search", "fox")
    ui.wait_for(lambda: ui.job_ids("#g-grid li") == [first], "searched")
    ui.set_value("g-search", "")
    ui.wait_for(lambda: len(ui.job_ids("#g-grid li")) == 2, "all again")

    # The lightbox: the full image, the last stage first; its siblings; infotext; download
    ui.click(f"#g-grid li[data-job-id='{first}'] .thumb")
    ui.wait_for(lambda: ui.js("return document.getElementById('lightbox').open"), "open")
    image = ui.by_id("lb-img")
    ui.wait_for(lambda: ui.js("return arguments[0].naturalWidth", image) == 128, "upscaled")
    assert ui.text("#lb-pos") == "image 1/2"
    assert ui.texts("#lb-stages button") == ["txt2img", "upscale"]
    ui.wait_for(lambda: "Steps: 2" in ui.text("#lb-infotext"), "its infotext")
    assert "Seed: 77" in ui.text("#lb-infotext")
    download = ui.by_id("lb-download")
    assert download.get_attribute("download") == "1_upscale.png"
    fetched = httpx.get(str(download.get_attribute("href")), timeout=10)
    assert fetched.status_code == 200 and fetched.content[:4] == b"\x89PNG"
    ui.click("#lb-stages button:first-child")  # the txt2img sibling
    ui.wait_for(lambda: ui.js("return arguments[0].naturalWidth", image) == 64, "txt2img")
    assert str(image.get_attribute("src")).endswith("/1_txt2img.png")
    ActionChains(ui.driver).send_keys(Keys.ARROW_RIGHT).perform()  # the next image, same stage
    ui.wait_for(lambda: ui.text("#lb-pos") == "image 2/2", "image 2")
    ui.wait_for(lambda: "Seed: 78" in ui.text("#lb-infotext"), "image 2's seed")
    assert str(image.get_attribute("src")).endswith("/2_txt2img.png")

    # Reuse the seed of image 2, then load image 1 (its own one-image job) and run it again
    ui.click("#lb-seed")
    ui.wait_for(lambda: ui.by_id("c-seed").get_attribute("value") == "78", "the seed")
    ui.show("gallery")
    ui.click(f"#g-grid li[data-job-id='{first}'] .thumb")
    ui.wait_for(lambda: ui.js("return document.getElementById('lightbox').open"), "open")
    ui.click("#lb-load")
    ui.wait_for(lambda: ui.js("return document.body.dataset.view") == "compose", "compose")
    assert not ui.js("return document.getElementById('lightbox').open")
    assert ui.by_id("c-prompt").get_attribute("value") == "a red fox in the snow"
    assert ui.by_id("c-seed").get_attribute("value") == "77"
    assert ui.by_id("c-up").is_selected()
    ui.wait_for(lambda: ui.text("#c-summary") == "1 job, 1 image", "checked")
    ui.click("#c-queue")
    ui.wait_for(lambda: "Queued 1 job" in ui.toast(), "queued")
    ui.show("gallery")
    ui.wait_for(lambda: len(ui.job_ids("#g-grid li")) == 3, "the re-run finished")
    again = ui.job_ids("#g-grid li")[0]
    old, new = server.job(first), server.job(again)
    assert new["status"] == "COMPLETED"
    for key in ("prompt", "seed", "steps", "width", "height", "upscale", "sampler"):
        assert new["spec"][key] == old["spec"][key], key
    assert new["spec"]["images"] == 1
    assert new["result"]["seeds"] == [77] and old["result"]["seeds"] == [77, 78]

    # Re-queue from a card: the same spec again
    ui.click(f"#g-grid li[data-job-id='{other}'] button[aria-label^='Re-queue']")
    ui.wait_for(lambda: "Queued again" in ui.toast(), "re-queued")
    ui.wait_for(lambda: len(ui.job_ids("#g-grid li")) == 4, "four")
    assert ui.errors() == []


def test_a_failures_reason_inline_and_its_envelope_one_click_away(
    page: Callable[..., Page],
) -> None:
    ui = page()
    server = ui.server
    server.faults({"http_error": {"stage": "txt2img", "count": 1, "kind": "oom"}})
    failed = submit(server, {"spec": spec("this one runs out of memory")})[0]
    finished(server, [failed])
    job = server.job(failed)
    assert job["status"] == "FAILED"
    ui.show("gallery")
    card = f"#g-grid li[data-job-id='{failed}']"
    ui.wait_for(lambda: ui.els(card), "its card")
    reason = ui.text(f"{card} .reason")
    # the desktop app's words (ErrorEnvelope.reason_line): where, then the reason in words
    assert reason == f"txt2img image 1: {REASON_TEXT[FailureReason.OUT_OF_MEMORY]}", reason
    ui.choose("g-status", "FAILED")
    ui.wait_for(lambda: ui.job_ids("#g-grid li") == [failed], "failed only")
    ui.click(f"{card} button[aria-label$='failed']")
    ui.wait_for(lambda: ui.js("return document.getElementById('failure').open"), "details")
    assert ui.text("#f-line") == reason
    envelope = ui.text("#f-json")
    assert '"type"' in envelope and job["error"]["type"] in envelope
    assert ui.texts("#f-causes li"), "the causes"
    artifacts = ui.texts("#f-artifacts li")
    expected = [a.replace(job["result"]["run_dir"] + "/", "") for a in job["error"]["artifacts"]]
    assert [a for a in artifacts if a != "No failure artifacts."] == expected
    for link in ui.els("#f-artifacts a"):
        assert httpx.get(str(link.get_attribute("href")), timeout=10).status_code == 200
    ui.click("#failure details summary")  # every file of the job
    ui.wait_for(lambda: len(ui.els("#f-files li a")) > 0, "its files")
    # Retry from there: a new job, linked
    ui.click("#f-retry")
    ui.wait_for(lambda: "Queued again" in ui.toast(), "retried")
    retried = [j for j in server.get("/api/v1/jobs").json()["jobs"] if j["retried_from"]]
    assert retried and retried[0]["retried_from"] == failed
    wait_for(lambda: server.job(retried[0]["id"])["status"] == "COMPLETED", 60, "the retry ran")


def test_history_pages_load_as_the_grid_scrolls(page: Callable[..., Page]) -> None:
    ui = page()
    server = ui.server
    ids = submit(server, {"specs": [spec(f"page test {n}") for n in range(45)]})
    finished(server, ids)
    assert len(ui.els("#g-grid li")) == 45  # live: each finished job came in as it ended
    ui.reload("/#/gallery")  # a fresh load: pages
    ui.wait_for(lambda: len(ui.els("#g-grid li")) == 40, "the first page")
    assert ui.text("#g-count") == "45 jobs"
    assert ui.job_ids("#g-grid li")[0] == ids[-1]  # newest first
    assert ui.by_id("g-more").is_displayed()
    ui.js("document.getElementById('g-sentinel').scrollIntoView()")  # scrolling down
    ui.wait_for(lambda: len(ui.els("#g-grid li")) == 45, "the next page")
    assert sorted(ui.job_ids("#g-grid li")) == sorted(ids)  # each once
    ui.wait_for(lambda: not ui.by_id("g-more").is_displayed(), "no more")
    ui.choose("g-status", "CANCELLED")
    ui.wait_for(lambda: ui.text("#g-count") == "0 jobs", "filtered")
    assert ui.els("#g-grid li") == []


def test_load_into_compose_loads_that_images_own_job(page: Callable[..., Page]) -> None:
    """Image i of a random-seed job, from the lightbox or a card: its own seed, one image, its
    own input image, as the PNG import gives it (the whole job's seed -1 made other images)."""
    ui = page()
    server = ui.server
    random = submit(server, {"spec": spec("a random fox", images=3, seed=-1)})[0]
    inputs = []
    for n, color in enumerate(("red", "blue"), 1):
        answer = server.post("/api/v1/inputs", {"name": f"in{n}.png", "data": png_data_uri(color)})
        assert answer.status_code == 201, answer.text
        inputs.append(answer.json())
    from_images = submit(
        server,
        {"spec": spec("", inputs=inputs, images=2, img2img={"enabled": True})},
    )[0]
    finished(server, [random, from_images])
    seeds = server.job(random)["result"]["seeds"]
    assert len(set(seeds)) == 3, seeds

    ui.show("gallery")
    ui.wait_for(lambda: len(ui.job_ids("#g-grid li")) == 2, "both")
    ui.click(f"#g-grid li[data-job-id='{random}'] .thumb")
    ui.wait_for(lambda: ui.js("return document.getElementById('lightbox').open"), "open")
    ui.click("#lb-next")
    ui.wait_for(lambda: ui.text("#lb-pos") == "image 2/3", "image 2")
    ui.click("#lb-load")
    ui.wait_for(lambda: ui.by_id("c-seed").get_attribute("value") == str(seeds[1]), "its seed")
    assert ui.by_id("c-images").get_attribute("value") == "1"
    assert ui.by_id("c-prompt").get_attribute("value") == "a random fox"
    ui.wait_for(lambda: ui.text("#c-summary") == "1 job, 1 image", "one image")
    ui.click("#c-random")  # re-rolling stays a click away
    assert ui.by_id("c-seed").get_attribute("value") == "-1"

    ui.show("gallery")
    ui.click(f"#g-grid li[data-job-id='{random}'] button[aria-label^='Load job']")
    ui.wait_for(lambda: ui.by_id("c-seed").get_attribute("value") == str(seeds[0]), "image 1's")
    assert ui.by_id("c-images").get_attribute("value") == "1"

    ui.show("gallery")
    ui.click(f"#g-grid li[data-job-id='{from_images}'] .thumb")
    ui.wait_for(lambda: ui.js("return document.getElementById('lightbox').open"), "open")
    ui.click("#lb-next")
    ui.wait_for(lambda: ui.text("#lb-pos") == "image 2/2", "image 2")
    ui.click("#lb-load")
    ui.wait_for(lambda: ui.texts("#c-inputs .name") == ["in2.png"], "its own input image")
    ui.wait_for(lambda: ui.text("#c-summary") == "1 job, 1 image", "one image")
    assert ui.errors() == []
