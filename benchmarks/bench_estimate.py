"""``loralab estimate`` for every shipped preset: GPU memory and epoch time without a GPU.

Each preset's full-size model is built with fake tensors and one step of the real training
code is measured (see ``loralab.estimate``), at the preset's own micro-batch. Presets the
estimator cannot build (a local demo model that is absent, a system it does not support yet)
are listed with the reason. Targets for paper_r64 and pretrained_r320 at batch 8: peak <= 24 GB
and <= 300 s per epoch on an H100. Writes ``benchmarks/results/estimate.json`` and prints the
README's table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_PRESETS = ("paper_r64", "pretrained_r320")


def estimate_preset(name: str, batch_size: int | None) -> dict:
    from loralab.config import ConfigError, load_config
    from loralab.errors import LoralabError
    from loralab.estimate import estimate

    start, cpu = time.perf_counter(), time.process_time()
    try:
        result = estimate(load_config(name, []), batch_size=batch_size)
    except (ConfigError, LoralabError) as e:
        return {"preset": name, "skipped": str(e)}
    except Exception as e:  # noqa: BLE001 - one preset's failure must not hide the others'
        return {"preset": name, "skipped": f"estimator failed: {type(e).__name__}: {e}"}
    result["estimator_wall_s"] = round(time.perf_counter() - start, 1)
    result["estimator_cpu_s"] = round(time.process_time() - cpu, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", help="presets to estimate (default: every shipped one)")
    parser.add_argument(
        "--batch-size", type=int, help="micro-batch for every preset (default: each preset's)"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from loralab.config.loader import list_presets
    from loralab.estimate.report import TABLE_HEADER, TARGET_EPOCH_S, TARGET_PEAK_GB, table_row

    names = args.presets or sorted(n for n in list_presets() if n != "base")
    load_start = os.getloadavg()[0]
    results = {}
    for name in names:
        results[name] = estimate_preset(name, args.batch_size)
        r = results[name]
        print(f"{name}: " + (f"skipped: {r['skipped']}" if "skipped" in r else table_row(r)), flush=True)
    targets = {
        n: results[n]["peak_gb"] <= TARGET_PEAK_GB and results[n]["epoch_seconds_h100"] <= TARGET_EPOCH_S
        for n in TARGET_PRESETS
        if n in results and "skipped" not in results[n]
    }
    done = [r for r in results.values() if "skipped" not in r]
    table = "\n".join([TABLE_HEADER, *(table_row(r) for r in done)])
    summary = "; ".join(
        f"{r['preset']}: peak {r['peak_gb']} GB, epoch {r['epoch_seconds_h100']:.0f} s on H100" for r in done
    )
    out = {
        "name": "estimate",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "load_average_1min_start": round(load_start, 2),
            "load_average_1min_end": round(os.getloadavg()[0], 2),
            "torch": torch.__version__,
        },
        "targets_met": targets,
        "summary": summary,
        "table_markdown": table,
        "presets": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "estimate.json").write_text(json.dumps(out, indent=2) + "\n")
    print(table)
    print(f"targets (peak <= {TARGET_PEAK_GB} GB, epoch <= {TARGET_EPOCH_S} s on H100): {targets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
