"""Run every benchmark (``benchmarks/bench_*.py``) and summarise their JSON results.

Each benchmark measures its figure and a baseline in the same run, prints the ratio and
writes ``benchmarks/results/<name>.json``. GPU parts skip themselves without CUDA.
Usage: ``python benchmarks/run_all.py [NAME ...]`` (names without the ``bench_`` prefix).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.stem}: exit {rc}, {time.perf_counter() - t0:.1f} s", flush=True)
        if rc != 0:
            failed.append(script.stem)
    print("\n=== summary ===")
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        ratio = data.get("ratio")
        print(f"{path.stem:24s} ratio={ratio!s:>10s}  {data.get('summary', '')}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
