"""The demo model on real human speech: the LibriVox clips of Debian's ``pocketsphinx-testdata``.

Five read sentences by a native speaker (25 s in all), with reference transcripts. Not
pronunciation-scored, so there is no target: the line reports the word transcripts the trained
model gives and their WER, from the listening check's assessments of each clip with its own
sentence (the same ``assess`` path a user calls; :mod:`loralab.demo.listening`).
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


def real_speech_line(librivox: dict, prompt_reference: str) -> dict:
    """The word transcripts the model gave the LibriVox clips and their WER, from the listening
    check's ``librivox`` result (each clip assessed with its own sentence)."""
    if "transcripts" not in librivox:
        return {"skipped": librivox.get("skipped", f"no LibriVox clips in {LIBRIVOX} ({INSTALL_HINT})")}
    return {
        "clips": len(librivox["transcripts"]),
        "source": str(LIBRIVOX),
        "prompt_reference": prompt_reference,
        "wer": librivox["wer"],
        "transcripts": librivox["transcripts"],
    }
