"""The benchmarks keep working: each runs in its quick form and reports every figure it targets.

Only the shape is checked here; the figures themselves belong to `benchmarks/run_all.py` on a
quiet machine, not to a test on a shared one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_quick(script: str, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report == json.loads(done.stdout)  # the file and stdout say the same
    return report


def figure(report: dict[str, Any], dotted: str) -> float:
    value: Any = report
    for key in dotted.split("."):
        value = value[key]
    return float(value)


@pytest.mark.parametrize(
    "script",
    [
        "queue_scale.py",
        "product.py",
        "pool.py",
        "gui_latency.py",
        "gui_memory.py",
        "api_submit.py",
        "api_sse.py",
        "web_ui.py",
        "live_progress.py",
    ],
)
def test_benchmark_reports_every_targeted_figure(script: str, tmp_path: Path) -> None:
    if script.startswith("gui_") and shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (.ci/run installs it)")
    if script == "web_ui.py" and not (
        Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()
    ):
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    report = run_quick(script, tmp_path / "report.json")
    assert report["quick"] is True
    assert report["targets"], "a benchmark states what it aims for"
    for dotted in report["targets"]:
        figure(report, dotted)  # present and numeric
    if script == "product.py":
        for part in ("overhead_64", "overhead_512", "realistic"):
            assert report[part]["product_s"] > 0 and report[part]["bare_s"] > 0
        assert report["cancel_honour"]["trials"] == report["cancel_ignore"]["trials"] >= 1
    if script == "pool.py":  # affinity batches models; FIFO switches on most jobs
        runs = report["affinity"]
        assert runs["affinity"]["switches"] < runs["fifo"]["switches"]
    if script == "gui_latency.py":  # the gallery was open and the live preview shown
        assert report["gallery_items"] == report["images"] and report["live_previews_shown"] > 0
    if script == "gui_memory.py":
        assert report["gallery_items"] == report["jobs"]
    if script == "web_ui.py":  # the page followed every lifecycle event of the job
        for view in ("compose", "backend"):
            assert report["main_thread"][view]["status"] == "COMPLETED"
            assert report["main_thread"][view]["lifecycle_events"] > report["main_thread"]["images"]
    if script == "live_progress.py":  # the flood ended on its last step, in the store
        assert report["rate"]["ended_on_last"] is True
    if script == "api_sse.py":  # every client got every lifecycle event of the job
        assert report["lag_ms"]["frames"] == report["clients"] * sum(
            report["events_per_client_per_job"]
        )
