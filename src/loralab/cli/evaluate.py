"""Evaluate a run's checkpoints on its evaluation split.

Speech runs: every chosen epoch is evaluated into RUN/eval/epoch-N/ (predictions.jsonl,
metrics.json, the PER-vs-accuracy plot), then RUN/eval/table3.md + table3.csv (the paper's
Table 3 layout, the paper's values and our differences beside) and table4.csv. Epoch 0 is
the base model without adapter (the paper's "no training" row); '--checkpoints all'
includes it. An interrupted evaluation resumes where it stopped: rerun the same command.
Protein runs: the same folders and --checkpoints grammar, scored beside a separation-mean
baseline (there is no epoch 0: 'all' skips it).

Each system evaluates its own runs (the system contract's evaluate_run); options a system
does not use are named and ignored.

Examples:
  loralab evaluate output/paper_r64                      # epoch 0 and every checkpoint
  loralab evaluate output/paper_r64 --checkpoints last
  loralab evaluate output/paper_r64 --checkpoints 0,3 --limit 200 --batch-size 32
  loralab evaluate output/with_text --checkpoints last --ablation output/paper_prompt
      # eval/ablation.md: each run x score decoding (greedy, expected), PCC/SCC with CIs, WER, PER, F1
"""

from __future__ import annotations

import argparse

from loralab.cli.common import device_spec, positive_int

HELP = "evaluate a run's checkpoints (Table 3 metrics for speech, distance-map metrics for proteins)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'loralab train'")
    parser.add_argument(
        "--checkpoints",
        default="all",
        help="all (epoch 0 = base model, plus every checkpoint), last, or epochs like 3 or 0,2,3 (default: all)",
    )
    parser.add_argument("--split", help="manifest split to evaluate (default: the run's evaluation.split)")
    parser.add_argument("--limit", type=positive_int, help="evaluate only the first N utterances/proteins")
    parser.add_argument(
        "--batch-size", type=positive_int, help="generation batch size (default: evaluation.batch_size)"
    )
    parser.add_argument(
        "--base-model", help="base model folder or hub id, when the one in training_config.json moved"
    )
    parser.add_argument("--manifest-dir", help="speech manifest folder, when the run's one moved")
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help="generation budget per answer (default: longest training answer in tokens plus a margin)",
    )
    parser.add_argument(
        "--device", type=device_spec, help="torch device, e.g. cuda:0 or cpu (default: cuda when present)"
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard earlier predictions of the chosen epochs and start again",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    parser.add_argument(
        "--ablation",
        nargs="*",
        metavar="OTHER_RUN",
        help="speech: after evaluating, write RUN_DIR/eval/ablation.md/.csv comparing the quality levers: "
        "this run and OTHER_RUNs (trained with other levers, already evaluated), each under greedy and "
        "expected score decoding",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from loralab.engine.run_dir import RunDir
    from loralab.engine.system import EvalRequest, system_module

    system_name = RunDir(args.run_dir).require().system
    system = system_module(system_name)
    request = EvalRequest(
        checkpoints=args.checkpoints,
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        base_model=args.base_model,
        manifest_dir=args.manifest_dir,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        restart=args.restart,
        progress=not args.no_progress,
        ablation=args.ablation,
    )
    ignored = [n for n in request.given() if n not in system.EVALUATION_OPTIONS]
    if ignored:
        names = ", ".join(f"--{n.replace('_', '-')}" for n in ignored)
        print(f"loralab: note: {names}: not used for {system_name} runs; ignored", file=sys.stderr)
    outcome = system.evaluate_run(args.run_dir, request)
    for line in outcome.lines:
        print(line)
    return 0
