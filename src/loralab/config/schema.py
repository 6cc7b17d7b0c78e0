"""The one typed schema of an experiment config.

Every YAML file under ``loralab/configs/`` maps onto :class:`ExperimentConfig`: the engine's
sections are defined here, and each system's own sections (``speech``, ``protein``, ...) in the
system, which declares them when it registers (:func:`loralab.engine.system.register_system`).
Each field's ``help`` metadata is its documentation (shown by ``loralab train --help-config``).
Unknown keys are errors (see :mod:`loralab.config.loader`); nothing in the code reads a
config with ``.get(key, default)``: defaults live here, once.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from loralab.engine.system import config_section_types


def doc(text: str, default=None, factory=None):
    """A dataclass field carrying its help text."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class ModelConfig:
    """The pretrained backbone."""

    name_or_path: str = doc(
        "Local folder or Hugging Face id of the pretrained model.", "microsoft/Phi-4-multimodal-instruct"
    )
    revision: str | None = doc(
        "Hub revision. Phi-4-multimodal's native transformers layout is 'refs/pr/70'.", "refs/pr/70"
    )
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = doc(
        "Weight dtype of frozen parameters. auto: bf16 on GPUs that support it, else fp32.", "auto"
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = doc(
        "Attention kernel. auto: flash-attention when installed on CUDA, else SDPA.", "auto"
    )
    gradient_checkpointing: bool = doc("Non-reentrant activation checkpointing in the decoder.", True)
    trust_remote_code: bool = doc(
        "Allow a model's own Python code from the hub. Off by default; loralab never needs it.", False
    )
    unfreeze: list[str] = doc(
        "Module groups trained in full beside LoRA (speech: audio_encoder, audio_projector).", factory=list
    )
    family: Literal["phi4mm", "qwen2audio"] = doc(
        "Speech backbone family: phi4mm (Phi4MultimodalForCausalLM) or qwen2audio "
        "(Qwen2AudioForConditionalGeneration). A model of another family is an error naming both.",
        "phi4mm",
    )
    cache_audio_encoder: bool = doc(
        "Speech, qwen2audio: a frozen audio encoder runs once per recording and its output is reused "
        "(kept in CPU memory: 750 x d_model values per recording). Saves the encoder's time on later "
        "epochs and on the second task of each utterance.",
        False,
    )


@dataclass
class LoraConfig:
    """The LoRA adapter (PEFT)."""

    init: Literal["fresh", "pretrained"] = doc(
        "fresh: a new adapter (standard PEFT init, B = 0). pretrained: load an existing adapter and train it further.",
        "fresh",
    )
    adapter_path: str | None = doc(
        "For init=pretrained: adapter folder; default '<model>/speech-lora' for speech.", None
    )
    rank: int = doc("LoRA rank r.", 64)
    alpha: int = doc("LoRA alpha (scaling = alpha / r).", 128)
    dropout: float = doc("Dropout on the LoRA input.", 0.05)
    target_modules: str | None = doc(
        "Regex of module names that get LoRA (full-match, PEFT semantics). Unset: the system's default, "
        "filled in when the config is loaded (speech: the text decoder's attention and MLP projections "
        "of model.family; protein has none and needs it set).",
        None,
    )


@dataclass
class TrainingConfig:
    """Optimisation and the training loop."""

    epochs: int = doc("Number of epochs.", 3)
    batch_size: int = doc("Examples per device per micro-batch.", 8)
    gradient_accumulation: int = doc("Micro-batches per optimizer step.", 8)
    learning_rate: float = doc("Peak learning rate (AdamW).", 2e-5)
    weight_decay: float = doc("AdamW weight decay.", 0.0)
    adam_betas: list[float] = doc("AdamW betas.", factory=lambda: [0.9, 0.999])
    warmup_ratio: float = doc("Fraction of optimizer steps spent in linear warm-up.", 0.05)
    lr_schedule: Literal["linear", "cosine", "constant"] = doc("Decay after warm-up.", "linear")
    max_grad_norm: float = doc("Gradient clipping norm (0 disables).", 1.0)
    group_by_length: bool = doc("Bucket examples of similar length into a batch (less padding).", True)
    max_steps: int | None = doc("Stop after this many optimizer steps (smoke tests).", None)
    log_every: int = doc("Log loss, grad norm and lr every N optimizer steps.", 10)
    seed: int = doc("Random seed (data order, dropout, init).", 42)
    gpus: str | None = doc("Comma-separated CUDA device indices to use, e.g. '0,1'.", None)
    deepspeed: str | None = doc("DeepSpeed config JSON: a path, or a shipped name (zero2).", None)
    num_workers: int = doc("DataLoader worker processes.", 0)
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = doc(
        "Autocast dtype. auto: bf16 where supported, else none. Trainable weights stay fp32.", "auto"
    )


@dataclass
class EvaluationConfig:
    """Evaluation after or during training."""

    batch_size: int = doc("Utterances (or proteins) per generation batch.", 16)
    max_new_tokens: int | None = doc(
        "Generation budget; default: the longest training answer's tokens plus a margin.", None
    )
    split: str = doc("Split to evaluate.", "test")
    every_epoch: bool = doc("Run evaluation after each epoch during training.", False)
    limit: int | None = doc("Evaluate only the first N items.", None)
    score_decoding: Literal["greedy", "expected"] = doc(
        "Speech APA scores: greedy (the digits the model writes, the paper's) or expected (each score "
        "read from the model's probabilities over 0..10; metrics.json stores both).",
        "greedy",
    )
    mdd_convention: Literal["reference", "strict"] = doc(
        "Speech MDD scoring behind the headline precision/recall/F1 (metrics.json stores both). "
        "reference: the public convention of the MDD literature (cageyoko/CTC-Attention-Mispronunciation, "
        "Kaldi align-text), comparable with published numbers; strict: also counts predicted insertions "
        "the annotators did not hear as false rejections, and each insertion gap as one unit.",
        "reference",
    )
    speech_route: Literal["auto", "batched", "one_by_one"] = doc(
        "How speech answers are decoded (the same greedy tokens either way, to bf16 rounding). batched: "
        "batch_size recordings at a time through generate; one_by_one: a recording at a time on the KV "
        "cache, as assess and serve answer (its prompts share the audio, and an answer that copies its "
        "prompt's evidence is verified in one pass); auto: one_by_one on a CPU, batched on a GPU.",
        "auto",
    )


@dataclass
class ExperimentConfig:
    """One experiment: what to train, on what, and how."""

    name: str = doc("Run name; also the default output folder output/<name>.", "experiment")
    system: str = doc(
        "Which system: speech (pronunciation), protein, or one a package registered "
        "(loralab.engine.system.register_system).",
        "speech",
    )
    description: str = doc("Free text shown by 'loralab compare'.", "")
    strategy: Literal["lora", "unfreeze"] = doc(
        "lora: LoRA only. unfreeze: LoRA plus the modules in model.unfreeze trained in full.", "lora"
    )
    output_dir: str | None = doc("Run directory; default output/<name>.", None)
    model: ModelConfig = doc("Backbone.", factory=ModelConfig)
    lora: LoraConfig = doc("LoRA adapter.", factory=LoraConfig)
    training: TrainingConfig = doc("Training loop.", factory=TrainingConfig)
    evaluation: EvaluationConfig = doc("Evaluation.", factory=EvaluationConfig)
    sections: dict[str, Any] = doc(
        "Each registered system's config sections by name (speech, protein, protein_head, ...), read "
        "as cfg.<name> and written as top-level keys beside the fields above.",
        factory=dict,
    )

    def __post_init__(self):
        types = system_section_types()
        unknown = [name for name in self.sections if name not in types]
        if unknown:
            raise TypeError(
                f"no registered system has the config section(s) {unknown}; sections: {', '.join(types)}"
            )
        # A new mapping (the caller's is left as it was); a section not given takes its defaults.
        self.sections = {
            name: self.sections[name] if name in self.sections else cls() for name, cls in types.items()
        }

    def __getattr__(self, name: str):
        # Reached only when ordinary lookup fails: a system's section (cfg.speech, cfg.protein_head).
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no field or config section {name!r}")

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"output/{self.name}"


def system_section_types() -> dict[str, type]:
    """Section name -> dataclass of every registered system's config sections."""
    types = config_section_types()
    clash = [name for name in types if name in ExperimentConfig.__dataclass_fields__]
    if clash:
        raise TypeError(f"config section(s) {clash} would hide fields of ExperimentConfig of the same name")
    return types


def _config_sections() -> dict[str, type]:
    """Section name -> its dataclass, the engine's and every registered system's."""
    hints = typing.get_type_hints(ExperimentConfig)
    sections = {
        f.name: hints[f.name]
        for f in dataclasses.fields(ExperimentConfig)
        if dataclasses.is_dataclass(hints[f.name])
    }
    sections.update(system_section_types())
    return sections


def retired_config_keys() -> dict[str, str]:
    """Dotted key -> the key that replaced it, for every key a config may still hold though nothing
    reads it (a section's ``RETIRED_KEYS``): loaded with a warning and ignored."""
    return {
        f"{name}.{key}": replacement
        for name, cls in _config_sections().items()
        for key, replacement in getattr(cls, "RETIRED_KEYS", {}).items()
    }


def field_defaults() -> dict[str, Any]:
    """Dotted key -> the default of every section field: what a run written before the field
    existed ran with (a new field's default keeps the old behaviour)."""
    out: dict[str, Any] = {}
    for name, cls in _config_sections().items():
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f"{name}.{f.name}"] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f"{name}.{f.name}"] = f.default_factory()
    return out


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """The config as plain data in the layout of YAML files and run.json: the engine's fields, then
    each system's section as a top-level key."""
    data = dataclasses.asdict(cfg)
    sections = data.pop("sections")
    return {**data, **sections}
