"""Estimate a preset's GPU memory and time without a GPU (and without downloading weights).

The preset's full-size model is built from its config with PyTorch fake tensors; one training
step of loralab's own training code (forward, answer-only loss, backward, clipping, AdamW, the
configured precision and activation checkpointing) runs on batches with SpeechOcean762's
length distribution, under a tracker of the bytes allocated and a FLOP counter:

    loralab estimate paper_r64 --batch-size 8
    loralab estimate pretrained_r320 --batch-size 8 --json
    loralab estimate unfreeze_r64 --mfu 0.3

It prints parameters, gradients, optimizer state, activations and the peak in GB; FLOPs per
step and per epoch; the epoch time on an H100, an A100 80GB and an RTX 4090 at the stated MFU;
the same for evaluation (generation with the KV cache) at the evaluator's batch size; and
the assumptions behind the numbers.
"""

from __future__ import annotations

import argparse

HELP = "estimate GPU memory and epoch time of a preset without a GPU (fake tensors, FLOP counter)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="config file or preset name (e.g. paper_r64)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. lora.rank=32"
    )
    parser.add_argument("--batch-size", type=int, help="micro-batch size (default: training.batch_size)")
    parser.add_argument(
        "--mfu", type=float, default=0.4, help="model FLOPs utilisation for times (default 0.4)"
    )
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")


def run(args) -> int:
    import json
    import os

    from loralab.config import load_config
    from loralab.estimate import estimate, format_estimate

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    cfg = load_config(args.config, list(args.overrides or []))
    result = estimate(cfg, batch_size=args.batch_size, mfu=args.mfu)
    print(json.dumps(result, indent=2) if args.json else format_estimate(result))
    return 0
