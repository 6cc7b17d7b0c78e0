"""Entry point of the ``loralab`` console script.

Each subcommand lives in its own module exposing ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Modules import heavy libraries (torch, transformers) inside
``run`` so that ``loralab --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from loralab import __version__

# name -> module; groups map to nested tables.
COMMANDS: dict[str, str | dict[str, str]] = {
    "train": "loralab.cli.train",
    "evaluate": "loralab.cli.evaluate",
    "status": "loralab.cli.status",
    "compare": "loralab.cli.compare",
    "estimate": "loralab.cli.estimate",
    "assess": "loralab.cli.assess",
    "serve": "loralab.cli.serve",
    "demo": "loralab.cli.demo",
    "speech": {
        "prepare": "loralab.cli.speech_prepare",
        "synth": "loralab.cli.speech_synth",
        "convert-checkpoint": "loralab.cli.speech_convert",
    },
    "protein": {
        "prepare": "loralab.cli.protein_prepare",
        "predict": "loralab.cli.protein_predict",
    },
}

GROUP_HELP = {
    "speech": "pronunciation assessment: data preparation, synthetic corpus, checkpoint conversion",
    "protein": "protein distance maps: structure preparation, prediction",
}


def _add_commands(subparsers, table: dict) -> None:
    for name, target in table.items():
        if isinstance(target, dict):
            group = subparsers.add_parser(
                name, help=GROUP_HELP.get(name, ""), description=GROUP_HELP.get(name)
            )
            sub = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
            _add_commands(sub, target)
            continue
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            if e.name == target:  # not written yet: leave it out rather than break the CLI
                continue
            raise
        parser = subparsers.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "__doc__", None) or module.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(parser)
        parser.set_defaults(_run=module.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loralab",
        description="LoRA fine-tuning of foundation models for pronunciation assessment and protein "
        "distance maps, with honest evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"loralab {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an unexpected error (also LORALAB_DEBUG=1); "
        "accepted anywhere on the command line",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_commands(sub, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    from loralab.config import ConfigError
    from loralab.errors import LoralabError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("LORALAB_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops collecting KEY=VALUE overrides at the first flag; pick up the rest
    # (`loralab train paper_r64 --epochs 1 lora.rank=8`) for commands that take them.
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    try:
        return int(args._run(args) or 0)
    except (ConfigError, LoralabError) as e:
        print(f"loralab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loralab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the reader left: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if debug or not e.filename:
            return _unexpected(e, debug)
        # A file system refusal (permission, full disk, not a folder): the user's to fix.
        print(f"loralab: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the one boundary of the CLI
        return _unexpected(e, debug)


def _unexpected(error: BaseException, debug: bool) -> int:
    """An error loralab did not expect: one line, and how to see the traceback."""
    if debug:
        raise error
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    print(
        f"loralab: unexpected error: {type(error).__name__}"
        + (f": {text[:300]}" if text else "")
        + "\n  rerun with --debug (or LORALAB_DEBUG=1) to see the traceback, and report it if the input looks right",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
