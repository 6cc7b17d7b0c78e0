"""``summary.json`` of a prepared manifest: what is in it, and what was left out and why."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from loralab import __version__
from loralab.speech.data.phones import strip_stress
from loralab.speech.data.records import MANIFEST_VERSION, SCORE_ASPECTS, UtteranceRecord
from loralab.speech.data.sources import Problem
from loralab.speech.data.targets import round_score

MAX_LISTED_WARNINGS = 200
PRONOUNCED_POLICY = (
    "canonical phones with annotated substitutions applied; <DEL> removed; X* -> X (distortion=closest) "
    "or <unk> (distortion=unk); <unk> kept; old L2 phones (IR AR TR DZ TS DR) -> two CMU phones; "
    "stress digits stripped"
)


def _histogram(values) -> dict[str, int]:
    counts = Counter(values)
    return {str(k): counts[k] for k in sorted(counts)}


def _split_summary(records: list[UtteranceRecord]) -> dict[str, Any]:
    words = [w for r in records for w in r.words]
    return {
        "utterances": len(records),
        "speakers": len({r.speaker for r in records}),
        "words": len(words),
        "phones": sum(len(w.canonical_phones) for w in words),
        "mispronounced_phones": sum(len(w.mispronunciations) for w in words),
        "hours": round(sum(r.duration for r in records) / 3600, 4),
        "score_histograms": {
            aspect: _histogram(round_score(r.scores[aspect]) for r in records) for aspect in SCORE_ASPECTS
        },
    }


def build_summary(
    records: dict[str, list[UtteranceRecord]],
    skipped: list[Problem],
    warnings: list[dict],
    source: str,
    layout: str,
    options: dict[str, Any],
) -> dict[str, Any]:
    everything = [r for split in records.values() for r in split]
    words = [w for r in everything for w in r.words]
    annotations = Counter(m.pronounced_phone for w in words for m in w.mispronunciations)
    return {
        "manifest_version": MANIFEST_VERSION,
        "loralab_version": __version__,
        "source": source,
        "layout": layout,
        "options": options,
        "pronounced_phone_policy": PRONOUNCED_POLICY,
        "counts": {split: len(recs) for split, recs in records.items()},
        "splits": {split: _split_summary(recs) for split, recs in records.items()},
        "phone_inventory": {
            "canonical": _histogram(strip_stress(p) for w in words for p in w.canonical_phones),
            "pronounced": _histogram(p for w in words for p in w.pronounced_phones),
            "annotated_pronounced_symbols": {k: annotations[k] for k in sorted(annotations)},
        },
        "skipped": {
            "count": len(skipped),
            "items": [{"id": p.id, "split": p.split, "reason": p.message} for p in skipped],
        },
        "warnings": {
            "count": len(warnings),
            "by_kind": dict(Counter(w["kind"] for w in warnings)),
            "items": warnings[:MAX_LISTED_WARNINGS],
        },
    }


def write_summary(summary: dict[str, Any], out_dir: str | Path) -> Path:
    path = Path(out_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
