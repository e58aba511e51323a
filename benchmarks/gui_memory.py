"""Memory of the desktop app with 2,000 jobs in history, and how long its gallery takes to open
and to be scrolled to the end. JSON out.

    python benchmarks/gui_memory.py [--quick] [--out FILE]

A home is filled with finished jobs (each with an image; 60 distinct pictures of 512x512), the
real app opens it on a virtual display against the reference backend, the gallery shows its
first page, then is scrolled page by page to the end (every page fetched, the thumbnails in view
decoded), then the History tab pages through. The process's resident memory (RSS) is read
before the window, once the gallery shows, and after the scroll. Target: under 400 MB after the
whole history was scrolled (the thumbnail cache is bounded; pages hold jobs, not pictures).
"""

from __future__ import annotations

import os
import tempfile
import time
import tkinter as tk
from pathlib import Path

import psutil
from common import benchmark_main  # the sibling module: benchmarks run as scripts
from devtools.xvfb import start_xvfb
from PIL import Image

from stablenew.app.services import ServiceConfig, Services
from stablenew.gui.prefs import Prefs
from stablenew.gui.window import MainWindow
from stablenew.jobs.outcome import JobOutcome, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.pipeline.settings import PipelineSettings
from stablenew.queue.store import JobStore
from stablenew.webui.process import LaunchConfig, reference_backend_command

PICTURES = 60


def mb(process: psutil.Process) -> float:
    return round(process.memory_info().rss / 2**20, 1)


def fill(home: Path, jobs: int) -> None:
    folder = home / "out" / "history"
    folder.mkdir(parents=True)
    files = []
    for n in range(PICTURES):
        path = folder / f"{n:03}.png"
        Image.new("RGB", (512, 512), (n * 4 % 256, 120, 255 - n * 4 % 256)).save(path)
        files.append(str(path))
    store = JobStore(home / "jobs.db")
    ids = store.submit_many([JobSpec(prompt=f"history job {n}", seed=n) for n in range(jobs)])
    for n, job_id in enumerate(ids):
        if store.claim_next("benchmark") is None:
            raise RuntimeError("the store gave no job to finish")
        result = JobResult(run_dir=str(folder), seeds=[n], images=[files[n % PICTURES]])
        store.finish(job_id, "benchmark", JobOutcome(status=JobStatus.COMPLETED, result=result))
    store.close()


def pump(root: tk.Tk, until: object, timeout: float, what: str) -> float:
    started = time.perf_counter()
    while not until():  # type: ignore[operator]
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        root.update()
        time.sleep(0.005)
    return time.perf_counter() - started


def run(quick: bool) -> dict[str, object]:
    jobs = 500 if quick else 2000
    xvfb = None
    if not os.environ.get("DISPLAY"):
        xvfb, os.environ["DISPLAY"] = start_xvfb()
    try:
        with tempfile.TemporaryDirectory() as folder:
            return {"quick": quick, **measure(Path(folder), jobs)}
    finally:
        if xvfb is not None:
            xvfb.terminate()


def measure(home: Path, jobs: int) -> dict[str, object]:
    me = psutil.Process()
    fill(home, jobs)
    before = mb(me)
    services = Services(
        ServiceConfig(
            home=home,
            database=home / "jobs.db",
            log_dir=home / "logs",
            launch=LaunchConfig(
                command=reference_backend_command(0), log_dir=home / "logs", startup_timeout=60
            ),
            pipeline=PipelineSettings(output_root=home / "out"),
        )
    )
    window = MainWindow(services, Prefs(home / "gui.json"), tk.Tk())
    root = window.root
    try:
        window.start()
        gallery = window.gallery
        opened = pump(root, lambda: gallery.total_jobs == jobs, 60, "the gallery's first page")
        pump(root, lambda: gallery.cache.decoded >= 8, 60, "the first thumbnails")
        shown = mb(me)
        started = time.perf_counter()
        while gallery.more or gallery.loading:
            gallery.canvas.yview_moveto(1.0)
            gallery.redraw_soon()
            pump(root, lambda: not gallery.loading, 60, "a page")
            root.update()
        scrolled_s = time.perf_counter() - started
        pump(root, lambda: gallery.cache.decoded >= 16, 60, "thumbnails at the end")
        window.show_tab("History")
        history = window.history
        for offset in range(100, jobs, 100):
            window.refresh_history(offset)
            wanted = offset
            pump(root, lambda: history.offset >= wanted, 30, "a history page")  # noqa: B023
        after = mb(me)
        return {
            "benchmark": "gui_memory",
            "jobs": jobs,
            "gallery_items": len(gallery.all_items),
            "thumbnails_cached": len(gallery.cache.photos),
            "thumbnails_decoded": gallery.cache.decoded,
            "rss_mb_before_window": before,
            "rss_mb_gallery_open": shown,
            "rss_mb_after_scrolling_all": after,
            "gallery_first_page_s": round(opened, 2),
            "gallery_scroll_to_end_s": round(scrolled_s, 2),
            "targets": {"rss_mb_after_scrolling_all": "<= 400"},
        }
    finally:
        window.close()
        while not window.destroyed:
            root.update()
            time.sleep(0.01)


def main() -> None:
    benchmark_main(lambda args: run(args.quick), __doc__)


if __name__ == "__main__":
    main()
