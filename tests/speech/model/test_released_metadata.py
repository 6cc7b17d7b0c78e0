"""The loaders against the released checkpoints' own metadata (tests/fixtures/released/).

Each fixture names where it came from and what it assumes. The full-size models are built on
the meta device (no weights): Phi-4-multimodal-instruct from its original-layout config.json
(converted as ``loralab speech convert-checkpoint`` converts it), Qwen2-Audio-7B-Instruct and
Qwen2.5-0.5B from theirs. Figures from the hub: Phi-4-multimodal-instruct 5.57B parameters
(both LoRAs baked in), its speech-lora 923 MB (461,373,440 bf16 values + header);
Qwen2-Audio-7B-Instruct 8.397B over five shards.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import torch

RELEASED = Path(__file__).parents[2] / "fixtures" / "released"
PHI4_TOTAL = 5_574_460_224  # base + speech LoRA r=320 + vision LoRA r=256: the hub's "5.57B"
PHI4_SPEECH_LORA = 461_373_440  # 128 decoder Linears x r=320: the hub's 923 MB speech-lora
QWEN2AUDIO_TOTAL = 8_397_094_912  # the hub's "8.397B"
QWEN25_05B_TOTAL = 494_032_768  # the hub's "494M"


def released(name: str) -> dict:
    doc = json.loads((RELEASED / name).read_text())
    assert doc["provenance"], name  # every fixture says where it came from
    return doc


def original_tensors() -> dict[str, tuple[int, ...]]:
    """The original-layout tensors, unfolded: name -> shape."""
    out = {}
    for template, shape, layers in released("phi4mm_original_tensors.json")["tensors"]:
        for n in range(layers) if layers else [None]:
            out[template.replace("{n}", str(n)) if n is not None else template] = tuple(shape)
    return out


@functools.lru_cache(maxsize=1)
def phi4_native():
    """The native Phi-4-multimodal of the released config.json, on the meta device."""
    from transformers import Phi4MultimodalForCausalLM

    from loralab.speech.model.convert import convert_config

    config = convert_config(released("phi4mm_original_config.json")["content"], RELEASED)
    with torch.device("meta"):
        model = Phi4MultimodalForCausalLM(config)
    model.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=1)
def qwen2audio():
    from loralab.speech.backbones import backbone_named

    backbone = backbone_named("qwen2audio")
    with torch.device("meta"):
        model = backbone.model_class()(
            backbone.config_from_dict(released("qwen2audio_config.json")["content"])
        )
    model.requires_grad_(False)
    return model


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_released_tensor_is_consumed_by_the_conversion():
    """The original layout's 2,047 tensors (512 LoRA): each lands on a native tensor of its shape
    or in one of the two adapters, and the native model lacks none but the tied lm_head."""
    from loralab.speech.backbones.phi4mm import PHI4_SPEECH_LORA_TARGETS
    from loralab.speech.model.convert import LORA_KEY, native_weight_name

    tensors = original_tensors()
    assert (len(tensors), sum(".lora_" in k for k in tensors)) == (2047, 512)
    model = phi4_native()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    adapters: dict[str, set[str]] = {"speech": set(), "vision": set()}
    unexpected, mismatched, seen = [], [], set()
    for key, shape in tensors.items():
        lora = LORA_KEY.match(key)
        if lora:
            adapters[lora["adapter"]].add(lora["module"].replace(".base_layer", ""))
            continue
        name = native_weight_name(key)
        if name not in expected:
            unexpected.append(key)
        elif expected[name] != shape:
            mismatched.append(key)
        seen.add(name)
    targeted = {n for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and re.fullmatch(PHI4_SPEECH_LORA_TARGETS, n)}  # fmt: skip
    assert (unexpected, mismatched) == ([], [])
    assert set(expected) - seen == {"lm_head.weight"} and model.config.tie_word_embeddings
    assert adapters["speech"] == adapters["vision"] == targeted and len(targeted) == 128
    # The shapes add up to the hub's count: the parameters (the tied lm_head stored once) and the
    # audio encoder's two stored normalisation buffers (global mean and inverse std, 80 each).
    assert sum(torch.Size(s).numel() for s in tensors.values()) == PHI4_TOTAL + 2 * 80


def test_speech_lora_hits_exactly_the_128_decoder_linears():
    from loralab.engine.known_models import RELEASED_ADAPTERS
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.adapter_targets import names_within
    from loralab.speech.model.lora import lora_parameter_count

    model, backbone = phi4_native(), backbone_named("phi4mm")
    assert lora_parameter_count(model, backbone.default_lora_targets, 320) == (PHI4_SPEECH_LORA, 128)
    # The released adapter config's plain names, held to the text decoder (no tensors at hand).
    listed = released("phi4mm_speech_lora_adapter_config.json")["content"]["target_modules"]
    assert isinstance(listed, list)
    regex = names_within(listed, backbone.default_lora_targets)
    assert lora_parameter_count(model, regex, 320) == (PHI4_SPEECH_LORA, 128)
    # compare's table of shipped adapters targets the same modules.
    for _, rank, targets in RELEASED_ADAPTERS["microsoft/Phi-4-multimodal-instruct"]:
        assert lora_parameter_count(model, targets, rank) == (rank * PHI4_SPEECH_LORA // 320, 128)


def test_pretrained_r320_takes_a_list_target_adapter_of_the_released_shape(tmp_path, monkeypatch):
    """Microsoft's speech-lora (targets as a list, tensors named as transformers' converter writes
    them) through ``add_pretrained_lora`` on the full-size model: the PEFT model has exactly the
    adapter's tensors, shape for shape (what loading its 923 MB then needs; the weights, which
    are not here, are stood in for by their names and shapes)."""
    from loralab.config.schema import LoraConfig
    from loralab.speech.model import adapter_targets, lora

    (tmp_path / "adapter_config.json").write_text(
        json.dumps(released("phi4mm_speech_lora_adapter_config.json")["content"])
    )
    adapter = {
        f"base_model.model.{module}.lora_{ab}.weight": shape
        for name, shape in original_tensors().items()
        if (m := re.match(r"^(.+)\.lora_([AB])\.speech\.weight$", name))
        for module, ab in [(m[1].replace(".base_layer", ""), m[2])]
    }
    assert len(adapter) == 256
    modules = sorted({k.removeprefix("base_model.model.").split(".lora_")[0] for k in adapter})
    monkeypatch.setattr(adapter_targets, "adapter_tensor_modules", lambda folder: modules)
    built = {}

    def load_shapes(peft_model, folder, adapter_name="default"):
        for k, v in peft_model.state_dict().items():
            if ".lora_" in k:
                built[k.replace(f".{adapter_name}.weight", ".weight")] = tuple(v.shape)

    monkeypatch.setattr(lora, "load_adapter_weights", load_shapes)
    with torch.device("meta"):
        lora.add_pretrained_lora(
            phi4_native.__wrapped__(), tmp_path, LoraConfig(rank=320, alpha=640, dropout=0.01)
        )
    assert built == adapter


def test_released_counts_equal_the_hubs_and_compare_prints_them():
    """compare's published architectures (known_models) count what the released configs build,
    and its 'released checkpoint' row gives the hub's totals."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from loralab.reports.compare import load_entry

    qwen25 = Qwen2Config(**released("qwen25_05b_config.json")["content"])
    with torch.device("meta"):
        assert numel(AutoModelForCausalLM.from_config(qwen25)) == QWEN25_05B_TOTAL
    assert numel(qwen2audio()) == QWEN2AUDIO_TOTAL
    base = numel(phi4_native())
    assert base + (320 + 256) * PHI4_SPEECH_LORA // 320 == PHI4_TOTAL

    entries = {name: load_entry(name) for name in ("pretrained_r320", "paper_r64", "qwen2audio_r64")}
    for name in ("pretrained_r320", "paper_r64"):
        params = entries[name].params
        assert params.total - params.groups["lora"][1] == base, name  # the published config = the released
        assert params.released[0] == PHI4_TOTAL, name
    qwen = entries["qwen2audio_r64"].params
    assert qwen.total - qwen.groups["lora"][1] == QWEN2AUDIO_TOTAL
    assert qwen.released[0] == QWEN2AUDIO_TOTAL
    assert qwen.groups["lora"][0] == 64 * 2_498_560


def test_qwen2audio_lora_is_224_language_model_linears():
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.lora import lora_parameter_count

    model, backbone = qwen2audio(), backbone_named("qwen2audio")
    pattern = re.compile(backbone.default_lora_targets)
    hit = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and pattern.fullmatch(n)]
    assert len(hit) == 224 and all(n.startswith("model.language_model.layers.") for n in hit)
    assert lora_parameter_count(model, backbone.default_lora_targets, 64) == (64 * 2_498_560, 224)


def test_qwen2audio_unfreeze_leaves_the_fixed_position_table_frozen():
    """transformers builds the Whisper encoder's sinusoidal embed_positions frozen; the unfreeze
    strategy trains the rest of the encoder and the projector, never that table."""
    from loralab.config import load_config
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.lora import count_groups, unfreeze
    from loralab.speech.system import count_parameters

    backbone = backbone_named("qwen2audio")
    from transformers import Qwen2AudioForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2AudioForConditionalGeneration(qwen2audio().config)
    assert not model.model.audio_tower.embed_positions.weight.requires_grad  # as transformers builds it
    model.requires_grad_(False)  # as loralab loads it
    unfreeze(model, ["audio_encoder", "audio_projector"], backbone)
    assert not model.model.audio_tower.embed_positions.weight.requires_grad
    assert model.model.audio_tower.layers[0].fc1.weight.requires_grad
    groups = count_groups(model.named_parameters(), backbone)
    table = 1500 * 1280
    assert groups["audio_encoder"].trainable == groups["audio_encoder"].total - table
    counted = count_parameters(load_config("qwen2audio_unfreeze_r64"))
    assert counted["audio_encoder"].trainable == counted["audio_encoder"].total - table


@pytest.mark.parametrize(
    "name", ["phi4mm_original_preprocessor_config.json", "qwen2audio_preprocessor_config.json"]
)
def test_audio_token_counts_follow_the_released_processor_configs(name):
    """Our length-only token counts equal the feature extractors' own under the released settings."""
    import numpy as np
    from transformers import Phi4MultimodalFeatureExtractor, WhisperFeatureExtractor

    from loralab.speech.backbones import backbone_named

    content = released(name)["content"]
    if name.startswith("phi4mm"):
        keys = ("audio_compression_rate", "audio_downsample_rate", "audio_feat_stride")
        fe, backbone = (
            Phi4MultimodalFeatureExtractor(**{k: content[k] for k in keys}),
            backbone_named("phi4mm"),
        )
    else:
        keys = ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft")
        fe, backbone = WhisperFeatureExtractor(**{k: content[k] for k in keys}), backbone_named("qwen2audio")
    for seconds in (0.7, 3.1, 12.04):
        audio = np.zeros(int(seconds * 16000), dtype=np.float32)
        _, counts = backbone.audio_features(fe, [audio])
        assert counts == [backbone.num_audio_tokens(audio.size, fe)], seconds
