"""Evaluate a run's checkpoints on its evaluation split.

Speech runs: every chosen epoch is evaluated into RUN/eval/epoch-N/ (predictions.jsonl,
metrics.json, the PER-vs-accuracy plot), then RUN/eval/table3.md + table3.csv (the paper's
Table 3 layout, the paper's values and our differences beside) and table4.csv. Epoch 0 is
the base model without adapter (the paper's "no training" row); '--checkpoints all'
includes it. An interrupted evaluation resumes where it stopped: rerun the same command.

Protein runs are evaluated by the protein system's evaluator.

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


def _system_of(run_dir) -> str:
    from loralab.engine.run_dir import RunDir

    return RunDir(run_dir).require().system


def run(args: argparse.Namespace) -> int:
    system = _system_of(args.run_dir)
    if system == "protein":
        import sys

        from loralab.protein.evaluate import evaluate_run as evaluate_protein_run

        speech_only = (
            "batch_size",
            "base_model",
            "manifest_dir",
            "max_new_tokens",
            "device",
            "restart",
            "ablation",
        )
        ignored = [f"--{n.replace('_', '-')}" for n in speech_only if getattr(args, n) not in (None, False)]
        if ignored:
            print(f"loralab: note: {', '.join(ignored)} apply to speech runs only; ignored", file=sys.stderr)
        split = {"split": args.split} if args.split else {}
        out = evaluate_protein_run(args.run_dir, args.checkpoints, limit=args.limit, **split)
        print(f"evaluation written to {out}")
        return 0
    from loralab.speech.evaluation.runner import evaluate_run

    out = evaluate_run(
        args.run_dir,
        args.checkpoints,
        args.split,
        args.limit,
        batch_size=args.batch_size,
        base_model=args.base_model,
        manifest_dir=args.manifest_dir,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        restart=args.restart,
        progress=not args.no_progress,
    )
    print(f"evaluation written to {out} (table3.md, table3.csv, table4.csv, epoch-N/metrics.json)")
    if args.ablation is not None:
        from loralab.speech.evaluation.ablation import write_ablation

        table = write_ablation([args.run_dir, *args.ablation], out)
        print(table.read_text())
        print(f"ablation written to {table} (and {table.with_suffix('.csv').name})")
    return 0
