"""Goodness of pronunciation and timing from the audio encoder: the cues of ``speech.prompt_reference=phones_gop``.

Not in the paper. A speech LLM built from separately pretrained parts on a CPU budget (the demo's
Whisper tiny.en + SmolLM2-135M) learns fluency and prosody from the audio in one epoch, but not
accuracy: which sounds were said is in the encoder's output (a linear phone recogniser on it
reaches PER ~0.17), yet the decoder does not learn to compare what it hears with the canonical
phones in a few dozen steps (docs/experiments/phone_alignment.md). Nor does it learn to weigh
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loralab.errors import LoralabError

GOP_FILE = "gop_scorer.safetensors"
GOP_FORMAT_VERSION = 2  # 2: calibrations per aspect over FEATURES (1: GOP -> accuracy only)
FEATURES = ("gop", "pauses", "phone_rate", "rate_shift")
# A silence this long between heard phones is a pause (the synthetic corpus joins chunks spoken
# at different rates with 0.06 s, and pauses last 0.35-0.9 s; on its test split 0.25-0.4 s give
# the same fluency PCC of the features, 0.95-0.97).
PAUSE_SECONDS = 0.3
DEFAULT_FRAMES_PER_SECOND = 25.0  # Qwen2-Audio's tower: Whisper's 50 Hz pooled by 2


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


@dataclass
class GopScorer:
    """K linear CTC heads (encoder width -> blank + phones) and per aspect a calibration of FEATURES."""

    phones: list[str]
    weights: list  # K tensors (classes x width)
    biases: list  # K tensors (classes)
    calibration: dict = field(default_factory=dict)  # aspect -> coefficients of FEATURES, then intercept
    frames_per_second: float = DEFAULT_FRAMES_PER_SECOND
    fit_report: dict = field(default_factory=dict)

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

    def features(self, frames, canonical_phones: str) -> list[float]:
        """The recording's :data:`FEATURES` (GOP against ``canonical_phones``, then timing)."""
        import torch

        if len(frames) < 1:
            return [0.0] * len(FEATURES)
        with torch.no_grad():
            log_probs = self.log_probs(frames)
        return [self._gop(log_probs, canonical_phones), *timing_features(log_probs, self.frames_per_second)]

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
            "features": json.dumps(FEATURES),
            "frames_per_second": repr(self.frames_per_second),
            "fit_report": json.dumps(self.fit_report),
        }
        path = Path(folder) / GOP_FILE
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        return path


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
        if meta.get("format_version") != str(GOP_FORMAT_VERSION):
            raise LoralabError(
                f"{path}: GOP scorer format {meta.get('format_version')!r}; this loralab reads "
                f"{GOP_FORMAT_VERSION} (retrain with this version)"
            )
        if json.loads(meta.get("features", "[]")) != list(FEATURES):
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
    )


# -- fitting (at the start of training) ----------------------------------------------------
def _fit_ctc_head(frames: list, targets: list[list[int]], num_classes: int, steps: int, lr: float, seed: int):
    """A linear layer trained with CTC, full batch with Adam: (weight, bias, first loss, last loss)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(frames[0].shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(0.0, head.in_features**-0.5, generator=generator)
        head.bias.zero_()
    x = torch.nn.utils.rnn.pad_sequence([f.float() for f in frames], batch_first=True)
    lengths = torch.tensor([len(f) for f in frames])
    y = torch.cat([torch.tensor(t) for t in targets])
    y_lengths = torch.tensor([len(t) for t in targets])
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    first = last = float("nan")
    for step in range(steps):
        log_probs = head(x).log_softmax(-1).transpose(0, 1)
        loss = torch.nn.functional.ctc_loss(log_probs, y, lengths, y_lengths, zero_infinity=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if step == 0 else first
        last = loss.item()
    return head.weight.detach().clone(), head.bias.detach().clone(), first, last


def speaker_folds(records: Sequence, folds: int) -> list[int]:
    """Each record's fold: speakers in sorted order dealt round-robin into ``folds`` folds."""
    speakers = sorted({r.speaker for r in records})
    fold_of = {s: i % folds for i, s in enumerate(speakers)}
    return [fold_of[r.speaker] for r in records]


def fit_gop_scorer(frames: list, records: Sequence, *, aspects: Sequence[str] = ("accuracy", "total"),
                   folds: int = 3, steps: int = 300, lr: float = 3e-3, seed: int = 0) -> tuple[GopScorer, list]:  # fmt: skip
    """Fit the scorer on training ``records`` (their encoder ``frames``): (scorer, each record's
    cross-fitted :data:`FEATURES`). Each fold's head scores the speakers it did not see; the
    calibration of each of ``aspects`` is fit on those features; the saved scorer is one more
    head, on every utterance (on the demo's test split its accuracy estimate correlates with
    accuracy at 0.66-0.68, the fold heads' average at 0.54; its total estimate with the total at 0.78)."""
    import numpy as np

    phones = sorted(
        {p.rstrip("012") for r in records for p in (r.canonical_phones + " " + r.pronounced_phones).split()}
    )
    probe = GopScorer(phones, [], [])
    targets = [probe.phone_ids(r.pronounced_phones) for r in records]
    usable = [i for i, t in enumerate(targets) if 0 < len(t) <= len(frames[i])]
    if len(usable) < 2:
        raise LoralabError(
            "speech.prompt_reference=phones_gop: fewer than 2 training utterances have pronounced phones that "
            "fit their audio; the GOP scorer needs the manifest's pronounced phones (loralab speech prepare)"
        )
    rates = [
        len(frames[i]) / r.duration for i, r in enumerate(records) if (getattr(r, "duration", 0) or 0) > 0
    ]
    fps = float(np.median(rates)) if rates else DEFAULT_FRAMES_PER_SECOND
    k_folds = max(1, min(folds, len({records[i].speaker for i in usable})))
    fold = speaker_folds(records, k_folds)
    losses = []

    def fit_head(rows: list[int], head_seed: int) -> GopScorer:
        w, b, first, last = _fit_ctc_head(
            [frames[i] for i in rows], [targets[i] for i in rows], len(phones) + 1, steps, lr, head_seed
        )
        losses.append((round(first, 3), round(last, 3)))
        return GopScorer(phones, [w], [b], frames_per_second=fps)

    held_out = (
        {k: fit_head([i for i in usable if fold[i] != k], seed + 1 + k) for k in range(k_folds)}
        if k_folds > 1
        else {}
    )
    final = fit_head(usable, seed)
    # one speaker: nothing to hold out (the report says so)
    features = [
        held_out.get(fold[i], final).features(f, r.canonical_phones)
        for i, (f, r) in enumerate(zip(frames, records))
    ]
    x = np.c_[np.asarray(features, dtype=float), np.ones(len(records))]
    calibration, fit_pcc = {}, {}
    for aspect in aspects:
        y = np.array([getattr(r.scores, aspect) for r in records], dtype=float)
        coefficients = np.linalg.lstsq(x, y, rcond=None)[0]
        calibration[aspect] = [float(c) for c in coefficients]
        fitted = x @ coefficients
        spread = fitted.std() > 0 and y.std() > 0
        fit_pcc[aspect] = round(float(np.corrcoef(fitted, y)[0, 1]), 4) if spread else float("nan")
    report = {
        "utterances": len(usable),
        "folds": k_folds,
        "cross_fitted": k_folds > 1,
        "ctc_loss_first_last": losses,
        "frames_per_second": round(fps, 3),
        "train_estimate_pcc": fit_pcc,
    }
    return GopScorer(phones, final.weights, final.biases, calibration, fps, report), features


def encoder_frames(model, backbone, feature_extractor, audios: Sequence, batch_size: int = 16) -> list:
    """The frozen audio encoder's valid output frames per waveform, as the model computes them."""
    import torch

    frames = []
    for start in range(0, len(audios), batch_size):
        chunk = list(audios[start : start + batch_size])
        inputs, counts = backbone.audio_features(feature_extractor, chunk)
        with torch.no_grad():
            outputs = backbone.audio_encoder_outputs(model, inputs)
        frames += [row[:n].detach().float().cpu() for row, n in zip(outputs, counts)]
    return frames


# -- using it: records seen with their estimates ---------------------------------------------
class WithEstimate:
    """A record (or assess item) seen with its ``estimates`` (aspect -> 0-10); every other attribute
    is the record's."""

    def __init__(self, record, estimates: Mapping[str, int]):
        self._record = record
        self.estimates = dict(estimates)

    def __getattr__(self, name: str):
        # Only called for names not set here; "_record" itself missing means a copy or an unpickling
        # in progress (DataLoader workers under spawn), which must not recurse.
        if name == "_record":
            raise AttributeError(name)
        return getattr(self._record, name)


def recording_estimates(scorer: GopScorer, model, backbone, feature_extractor, records: Sequence,
                        audios: Sequence) -> list[dict[str, int]]:  # fmt: skip
    """The scorer's estimates (aspect -> 0-10) of each recording against its record's canonical phones."""
    frames = encoder_frames(model, backbone, feature_extractor, audios)
    return [scorer.estimates(scorer.features(f, r.canonical_phones)) for f, r in zip(frames, records)]


def fit_for_training(model, backbone, feature_extractor, records: Sequence, *, aspects: Sequence[str],
                     seed: int = 0, log=print) -> tuple[GopScorer, list[WithEstimate]]:  # fmt: skip
    """The scorer fit on the training ``records``, and the records with their cross-fitted estimates.

    The encoder runs here as in training (through the encoder output cache when installed, so
    training reads these outputs back instead of encoding the clips again)."""
    import time

    from loralab.speech.data.audio import load_audio

    started = time.time()
    log(f"GOP scorer: encoding {len(records)} training recordings")
    frames = encoder_frames(model, backbone, feature_extractor, [load_audio(r.audio_path) for r in records])
    scorer, features = fit_gop_scorer(frames, records, aspects=aspects, seed=seed)
    report = scorer.fit_report
    fits = ", ".join(f"{aspect} {pcc:.3f}" for aspect, pcc in report["train_estimate_pcc"].items())
    log(
        f"GOP scorer: a CTC phone head on {report['utterances']} utterances ({report['folds']} folds of speakers), "
        f"{len(scorer.phones)} phones; calibrated on held-out features, PCC on the training split: {fits} "
        f"({time.time() - started:.0f} s)"
    )
    return scorer, [WithEstimate(r, scorer.estimates(x)) for r, x in zip(records, features)]
