"""Cold start of ``numsentry check`` on the bundled example (``python -m bench.cold_start``).

Each run is a fresh process, as a user or CI would start it. Prints the median and spread of
wall time over N runs, and what the check itself took (from the JSON report), so start-up cost
(imports) and analysis cost can be told apart. Goal: median <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src/numsentry/examples/softmax_ce.onnx"


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=9, help="runs (default 9)")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "numsentry.cli.main", "check", str(EXAMPLE), "--range", "x=0,1",
           "--range", "y=0,1", "--weights", "trainable", "--output-format", "json", "--exit-zero"]
    walls, checks = [], []
    imp = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - t0)
        checks.append(json.loads(p.stdout)["stats"]["seconds"])
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numsentry.cli.main, numsentry.analyses.check"], check=True)
        imp.append(time.perf_counter() - t0)
    print(f"{'what':<38}{'median s':>10}{'min s':>10}{'max s':>10}")
    for name, xs in (("numsentry check (wall, fresh process)", walls),
                     ("python + imports only", imp), ("analysis (stats.seconds)", checks)):
        print(f"{name:<38}{statistics.median(xs):>10.3f}{min(xs):>10.3f}{max(xs):>10.3f}")
    print(f"runs: {args.n}; goal: median wall <= 0.5 s -> {'met' if statistics.median(walls) <= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
