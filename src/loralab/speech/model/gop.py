"""Goodness of pronunciation and timing from the audio encoder: the cues of ``speech.prompt_reference=phones_gop``.

Not in the paper. A speech LLM built from separately pretrained parts on a CPU budget (the demo's
Whisper tiny.en + SmolLM2-135M) learns fluency and prosody from the audio in one epoch, but not
accuracy: which sounds were said is in the encoder's output (a linear phone recogniser on it
reads them well), yet the decoder does not learn to compare what it hears with the canonical
phones in a few dozen steps (both measured in docs/experiments/phone_alignment.md). Nor does it learn to weigh
accuracy against fluency and prosody into the total. So both are made explicit, the classic way
(Witt & Young's GOP, plus the duration features of hybrid scorers):

1. a linear CTC phone recogniser on the frozen encoder's output frames, fit on the training
   split's *pronounced* phones;
2. per recording, :data:`FEATURES`: GOP = 100 x exp(-CTC NLL of the *canonical* phones per
   phone), how well the audio matches what should have been said (0-100); and from where the
   recogniser hears phones (its non-blank frames): the pauses (silences of at least
   :data:`PAUSE_SECONDS`), the phone rate (non-blank frames per second of speech) and the rate
   shift (how much the pace differs between the two halves);
3. per aspect (accuracy, total), a linear calibration of those features on the training split,
   each utterance scored by a head fit without its speaker's fold (so the calibration is fit on
   honest features), written into the prompt that asks for that aspect alone as
   ``Accuracy estimate: N`` / ``Total estimate: N``, for the LLM to use or overrule
   (:mod:`loralab.speech.prompts`).

The scorer is part of the trained model: :meth:`GopScorer.save` writes ``gop_scorer.safetensors``
(the head and the calibrations; the phone inventory, features, frame rate and format version in
its metadata) beside the adapter, :func:`load_gop_scorer` reads it back. The encoder frames are
the model's own (padding masked, as Qwen2-Audio runs its tower).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from loralab.errors import LoralabError
from loralab.safe_files import write_atomically

GOP_FILE = "gop_scorer.safetensors"
# The training recordings' cross-fitted estimates, which the training prompts carry. Each came from a
# fold head that did not see its speaker; the saved scorer is another head and cannot recompute them,
# so every checkpoint keeps them for --resume (not final_model/: inference computes its own).
GOP_TRAINING_ESTIMATES_FILE = "gop_training_estimates.json"
TRAINING_ESTIMATES_FORMAT_VERSION = 1
# 3: + the per-phone diagnosis (confusions, threshold) and its two features; 2: calibrations per
# aspect over the first four FEATURES (still read); 1: GOP -> accuracy only (refused)
GOP_FORMAT_VERSION = 3
READABLE_VERSIONS = ("2", "3")
FEATURES = ("gop", "pauses", "phone_rate", "rate_shift", "changed_share", "edit_gain")
# A silence this long between heard phones is a pause (the synthetic corpus joins chunks spoken
# at different rates with 0.06 s, and pauses last 0.35-0.9 s; on its test split 0.25-0.4 s give
# the same fluency PCC of the features, 0.95-0.97).
PAUSE_SECONDS = 0.3
DEFAULT_FRAMES_PER_SECOND = 25.0  # Qwen2-Audio's tower: Whisper's 50 Hz pooled by 2
# Under this share of the sentence's phones heard (silence, noise, another language), the recording
# gets no per-phone diagnosis (the canonical phones stand) and its answer a note saying why.
LITTLE_SPEECH = 0.3


def timing_features(log_probs, frames_per_second: float) -> list[float]:
    """Pauses, phone rate and rate shift of one recording from its CTC log-probabilities
    (frames x blank + phones): where the recogniser hears a phone (a non-blank frame) is speech."""
    import numpy as np

    heard = np.nonzero(log_probs.argmax(-1).cpu().numpy() != 0)[0]
    if len(heard) < 2:
        return [0.0, 0.0, 0.0]
    gaps = np.diff(heard)
    pause = PAUSE_SECONDS * frames_per_second
    paused = gaps >= pause
    speech_seconds = max(1.0, float(heard[-1] - heard[0] + 1 - gaps[paused].sum())) / frames_per_second

    def pace(part) -> float:  # the median spacing of heard phones within speech, in seconds
        inner = part[part < pause]
        return float(np.median(inner)) / frames_per_second if len(inner) else 0.0

    half = len(gaps) // 2
    return [float(paused.sum()), len(heard) / speech_seconds, abs(pace(gaps[:half]) - pace(gaps[half:]))]


def ctc_min_frames(target: Sequence[int]) -> int:
    """Frames a CTC alignment of ``target`` needs: one per label, plus a blank between repeats."""
    return len(target) + sum(a == b for a, b in zip(target, target[1:]))


class Analysis(NamedTuple):
    """One recording seen by the scorer (:meth:`GopScorer.analyse`)."""

    features: list[float]
    heard: list[str]
    heard_count: int


def heard_phone_count(log_probs) -> int:
    """How many phones the recogniser hears, free of the sentence (greedy CTC: runs of one
    non-blank class)."""
    best = log_probs.argmax(-1).tolist()
    return sum(1 for k, c in enumerate(best) if c != 0 and (k == 0 or best[k - 1] != c))


def little_speech_note(evidence: dict | None, canonical_phones: str) -> str | None:
    """The note of a recording in which the recogniser heard too little of the sentence, else None."""
    expected = len(canonical_phones.split())
    if not evidence or "heard_count" not in evidence or evidence["heard_count"] >= LITTLE_SPEECH * expected:
        return None
    return (
        f"the recogniser heard little speech ({evidence['heard_count']} phones for a sentence of {expected}): "
        "silence, noise or another text? No sound is diagnosed as wrong, and the scores are unreliable"
    )


@dataclass
class GopScorer:
    """K linear CTC heads (encoder width -> blank + phones) and per aspect a calibration of FEATURES."""

    phones: list[str]
    weights: list  # K tensors (classes x width)
    biases: list  # K tensors (classes)
    calibration: dict = field(default_factory=dict)  # aspect -> coefficients of feature_names, then intercept
    frames_per_second: float = DEFAULT_FRAMES_PER_SECOND
    fit_report: dict = field(default_factory=dict)
    # the per-phone diagnosis (loralab.speech.model.diagnosis): per canonical class the edits to try,
    # and the edit score above which a phone is diagnosed as said otherwise (inf: never)
    confusions: dict = field(default_factory=dict)
    threshold: float = math.inf
    feature_names: tuple = FEATURES  # what the calibrations weigh (a format-2 file: the first four)

    def log_probs(self, frames):
        """Per frame, the heads' mean log-probabilities over blank + phones."""
        import torch

        frames = frames.float()
        outs = [torch.log_softmax(frames @ w.T + b, dim=-1) for w, b in zip(self.weights, self.biases)]
        return torch.stack(outs).mean(0)

    def phone_ids(self, phones: str | Sequence[str]) -> list[int]:
        """Class indices of stress-free phones (unknown phones are left out: the heads never heard them)."""
        index = {p: i + 1 for i, p in enumerate(self.phones)}
        items = phones.split() if isinstance(phones, str) else phones
        return [index[p] for p in (q.rstrip("012") for q in items) if p in index]

    def gop(self, frames, canonical_phones: str) -> float:
        """100 x exp(-CTC NLL per canonical phone) of ``frames`` (one utterance's valid frames)."""
        if len(frames) < 1:
            return 0.0
        return self._gop(self.log_probs(frames), canonical_phones)

    def _gop(self, log_probs, canonical_phones: str) -> float:
        import torch

        target = self.phone_ids(canonical_phones)
        if not target:
            return 0.0
        if len(log_probs) < ctc_min_frames(target):
            # No alignment exists (too little audio for the sentence): the worst GOP, not the
            # NLL 0 = GOP 100 that zero_infinity would make of the infinite loss.
            return 0.0
        with torch.no_grad():
            nll = torch.nn.functional.ctc_loss(
                log_probs[:, None], torch.tensor([target]), torch.tensor([len(log_probs)]),
                torch.tensor([len(target)]), reduction="sum", zero_infinity=True,
            )  # fmt: skip
        return 100.0 * math.exp(-float(nll) / len(target))

    def analyse(self, frames, canonical_phones: str, text: str | None = None) -> Analysis:
        """The recording's :attr:`feature_names` (GOP against ``canonical_phones``, timing, the
        diagnosis), the phones diagnosed as said (the canonical phones with the edits that explain
        the audio better, :mod:`loralab.speech.model.diagnosis`) and how many phones the
        recogniser hears (:func:`heard_phone_count`); the frames' log-probabilities computed once.
        With the sentence's ``text``, each word is judged against the CMUdict pronunciation the
        audio fits best (:meth:`word_phones`)."""
        import torch

        from loralab.speech.model.diagnosis import diagnosed_phones

        canonical = [p.rstrip("012") for p in canonical_phones.split()]
        if len(frames) < 1:
            return Analysis([0.0] * len(self.feature_names), canonical, 0)
        with torch.no_grad():
            log_probs = self.log_probs(frames)
        known = [p for p in canonical if p in self.phones]
        words = self.word_phones(log_probs, known, text)
        if words is not None:
            known = [p for word in words for p in word]
            canonical_phones = " ".join(known)
        edits = self.phone_edits(log_probs, known)
        heard = diagnosed_phones(known, edits, self.phones, self.threshold) if edits else known
        count = heard_phone_count(log_probs)
        if count < LITTLE_SPEECH * len(known):
            heard = known  # too little speech heard to say which phones went wrong
        gains = [max(0.0, e.score) for e in edits] if edits else [0.0]
        named = {
            "gop": self._gop(log_probs, canonical_phones),
            **dict(zip(FEATURES[1:4], timing_features(log_probs, self.frames_per_second))),
            "changed_share": sum(e.score > self.threshold for e in edits) / len(edits) if edits else 0.0,
            "edit_gain": sum(gains) / len(gains),
        }
        return Analysis([named[n] for n in self.feature_names], heard, count)

    def word_phones(self, log_probs, known: Sequence[str], text: str | None) -> list[list[str]] | None:
        """Per word of ``text``, the phones (those this scorer knows) of the CMUdict pronunciation
        the frames fit best (:func:`~loralab.speech.model.diagnosis.best_pronunciations`); None
        without a text, or when ``known`` is not the text's canonical pronunciation (a corpus's own
        annotation: its phones are then judged as given)."""
        from loralab.speech.data.phones import cmudict_pronunciations, pronunciation
        from loralab.speech.model.diagnosis import best_pronunciations
        from loralab.speech.scoring.align import word_tokens

        if not text:
            return None
        words = []
        for word in word_tokens(text):
            first, in_cmudict = pronunciation(word)
            variants: list[list[str]] = []
            for entry in cmudict_pronunciations(word) if in_cmudict else [first]:
                phones = [p for p in (q.rstrip("012") for q in entry) if p in self.phones]
                if not variants or (phones and phones not in variants):
                    variants.append(phones)
            words.append(variants)
        if [p for variants in words for p in variants[0]] != list(known):
            return None
        chosen = best_pronunciations(log_probs, [[self.phone_ids(v) for v in variants] for variants in words])
        return [variants[k] for variants, k in zip(words, chosen)]

    def phone_edits(self, log_probs, known_phones: Sequence[str]):
        """Each phone's best edit (:func:`loralab.speech.model.diagnosis.phone_edits`) under this
        scorer's confusions; None when there is nothing to align."""
        from loralab.speech.model.diagnosis import phone_edits

        if not known_phones:
            return None
        return phone_edits(log_probs, self.phone_ids(known_phones), self._confusion_ids())

    def features(self, frames, canonical_phones: str, text: str | None = None) -> list[float]:
        """The recording's :attr:`feature_names` (see :meth:`analyse`)."""
        return self.analyse(frames, canonical_phones, text).features

    def evidence(self, frames, canonical_phones: str, text: str | None = None) -> dict:
        """What the prompts read of one recording: each calibrated aspect's estimate (0-10),
        ``heard_phones`` (the diagnosed phones, space separated; the canonical ones when training
        found no edit worth trusting) and ``heard_count`` (for :func:`little_speech_note`)."""
        analysis = self.analyse(frames, canonical_phones, text)
        return {**self.estimates(analysis.features), "heard_phones": " ".join(analysis.heard),
                "heard_count": analysis.heard_count}  # fmt: skip

    def _confusion_ids(self) -> dict[int, list[int]] | None:
        """The confusions as class indices (phone names on disk), None when there are none."""
        if not self.confusions:
            return None
        index = {p: i + 1 for i, p in enumerate(self.phones)}
        return {index[c]: [0 if t == "<DEL>" else index[t] for t in to if t == "<DEL>" or t in index]
                for c, to in self.confusions.items() if c in index}  # fmt: skip

    def estimates(self, features: Sequence[float]) -> dict[str, int]:
        """Per calibrated aspect, its estimate (an integer 0-10) for a recording's ``features``."""
        out = {}
        for aspect, coefficients in self.calibration.items():
            value = sum(c * x for c, x in zip(coefficients, features)) + coefficients[-1]
            out[aspect] = int(min(10, max(0, round(value))))
        return out

    def save(self, folder: str | Path) -> Path:
        import torch
        from safetensors.torch import save_file

        tensors = {}
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            tensors[f"head{k}.weight"] = w.contiguous()
            tensors[f"head{k}.bias"] = b.contiguous()
        for aspect, coefficients in self.calibration.items():
            tensors[f"calibration.{aspect}"] = torch.tensor(coefficients, dtype=torch.float64)
        meta = {
            "format_version": str(GOP_FORMAT_VERSION),
            "phones": json.dumps(self.phones),
            "features": json.dumps(list(self.feature_names)),
            "confusions": json.dumps(self.confusions),
            "threshold": repr(self.threshold),
            "frames_per_second": repr(self.frames_per_second),
            "fit_report": json.dumps(self.fit_report),
        }
        path = Path(folder) / GOP_FILE
        return write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_gop_scorer(folder: str | Path) -> GopScorer:
    """The scorer saved in ``folder`` (a clear error when it is missing or of another version)."""
    from safetensors import safe_open

    path = Path(folder) / GOP_FILE
    if not path.is_file():
        raise LoralabError(
            f"{path}: missing. A model trained with speech.prompt_reference=phones_gop keeps its GOP "
            "scorer there; copy the whole model folder, or retrain"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format_version") not in READABLE_VERSIONS:
            raise LoralabError(
                f"{path}: GOP scorer format {meta.get('format_version')!r}; this loralab reads "
                f"{', '.join(READABLE_VERSIONS)} (retrain with this version)"
            )
        names = json.loads(meta.get("features", "[]"))
        if not names or any(n not in FEATURES for n in names):
            raise LoralabError(
                f"{path}: the scorer is calibrated on the features {meta.get('features')}; this loralab "
                f"computes {list(FEATURES)} (retrain with this version)"
            )
        count = len([k for k in f.keys() if k.startswith("head") and k.endswith(".weight")])
        weights = [f.get_tensor(f"head{k}.weight") for k in range(count)]
        biases = [f.get_tensor(f"head{k}.bias") for k in range(count)]
        calibration = {
            k.split(".", 1)[1]: f.get_tensor(k).tolist() for k in f.keys() if k.startswith("calibration.")
        }
    return GopScorer(
        phones=json.loads(meta["phones"]),
        weights=weights,
        biases=biases,
        calibration=calibration,
        frames_per_second=float(meta["frames_per_second"]),
        fit_report=json.loads(meta.get("fit_report", "{}")),
        confusions=json.loads(meta.get("confusions", "{}")),
        threshold=float(meta.get("threshold", "inf")),
        feature_names=tuple(names),
    )
