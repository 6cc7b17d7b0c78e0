"""Assess a recording (or many) with a trained model.

Prints the four scores (accuracy, fluency, prosodic, total; 0-10), what the model heard as
words and as phones, and a per-word diagnosis against the canonical pronunciation from
CMUdict: substituted (X->Y), deleted (-X) and inserted (+Y) phones. Words CMUdict lacks get a
letter-to-sound guess and are marked with *. '--json' prints the same as JSON.

The exit status is 1 when some answer of the model could not be read (the report says which),
0 otherwise.

Examples:
  loralab assess --model output/paper_r64/final_model --audio me.wav --text "We call it bear"
  loralab assess --model output/paper_r64/final_model --csv recordings.csv --json
  loralab assess --model output/paper_r64/final_model --audio-dir takes/   # takes/x.wav + takes/x.txt
"""

from __future__ import annotations

import argparse

from loralab.cli.common import device_spec, positive_int

HELP = "score a recording and diagnose its phones with a trained model (single file or batch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="a run folder (its final_model/), final_model/, checkpoint-epoch-N/ or a base model folder (no adapter)",
    )
    parser.add_argument("--audio", help="one recording (wav, flac, ...)")
    parser.add_argument("--text", help="the sentence the speaker read (with --audio)")
    parser.add_argument("--csv", help="batch: a CSV with columns audio,text (paths relative to the CSV)")
    parser.add_argument(
        "--audio-dir", help="batch: a folder of recordings, each with <name>.txt holding its sentence"
    )
    parser.add_argument(
        "--base-model", help="base model, when the adapter's model card points somewhere else"
    )
    parser.add_argument(
        "--prompt-style",
        choices=("paper", "short"),
        help="prompt style (default: the one the model was trained with)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="recordings per generation batch (default 8)"
    )
    parser.add_argument(
        "--max-new-tokens", type=positive_int, help="generation budget (default: from the sentence length)"
    )
    parser.add_argument("--device", type=device_spec, help="torch device (default: cuda when present)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the readable report")


def run(args: argparse.Namespace) -> int:
    import json

    from loralab.errors import LoralabError
    from loralab.speech.inference.recording_answers import AssessItem, format_assessment, read_batch

    single = args.audio is not None or args.text is not None
    if single and (args.csv or args.audio_dir):
        raise LoralabError(
            "give either --audio/--text (one recording) or --csv/--audio-dir (a batch), not both"
        )
    if single:
        if not args.audio:
            raise LoralabError("--text needs --audio (the recording of that sentence)")
        if args.text is None:
            raise LoralabError(f"--audio {args.audio} needs --text: the sentence the speaker read")
        items = [AssessItem("1", args.audio, args.text)]
    elif args.csv or args.audio_dir:
        items = read_batch(args.csv, args.audio_dir)
    else:
        raise LoralabError(
            "nothing to assess: pass --audio FILE --text '...', or --csv FILE, or --audio-dir DIR"
        )
    if args.batch_size < 1:
        raise LoralabError(f"--batch-size must be >= 1 (got {args.batch_size})")

    from loralab.speech.assessor import Assessor
    from loralab.speech.inference.recording_answers import load_items

    audios = load_items(items)  # bad input fails before the (slow) model load
    assessor = Assessor.load(args.model, device=args.device, base_model=args.base_model,
                             prompt_style=args.prompt_style, batch_size=args.batch_size,
                             max_new_tokens=args.max_new_tokens)  # fmt: skip
    results = assessor.assess(items, audios)
    if args.json:
        payload = [r.to_dict() for r in results]
        print(json.dumps(payload[0] if single else payload, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(format_assessment(r) for r in results))
    return 1 if any(r.failures for r in results) else 0
