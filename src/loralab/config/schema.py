"""The one typed schema of an experiment config.

Every YAML file under ``loralab/configs/`` maps onto :class:`ExperimentConfig`. Each field's
``help`` metadata is its documentation (shown by ``loralab train --help-config``).
Unknown keys are errors (see :mod:`loralab.config.loader`); nothing in the code reads a
config with ``.get(key, default)``: defaults live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The LoRA targets of the paper: the text decoder's attention and MLP projections only.
# Plain module names would also hit the audio encoder's o_proj/down_proj.
PHI4_SPEECH_LORA_TARGETS = r"model.layers.\d+.((self_attn.(qkv|o)_proj)|(mlp.(gate_up|down)_proj))"


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
    target_modules: str = doc(
        "Regex of module names that get LoRA (full-match, PEFT semantics).", PHI4_SPEECH_LORA_TARGETS
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
class SpeechDataConfig:
    """SpeechOcean762-style data for the pronunciation system."""

    manifest_dir: str = doc(
        "Folder written by 'loralab speech prepare' (train.jsonl, test.jsonl).", "data/so762"
    )
    train_split: str = doc("Manifest split used for training.", "train")
    eval_split: str = doc("Manifest split used for evaluation.", "test")
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
    max_audio_seconds: float = doc("Utterances longer than this are skipped (and counted).", 30.0)
    limit: int | None = doc("Use only the first N utterances of each split (smoke tests).", None)


@dataclass
class ProteinDataConfig:
    """Protein structure data set (from 'loralab protein prepare')."""

    dataset_dir: str = doc("Folder written by 'loralab protein prepare'.", "data/proteins")
    max_length: int = doc("Longest chain fed whole; longer ones are cropped to a window (said in logs).", 256)
    crop: Literal["random", "first"] = doc("How a training window is chosen for long chains.", "random")
    train_split: str = doc("Data set split used for training.", "train")
    val_split: str = doc("Split scored after each epoch (validation MAE beside the baseline).", "val")
    limit: int | None = doc("Use only the first N proteins of each split (smoke tests).", None)


@dataclass
class ProteinHeadConfig:
    """The pairwise distance head."""

    pair_dim: int = doc("Width of the pairwise features.", 128)
    hidden_dim: int = doc("Hidden width of the pair MLP.", 256)
    distogram_bins: int = doc("Bins of the optional distogram head (0 disables).", 0)
    distogram_weight: float = doc("Weight of the distogram cross-entropy in the loss.", 0.5)
    loss: Literal["mse", "huber"] = doc("Regression loss on normalised distances.", "huber")
    context: Literal["causal", "bidirectional"] = doc(
        "What each residue sees in the backbone. causal: the residues before it (the LM's own mask); "
        "bidirectional: the whole chain (a full attention mask, padding excluded; LoRA adapts the "
        "backbone to it).",
        "causal",
    )
    trunk_blocks: int = doc(
        "Residual 2D-convolution blocks refining the pair features over the whole [L, L] map "
        "(dilations 1, 2, 4, 8 in turn; 0: none).",
        0,
    )
    trunk_channels: int = doc("Channels of the pair trunk's convolutions.", 32)
    backbone_layers: int | None = doc(
        "Use only the backbone's first N decoder layers (its final norm kept); null: all. A CPU "
        "budget knob: compute per residue scales with N.",
        None,
    )
    distance_from: Literal["regression", "distogram", "distogram_median"] = doc(
        "Distances used for MDS and metrics. distogram: the distogram's expected distance (the "
        "overflow bin takes the regression value, at least the last edge); distogram_median: its "
        "median (minimises the expected absolute error). With a distogram, contacts are ranked by "
        "the bins' probability below 8 A. distogram*: needs distogram_bins > 0.",
        "regression",
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
    speech: SpeechDataConfig = doc("Speech data (system: speech).", factory=SpeechDataConfig)
    protein: ProteinDataConfig = doc("Protein data (system: protein).", factory=ProteinDataConfig)
    protein_head: ProteinHeadConfig = doc("Protein head (system: protein).", factory=ProteinHeadConfig)

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"output/{self.name}"
