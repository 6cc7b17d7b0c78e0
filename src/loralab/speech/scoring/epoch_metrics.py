"""One epoch's predictions + the manifest records -> ``metrics.json`` (and the Figure-5 plot).

Answers are re-parsed from their raw text here (not trusted from the predictions file), so
scoring an old evaluation again with a better parser needs no new generation.

Every PCC (``apa.<aspect>.pcc_ci``) and the headline MDD F1 (``mdd.detection.f1_ci``) come
with a percentile bootstrap interval over the utterances (see :mod:`~.metrics`; the settings
are under ``bootstrap``); an undefined one is None (null in metrics.json).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from loralab.speech.scoring.mdd import MDD_CONVENTIONS, mdd_counts, mdd_metrics
from loralab.speech.scoring.metrics import (
    BOOTSTRAP_CONFIDENCE,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    apa_metrics,
    bootstrap_f1_ci,
    per_accuracy_correlation,
    per_metrics,
    utterance_per,
    wer_metrics,
)
from loralab.speech.scoring.parse import ParsedAnswer, parse_answer

FIGURE5_FILE = "per_vs_accuracy.png"


class PredictionStore(Protocol):
    """What scoring reads of stored predictions (:class:`~loralab.speech.evaluation.store.PredictionStore`
    is one): the prediction of an utterance for a task, None when there is none. A protocol, so that
    scoring sits below the evaluation run that stores them."""

    def get(self, utterance_id: str, task: str) -> dict | None: ...


def _answers(records, store: PredictionStore, task: str, expected: bool = False) -> list[ParsedAnswer]:
    """Answers re-parsed from their raw text; ``expected``: APA scores replaced by the expected
    scores stored beside them (those the generator could read; see :mod:`~loralab.speech.inference.expected`)."""
    out = []
    for r in records:
        pred = store.get(r.id, task)
        if pred is None:
            raise ValueError(f"no {task} prediction for utterance {r.id}: the evaluation is incomplete")
        answer = parse_answer(task, pred["raw"])
        if expected:
            answer.values.update(
                {k: v for k, v in (pred.get("expected") or {}).items() if k in answer.values}
            )
        out.append(answer)
    return out


def _apa_tasks(tasks: Sequence[str]) -> list[str]:
    """The tasks that answer APA, merged in this order: the joint one first, then one task per
    aspect (``apa_fluency``, ...), whose values replace the joint answer's."""
    return [t for t in tasks if t == "apa"] + [t for t in tasks if t.startswith("apa_")]


def _apa_answers(records, store: PredictionStore, tasks: Sequence[str], expected: bool) -> list[ParsedAnswer]:
    """One APA answer per utterance; per-aspect answers are merged into one (raw texts joined)."""
    apa_tasks = _apa_tasks(tasks)
    if apa_tasks == ["apa"]:
        return _answers(records, store, "apa", expected)
    per_task = [_answers(records, store, t, expected) for t in apa_tasks]
    merged = []
    for parts in zip(*per_task):
        answer = ParsedAnswer(task="apa", raw=" ".join(p.raw for p in parts), method="per-aspect")
        for part in parts:
            answer.values.update(part.values)
            answer.errors.update(part.errors)
            answer.clamped += part.clamped
        merged.append(answer)
    return merged


def _has_expected(records, store: PredictionStore, tasks: Sequence[str]) -> bool:
    return any((store.get(r.id, t) or {}).get("expected") for r in records for t in _apa_tasks(tasks))


def _failures(records, answers: Sequence[ParsedAnswer], limit: int = 20) -> list[dict]:
    """The first failures with reason and raw text (all of them are in predictions.jsonl)."""
    return [
        {"id": r.id, "reason": a.reason, "raw": a.raw[:200]} for r, a in zip(records, answers) if not a.ok
    ][:limit]


def compute_metrics(
    records: Sequence,
    store: PredictionStore,
    tasks: Sequence[str],
    out_dir: Path | None,
    *,
    mdd_convention: str = "reference",
    score_decoding: str = "greedy",
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = BOOTSTRAP_CONFIDENCE,
) -> dict:
    """Every metric of the paper over ``records`` (all must have predictions for ``tasks``).

    MDD detection is scored under both conventions of :mod:`~.mdd`: ``mdd.detection`` under
    ``mdd_convention`` (the headline numbers), ``mdd.detection_<other>`` under the other one.
    APA likewise: ``apa`` under ``score_decoding`` (greedy digits or expected scores), ``apa_<other>``
    under the other when the predictions hold expected scores.

    Bootstrap intervals (``n_resamples`` resamples of the utterances, ``seed``, central
    ``confidence`` share; ``n_resamples=0``: none) for every PCC and for ``mdd.detection``'s F1."""
    metrics: dict = {"n_utterances": len(records), "tasks": list(tasks), "score_decoding": score_decoding}
    boot = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    if n_resamples > 0:
        metrics["bootstrap"] = {**boot, "method": "percentile", "unit": "utterance"}
    apa_answers = mdd_answers = None
    if _apa_tasks(tasks):
        apa_answers = _score_apa(metrics, records, store, tasks, score_decoding, boot)
    if "mdd" in tasks:
        mdd_answers = _score_mdd(metrics, records, store, mdd_convention, boot)
    if apa_answers is not None and mdd_answers is not None:
        per_values = [utterance_per(r.pronounced_phones, a) for r, a in zip(records, mdd_answers)]
        plot = out_dir / FIGURE5_FILE if out_dir is not None else None
        metrics["per_vs_accuracy"] = per_accuracy_correlation(
            per_values,
            [r.scores.accuracy for r in records],
            [a.values.get("accuracy") for a in apa_answers],
            plot_path=plot,
        )
        if plot is not None:
            metrics["per_vs_accuracy"]["plot"] = plot.name
    if apa_answers is not None:
        _score_gop_estimate(metrics, records, store, tasks, boot)
    metrics["summary"] = summary_row(metrics)
    return metrics


def _score_gop_estimate(metrics: dict, records, store, tasks, boot: dict) -> None:
    """``metrics['gop_estimate']``: per aspect, the estimate a phones_gop prompt gave the model,
    scored on its own (the scorer alone, beside what the model made of it); nothing for other prompts."""
    from loralab.speech.prompts import APA_ASPECT_TASKS
    from loralab.speech.scoring.metrics import bootstrap_pcc_ci, correlation

    scored = {}
    for task in _apa_tasks(tasks):
        rows = [store.get(r.id, task) or {} for r in records]
        if task not in APA_ASPECT_TASKS or not rows or any(row.get("estimate") is None for row in rows):
            continue
        aspect = task.removeprefix("apa_")
        estimates = [float(row["estimate"]) for row in rows]
        human = [getattr(r.scores, aspect) for r in records]
        scored[aspect] = correlation(estimates, human)
        if boot["n_resamples"] > 0:
            scored[aspect]["pcc_ci"] = bootstrap_pcc_ci(estimates, human, **boot)
    if scored:
        metrics["gop_estimate"] = {
            "note": "the GOP scorer's estimates in the prompts, scored on their own",
            **scored,
        }


def _score_apa(metrics: dict, records, store, tasks, score_decoding: str, boot: dict) -> list:
    """``metrics['apa']`` under ``score_decoding`` (and ``apa_<other>`` when expected scores exist)."""
    human = [r.scores.as_dict() for r in records]
    apa_answers = _apa_answers(records, store, tasks, expected=score_decoding == "expected")
    metrics["apa"] = apa_metrics(apa_answers, human, **boot)
    metrics["apa"]["failures"] = _failures(records, apa_answers)
    if _has_expected(records, store, tasks):
        other = "greedy" if score_decoding == "expected" else "expected"
        metrics[f"apa_{other}"] = apa_metrics(
            _apa_answers(records, store, tasks, expected=other == "expected"), human, **boot
        )
    return apa_answers


def _score_mdd(metrics: dict, records, store, mdd_convention: str, boot: dict) -> list:
    """``metrics['mdd']``: parse rate, WER, PER, detection under both conventions (F1 CI)."""
    mdd_answers = _answers(records, store, "mdd")
    predicted = [a.values.get("phoneme_transcript") for a in mdd_answers]
    phones = ([r.canonical_phones for r in records], [r.pronounced_phones for r in records], predicted)
    metrics["mdd"] = {
        "parse_rate": sum(a.ok for a in mdd_answers) / len(records) if records else math.nan,
        "wer": wer_metrics([r.word_transcript for r in records], mdd_answers),
        "per": per_metrics([r.pronounced_phones for r in records], mdd_answers),
        "detection": mdd_metrics(*phones, convention=mdd_convention),
        f"detection_{_other(mdd_convention)}": mdd_metrics(*phones, convention=_other(mdd_convention)),
        "failures": _failures(records, mdd_answers),
    }
    if boot["n_resamples"] > 0:
        metrics["mdd"]["detection"]["f1_ci"] = _f1_ci(*phones, mdd_convention, boot)
    return mdd_answers


def _f1_ci(canonical, human, predicted, convention: str, boot: dict) -> list[float] | None:
    """Bootstrap interval of the pooled F1: the per-utterance counts of the utterances whose
    phoneme transcript parsed (those :func:`~.mdd.mdd_metrics` pools) resampled."""
    counts = [
        mdd_counts(c, h, p, convention=convention)
        for c, h, p in zip(canonical, human, predicted, strict=True)
        if p is not None
    ]
    return bootstrap_f1_ci(counts, **boot)


def _ci(stats: dict, key: str) -> tuple[float, float]:
    """(low, high) of ``stats[key]``, NaN when absent or undefined."""
    ci = stats.get(key)
    if not ci or ci[0] is None or ci[1] is None:
        return math.nan, math.nan
    return float(ci[0]), float(ci[1])


def _other(convention: str) -> str:
    """The MDD convention that is not ``convention``."""
    if convention not in MDD_CONVENTIONS:
        raise ValueError(f"unknown MDD convention {convention!r} (known: {', '.join(MDD_CONVENTIONS)})")
    return next(c for c in MDD_CONVENTIONS if c != convention)


def summary_row(metrics: dict) -> dict[str, float]:
    """The flat Table-3 row (keys of :data:`~loralab.speech.reports.paper.TABLE3_COLUMNS`) plus parse rates; MDD
    f1/precision/recall are the configured convention's, ``<key>_<other convention>`` the other's.
    Beside each ``<x>_pcc``: ``<x>_scc`` (Spearman), ``<x>_pcc_ci_low``/``_high`` (bootstrap
    interval), ``<x>_mae`` and ``<x>_spread`` (predictions' std over the labels'); beside ``f1``: ``f1_ci_low``/``_high``. NaN where undefined or not computed."""
    nan = math.nan
    row: dict[str, float] = {}
    apa = metrics.get("apa")
    for key, aspect in (
        ("acc_pcc", "accuracy"),
        ("flu_pcc", "fluency"),
        ("pros_pcc", "prosodic"),
        ("total_pcc", "total"),
    ):
        scc = key.replace("_pcc", "_scc")
        row[key] = apa[aspect]["pcc"] if apa else nan
        row[scc] = apa[aspect].get("spearman", nan) if apa else nan
        row[f"{key}_ci_low"], row[f"{key}_ci_high"] = _ci(apa[aspect], "pcc_ci") if apa else (nan, nan)
        prefix = key.removesuffix("_pcc")  # what a correlation cannot see: error and spread
        row[f"{prefix}_mae"] = apa[aspect].get("mae", nan) if apa else nan
        row[f"{prefix}_spread"] = apa[aspect].get("spread_ratio", nan) if apa else nan
        for name in ("greedy", "expected"):
            if f"apa_{name}" in metrics:
                row[f"{key}_{name}"] = metrics[f"apa_{name}"][aspect]["pcc"]
                row[f"{scc}_{name}"] = metrics[f"apa_{name}"][aspect].get("spearman", nan)
    mdd = metrics.get("mdd")
    row["wer"] = mdd["wer"]["wer"] if mdd else nan
    row["per"] = mdd["per"]["per"] if mdd else nan
    det = mdd["detection"] if mdd else {}
    row["f1"] = det.get("f1", nan)
    row["f1_ci_low"], row["f1_ci_high"] = _ci(det, "f1_ci")
    row["precision"] = det.get("precision", nan)
    row["recall"] = det.get("recall", nan)
    row["diagnosis_accuracy"] = det.get("diagnosis_accuracy", nan)
    for key, value in mdd.items() if mdd else ():
        if key.startswith("detection_"):
            name = key.removeprefix("detection_")
            for k in ("f1", "precision", "recall"):
                row[f"{k}_{name}"] = value.get(k, nan)
    row["apa_parse_rate"] = apa["parse_rate"] if apa else nan
    row["mdd_parse_rate"] = mdd["parse_rate"] if mdd else nan
    fig5 = metrics.get("per_vs_accuracy")
    row["per_acc_pcc_human"] = fig5["human"]["pcc"] if fig5 else nan
    row["per_acc_pcc_predicted"] = fig5["predicted"]["pcc"] if fig5 else nan
    gop = metrics.get("gop_estimate")
    for aspect, name in (("accuracy", "acc"), ("total", "total")):
        row[f"gop_estimate_{name}_pcc"] = gop[aspect]["pcc"] if gop and aspect in gop else nan
    return row


def canonical_phone_baseline(records: Sequence, mdd_convention: str = "reference") -> dict:
    """MDD figures of a system that answers every recording with the dictionary's canonical phones.

    It never rejects a phone (recall 0), and its PER is the share of phones the speakers
    actually changed: the floor a model must beat to show it hears mispronunciations.
    """
    import json

    answers = [
        parse_answer("mdd", json.dumps({"word_transcript": r.text, "phoneme_transcript": r.canonical_phones}))
        for r in records
    ]
    canonical = [r.canonical_phones for r in records]
    detection = mdd_metrics(
        canonical, [r.pronounced_phones for r in records], canonical, convention=mdd_convention
    )
    per = per_metrics([r.pronounced_phones for r in records], answers)
    return {
        "per": per["per"],
        "f1": detection["f1"],
        "precision": detection["precision"],
        "recall": detection["recall"],
        "convention": mdd_convention,
        "n": len(records),
    }
