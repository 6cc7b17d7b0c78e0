"""What a stored prediction was made from, so that ``evaluate`` never reuses a stale one.

``predictions.jsonl`` keeps answers across runs (a killed evaluation resumes). An answer is only
valid for the inputs it was generated from: the sentence, its canonical phones (both in the
prompt), the duration (the number of audio tokens) and the recording's bytes. Each prediction
line records :func:`record_fingerprint` of those as ``source``; on a rerun a line whose
``source`` differs from the manifest's current entry (edited text, re-prepared audio) or is
missing (written by an older loralab) is generated again, and the log says how many. Scores
and other targets are left out: they change the metrics, which are recomputed every time from
the current manifest, not the answers. The audio path is left out too: a moved manifest folder
holds the same inputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SOURCE_KEY = "source"


def record_fingerprint(record) -> str:
    """A short hash of what a prediction of ``record`` is made from (module doc)."""
    inputs = {
        "text": record.text,
        "canonical_phones": getattr(record, "canonical_phones", None),
        "duration": getattr(record, "duration", None),
    }
    digest = hashlib.sha1(json.dumps(inputs, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    try:
        digest.update(Path(record.audio_path).read_bytes())
    except OSError:
        digest.update(b"<unreadable audio>")  # generation then fails on it, naming the file
    return digest.hexdigest()[:20]
