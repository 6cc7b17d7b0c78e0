"""The protein model built from an experiment config: the backbone loaded (or given), cut to
``protein_head.backbone_layers``, frozen, LoRA attached, and :class:`ProteinDistanceModel` on
top, by one recipe (:func:`assemble_protein_model`) that training, the parameter count and the
estimator share."""

from __future__ import annotations

import importlib.util

from torch import nn

from loralab.errors import ModelLayoutError
from loralab.protein.model import ProteinDistanceModel, residue_token_ids

# No decoder layer left (backbone_layers: 0, the ablation): LoRA adapts the token embedding,
# so the ablation keeps the same parts (adapter, residue embedding, head) and save/load path.
EMBEDDING_LORA_TARGET = "embed_tokens"


def resolve_attn_implementation(choice: str, device, context: str = "causal") -> str:
    if context == "bidirectional":  # a 4D mask: flash-attention takes none
        if choice == "flash_attention_2":
            raise ModelLayoutError(
                "protein_head.context: bidirectional needs model.attn_implementation sdpa, eager or auto "
                "(flash-attention takes no full attention mask)"
            )
        return "sdpa" if choice == "auto" else choice
    if choice != "auto":
        return choice
    is_cuda = getattr(device, "type", str(device)) == "cuda"
    return "flash_attention_2" if is_cuda and importlib.util.find_spec("flash_attn") else "sdpa"


def load_backbone(model_cfg, runtime, context: str = "causal"):
    """(decoder without lm_head, tokenizer) from a local folder or hub id; frozen weights in
    ``runtime.weight_dtype``."""
    from transformers import AutoModel, AutoTokenizer

    name = model_cfg.name_or_path
    common = {"revision": model_cfg.revision, "trust_remote_code": model_cfg.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **common)
        backbone = AutoModel.from_pretrained(
            name,
            dtype=runtime.weight_dtype,
            attn_implementation=resolve_attn_implementation(
                model_cfg.attn_implementation, runtime.device, context
            ),
            **common,
        )
    except (OSError, ValueError) as e:
        raise ModelLayoutError(
            f"cannot load the protein backbone '{name}' (model.name_or_path): {e}. Give a local folder with "
            "config.json, weights and tokenizer files, or a Hugging Face id reachable from this machine."
        ) from None
    return backbone, tokenizer


def truncate_layers(backbone, layers: int | None):
    """Keep the first ``layers`` decoder layers of ``backbone`` (None: all; 0: none), config updated."""
    if layers is None:
        return backbone
    blocks = getattr(backbone, "layers", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ModelLayoutError("protein_head.backbone_layers: the backbone has no '.layers' list to shorten")
    if layers > len(blocks):
        raise ModelLayoutError(
            f"protein_head.backbone_layers={layers}, but the backbone has {len(blocks)} layers"
        )
    backbone.layers = blocks[:layers]
    backbone.config.num_hidden_layers = layers
    if isinstance(getattr(backbone.config, "layer_types", None), list):
        backbone.config.layer_types = backbone.config.layer_types[:layers]
    return backbone


def attach_lora(backbone, cfg):
    """Freeze the backbone, enable checkpointing if asked, wrap with LoRA (PEFT)."""
    from peft import LoraConfig

    from loralab.engine.activation_checkpointing import enable_activation_checkpointing
    from loralab.engine.lora import wrap_with_lora

    backbone.requires_grad_(False)
    if cfg.model.gradient_checkpointing:
        enable_activation_checkpointing(backbone)  # non-reentrant
    targets = cfg.lora.target_modules if len(getattr(backbone, "layers", [])) else EMBEDDING_LORA_TARGET
    if not targets:
        raise ModelLayoutError(
            f"lora.target_modules is unset: a protein config names the projections of {cfg.model.name_or_path} "
            "that get LoRA (as configs/protein/qwen2.5-0.5b.yaml does)"
        )
    lora = LoraConfig(
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        bias="none",
    )
    try:
        return wrap_with_lora(backbone, lora)
    except ValueError as e:
        linear = [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear)][:8]
        raise ModelLayoutError(
            f"lora.target_modules '{cfg.lora.target_modules}' matches no module of {cfg.model.name_or_path} "
            f"({e}). Linear modules there look like: {linear}. The regex must full-match these names."
        ) from None


def build_protein_model(cfg, runtime, *, backbone=None, tokenizer=None) -> ProteinDistanceModel:
    """The trainable model of an experiment config, on ``runtime.device``.

    Frozen backbone weights in ``runtime.weight_dtype``; LoRA, residue embedding and head in
    fp32. ``backbone``/``tokenizer`` may be passed in (benchmarks build one from a config).
    """
    if backbone is None:
        backbone, tokenizer = load_backbone(cfg.model, runtime, cfg.protein_head.context)
    token_ids = residue_token_ids(tokenizer, cfg.model.name_or_path)
    return assemble_protein_model(backbone, token_ids, cfg).to(runtime.device)


def assemble_protein_model(backbone, token_ids: list[int], cfg) -> ProteinDistanceModel:
    """The one recipe of the protein model around a loaded (or meta) ``backbone``: cut to
    ``protein_head.backbone_layers``, frozen, LoRA attached, residue embedding and pair head
    on top; every trainable part in fp32 whatever the backbone's dtype. Training, the
    parameter count and the estimator all build through it, so they measure the same model."""
    peft_backbone = attach_lora(truncate_layers(backbone, cfg.protein_head.backbone_layers), cfg)
    for param in peft_backbone.parameters():
        if param.requires_grad:  # PEFT keeps adapters fp32 already; make sure of it
            param.data = param.data.float()
    model = ProteinDistanceModel(peft_backbone, token_ids, cfg.protein_head)
    model.residue_embedding.float()
    model.head.float()
    return model
