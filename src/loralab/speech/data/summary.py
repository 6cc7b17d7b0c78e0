"""``summary.json`` of a prepared manifest: what is in it, and what was left out and why."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from loralab import __version__
from loralab.speech.data.phones import L2_PHONES, normalize_pronounced, strip_stress
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


# The corpus's mispronunciation labels exist in two versions: before the fix of July 2024
# (jimbozhang/speechocean762 issues #10 and #11, pull request #13) they carry '*' distortion
# marks and six non-CMU L2 phones; after it, CMU phones only. The Hugging Face copy
# (mispeech/speechocean762) received the fix on 2026-04-30.
ANNOTATION_VERSIONS = {
    "pre-2024-07": "labels with '*' distortion marks and/or non-CMU L2 phones (before the July 2024 fix)",
    "post-2024-07": "CMU phones only (the July 2024 fix)",
    "none": "no mispronunciation labels in this copy (an older Hugging Face export)",
}


def _odd(label: str) -> bool:
    """A label of the pre-fix version: a '*' mark or an L2 phone."""
    return any(t.endswith("*") or strip_stress(t.rstrip("*")) in L2_PHONES for t in label.split())


def annotation_version(annotations: Counter, distortion: str) -> dict[str, Any]:
    """Which label version ``annotations`` (pronounced-phone label -> count) are, and what the
    manifest made of each odd label (the phones its MDD target holds instead)."""
    odd = {label: n for label, n in annotations.items() if _odd(label)}
    version = "none" if not annotations else ("pre-2024-07" if odd else "post-2024-07")
    return {
        "version": version,
        "meaning": ANNOTATION_VERSIONS[version],
        "labels": sum(annotations.values()),
        "odd_labels": {
            label: {
                "count": odd[label],
                "became": " ".join(normalize_pronounced(label, distortion)) or "(deleted)",
            }
            for label in sorted(odd)
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
        "mispronunciation_labels": annotation_version(annotations, options.get("distortion", "closest")),
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
