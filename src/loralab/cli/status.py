"""Report on a training run, live or ended: state (running / finished / crashed / stalled),
progress, speed and ETA, a loss table with grad norm and learning rate, the loss drop,
eval metrics per epoch, checkpoints with sizes, device and memory, the resolved config,
and a short automatic analysis of the curves.

Writes RUN_DIR/status.md and PNG plots into RUN_DIR/plots/ (loss, grad norm, lr, eval
metrics) and prints the report. With --watch N it refreshes every N seconds until the run
finishes or crashes. Exit status: 1 when the run crashed, else 0.

State rules: 'finished' (an end record), 'crashed' (an error record, or the training
process is gone without one), 'stalled' (alive but no record for max(300 s, 10x the median
gap between its records); --stall-after overrides), otherwise 'running'.
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "status of a run (live or ended): progress, ETA, loss table, analysis, status.md + plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (e.g. output/paper_r64)")
    parser.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="refresh every SECONDS until the run finishes or crashes",
    )
    parser.add_argument("--format", choices=("md", "json"), default="md", help="what to print (default md)")
    parser.add_argument(
        "--stall-after",
        type=float,
        metavar="SECONDS",
        help="silence after which a live process counts as stalled (default: max(300, 10x median gap))",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="only print; do not write status.md and plots"
    )
    parser.add_argument("--no-plots", action="store_true", help="write status.md without the PNG plots")


def _once(args) -> str:
    from loralab.reports.status import build_status
    from loralab.reports.status_report import render_json, render_markdown, write_status_files

    status = build_status(args.run_dir, stall_after_s=args.stall_after)
    files = None
    if not args.no_write:
        try:
            files = write_status_files(status, plots=not args.no_plots)
        except OSError as e:  # a read-only run dir still gets a report on screen
            print(
                f"loralab status: warning: could not write status.md/plots into {args.run_dir}: {e}",
                file=sys.stderr,
            )
    if args.format == "json":
        text = render_json(status)
    else:
        text = render_markdown(status, files.plots if files else None)
        if files:
            text += (
                f"\n(written: {files.markdown}"
                + (f", {len(files.plots)} plots" if files.plots else "")
                + ")\n"
            )
    print(text, flush=True)
    return status.state


def run(args) -> int:
    if args.watch is not None and args.watch <= 0:
        from loralab.errors import LoralabError

        raise LoralabError(f"--watch takes a positive number of seconds (got {args.watch})")
    state = _once(args)
    while args.watch and state not in ("finished", "crashed"):
        time.sleep(args.watch)
        if sys.stdout.isatty() and args.format == "md":
            print("\033[2J\033[H", end="")  # clear the screen: one report on screen, not a scroll
        state = _once(args)
    return 1 if state == "crashed" else 0
