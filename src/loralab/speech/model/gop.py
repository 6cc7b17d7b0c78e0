"""Goodness of pronunciation from the audio encoder: the accuracy cue of ``speech.prompt_reference=phones_gop``.

Not in the paper. A speech LLM built from separately pretrained parts on a CPU budget (the demo's
Whisper tiny.en + SmolLM2-135M) learns fluency and prosody from the audio in one epoch, but not
accuracy: which sounds were said is in the encoder's output (a linear phone recogniser on it
reaches PER ~0.17), yet the decoder does not learn to compare what it hears with the canonical
phones in a few dozen steps (docs/experiments/phone_alignment.md). So the comparison is made
explicit, the classic way (Witt & Young's GOP):

1. a linear CTC phone recogniser on the frozen encoder's output frames, fit on the training
   split's *pronounced* phones;
2. GOP = 100 x exp(-CTC NLL of the *canonical* phones per phone): how well the audio matches
   what should have been said (0-100);
3. a linear calibration GOP -> sentence accuracy (0-10) on the training split, each utterance
   scored by a head fit without its speaker's fold (so the calibration is fit on honest GOPs),
   written into the prompts that ask for accuracy or the total alone as ``Accuracy estimate: N``, for the
   LLM to use or overrule (:mod:`loralab.speech.prompts`).

The scorer is part of the trained model: :meth:`GopScorer.save` writes ``gop_scorer.safetensors``
(the head; the phone inventory, calibration and format version in its metadata) beside the
adapter, :func:`load_gop_scorer` reads it back. The encoder frames are the model's own (padding
masked, as Qwen2-Audio runs its tower).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loralab.errors import LoralabError

GOP_FILE = "gop_scorer.safetensors"
GOP_FORMAT_VERSION = 1


@dataclass
class GopScorer:
    """K linear CTC heads (encoder width -> blank + phones) and the GOP -> accuracy calibration."""

    phones: list[str]
    weights: list  # K tensors (classes x width)
    biases: list  # K tensors (classes)
    slope: float = 0.0
    intercept: float = 10.0
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
        import torch

        target = self.phone_ids(canonical_phones)
        if not target or len(frames) < 1:
            return 0.0
        with torch.no_grad():
            lp = self.log_probs(frames)[:, None]
            nll = torch.nn.functional.ctc_loss(
                lp, torch.tensor([target]), torch.tensor([len(frames)]), torch.tensor([len(target)]),
                reduction="sum", zero_infinity=True,
            )  # fmt: skip
        return 100.0 * math.exp(-float(nll) / len(target))

    def estimate(self, gop: float) -> int:
        """The calibrated sentence accuracy (an integer 0-10) for a GOP."""
        return int(min(10, max(0, round(self.slope * gop + self.intercept))))

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        tensors = {}
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            tensors[f"head{k}.weight"] = w.contiguous()
            tensors[f"head{k}.bias"] = b.contiguous()
        meta = {
            "format_version": str(GOP_FORMAT_VERSION),
            "phones": json.dumps(self.phones),
            "slope": repr(self.slope),
            "intercept": repr(self.intercept),
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
        count = len([k for k in f.keys() if k.endswith(".weight")])
        weights = [f.get_tensor(f"head{k}.weight") for k in range(count)]
        biases = [f.get_tensor(f"head{k}.bias") for k in range(count)]
    return GopScorer(
        phones=json.loads(meta["phones"]),
        weights=weights,
        biases=biases,
        slope=float(meta["slope"]),
        intercept=float(meta["intercept"]),
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


def fit_gop_scorer(frames: list, records: Sequence, *, folds: int = 3, steps: int = 300, lr: float = 3e-3,
                   seed: int = 0) -> tuple[GopScorer, list[float]]:  # fmt: skip
    """Fit the scorer on training ``records`` (their encoder ``frames``): (scorer, each record's
    cross-fitted GOP). Each fold's head scores the speakers it did not see; the calibration is
    fit on those GOPs; the saved scorer is one more head, on every utterance (on the demo's test
    split its estimate correlates with accuracy at 0.66, the fold heads' average at 0.54)."""
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
    n_speakers = len({records[i].speaker for i in usable})
    k_folds = max(1, min(folds, n_speakers))
    fold = speaker_folds(records, k_folds)
    losses = []
    gops = [0.0] * len(records)

    def fit_head(rows: list[int], head_seed: int) -> GopScorer:
        w, b, first, last = _fit_ctc_head(
            [frames[i] for i in rows], [targets[i] for i in rows], len(phones) + 1, steps, lr, head_seed
        )
        losses.append((round(first, 3), round(last, 3)))
        return GopScorer(phones, [w], [b])

    for k in range(k_folds if k_folds > 1 else 0):
        held_out = fit_head([i for i in usable if fold[i] != k], seed + 1 + k)
        for i, record in enumerate(records):
            if fold[i] == k:
                gops[i] = held_out.gop(frames[i], record.canonical_phones)
    final = fit_head(usable, seed)
    if k_folds == 1:  # one speaker: nothing to hold out (the report says so)
        gops = [final.gop(f, r.canonical_phones) for f, r in zip(frames, records)]
    accuracy = np.array([r.scores.accuracy for r in records], dtype=float)
    spread = float(np.std(gops))
    slope, intercept = np.polyfit(gops, accuracy, 1) if spread > 0 else (0.0, float(accuracy.mean()))
    pcc = float(np.corrcoef(gops, accuracy)[0, 1]) if spread > 0 and accuracy.std() > 0 else float("nan")
    report = {
        "utterances": len(usable),
        "folds": k_folds,
        "cross_fitted": k_folds > 1,
        "ctc_loss_first_last": losses,
        "train_gop_accuracy_pcc": round(pcc, 4),
    }
    scorer = GopScorer(phones, final.weights, final.biases, float(slope), float(intercept), report)
    return scorer, gops


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


# -- using it: records seen with their estimate ----------------------------------------------
class WithEstimate:
    """A record (or assess item) seen with its ``accuracy_estimate``; every other attribute is the record's."""

    def __init__(self, record, accuracy_estimate: int):
        self._record = record
        self.accuracy_estimate = accuracy_estimate

    def __getattr__(self, name: str):
        # Only called for names not set here; "_record" itself missing means a copy or an unpickling
        # in progress (DataLoader workers under spawn), which must not recurse.
        if name == "_record":
            raise AttributeError(name)
        return getattr(self._record, name)


def accuracy_estimates(scorer: GopScorer, model, backbone, feature_extractor, records: Sequence,
                       audios: Sequence) -> list[int]:  # fmt: skip
    """The scorer's accuracy estimate (0-10) of each recording against its record's canonical phones."""
    frames = encoder_frames(model, backbone, feature_extractor, audios)
    return [scorer.estimate(scorer.gop(f, r.canonical_phones)) for f, r in zip(frames, records)]


def fit_for_training(model, backbone, feature_extractor, records: Sequence, *, seed: int = 0,
                     log=print) -> tuple[GopScorer, list[WithEstimate]]:  # fmt: skip
    """The scorer fit on the training ``records``, and the records with their cross-fitted estimates.

    The encoder runs here as in training (through the encoder output cache when installed, so
    training reads these outputs back instead of encoding the clips again)."""
    import time

    from loralab.speech.data.audio import load_audio

    started = time.time()
    log(f"GOP scorer: encoding {len(records)} training recordings")
    frames = encoder_frames(model, backbone, feature_extractor, [load_audio(r.audio_path) for r in records])
    scorer, gops = fit_gop_scorer(frames, records, seed=seed)
    estimates = [scorer.estimate(g) for g in gops]
    report = scorer.fit_report
    log(
        f"GOP scorer: a CTC phone head on {report['utterances']} utterances ({report['folds']} folds of speakers), "
        f"{len(scorer.phones)} phones; held-out GOP vs accuracy on the training split PCC "
        f"{report['train_gop_accuracy_pcc']:.3f}; accuracy ~ {scorer.slope:.3f} x GOP + {scorer.intercept:.2f} "
        f"({time.time() - started:.0f} s)"
    )
    return scorer, [WithEstimate(r, e) for r, e in zip(records, estimates)]
