"""Arguments shared by commands that take an experiment config."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (argparse names the flag in its error)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a fraction in (0, 1], e.g. 0.3 (not 30 for 30%)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a fraction like 0.3, got {text!r}") from None
    if not 0 < value <= 1:
        hint = f" (for {value:g}% write {value / 100:g})" if 1 < value <= 100 else ""
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}{hint}")
    return value


def device_spec(text: str) -> str:
    """argparse type: a torch device this machine has (cpu, cuda, cuda:N, mps)."""
    import re

    spec = text.strip().lower()
    match = re.fullmatch(r"(cpu|cuda|mps)(?::(\d+))?", spec)
    if not match or (match.group(1) != "cuda" and match.group(2) is not None):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N or mps, got {text!r}")
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has no usable CUDA GPU; use --device cpu"
            )
        if index is not None and int(index) >= count:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    if kind == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available here; use --device cpu")
    return spec


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
    parser.add_argument("--epochs", type=positive_int, help="training.epochs")
    parser.add_argument("--batch-size", type=positive_int, help="training.batch_size (per device)")
    parser.add_argument("--gradient-accumulation", type=positive_int, help="training.gradient_accumulation")
    parser.add_argument("--learning-rate", type=positive_float, help="training.learning_rate")
    parser.add_argument("--output-dir", help="run directory (default output/<name>)")
    parser.add_argument("--gpus", help="CUDA devices to use, e.g. 0,1")
    parser.add_argument("--seed", type=int, help="training.seed")
    parser.add_argument("--max-steps", type=positive_int, help="stop after N optimizer steps (smoke test)")
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
