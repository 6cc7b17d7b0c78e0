"""Prompt templates for the two tasks.

``*_paper.txt`` are the prompts published in Ahn & Nam, "English Pronunciation Evaluation
without Complex Joint Training: LoRA Fine-tuned Speech Multimodal LLM" (arXiv 2509.02915,
2025), Appendix 7.1 (APA) and 7.2 (MDD), verbatim. ``*_short.txt`` are compact variants
for small models, whose context and capacity a 600-token instruction would swamp.

The user turn is ``<|APA|><|audio_1|>{prompt}`` (or ``<|MDD|>``): the control token first,
then the audio placeholder, which the collator expands to the model's audio token repeated
once per audio embedding.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

TASKS = ("apa", "mdd")
STYLES = ("paper", "short")
CONTROL_TOKENS = {"apa": "<|APA|>", "mdd": "<|MDD|>"}
AUDIO_PLACEHOLDER = "<|audio_1|>"


@cache
def load_prompt(task: str, style: str = "paper") -> str:
    """The prompt text of ``task`` ('apa' or 'mdd') in ``style`` ('paper' or 'short')."""
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    if style not in STYLES:
        raise ValueError(f"unknown prompt style '{style}' (known: {', '.join(STYLES)})")
    return resources.files(__package__).joinpath(f"{task}_{style}.txt").read_text().strip()


def user_content(task: str, style: str = "paper") -> str:
    """The user turn's content before audio expansion: control token, audio placeholder, prompt."""
    return CONTROL_TOKENS[task] + AUDIO_PLACEHOLDER + load_prompt(task, style)
