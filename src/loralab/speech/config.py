"""The speech system's config section (``speech:``), registered with the system
(:func:`loralab.engine.system.register_system`); light on purpose: reading a config imports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from loralab.config.schema import doc


@dataclass
class SpeechDataConfig:
    """SpeechOcean762-style data for the pronunciation system."""

    manifest_dir: str = doc(
        "Folder written by 'loralab speech prepare' (train.jsonl, test.jsonl).", "data/so762"
    )
    # Keys old configs and run folders hold that nothing reads any more -> what to use instead.
    RETIRED_KEYS: ClassVar[dict[str, str]] = {"eval_split": "evaluation.split"}

    train_split: str = doc("Manifest split used for training.", "train")
    tasks: list[str] = doc(
        "Tasks per utterance (each yields one example per task): apa (all four scores in one answer), "
        "mdd, or APA one aspect at a time: apa_accuracy, apa_fluency, apa_prosodic, apa_total.",
        factory=lambda: ["apa", "mdd"],
    )
    task_shares: list[float] = doc(
        "Share (0-1] of the training utterances that get an example of each task, in the order of "
        "speech.tasks (empty: every utterance, every task): a fixed subset per task drawn with "
        "training.seed, e.g. [1, 1, 0.5] to train a task that is learned quickly on half the "
        "utterances. Evaluation always covers every task.",
        factory=list,
    )
    prompt_style: Literal["paper", "short"] = doc(
        "paper: the published APA/MDD prompts; short: compact prompts for small models.", "paper"
    )
    prompt_reference: Literal["none", "text", "phones", "phones_gop", "heard"] = doc(
        "Text-aware prompts (not in the paper): none (the paper's layout); text: the sentence read, "
        "before the audio; phones: the sentence and its canonical CMUdict phones; phones_gop: also "
        "'Accuracy estimate: N' / 'Total estimate: N' after the audio in the apa_accuracy / apa_total "
        "prompts, from a scorer on the frozen audio encoder (a linear CTC phone head: goodness of "
        "pronunciation, pauses, phone rate; fit at the start of training and saved with the model), "
        "and the control token after the audio (Qwen2-Audio family, frozen encoder); heard: the "
        "sentence alone before the audio, and after it what that scorer got from the audio: each "
        "aspect's estimate in the apa_<aspect> prompts and 'Heard phones: ...' (the canonical phones "
        "with the edits the recogniser is sure of) in the MDD prompt.",
        "none",
    )
    real_voice_calibration: Literal["none", "asterisk"] = doc(
        "Real read speech that bounds the diagnosis threshold (prompt_reference heard or phones_gop): "
        "asterisk: Debian's asterisk-core-sounds-en-wav prompts (one real voice, read correctly; "
        "apt-get install asterisk-core-sounds-en-wav); the threshold fit on held-out training speakers "
        "is raised until at most speech.real_voice_max_flagged of their words are flagged. For a "
        "recogniser fit on synthetic speech, which flags many words of real readers. none: the "
        "training speakers alone.",
        "none",
    )
    real_voice_max_flagged: float = doc(
        "With speech.real_voice_calibration: the share (0-1) of the real prompts' words flagged at most.",
        0.15,
    )
    real_voice_prompts: int = doc("With speech.real_voice_calibration: how many real prompts to use.", 150)
    max_audio_seconds: float = doc("Utterances longer than this are skipped (and counted).", 30.0)
    limit: int | None = doc("Use only the first N utterances of each split (smoke tests).", None)


CONFIG_SECTIONS = {"speech": SpeechDataConfig}
