"""Fine-tune a model with LoRA as an experiment config describes.

Examples:
  loralab train paper_r64                                 # a shipped preset
  loralab train --config pretrained_r320 --epochs 4
  loralab train my.yaml training.learning_rate=1e-4 lora.rank=32
  loralab train paper_r64 --resume                        # continue from the last complete checkpoint
  loralab train --help-config                             # every config field: type, default, help
  accelerate launch --num_processes 2 -m loralab.cli.main train paper_r64   # 2 GPUs (DDP)
  torchrun --nproc_per_node 2 -m loralab.cli.main train paper_r64             # the same with torchrun
  # ZeRO-2 on GPUs 0 and 1 (pip install 'loralab[deepspeed]'):
  accelerate launch --num_processes 2 -m loralab.cli.main train paper_r64 training.deepspeed=zero2 --gpus 0,1

The run directory (output/<name> unless --output-dir) receives checkpoint-epoch-N/,
final_model/, logs/ (TensorBoard), events.jsonl and training_config.json.
"""

from __future__ import annotations

import argparse
import os

from loralab.cli.common import add_config_arguments, config_from_args

HELP = "fine-tune a model with LoRA (checkpoints each epoch, --resume after a crash)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the run directory from its last complete checkpoint",
    )
    parser.add_argument(
        "--help-config",
        action="store_true",
        help="list every config field by section (type, default, description) and exit",
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "help_config", False):
        from loralab.config.describe import format_config_help

        print(format_config_help(), end="")
        return 0

    from loralab.engine.trainer import train

    cfg = config_from_args(args)
    run_dir = train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary, not one per process
        print(
            f"done: {run_dir}\n  final model: {run_dir / 'final_model'}\n  status:      loralab status {run_dir}"
        )
    return 0
