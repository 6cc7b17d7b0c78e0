"""Write a synthetic SpeechOcean762 (espeak-ng speech, injected mispronunciations) in the original layout.

Speakers are split ~70/30 into train/test. Each utterance is spoken from its phone string with
deliberate substitutions and deletions (recorded as mispronunciations, with phone accuracies
below 0.5), pauses and rate changes; sentence scores follow a documented rule (see
loralab.speech.data.synth). resource/injected.json holds the ground truth. Needs espeak-ng.

Example:
  loralab speech synth --out /tmp/so --n 40 --seed 1
  loralab speech prepare --source /tmp/so --out /tmp/so-m
"""

from __future__ import annotations

import argparse

from loralab.cli.common import positive_int

HELP = "synthetic SpeechOcean762 (espeak-ng, injected mispronunciations) in the original layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=positive_int, default=200, help="number of utterances (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same corpus)")
    parser.add_argument("--workers", type=positive_int, default=None, help="parallel espeak-ng processes")


def run(args: argparse.Namespace) -> int:
    from loralab.speech.data.synth import synthesize_corpus

    out = synthesize_corpus(args.out, n=args.n, seed=args.seed, workers=args.workers)
    print(f"wrote {args.n} synthetic utterances to {out} (ground truth: {out / 'resource/injected.json'})")
    return 0
