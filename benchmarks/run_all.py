"""Run every benchmark and write benchmarks/results/latest.json (and print it).

python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "queue_scale.py",
    "product.py",
    "pool.py",
    "gui_latency.py",
    "gui_memory.py",
    "api_submit.py",
    "api_sse.py",
    "web_ui.py",
    "live_progress.py",
)


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "processor": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick,
        "machine": machine(),
        "command": f"python benchmarks/run_all.py{' --quick' if args.quick else ''}",
    }
    for script in BENCHMARKS:
        command = [sys.executable, str(HERE / script), *(["--quick"] if args.quick else [])]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            report[script.removesuffix(".py")] = {"error": done.stderr.strip()[-2000:]}
            continue
        report[script.removesuffix(".py")] = json.loads(done.stdout)
    out = HERE / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    failed = [k for k, v in report.items() if isinstance(v, dict) and "error" in v]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
