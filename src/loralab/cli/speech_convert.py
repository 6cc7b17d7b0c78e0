"""Convert a Phi-4-multimodal-instruct folder from the original remote-code layout (the hub's main
branch, what most users downloaded) into transformers' native layout, offline:

    loralab speech convert-checkpoint ~/models/Phi-4-multimodal-instruct ~/models/phi4mm-native

DST gets config.json + weights for Phi4MultimodalForCausalLM, the speech LoRA as a PEFT adapter in
speech-lora/ (r=320, alpha 640: what `pretrained_r320` continues), the vision LoRA in vision-lora/,
the tokenizer and the audio feature extractor settings. Set model.name_or_path to DST.
"""

from __future__ import annotations

import argparse

HELP = "convert an original-layout Phi-4-multimodal folder to the native layout + speech-lora adapter"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="model folder in the original remote-code layout")
    parser.add_argument("dst", metavar="DST", help="new folder for the native layout")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")


def run(args: argparse.Namespace) -> int:
    from loralab.speech.model.convert import convert_original_checkpoint

    dst = convert_original_checkpoint(args.src, args.dst, overwrite=args.overwrite)
    print(f"converted {args.src} -> {dst}")
    for adapter in ("speech-lora", "vision-lora"):
        if (dst / adapter).is_dir():
            print(f"  adapter: {dst / adapter}")
    print(
        f"use it with: model.name_or_path={dst}  (e.g. `loralab train pretrained_r320 model.name_or_path={dst}`)"
    )
    return 0
