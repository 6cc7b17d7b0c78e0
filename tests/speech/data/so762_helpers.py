"""Helpers for the data-layer tests: small copies of the synthetic corpus, Kaldi tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def kaldi_lines(path: Path) -> list[list[str]]:
    return [line.split(None, 1) for line in path.read_text().splitlines() if line.strip()]


def copy_subset(source: Path, destination: Path, counts: dict[str, int]) -> dict[str, list[str]]:
    """Copy the first ``counts[split]`` utterances of each split (original layout); returns ids per split."""
    scores = json.loads((source / "resource/scores.json").read_text())
    kept: dict[str, list[str]] = {}
    for split, count in counts.items():
        rows = kaldi_lines(source / split / "wav.scp")[:count]
        kept[split] = [utt for utt, _ in rows]
        (destination / split).mkdir(parents=True)
        for name in ("wav.scp", "text", "utt2spk"):
            lines = [f"{k}\t{v}" for k, v in kaldi_lines(source / split / name) if k in kept[split]]
            (destination / split / name).write_text("\n".join(lines) + "\n")
        for name in ("spk2age", "spk2gender"):
            shutil.copy(source / split / name, destination / split / name)
        for _, relative in rows:
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / relative, target)
    (destination / "resource").mkdir()
    subset = {utt: scores[utt] for ids in kept.values() for utt in ids}
    (destination / "resource/scores.json").write_text(json.dumps(subset))
    return kept
