"""What every benchmark's command line shares: --quick, --out, JSON on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Benchmarks run as scripts; the repository root holds the development support (devtools/).
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))


def benchmark_main(
    run: Callable[[argparse.Namespace], dict[str, Any]],
    doc: str | None,
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help="a smaller run, for CI")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args()
    result = json.dumps(run(args), indent=2)
    if args.out:
        args.out.write_text(result + "\n")
    sys.stdout.write(result + "\n")
