"""Fitting the GOP scorer (:mod:`loralab.speech.model.gop`) at the start of training, and the
records seen with what it estimates of their recordings.

Honest features: each training utterance is scored by a head fit without its speaker's fold, so
the calibrations and the diagnosis threshold are fit on features like those of unseen speakers;
the saved scorer is one more head, on every utterance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from loralab.errors import LoralabError
from loralab.safe_files import read_json, write_json_atomic
from loralab.speech.model.gop import (
    DEFAULT_FRAMES_PER_SECOND,
    GOP_FILE,
    GOP_TRAINING_ESTIMATES_FILE,
    TRAINING_ESTIMATES_FORMAT_VERSION,
    GopScorer,
    load_gop_scorer,
)


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


def _frames_per_second(frames: list, records: Sequence) -> float:
    """The encoder's frame rate: the median of frames per second of audio over the records."""
    import numpy as np

    rates = [
        len(frames[i]) / r.duration for i, r in enumerate(records) if (getattr(r, "duration", 0) or 0) > 0
    ]
    return float(np.median(rates)) if rates else DEFAULT_FRAMES_PER_SECOND


def _calibrate(features: list, records: Sequence, aspects: Sequence[str]) -> tuple[dict, dict]:
    """Per aspect, the least-squares line from the features (plus a constant) to the human
    scores, and the Pearson correlation of its fit on these records (NaN without spread)."""
    import numpy as np

    x = np.c_[np.asarray(features, dtype=float), np.ones(len(records))]
    calibration, fit_pcc = {}, {}
    for aspect in aspects:
        y = np.array([getattr(r.scores, aspect) for r in records], dtype=float)
        coefficients = np.linalg.lstsq(x, y, rcond=None)[0]
        calibration[aspect] = [float(c) for c in coefficients]
        fitted = x @ coefficients
        spread = fitted.std() > 0 and y.std() > 0
        fit_pcc[aspect] = round(float(np.corrcoef(fitted, y)[0, 1]), 4) if spread else float("nan")
    return calibration, fit_pcc


def _phone_targets(frames: list, records: Sequence) -> tuple[list[str], list[list[int]], list[int]]:
    """(the phones heard in training, each record's pronounced phones as class indices, the records
    whose phones fit their frames)."""
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
    return phones, targets, usable


def fit_gop_scorer(frames: list, records: Sequence, *, aspects: Sequence[str] = ("accuracy", "total"),
                   folds: int = 3, steps: int = 300, lr: float = 3e-3, seed: int = 0,
                   real_voices: Sequence = (), real_max_flagged: float = 0.15) -> tuple[GopScorer, list, list]:  # fmt: skip
    """Fit the scorer on training ``records`` (their encoder ``frames``): (scorer, each record's
    cross-fitted :data:`FEATURES`, each record's cross-fitted diagnosed phones). Each fold's head
    scores the speakers it did not see; the diagnosis threshold and the calibration of each of
    ``aspects`` are fit on those scores; the saved scorer is one more head, on every utterance (on
    unseen speakers it beats the average of the fold heads: docs/experiments/phone_alignment.md).
    ``real_voices``: (frames, sentence) of real prompts read correctly; the threshold is then at
    least the one that flags ``real_max_flagged`` of their words (:mod:`.real_voices`)."""
    phones, targets, usable = _phone_targets(frames, records)
    fps = _frames_per_second(frames, records)
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
    final = fit_head(usable, seed)  # one speaker: nothing to hold out (the report says so)
    confusions = learn_confusions(records, set(phones))
    heads = [held_out.get(fold[i], final) for i in range(len(records))]
    distinct = {id(h): h for h in [*heads, final]}.values()
    for head in distinct:
        head.confusions = confusions
    threshold, diagnosis = _fit_threshold(heads, frames, records, final, real_voices, real_max_flagged)
    for head in distinct:
        head.threshold = threshold
    analysed = [
        h.analyse(f, r.canonical_phones, getattr(r, "text", None)) for h, f, r in zip(heads, frames, records)
    ]
    features = [a.features for a in analysed]
    calibration, fit_pcc = _calibrate(features, records, aspects)
    report = {
        "utterances": len(usable),
        "folds": k_folds,
        "cross_fitted": k_folds > 1,
        "ctc_loss_first_last": losses,
        "frames_per_second": round(fps, 3),
        "train_estimate_pcc": fit_pcc,
        "diagnosis": diagnosis,
    }
    scorer = GopScorer(phones, final.weights, final.biases, calibration, fps, report, confusions, threshold)
    return scorer, features, [" ".join(a.heard) for a in analysed]


def learn_confusions(records: Sequence, phones: set[str]) -> dict[str, list[str]]:
    """Per canonical phone, what the training annotations say it was said as instead (phones, and
    ``<DEL>``): the edits the diagnosis tries (learners of one L1 share their confusions)."""
    from loralab.speech.model.diagnosis import edit_labels

    seen: dict[str, set[str]] = {}
    for r in records:
        canonical = r.canonical_phones.split()
        for phone, said in zip(canonical, edit_labels(canonical, r.pronounced_phones.split())):
            if said is not None and phone in phones and (said == "<DEL>" or said in phones):
                seen.setdefault(phone, set()).add(said)
    return {p: sorted(to) for p, to in sorted(seen.items())}


def _fit_threshold(
    heads, frames, records, final, real_voices: Sequence, real_max_flagged: float
) -> tuple[float, dict]:
    """The diagnosis threshold over the cross-fitted edits of the training records (each scored by
    its own held-out head, confusions set), raised to the ``real_voices`` floor of the ``final``
    head when below it, and its figures."""
    import torch

    from loralab.speech.model.diagnosis import best_threshold, detection_at, edit_labels
    from loralab.speech.model.real_voices import real_voice_threshold

    floor, real_report = (
        real_voice_threshold(final, real_voices, real_max_flagged) if real_voices else (-math.inf, None)
    )

    rows = []
    for head, f, r in zip(heads, frames, records):
        canonical = [p for p in r.canonical_phones.split() if p in head.phones]
        if len(f) < 1 or not canonical:
            continue
        with torch.no_grad():
            edits = head.phone_edits(head.log_probs(f), canonical)
        if edits is None:
            continue
        for edit, said in zip(edits, edit_labels(canonical, r.pronounced_phones.split())):
            says = said is not None and said == ("<DEL>" if edit.to == 0 else head.phones[edit.to - 1])
            rows.append((edit.score, said is not None, says))
    threshold, figures = best_threshold(rows)
    fit_alone = threshold
    if math.isfinite(threshold) and floor > threshold:
        threshold, figures = floor, detection_at(rows, floor)
    return threshold, {**figures, "threshold": round(threshold, 3) if math.isfinite(threshold) else None,
                       "threshold_training_speakers": round(fit_alone, 3) if math.isfinite(fit_alone) else None,
                       "phones": len(rows), "real_voices": real_report}  # fmt: skip


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
                        audios: Sequence) -> list[dict]:  # fmt: skip
    """The scorer's evidence of each recording against its record's canonical phones: the
    estimates (aspect -> 0-10) and the diagnosed phones (:meth:`GopScorer.evidence`)."""
    frames = encoder_frames(model, backbone, feature_extractor, audios)
    return [scorer.evidence(f, r.canonical_phones, getattr(r, "text", None)) for f, r in zip(frames, records)]


def fit_for_training(model, backbone, feature_extractor, records: Sequence, *, aspects: Sequence[str],
                     seed: int = 0, log=print, real_voices: Sequence = (), real_max_flagged: float = 0.15,
                     ) -> tuple[GopScorer, list[WithEstimate]]:  # fmt: skip
    """The scorer fit on the training ``records``, and the records with their cross-fitted estimates;
    ``real_voices``: (wav path, sentence) of real prompts that bound the diagnosis threshold.

    The encoder runs here as in training (through the encoder output cache when installed, so
    training reads these outputs back instead of encoding the clips again)."""
    import time

    from loralab.speech.data.audio import load_audio

    started = time.time()
    log(f"GOP scorer: encoding {len(records)} training recordings")
    frames = encoder_frames(model, backbone, feature_extractor, [load_audio(r.audio_path) for r in records])
    real = [load_audio(path) for path, _ in real_voices]
    real_frames = encoder_frames(model, backbone, feature_extractor, real) if real else []
    scorer, features, heard_phones = fit_gop_scorer(
        frames, records, aspects=aspects, seed=seed, real_max_flagged=real_max_flagged,
        real_voices=[(f, text) for f, (_, text) in zip(real_frames, real_voices)],
    )  # fmt: skip
    report = scorer.fit_report
    fits = ", ".join(f"{aspect} {pcc:.3f}" for aspect, pcc in report["train_estimate_pcc"].items())
    d = report["diagnosis"]
    log(
        f"GOP scorer: a CTC phone head on {report['utterances']} utterances ({report['folds']} folds of speakers), "
        f"{len(scorer.phones)} phones; calibrated on held-out features, PCC on the training split: {fits}; "
        f"diagnosis on held-out speakers: precision {d['precision']:.2f}, recall {d['recall']:.2f} at threshold "
        f"{d['threshold']}{_floor_note(d)} ({time.time() - started:.0f} s)"
    )
    evidence = []
    for r, x, heard in zip(records, features, heard_phones):
        evidence.append(
            WithEstimate(r, {**scorer.estimates(x), **({"heard_phones": heard} if heard else {})})
        )
    return scorer, evidence


def _floor_note(diagnosis: dict) -> str:
    real = diagnosis.get("real_voices")
    if not real:
        return ""
    return (f" (held-out training speakers alone: {diagnosis['threshold_training_speakers']}; at most "
            f"{real['max_flagged']:.0%} of the words of {real['prompts']} real prompts flagged: {real['threshold']})")  # fmt: skip


# -- resuming: the fit a checkpoint kept -----------------------------------------------------
class NotRestorable(Exception):
    """Why a checkpoint's GOP scorer cannot stand in for a fit (the run then fits again)."""


def save_training_estimates(folder: str | Path, estimates: Mapping[str, Mapping]) -> Path:
    """The training recordings' estimates (record id -> what :func:`fit_for_training` gave it)
    into ``folder``, a checkpoint."""
    data = {"format_version": TRAINING_ESTIMATES_FORMAT_VERSION, "estimates": dict(estimates)}
    return write_json_atomic(Path(folder) / GOP_TRAINING_ESTIMATES_FILE, data)


def restore_for_training(checkpoint: str | Path, records: Sequence) -> tuple[GopScorer, list[WithEstimate]]:
    """What :func:`fit_for_training` gave the run that wrote ``checkpoint``: its scorer, and the
    training ``records`` with the estimates they had. :class:`NotRestorable` says why not."""
    folder = Path(checkpoint)
    missing = [name for name in (GOP_FILE, GOP_TRAINING_ESTIMATES_FILE) if not (folder / name).is_file()]
    if missing:
        raise NotRestorable(f"{folder} has no {' or '.join(missing)} (a checkpoint of an older loralab)")
    path = folder / GOP_TRAINING_ESTIMATES_FILE
    saved = read_json(
        path, "GOP training estimates", hint="the checkpoint is damaged; resume from an earlier one"
    )
    if saved.get("format_version") != TRAINING_ESTIMATES_FORMAT_VERSION:
        raise NotRestorable(
            f"{path}: format {saved.get('format_version')!r}, not {TRAINING_ESTIMATES_FORMAT_VERSION}"
        )
    estimates = saved["estimates"]
    absent = [r.id for r in records if r.id not in estimates]
    if absent:
        raise NotRestorable(
            f"{path} has no estimates of {len(absent)} training recordings (e.g. {absent[0]})"
        )
    return load_gop_scorer(folder), [WithEstimate(r, estimates[r.id]) for r in records]
