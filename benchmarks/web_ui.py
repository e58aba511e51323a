"""The web UI in a real headless Chromium: first load with 2,000 jobs in history, the page's
main-thread time while a 500-image job runs, and the bytes a first load transfers. JSON out.

    python benchmarks/web_ui.py [--quick] [--out FILE]

A home is seeded with 2,000 finished jobs (100 with --quick), each with its own image, then a
real `stablenew serve` serves it with the reference backend. The browser is Debian's
`chromium` driven through `chromium-driver` (nothing downloaded), with a fresh profile: cold
cache every first load.

- `first_load`: time to interactive, from the navigation's start to the page's own mark
  `stablenew:interactive` (the compose form, the queue, the running job, the gallery's first
  page and the backend's state drawn, every handler bound, the event stream open), median of
  `loads` cold loads; the same with an empty history for comparison.
- `transfer`: bytes on the wire for a first load (Resource Timing `transferSize`), at
  interactive and once the gallery's first thumbnails are in.
- `main_thread`: while a 500-image job runs (30 with --quick; the backend at 10 ms a step,
  10 steps an image, its progress polled every 50 ms, so lifecycle events, step progress and
  previews all come, faster than for real images), Chromium's main-thread task time (CDP
  Performance `TaskDuration`) per second of wall time, the page showing compose, running and
  queue, and then the log; idle as a base. A run whose job brought the page no step progress
  is refused: its figure would leave progress out.

Targets: time to interactive <= 1,500 ms with 2,000 jobs; main thread <= 200 ms/s during the
job (a fifth of one core); first load <= 1 MiB.
"""

from __future__ import annotations

import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from api_common import serving, wait_finished
from common import benchmark_main
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from stablenew.jobs.outcome import JobOutcome, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore

# Each image's call (10 steps of 10 ms) spans polls of /progress: the job reports step progress.
STEPS = 10
POLLING = "[recovery]\npoll_interval = 0.05\npreview_interval = 0.2\n"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PROMPTS = [
    "a lighthouse at dusk, oil painting",
    "a red fox in fresh snow, golden hour",
    "an old harbour town, watercolour",
    "portrait of an owl, studio light",
    "a quiet forest lake at dawn",
]


def seed_history(home: Path, count: int) -> None:
    """`count` finished jobs in the home's store, newest last, each with one 256x256 image."""
    home.mkdir(parents=True, exist_ok=True)
    store = JobStore(home / "jobs.db")
    outputs = home / "outputs" / "seeded"
    specs = [
        JobSpec(prompt=f"{PROMPTS[n % len(PROMPTS)]} #{n}", seed=n, width=256, height=256)
        for n in range(count)
    ]
    ids = store.submit_many(specs, source="api")
    for n, job_id in enumerate(ids):
        claim = store.claim_next("seed")
        assert claim is not None and claim.job.id == job_id
        folder = outputs / job_id[:8]
        folder.mkdir(parents=True)
        image = folder / "1_txt2img.png"
        buffer = io.BytesIO()
        shade = (n * 37 % 256, n * 91 % 256, n * 53 % 256)
        picture = Image.new("RGB", (256, 256), shade)
        picture.paste((255 - shade[0], shade[2], shade[1]), (64, 64, 192, 192))
        picture.save(buffer, format="PNG")
        image.write_bytes(buffer.getvalue())
        result = JobResult(
            run_dir=str(folder),
            seeds=[n],
            images=[str(image)],
            stages={"txt2img": [str(image)]},
        )
        store.finish(job_id, "seed", JobOutcome(status=JobStatus.COMPLETED, result=result))
    store.close()


def chrome() -> tuple[WebDriver, Path]:
    profile = Path(tempfile.mkdtemp(prefix="stablenew-bench-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1440,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    return driver, profile


def wait(driver: WebDriver, script: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(script)


def cold_load(url: str) -> dict[str, float]:
    """One first load in a fresh profile: time to interactive and the bytes transferred."""
    driver, profile = chrome()
    try:
        driver.get(url + "/")
        wait(driver, "return document.body.dataset.ready === 'true'")
        tti = driver.execute_script(
            "return performance.getEntriesByName('stablenew:interactive')[0].startTime"
        )
        transferred = (
            "return [...performance.getEntriesByType('navigation'),"
            " ...performance.getEntriesByType('resource')]"
            ".reduce((sum, e) => sum + (e.transferSize || 0), 0)"
        )
        at_interactive = driver.execute_script(transferred)
        driver.execute_script("window.stablenew.show('gallery')")
        wait(
            driver,
            "const imgs = [...document.querySelectorAll('#g-grid img')].slice(0, 12);"
            "return imgs.every(i => i.complete && i.naturalWidth > 0)",
        )
        with_thumbs = driver.execute_script(transferred)
        return {"tti_ms": float(tti), "bytes": at_interactive, "bytes_thumbs": with_thumbs}
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def task_seconds(driver: WebDriver) -> float:
    metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def main_thread(url: str, images: int) -> dict[str, Any]:
    """The page's main-thread time per second, idle and while a job of `images` runs."""
    driver, profile = chrome()
    try:
        driver.get(url + "/")
        wait(driver, "return document.body.dataset.ready === 'true'")
        wait(driver, "return document.body.dataset.stream === 'live'")
        driver.execute_cdp_cmd("Performance.enable", {"timeDomain": "threadTicks"})
        start, t0 = task_seconds(driver), time.monotonic()
        time.sleep(3)
        idle = (task_seconds(driver) - start) / (time.monotonic() - t0)
        figures: dict[str, Any] = {"idle_ms_per_s": round(idle * 1000, 1)}
        with httpx.Client(base_url=url, timeout=60) as client:
            for view in ("compose", "backend"):
                driver.execute_script(f"window.stablenew.show('{view}')")
                before = driver.execute_script("return window.stablenew.stats.events")
                progressed = driver.execute_script("return window.stablenew.stats.progress")
                body = {
                    "spec": {
                        "prompt": "a benchmark of many images",
                        "steps": STEPS,
                        "width": 64,
                        "height": 64,
                        "seed": 1,
                        "images": images,
                    }
                }
                answer = client.post("/api/v1/jobs", json=body)
                answer.raise_for_status()
                job_id = answer.json()["ids"][0]
                start, t0 = task_seconds(driver), time.monotonic()
                job = wait_finished(client, job_id)
                wall = time.monotonic() - t0
                busy = task_seconds(driver) - start
                events = len(client.get(f"/api/v1/jobs/{job_id}/events?limit=10000").json())
                wait(
                    driver,
                    f"return window.stablenew.stats.events - {before} >= {events}",
                    timeout=30,
                )
                progress = (
                    driver.execute_script("return window.stablenew.stats.progress") - progressed
                )
                if not progress:
                    raise RuntimeError(f"the {view} run brought no step progress to the page")
                figures[view] = {
                    "status": job["status"],
                    "job_s": round(wall, 2),
                    "main_thread_ms_per_s": round(busy / wall * 1000, 1),
                    "main_thread_s": round(busy, 3),
                    "lifecycle_events": events,
                    "progress_events": progress,
                }
        return figures
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def run(quick: bool) -> dict[str, Any]:
    jobs = 100 if quick else 2000
    images = 30 if quick else 500
    loads = 1 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        empty_home, full_home = Path(tmp) / "empty", Path(tmp) / "full"
        started = time.monotonic()
        seed_history(full_home, jobs)
        seeded_s = time.monotonic() - started
        with serving(empty_home, "--step-ms", "10") as url:
            httpx.get(url + "/api/v1/backend/models", timeout=60)  # the lists, warm
            empty = [cold_load(url) for _ in range(loads)]
        with serving(full_home, "--step-ms", "10", config=POLLING) as url:
            httpx.get(url + "/api/v1/backend/models", timeout=60)
            full = [cold_load(url) for _ in range(loads)]
            busy = main_thread(url, images)
    tti = statistics.median(r["tti_ms"] for r in full)
    return {
        "benchmark": "web_ui",
        "quick": quick,
        "browser": "Debian chromium (headless), chromium-driver",
        "history_jobs": jobs,
        "seeded_s": round(seeded_s, 1),
        "first_load": {
            "loads": loads,
            "tti_ms": round(tti, 1),
            "tti_ms_all": [round(r["tti_ms"], 1) for r in full],
            "tti_ms_empty_history": round(statistics.median(r["tti_ms"] for r in empty), 1),
        },
        "transfer": {
            "bytes_at_interactive": int(statistics.median(r["bytes"] for r in full)),
            "bytes_with_first_thumbnails": int(statistics.median(r["bytes_thumbs"] for r in full)),
        },
        "main_thread": {"images": images, **busy},
        "targets": {
            "first_load.tti_ms": "<= 1500",
            "main_thread.compose.main_thread_ms_per_s": "<= 200",
            "transfer.bytes_at_interactive": "<= 1048576",
        },
    }


if __name__ == "__main__":
    benchmark_main(lambda args: run(args.quick), __doc__)
