"""The demo model on real human speech: the LibriVox clips of Debian's ``pocketsphinx-testdata``.

Five read sentences by a native speaker (25 s in all), with reference transcripts. Not
pronunciation-scored, so there is no target: the line reports the word transcripts the trained
model gives and their WER, through the same ``assess`` path a user calls.
"""

from __future__ import annotations

import re
from pathlib import Path

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
INSTALL_HINT = "apt-get install pocketsphinx-testdata"


def librivox_clips(folder: Path = LIBRIVOX) -> list[tuple[Path, str]]:
    """(wav, transcript) pairs from the package's ``transcription`` file; [] when not installed."""
    listing = folder / "transcription"
    if not listing.is_file():
        return []
    clips = []
    for line in listing.read_text().splitlines():
        match = re.match(r"<s>(.*)</s>\s*\((\S+)\)", line.strip())
        if match and (folder / f"{match.group(2)}.wav").is_file():
            clips.append((folder / f"{match.group(2)}.wav", match.group(1).strip()))
    return clips


def transcribe_real_speech(model_dir: Path, prompt_style: str, prompt_reference: str) -> dict:
    """Word transcripts of the LibriVox clips by the model in ``model_dir``, with their WER."""
    from loralab.speech.inference.recording_answers import AssessItem, assess_items
    from loralab.speech.model.load import load_for_inference
    from loralab.speech.scoring.metrics import wer_metrics
    from loralab.speech.scoring.parse import parse_answer

    clips = librivox_clips()
    if not clips:
        return {"skipped": f"no LibriVox clips in {LIBRIVOX} ({INSTALL_HINT})"}
    items = [AssessItem(str(i), str(path), text) for i, (path, text) in enumerate(clips)]
    inference = load_for_inference(model_dir, device="cpu")
    results = assess_items(inference, items, prompt_style=prompt_style, prompt_reference=prompt_reference)
    answers = [parse_answer("mdd", r.raw["mdd"]) for r in results]
    wer = wer_metrics([text.upper() for _, text in clips], answers)
    return {
        "clips": len(clips),
        "source": str(LIBRIVOX),
        "prompt_reference": prompt_reference,
        "wer": wer.get("wer"),
        "transcripts": [
            {"reference": text, "heard": r.word_transcript} for (_, text), r in zip(clips, results)
        ],
    }
