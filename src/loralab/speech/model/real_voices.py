"""Real read speech that bounds the diagnosis threshold from below (``speech.real_voice_calibration``).

The recogniser behind the diagnosis (:mod:`loralab.speech.model.diagnosis`) is fit on the training
split; when that is synthetic speech, a real voice fits it worse, every edit of a correctly read
sentence then gains a few nats, and a threshold fit on synthetic speakers alone flags a third of
the words of real readers who made no mistake (docs/experiments/listening.md). Real prompts read
correctly set the floor: the threshold is raised until at most ``max_flagged`` of their words are
flagged.

The prompts: Debian's ``asterisk-core-sounds-en-wav`` (one professional US voice, 8 kHz, read
exactly as its transcript file says). They are calibration data only; the held-out real-speech
checks (LibriVox, the Montreal Forced Aligner's recordings) are never used here.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Sequence
from pathlib import Path

from loralab.errors import LoralabError

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_INSTALL_HINT = "apt-get install asterisk-core-sounds-en-wav"
MIN_WORDS = 4  # shorter prompts ("Goodbye.") say little about a voice's words
_PROMPT_LINE = re.compile(r"^([\w/-]+):\s*(.+?)\s*$")
_PLAIN_TEXT = re.compile(r"[A-Za-z' ,.?!-]+")


def asterisk_prompts(limit: int, sounds: Path = ASTERISK_SOUNDS, transcripts: Path = ASTERISK_TRANSCRIPTS
                     ) -> list[tuple[Path, str]]:  # fmt: skip
    """Up to ``limit`` (wav, sentence) prompts, spread evenly over the package's prompts in name order:
    those of at least :data:`MIN_WORDS` plain words, every one in CMUdict (a guessed pronunciation
    would flag words the reader said right)."""
    from loralab.speech.data.phones import cmudict_pronunciation
    from loralab.speech.scoring.align import word_tokens

    if not transcripts.is_file() or not sounds.is_dir():
        raise LoralabError(
            f"speech.real_voice_calibration=asterisk: no asterisk prompts ({transcripts} and {sounds}); "
            f"install them ({ASTERISK_INSTALL_HINT}) or set speech.real_voice_calibration=none"
        )
    found = []
    with gzip.open(transcripts, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = _PROMPT_LINE.match(line)
            if not match or not _PLAIN_TEXT.fullmatch(match.group(2)):
                continue
            wav, text = sounds / f"{match.group(1)}.wav", match.group(2)
            words = word_tokens(text)
            if len(words) >= MIN_WORDS and wav.is_file() and all(cmudict_pronunciation(w) for w in words):
                found.append((wav, text))
    found.sort()
    if len(found) <= limit:
        return found
    return [found[k * len(found) // limit] for k in range(limit)]


def word_edit_scores(scorer, frames, text: str) -> list[float]:
    """Per word of ``text``, the best edit score of its phones under ``scorer`` (a word is flagged when
    it exceeds the threshold), each word judged against the pronunciation the audio fits best;
    [] when the sentence cannot be aligned to the frames."""
    import torch

    from loralab.speech.scoring.word_diagnosis import canonical_words

    canonical = [p for _, phones, _ in canonical_words(text) for p in phones if p in scorer.phones]
    if len(frames) < 1 or not canonical:
        return []
    with torch.no_grad():
        log_probs = scorer.log_probs(frames)
    words = scorer.word_phones(log_probs, canonical, text)
    if words is None:
        return []
    edits = scorer.phone_edits(log_probs, [p for word in words for p in word])
    if edits is None:
        return []
    owner = [w for w, word in enumerate(words) for _ in word]
    best = [-math.inf] * len(words)
    for edit, w in zip(edits, owner):
        best[w] = max(best[w], edit.score)
    return best


def real_voice_threshold(
    scorer, recordings: Sequence[tuple[object, str]], max_flagged: float
) -> tuple[float, dict]:
    """The lowest threshold at which at most ``max_flagged`` of the words of ``recordings`` ((encoder
    frames, sentence) pairs, read correctly) are flagged, and what it was fit on."""
    import numpy as np

    if not 0.0 < max_flagged < 1.0:
        raise LoralabError(f"speech.real_voice_max_flagged must lie in (0, 1), got {max_flagged}")
    scores = [s for frames, text in recordings for s in word_edit_scores(scorer, frames, text)]
    if not scores:
        raise LoralabError(
            "speech.real_voice_calibration: none of the real prompts could be aligned to its audio"
        )
    finite = np.array([s for s in scores if math.isfinite(s)] or [-math.inf])
    # Words without any candidate edit (-inf) are never flagged: they count in the share's denominator.
    threshold = float(np.quantile(finite, max(0.0, 1.0 - max_flagged * len(scores) / len(finite))))
    flagged = sum(s > threshold for s in scores) / len(scores)
    return threshold, {"prompts": len(recordings), "words": len(scores), "max_flagged": max_flagged,
                       "threshold": round(threshold, 3), "flagged_at_threshold": round(flagged, 4)}  # fmt: skip
