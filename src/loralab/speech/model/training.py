"""The trainable speech model: a speech backbone + LoRA (+ unfrozen audio modules), answer-only loss.

:class:`SpeechLoraModel` wraps the PEFT model so that one ``forward`` call returns the loss: the
trainer (and DDP/DeepSpeed around it) sees an ordinary module. The loss runs the decoder to its
last hidden states (``model.model(...)``, the same call for every family), keeps the positions
whose next token is a target (shifted label != -100), applies ``lm_head`` to those only — no
full-vocabulary logits for the prompt and audio tokens, which on Phi-4-MM (vocabulary 200k) or
Qwen2-Audio (156k) would cost gigabytes — and averages the cross-entropy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from loralab.engine.activation_checkpointing import enable_activation_checkpointing
from loralab.errors import LoralabError
from loralab.speech.chat_format import IGNORE_INDEX
from loralab.speech.model import lora as lora_setup
from loralab.speech.model.layout import SPEECH_ADAPTER_DIR, resolve_model_dir
from loralab.speech.model.load import UNFROZEN_FILE, resolve_backbone

TEXT_INPUTS = ("input_ids", "attention_mask", "labels")


class SpeechLoraModel(torch.nn.Module):
    """The PEFT-wrapped backbone model; ``forward(**batch)`` is the answer-only loss."""

    def __init__(self, peft_model, backbone):
        super().__init__()
        self.peft_model = peft_model
        self.backbone = backbone  # loralab.speech.backbones.Backbone (not a module)
        # speech.prompt_reference=phones_gop: the GOP scorer fit before training (loralab.speech.model.gop),
        # fixed while training and saved with every checkpoint (not a module: no gradients, no optimizer state).
        self.gop_scorer = None
        # The training recordings' cross-fitted estimates (record id -> estimates) that the prompts
        # carry: checkpoints keep them, so that a resumed run need not fit the scorer again.
        self.gop_training_estimates: dict[str, dict] | None = None

    @property
    def causal_lm(self):
        """The backbone's model class (LoRA layers injected in place)."""
        return self.peft_model.get_base_model()

    def forward(self, input_ids, attention_mask, labels, **audio_inputs):
        lm = self.causal_lm
        hidden = lm.model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **audio_inputs
        ).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        if not bool(keep.any()):
            raise LoralabError("a batch has no answer tokens to learn (all labels are -100)")
        logits = lm.lm_head(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), targets[keep])


def unwrap(model) -> SpeechLoraModel:
    """The :class:`SpeechLoraModel` inside DDP/DeepSpeed/accelerate wrappers."""
    while not isinstance(model, SpeechLoraModel):
        if not hasattr(model, "module"):
            raise TypeError(f"expected a SpeechLoraModel (possibly wrapped), got {type(model).__name__}")
        model = model.module
    return model


def answer_only_loss(model, batch: dict):
    """``SystemParts.loss_fn``: mean cross-entropy over the batch's answer tokens."""
    device = next(model.parameters()).device
    keys = TEXT_INPUTS + unwrap(model).backbone.audio_input_keys
    inputs = {k: batch[k].to(device) for k in keys if k in batch}
    return model(**inputs)


def adapter_dir_for(cfg, model_dir: Path) -> Path:
    """The adapter loaded for ``lora.init = pretrained``: ``lora.adapter_path`` or ``<model>/speech-lora``."""
    return (
        Path(cfg.lora.adapter_path).expanduser()
        if cfg.lora.adapter_path
        else Path(model_dir) / SPEECH_ADAPTER_DIR
    )


def parameter_groups(model: SpeechLoraModel):
    """Per-group counts of the built model; a dropped vision encoder is counted in 'vision'."""
    vision = model.backbone.removed_parameters(model.causal_lm)
    return lora_setup.count_groups(model.peft_model.named_parameters(), model.backbone, vision_total=vision)


def build_training_model(cfg, runtime, model_dir: Path | None = None) -> SpeechLoraModel:
    """Load the base model, add the LoRA of ``cfg.lora``, unfreeze ``cfg.model.unfreeze``, fp32 trainables."""
    model_dir = model_dir or resolve_model_dir(cfg.model.name_or_path, cfg.model.revision)
    backbone = resolve_backbone(model_dir, cfg.model.family)
    base = backbone.load(
        model_dir,
        device=runtime.device,
        dtype=runtime.weight_dtype,
        attn_implementation=cfg.model.attn_implementation,
    )
    adapter_dir = adapter_dir_for(cfg, model_dir) if cfg.lora.init == "pretrained" else None
    return prepare_training_model(cfg, base, backbone, adapter_dir)


def prepare_training_model(cfg, base, backbone, adapter_dir: Path | None = None) -> SpeechLoraModel:
    """A loaded, frozen ``base`` made trainable as ``cfg`` says: the LoRA (fresh, or the adapter in
    ``adapter_dir``), unfrozen modules, fp32 trainables, encoder cache, activation checkpointing.
    ``loralab estimate`` calls this on a model without weights."""
    # A config built in code (not loaded) may leave the targets unset: the family's, as loading gives.
    lora_cfg = dataclasses.replace(cfg.lora, target_modules=backbone.lora_targets(cfg.lora.target_modules))
    if adapter_dir is not None:
        peft_model = lora_setup.add_pretrained_lora(base, adapter_dir, lora_cfg)
    else:
        peft_model = lora_setup.add_fresh_lora(base, lora_cfg)
    if cfg.strategy == "unfreeze":
        lora_setup.unfreeze(peft_model, cfg.model.unfreeze, backbone)
    lora_setup.trainable_to_fp32(peft_model)
    # The cache stays for the model's life: this model is the run's own, built here.
    if cfg.model.cache_audio_encoder and backbone.install_encoder_cache(base) is None:
        raise LoralabError(
            f"model.cache_audio_encoder is not available for {backbone.title}: set it to false"
        )
    if cfg.model.gradient_checkpointing:
        enable_activation_checkpointing(base)
    base.config.use_cache = False
    return SpeechLoraModel(peft_model, backbone)


def save_trainable(model, out_dir: Path) -> None:
    """A checkpoint: :func:`save_model_files`, and the training recordings' GOP estimates
    (``gop_training_estimates.json``) that a resumed run restores with the scorer."""
    from loralab.speech.model.gop_fit import save_training_estimates

    save_model_files(model, out_dir)
    estimates = unwrap(model).gop_training_estimates
    if estimates is not None:
        save_training_estimates(out_dir, estimates)


def save_model_files(model, out_dir: Path) -> None:
    """The adapter (PEFT safetensors), any unfrozen weights (``unfrozen.safetensors``) and the GOP
    scorer (``gop_scorer.safetensors``, prompt_reference phones_gop)."""
    from safetensors.torch import save_file

    inner = unwrap(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inner.peft_model.save_pretrained(str(out_dir), save_embedding_layers=False)
    unfrozen = lora_setup.unfrozen_state_dict(inner.peft_model)
    if unfrozen:
        save_file(unfrozen, str(out_dir / UNFROZEN_FILE), metadata={"format": "pt"})
    if inner.gop_scorer is not None:
        inner.gop_scorer.save(out_dir)


def load_trainable(model, in_dir: Path) -> None:
    """Load what :func:`save_trainable` wrote (resume), the GOP scorer included."""
    from loralab.speech.model.gop import GOP_FILE, load_gop_scorer

    inner = unwrap(model)
    in_dir = Path(in_dir)
    lora_setup.load_adapter_weights(inner.peft_model, in_dir)
    expected = lora_setup.unfrozen_state_dict(inner.peft_model)
    if expected and not (in_dir / UNFROZEN_FILE).is_file():
        raise LoralabError(f"{in_dir} has no {UNFROZEN_FILE}, but this run trains unfrozen modules")
    lora_setup.load_unfrozen(inner.peft_model, in_dir / UNFROZEN_FILE)
    if (in_dir / GOP_FILE).is_file():
        inner.gop_scorer = load_gop_scorer(in_dir)


def save_final(model, out_dir: Path, tokenizer, feature_extractor) -> None:
    """Adapter + unfrozen weights + tokenizer + feature extractor (the engine adds the model card)."""
    out_dir = Path(out_dir)
    save_model_files(model, out_dir)
    tokenizer.save_pretrained(str(out_dir))
    feature_extractor.save_pretrained(str(out_dir))
