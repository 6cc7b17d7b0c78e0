"""Convert Phi-4-multimodal from the original remote-code layout to the native one, offline.

What changes (as transformers' own ``convert_phi4_multimodal_weights_to_hf.py`` does it):

* config.json: ``model_type phi4mm`` -> ``phi4_multimodal``; ``embd_layer`` /
  ``audio_processor`` -> ``audio_config`` (renamed fields) and ``vision_config``; the
  ``speech_lora`` / ``vision_lora`` / ``auto_map`` fields dropped; ``<|end|>`` added as a second
  EOS; audio/image token ids from the tokenizer.
* weights: ``base_layer.`` stripped; the audio conformer's ``feed_forward_*.net.0.linear`` /
  ``net.2`` -> ``gate_up_proj`` / ``down_proj``, ``self_attn.linear_q|k|v|out`` ->
  ``q|k|v|o_proj``; ``audio_projection.speech|vision.0|2`` -> ``up|down_proj_for_speech``,
  ``up|down_proj_for_vision_speech``; ``img_projection.0|2`` -> ``img_projection_up|down``;
  ``glb_GN`` / ``sub_GN`` -> ``global_img_feature_extensor`` / ``sub_img_feature_extensor``.
* the baked-in LoRAs (``lora_A.speech``, ``lora_B.vision``, ...) move into PEFT adapters
  ``speech-lora/`` (r 320, alpha 640, dropout 0.01 on the real model) and ``vision-lora/``
  (r 256, alpha 512), ranks read from config.json and checked against the tensors.
* tokenizer files copied (remote-code hooks removed), a native ``preprocessor_config.json``.

Every converted tensor's name and shape is checked against the native model built (on the meta
device) from the converted config; the output is written to a temporary folder and renamed at
the end, so an interrupted conversion leaves nothing that looks complete.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tqdm import tqdm

from loralab.errors import ModelLayoutError
from loralab.speech.backbones.phi4mm import PHI4_SPEECH_LORA_TARGETS
from loralab.speech.model.layout import (
    SPEECH_ADAPTER_DIR,
    VISION_ADAPTER_DIR,
    original_layout_reasons,
    read_config_dict,
    weight_names,
)

_AUDIO = r"^model\.embed_tokens_extend\.audio_embed\."
_IMAGE = r"^model\.embed_tokens_extend\.image_embed\."
WEIGHT_RENAMES = [
    (_AUDIO + r"encoder\.encoders\.(\d+)\.feed_forward_(in|out)\.net\.0\.linear\.",
     r"model.embed_tokens_extend.audio_embed.encoder.encoders.\1.feed_forward_\2.gate_up_proj."),
    (_AUDIO + r"encoder\.encoders\.(\d+)\.feed_forward_(in|out)\.net\.2\.",
     r"model.embed_tokens_extend.audio_embed.encoder.encoders.\1.feed_forward_\2.down_proj."),
    (_AUDIO + r"encoder\.encoders\.(\d+)\.self_attn\.linear_(q|k|v)\.",
     r"model.embed_tokens_extend.audio_embed.encoder.encoders.\1.self_attn.\2_proj."),
    (_AUDIO + r"encoder\.encoders\.(\d+)\.self_attn\.linear_out\.",
     r"model.embed_tokens_extend.audio_embed.encoder.encoders.\1.self_attn.o_proj."),
    (_AUDIO + r"audio_projection\.speech\.0\.", "model.embed_tokens_extend.audio_embed.up_proj_for_speech."),
    (_AUDIO + r"audio_projection\.speech\.2\.", "model.embed_tokens_extend.audio_embed.down_proj_for_speech."),
    (_AUDIO + r"audio_projection\.vision\.0\.", "model.embed_tokens_extend.audio_embed.up_proj_for_vision_speech."),
    (_AUDIO + r"audio_projection\.vision\.2\.",
     "model.embed_tokens_extend.audio_embed.down_proj_for_vision_speech."),
    (_IMAGE + r"img_projection\.0\.", "model.embed_tokens_extend.image_embed.img_projection_up."),
    (_IMAGE + r"img_projection\.2\.", "model.embed_tokens_extend.image_embed.img_projection_down."),
    (_IMAGE + r"glb_GN$", "model.embed_tokens_extend.image_embed.global_img_feature_extensor"),
    (_IMAGE + r"sub_GN$", "model.embed_tokens_extend.image_embed.sub_img_feature_extensor"),
]  # fmt: skip
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.(?P<adapter>speech|vision)\.weight$")
# (rank, alpha, dropout) when config.json does not say (Microsoft's released values).
ADAPTER_DEFAULTS = {"speech": (320, 640, 0.01), "vision": (256, 512, 0.0)}
# Config fields of the original layout with no meaning in the native class.
DROPPED_FIELDS = (
    "_name_or_path", "architectures", "auto_map", "vision_lora", "speech_lora", "transformers_version",
    "_attn_implementation", "model_type", "embd_layer", "audio_processor", "img_processor",
    "full_attn_mod", "interpolate_factor", "attention_bias", "mlp_bias", "lm_head_bias",
)  # fmt: skip
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json", "generation_config.json",
)  # fmt: skip


def native_weight_name(original: str) -> str:
    """The native name of a non-LoRA tensor of the original layout."""
    for pattern, replacement in WEIGHT_RENAMES:
        new, n = re.subn(pattern, replacement, original)
        if n:
            return new
    return original.replace(".base_layer.", ".")


def _special_token_ids(src: Path) -> dict[str, int]:
    file = src / "tokenizer.json"
    if not file.is_file():
        return {}
    return {t["content"]: t["id"] for t in json.loads(file.read_text()).get("added_tokens", [])}


def convert_config(original: dict, src: Path, vision_config: dict | None = None):
    """The native ``Phi4MultimodalConfig`` of an original-layout config.json."""
    from transformers import Phi4MultimodalConfig

    for flag in ("attention_bias", "mlp_bias", "lm_head_bias"):
        if original.get(flag):
            raise ModelLayoutError(f"{src}/config.json: {flag}=true has no equivalent in the native model")
    try:
        audio = dict(original["audio_processor"]["config"])
        embd = original["embd_layer"]
    except (KeyError, TypeError) as e:
        raise ModelLayoutError(
            f"{src}/config.json: no audio_processor.config / embd_layer section ({e})"
        ) from None
    renamed = {
        "hidden_size": audio.pop("attention_dim"),
        "num_attention_heads": audio.pop("attention_heads"),
        "intermediate_size": audio.pop("linear_units"),
        "nemo_conv_channels": audio.pop("nemo_conv_settings")["conv_channels"],
        "bias_max_distance": audio.pop("relative_attention_bias_args")["t5_bias_max_distance"],
    }
    # The original spells it "seperable".
    separable = audio.pop("depthwise_seperable_out_channel", None)
    if separable is not None:
        renamed["depthwise_separable_out_channel"] = separable
    for unused in ("activation_checkpointing", "cnn_layer_norm", "input_layer", "batch_norm",
                   "encoder_embedding_config", "ext_pw_kernel_size", "bias_in_glu", "causal"):  # fmt: skip
        audio.pop(unused, None)
    audio.update(renamed)
    audio["downsample_rate"] = embd.get("audio_embd_layer", {}).get("downsample_rate", 1)
    tokens = _special_token_ids(src)
    audio["audio_token_id"] = tokens.get("<|endoftext11|>", 200011)
    vision = {"crop_size": embd.get("image_embd_layer", {}).get("crop_size", 448), **(vision_config or {})}
    vision["image_token_id"] = tokens.get("<|endoftext10|>", 200010)

    text = {k: v for k, v in original.items() if k not in DROPPED_FIELDS}
    if "torch_dtype" in text:  # transformers 5 calls it dtype
        text["dtype"] = text.pop("torch_dtype")
    eos = original.get("eos_token_id", 199999)
    eos = list(eos) if isinstance(eos, list) else [eos]
    end = tokens.get("<|end|>", 200020)
    text["eos_token_id"] = eos + ([end] if end not in eos else [])
    config = Phi4MultimodalConfig(**text, audio_config=audio, vision_config=vision)
    config.architectures = ["Phi4MultimodalForCausalLM"]
    return config


def _adapter_settings(original: dict, which: str) -> tuple[int | None, int, float]:
    section = original.get(f"{which}_lora") or {}
    rank, alpha, dropout = ADAPTER_DEFAULTS[which]
    return section.get("r", rank), section.get("lora_alpha", alpha), section.get("dp", dropout)


def _write_adapter(dst: Path, which: str, tensors: dict, original: dict, targeted: set[str]) -> None:
    from peft import LoraConfig
    from safetensors.torch import save_file

    rank, alpha, dropout = _adapter_settings(original, which)
    modules = {k.rsplit(".lora_", 1)[0] for k in tensors}
    for module in modules:
        a, b = tensors.get(f"{module}.lora_A.weight"), tensors.get(f"{module}.lora_B.weight")
        if a is None or b is None:
            raise ModelLayoutError(f"{which} LoRA of {module}: lora_A or lora_B missing")
        if a.shape[0] != rank or b.shape[1] != rank:
            raise ModelLayoutError(
                f"{which} LoRA of {module} has rank {a.shape[0]}, config.json says r={rank}"
            )
    if modules != targeted:
        raise ModelLayoutError(
            f"the {which} LoRA covers {len(modules)} modules, the target pattern {PHI4_SPEECH_LORA_TARGETS!r} "
            f"{len(targeted)} (e.g. differing: {sorted(modules ^ targeted)[:3]})"
        )
    out = dst / (SPEECH_ADAPTER_DIR if which == "speech" else VISION_ADAPTER_DIR)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=PHI4_SPEECH_LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    config.save_pretrained(str(out))
    peft_names = {"base_model.model." + k: v.contiguous() for k, v in tensors.items()}
    save_file(peft_names, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})


def _copy_processing_files(src: Path, dst: Path) -> None:
    from transformers import Phi4MultimodalFeatureExtractor

    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    tok_config = dst / "tokenizer_config.json"
    if tok_config.is_file():  # remote-code hooks would make AutoTokenizer ask for trust_remote_code
        data = json.loads(tok_config.read_text())
        for key in ("auto_map", "processor_class"):
            data.pop(key, None)
        tok_config.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    settings = {}
    pre = src / "preprocessor_config.json"
    if pre.is_file():
        original = json.loads(pre.read_text())
        settings = {
            k: original[k]
            for k in ("audio_compression_rate", "audio_downsample_rate", "audio_feat_stride")
            if k in original
        }
    Phi4MultimodalFeatureExtractor(**settings).save_pretrained(str(dst))


def _source_files(src: Path) -> list[Path]:
    index = src / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [src / n for n in names]
    files = sorted(src.glob("*.safetensors"))
    if not files:
        raise ModelLayoutError(f"{src} holds no *.safetensors weights")
    return files


def convert_original_checkpoint(
    src: str | Path, dst: str | Path, *, overwrite: bool = False, vision_config: dict | None = None
) -> Path:
    """Write the native layout of the original-layout model in ``src`` to ``dst``; returns ``dst``.

    ``vision_config`` overrides the vision encoder's dimensions, which the original layout does
    not record (its code hard-codes SigLIP-so400m, transformers' defaults).
    """
    import torch
    from transformers import Phi4MultimodalForCausalLM

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    original = read_config_dict(src)
    if not original_layout_reasons(original, weight_names(src)):
        raise ModelLayoutError(
            f"{src} is not in the original remote-code layout (already native?): nothing to convert"
        )
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ModelLayoutError(f"{dst} exists and is not empty: choose a new folder (or pass --overwrite)")
    config = convert_config(original, src, vision_config)
    with torch.device("meta"):
        reference = Phi4MultimodalForCausalLM(config)
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    targeted = {n for n, m in reference.named_modules() if isinstance(m, torch.nn.Linear)
                and re.fullmatch(PHI4_SPEECH_LORA_TARGETS, n)}  # fmt: skip

    tmp = dst.with_name(f".tmp-{dst.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _convert_into(tmp, src, original, config, expected, targeted)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst


def _convert_into(tmp: Path, src: Path, original: dict, config, expected: dict, targeted: set[str]) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    files = _source_files(src)
    adapters: dict[str, dict] = {"speech": {}, "vision": {}}
    weight_map, seen, total_size = {}, set(), 0
    for i, file in enumerate(tqdm(files, desc="converting shards", unit="shard")):
        out_name = (
            "model.safetensors" if len(files) == 1 else f"model-{i + 1:05d}-of-{len(files):05d}.safetensors"
        )
        shard = {}
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                lora = LORA_KEY.match(key)
                if lora:
                    module = lora["module"].replace(".base_layer", "")
                    adapters[lora["adapter"]][f"{module}.lora_{lora['ab']}.weight"] = f.get_tensor(key)
                    continue
                if ".lora_" in key:
                    raise ModelLayoutError(f"{file.name}: LoRA tensor '{key}' of an unknown adapter")
                name = native_weight_name(key)
                if name not in expected:
                    raise ModelLayoutError(
                        f"{file.name}: tensor '{key}' (-> '{name}') has no place in the native model"
                    )
                tensor = f.get_tensor(key)
                if tuple(tensor.shape) != expected[name]:
                    raise ModelLayoutError(
                        f"{file.name}: '{key}' has shape {tuple(tensor.shape)}, the native model expects "
                        f"{expected[name]} for '{name}' (config.json and weights disagree)"
                    )
                shard[name] = tensor.contiguous()
                seen.add(name)
                weight_map[name] = out_name
                total_size += tensor.numel() * tensor.element_size()
        save_file(shard, str(tmp / out_name), metadata={"format": "pt"})
    missing = set(expected) - seen - ({"lm_head.weight"} if config.tie_word_embeddings else set())
    if missing:
        raise ModelLayoutError(
            f"{src}: {len(missing)} tensors of the native model not found, e.g. {sorted(missing)[:5]}"
        )
    if len(files) > 1:
        index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config.save_pretrained(str(tmp))
    for which, tensors in adapters.items():
        if tensors:
            _write_adapter(tmp, which, tensors, original, targeted)
    if not adapters["speech"]:
        print(f"note: {src} carries no speech LoRA tensors; no {SPEECH_ADAPTER_DIR}/ written")
    _copy_processing_files(src, tmp)
