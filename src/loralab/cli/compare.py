"""Compare configurations and runs side by side: strategy, LoRA rank/alpha/dropout, start
point, trainable parameters (count and percent), hyperparameters, output directory and, for
runs, state, speed and results by epoch (with the paper's Table 3 targets beside speech runs).

Arguments are run directories, config files or preset names, so presets can be compared
before any run exists:

    loralab compare pretrained_r320 paper_r64
    loralab compare output/pretrained_r320 output/paper_r64

Trainable parameters of a preset come from the system's count on the meta device (no
weights); when the model's config is not available offline, the LoRA parameters are counted
from the published architecture's layer shapes, and the table says so.
"""

from __future__ import annotations

import argparse

HELP = "compare runs and/or presets side by side: LoRA set-up, trainable parameters, results by epoch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "items", nargs="+", metavar="RUN_OR_PRESET", help="run directory, config file or preset name"
    )
    parser.add_argument("--format", choices=("md", "json"), default="md", help="output format (default md)")
    parser.add_argument("--out", metavar="FILE", help="also write the report to FILE")


def run(args) -> int:
    from pathlib import Path

    from loralab.reports.compare import compare, render_json, render_markdown
    from loralab.safe_files import ensure_output_file

    if args.out:  # before the work: an unwritable --out fails at once
        ensure_output_file(args.out, "--out")
    entries = compare(args.items)
    text = render_json(entries) if args.format == "json" else render_markdown(entries)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
