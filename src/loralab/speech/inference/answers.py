"""What a decoding route returns for one (recording, task): :class:`GeneratedAnswer`, shared by
the batched route (:mod:`~.generate`) and the one-at-a-time route (:mod:`~.fast_decode`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loralab.speech.prompts import APA_ASPECTS


def ideal_apa_answer(task: str) -> str:
    """The APA answer of a perfect reading (full marks): the budget's measure and a draft."""
    aspects = APA_ASPECTS if task == "apa" else (task.removeprefix("apa_"),)
    return json.dumps(dict.fromkeys(aspects, 10))


@dataclass
class GeneratedAnswer:
    """One generated answer: the decoded text of the new tokens only. ``hit_limit``: it ended
    at max_new_tokens instead of an end token (a truncated answer usually fails to parse)."""

    id: str
    task: str
    raw: str
    new_tokens: int
    hit_limit: bool
    expected: dict[str, float] | None = None  # APA: expected scores (loralab.speech.inference.expected)
    # The GOP scorer's estimate in the prompt (prompt_reference phones_gop: apa_accuracy's of the
    # accuracy, apa_total's of the total).
    estimate: int | None = None
    # MDD under prompt_reference heard: heard phones put back after a copy jump, and the model's
    # own answer then (loralab.speech.inference.decoding.restore_skipped_phones).
    restored: int = 0
    model_raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "task": self.task,
            "raw": self.raw,
            "new_tokens": self.new_tokens,
            "hit_limit": self.hit_limit,
        }
        if self.expected is not None:
            out["expected"] = self.expected
        if self.estimate is not None:
            out["estimate"] = self.estimate
        if self.restored:
            out["restored"], out["model_raw"] = self.restored, self.model_raw
        return out
