"""Prepare SpeechOcean762 for training: typed JSONL manifests with the APA/MDD targets, 16 kHz audio.

SOURCE may be the original release folder (WAVE/, train/, test/, resource/scores.json), a
Hugging Face save_to_disk folder, a folder or glob of its parquet files, or the hub id
mispeech/speechocean762 (needs network). Writes OUT/train.jsonl, OUT/test.jsonl,
OUT/summary.json and OUT/audio/. Bad items stop the run with a list of what is wrong;
--skip-bad leaves them out and lists them in summary.json.

Examples:
  loralab speech prepare --source ~/data/speechocean762 --out data/so762
  loralab speech prepare --source 'hf/data/*.parquet' --out data/so762 --skip-bad
"""

from __future__ import annotations

import argparse

from loralab.cli.common import positive_int

HELP = "SpeechOcean762 (release folder, save_to_disk, parquet or hub id) -> manifests + 16 kHz audio"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", required=True, help="release folder, save_to_disk folder, parquet glob or hub id"
    )
    parser.add_argument(
        "--out", required=True, help="output folder for train.jsonl, test.jsonl, summary.json, audio/"
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="leave bad utterances out (listed in summary.json)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="decoding threads (default: CPU count, max 8)"
    )
    parser.add_argument(
        "--distortion",
        choices=["closest", "unk"],
        default="closest",
        help="how an 'X*' (distorted) annotation enters the phoneme target: X itself, or <unk>",
    )
    parser.add_argument(
        "--allow-missing-mispronunciations",
        action="store_true",
        help="accept an old copy without mispronunciation annotations (phoneme targets = canonical phones)",
    )


def run(args: argparse.Namespace) -> int:
    from loralab.safe_files import ensure_output_dir
    from loralab.speech.data.prepare import prepare_speechocean762

    ensure_output_dir(args.out, "--out")

    manifest = prepare_speechocean762(
        args.source,
        args.out,
        skip_bad=args.skip_bad,
        workers=args.workers,
        distortion=args.distortion,
        allow_missing_mispronunciations=args.allow_missing_mispronunciations,
    )
    summary = manifest.summary
    counts = ", ".join(f"{split} {n}" for split, n in summary["counts"].items())
    print(f"prepared {counts} utterances from {summary['source']} into {manifest.manifest_dir}")
    if summary["skipped"]["count"]:
        print(
            f"skipped {summary['skipped']['count']} bad item(s): see {manifest.manifest_dir / 'summary.json'}"
        )
    if summary["warnings"]["count"]:
        kinds = ", ".join(f"{k} {n}" for k, n in summary["warnings"]["by_kind"].items())
        print(f"warnings: {kinds} (listed in summary.json)")
        for item in summary["warnings"]["items"][:5]:
            print(f"  warning: utterance {item['id']}: {item['message']}")
    return 0
