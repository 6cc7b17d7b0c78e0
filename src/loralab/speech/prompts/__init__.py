"""Prompt templates for the two tasks.

``*_paper.txt`` are the prompts published in Ahn & Nam, "English Pronunciation Evaluation
without Complex Joint Training: LoRA Fine-tuned Speech Multimodal LLM" (arXiv 2509.02915,
2025), Appendix 7.1 (APA) and 7.2 (MDD), verbatim. ``*_short.txt`` are compact variants
for small models, whose context and capacity a 600-token instruction would swamp.

The user turn is ``<|APA|><|audio_1|>{prompt}`` (or ``<|MDD|>``): the control token first,
then the audio placeholder, which the collator expands to the model's audio token repeated
once per audio embedding.

Text-aware prompts (``speech.prompt_reference``, not in the paper): read-aloud assessment
knows the sentence, as Azure's does. ``text`` puts ``Reference text: <sentence>`` between
the control token and the audio (before the audio, so that a causal decoder reads the audio
knowing what should be said); ``phones`` adds ``Canonical phones: <CMUdict phones>``;
``phones_gop`` also adds what the model's own GOP scorer (:mod:`loralab.speech.model.gop`)
estimates from the audio to the prompts that ask for one aspect alone (:data:`ESTIMATE_TASKS`):
``Accuracy estimate: <0-10>`` to ``apa_accuracy``, ``Total estimate: <0-10>`` to ``apa_total``,
right after the audio (:func:`estimate_block`). Only there: in the joint APA prompt the decoder
copies the estimate into fluency and prosody too, and given the accuracy estimate in the total
prompt it copies that into the total (both measured on the demo: the README's table of
recipes, docs/experiments/phone_alignment.md). ``phones_gop`` also puts
the control token after the audio (``<|reference|><|audio_1|><|APA|>{prompt}``,
:data:`TASK_AFTER_AUDIO`), so that every prompt of one recording (APA, the aspects, MDD) shares
everything up to the end of the audio: the fast route (``assess``, ``serve``) prefills that once.
``heard`` (the layout of a model that listens, :data:`EVIDENCE`) gives the sentence alone before
the audio (no canonical phones to copy) and after it, per task, what the scorer got from the
audio: each aspect's estimate in that aspect's prompt (all four), and in the MDD prompt
``Heard phones: <the phones diagnosed as said>`` (:mod:`loralab.speech.model.diagnosis`).
The default, ``none``, is the paper's layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

APA_ASPECTS = ("accuracy", "fluency", "prosodic", "total")
# One aspect at a time (arXiv 2509.15701): a prompt and an answer per aspect, e.g. apa_fluency.
APA_ASPECT_TASKS = tuple(f"apa_{aspect}" for aspect in APA_ASPECTS)
# Every task: apa (all aspects in one answer), mdd, and the one-aspect tasks. The one definition
# (the config's speech.tasks is checked against it).
TASKS = ("apa", "mdd", *APA_ASPECT_TASKS)
STYLES = ("paper", "short")
CONTROL_TOKENS = {"apa": "<|APA|>", "mdd": "<|MDD|>", **{t: "<|APA|>" for t in APA_ASPECT_TASKS}}
AUDIO_PLACEHOLDER = "<|audio_1|>"
REFERENCE_PLACEHOLDER = "<|reference|>"
PROMPT_REFERENCES = ("none", "text", "phones", "phones_gop", "heard")
# Layouts whose task (control token, estimate, prompt) follows the reference and the audio, so that
# every prompt of a recording shares them. phones_gop only: the layouts of models trained before
# stay as they were (a phones_gop model of an earlier layout is refused by its scorer's format).
TASK_AFTER_AUDIO = ("phones_gop", "heard")
# The prompts of phones_gop that carry an estimate, and of which aspect.
ESTIMATE_TASKS = {"apa_accuracy": "accuracy", "apa_total": "total"}
HEARD_PHONES = "heard_phones"  # the scorer's diagnosed phones (loralab.speech.model.gop.GopScorer.evidence)
# Per layout, the prompts that carry the scorer's evidence, and which of it.
EVIDENCE = {
    "phones_gop": ESTIMATE_TASKS,
    "heard": {**{t: t.removeprefix("apa_") for t in APA_ASPECT_TASKS}, "mdd": HEARD_PHONES},
}


def evidence_key(reference: str, task: str) -> str | None:
    """What of the scorer's evidence ``task``'s prompt under ``reference`` carries (an aspect, or
    :data:`HEARD_PHONES`), None when it carries none."""
    return EVIDENCE.get(reference, {}).get(task)


def uses_estimate(reference: str, task: str) -> bool:
    """Whether ``task``'s prompt under ``reference`` carries the GOP scorer's evidence."""
    return evidence_key(reference, task) is not None


@cache
def load_prompt(task: str, style: str = "paper") -> str:
    """The prompt text of ``task`` ('apa' or 'mdd') in ``style`` ('paper' or 'short')."""
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    if style not in STYLES:
        raise ValueError(f"unknown prompt style '{style}' (known: {', '.join(STYLES)})")
    if task in APA_ASPECT_TASKS:
        return aspect_prompt(task.removeprefix("apa_"), style)
    return resources.files(__package__).joinpath(f"{task}_{style}.txt").read_text().strip()


def user_content(task: str, style: str = "paper", reference: str = "none") -> str:
    """The user turn's content before expansion: control token, [reference placeholder], audio
    placeholder, prompt; under ``phones_gop`` the control token after the audio (see the module doc)."""
    if reference not in PROMPT_REFERENCES:
        raise ValueError(f"unknown prompt reference '{reference}' (known: {', '.join(PROMPT_REFERENCES)})")
    slot = "" if reference == "none" else REFERENCE_PLACEHOLDER
    if reference in TASK_AFTER_AUDIO:
        return slot + AUDIO_PLACEHOLDER + CONTROL_TOKENS[task] + load_prompt(task, style)
    return CONTROL_TOKENS[task] + slot + AUDIO_PLACEHOLDER + load_prompt(task, style)


def reference_block(reference: str, text: str, canonical_phones: str | None = None) -> str:
    """What stands in the reference slot of a prompt for one utterance ('' for ``none``)."""
    if reference == "none":
        return ""
    block = f"Reference text: {text}\n"
    if reference in ("phones", "phones_gop"):  # heard: no canonical phones to copy
        if not canonical_phones:
            raise ValueError(f"prompt reference '{reference}' needs the canonical phones of {text!r}")
        block += f"Canonical phones: {canonical_phones}\n"
    return block


def estimate_block(reference: str, task: str, text: str, estimates: Mapping[str, int | str] | None) -> str:
    """What follows the audio in ``task``'s prompt for one utterance: the scorer's evidence where
    the prompt carries some (:func:`evidence_key`), else ''."""
    key = evidence_key(reference, task)
    if key is None:
        return ""
    if (estimates or {}).get(key) is None:
        what = "diagnosed phones" if key == HEARD_PHONES else f"{key} estimate"
        raise ValueError(
            f"prompt reference '{reference}' needs the GOP scorer's {what} of {text!r} "
            "(a model trained with it keeps the scorer in gop_scorer.safetensors)"
        )
    if key == HEARD_PHONES:
        return f"Heard phones: {estimates[key]}\n"
    return f"{key.capitalize()} estimate: {int(estimates[key])}\n"


def aspect_prompt(aspect: str, style: str) -> str:
    """The prompt for one APA aspect: the paper prompt's section on that aspect (style paper), or
    one line (short), asking for a one-key JSON answer."""
    if style == "short":
        return f"Rate the {aspect} of the pronunciation (0-10) as JSON."
    paper = load_prompt("apa", "paper")
    title = f"**{aspect.capitalize()}**"
    section = paper[paper.index(title) :].split("\n**", 1)[0].split("\nProvide the results", 1)[0]
    return (
        f"Rate the pronunciation of the audio.\n{section.strip()}\n"
        f"Provide the result in the following JSON format:\n{{'{aspect}': {aspect.upper()}_SCORE}}"
    )
