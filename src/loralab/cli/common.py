"""Arguments shared by commands that take an experiment config."""

from __future__ import annotations

import argparse

# Familiar flags -> config keys. Anything else goes as key=value.
FLAG_TO_KEY = {
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "gradient_accumulation": "training.gradient_accumulation",
    "learning_rate": "training.learning_rate",
    "output_dir": "output_dir",
    "gpus": "training.gpus",
    "seed": "training.seed",
    "max_steps": "training.max_steps",
}


def add_config_arguments(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """CONFIG (file or preset name), --config, familiar flags and key=value overrides."""
    if positional:
        parser.add_argument(
            "config_pos",
            nargs="?",
            metavar="CONFIG",
            help="config file or preset name (e.g. paper_r64, pretrained_r320)",
        )
    parser.add_argument(
        "--config",
        dest="config_opt",
        metavar="NAME_OR_PATH",
        help="config file or preset name (same as the positional CONFIG)",
    )
    parser.add_argument("--epochs", type=int, help="training.epochs")
    parser.add_argument("--batch-size", type=int, help="training.batch_size (per device)")
    parser.add_argument("--gradient-accumulation", type=int, help="training.gradient_accumulation")
    parser.add_argument("--learning-rate", type=float, help="training.learning_rate")
    parser.add_argument("--output-dir", help="run directory (default output/<name>)")
    parser.add_argument("--gpus", help="CUDA devices to use, e.g. 0,1")
    parser.add_argument("--seed", type=int, help="training.seed")
    parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps (smoke test)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="any config field, e.g. lora.rank=32 speech.prompt_style=short",
    )


def config_from_args(args: argparse.Namespace):
    """Load the config named by the arguments, with flags and key=value applied."""
    from loralab.config import ConfigError, load_config

    positional = getattr(args, "config_pos", None)
    overrides = list(getattr(args, "overrides", None) or [])
    # With --config, argparse puts the first key=value into CONFIG: move it back.
    if positional and "=" in positional:
        overrides.insert(0, positional)
        positional = None
    name = getattr(args, "config_opt", None) or positional
    if not name:
        raise ConfigError("no config given: pass a file or a preset name (e.g. 'loralab train paper_r64')")
    for flag, key in FLAG_TO_KEY.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(name, overrides)
