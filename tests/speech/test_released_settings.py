"""What the released checkpoints' files do to a run, reproduced on the tiny models.

* Microsoft's speech-lora lists its targets as plain names: loaded and merged on the modules its
  tensors name (a suffix rule would also wrap the audio encoder's o_proj/down_proj and fail);
  an adapter for other modules is refused with the unmatched prefixes and the model's family.
* Qwen2-Audio-7B-Instruct's generation_config.json (repetition penalty, sampling switched on)
  changes nothing: evaluate (batched generate), assess and serve (the fast route) answer alike.
* A tokenizer without a chat template gets the family's default (the processor's).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

RELEASED = Path(__file__).parents[1] / "fixtures" / "released"
TEXT = "Picture that family weather cat"


def released_content(name: str) -> dict:
    return json.loads((RELEASED / name).read_text())["content"]


@pytest.fixture
def list_target_model(tiny_model_dir, tiny_speech_adapter, tmp_path):
    """The tiny Phi-4 with its speech-lora/ whose adapter_config.json lists plain names (as released)."""
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    adapter = shutil.copytree(tiny_speech_adapter, model_dir / "speech-lora")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["target_modules"] = released_content("phi4mm_speech_lora_adapter_config.json")["target_modules"]
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    return model_dir


def test_a_list_target_adapter_loads_on_the_modules_its_tensors_name(list_target_model):
    from loralab.config.schema import LoraConfig
    from loralab.speech.model.adapter_targets import adapter_tensor_modules
    from loralab.speech.model.load import load_for_inference, load_phi4mm
    from loralab.speech.model.lora import add_pretrained_lora

    adapter = list_target_model / "speech-lora"
    base = load_phi4mm(list_target_model)
    audio = [n for n, m in base.named_modules() if isinstance(m, torch.nn.Linear) and n.endswith((".o_proj", ".down_proj"))
             and ".audio_embed." in n]  # fmt: skip
    assert audio  # the tiny model has the encoder layers a suffix rule would also hit
    peft_model = add_pretrained_lora(base, adapter, LoraConfig(rank=8, alpha=16))
    wrapped = {
        n.removeprefix("base_model.model.") for n, m in peft_model.named_modules() if hasattr(m, "lora_A")
    }
    assert wrapped == set(adapter_tensor_modules(adapter))
    merged = load_for_inference(adapter, device="cpu")
    assert "merged" in merged.description


def _rewrite_adapter(adapter: Path, change) -> None:
    """``change(tensors) -> tensors`` applied to the adapter's weights file."""
    from safetensors.torch import load_file, save_file

    file = adapter / "adapter_model.safetensors"
    save_file(change(load_file(str(file))), str(file))


@pytest.mark.parametrize("how", ["none", "some"])
def test_an_adapter_for_other_modules_is_refused_naming_them(list_target_model, how):
    from loralab.config.schema import LoraConfig
    from loralab.errors import LoralabError
    from loralab.speech.model.load import load_phi4mm
    from loralab.speech.model.lora import add_pretrained_lora, merge_adapter

    adapter = list_target_model / "speech-lora"
    if how == "none":  # e.g. an adapter of another family
        _rewrite_adapter(adapter, lambda t: {k.replace(".model.layers.", ".model.language_model.layers."): v
                                             for k, v in t.items()})  # fmt: skip
    else:  # its own modules plus a few the model lacks
        _rewrite_adapter(adapter, lambda t: {**t, **{k.replace("qkv_proj", "q_proj"): v.clone()
                                                     for k, v in t.items() if "qkv_proj" in k}})  # fmt: skip
    for load in (
        lambda: add_pretrained_lora(load_phi4mm(list_target_model), adapter, LoraConfig(rank=8, alpha=16)),
        lambda: merge_adapter(load_phi4mm(list_target_model), adapter),
    ):
        with pytest.raises(LoralabError) as err:
            load()
        message = str(err.value)
        assert "Phi-4-multimodal" in message and "phi4mm" in message
        wrong = (
            "model.language_model.layers.N.self_attn" if how == "none" else "model.layers.N.self_attn.q_proj"
        )
        assert wrong in message, message
        assert ("0 do" in message) is (how == "none")


def _without_chat_template(model_dir: Path, out: Path) -> Path:
    out = shutil.copytree(model_dir, out)
    (out / "chat_template.jinja").unlink(missing_ok=True)
    tok = json.loads((out / "tokenizer_config.json").read_text())
    tok.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(tok))
    return out


@pytest.mark.parametrize("family", ["phi4mm", "qwen2audio"])
def test_a_tokenizer_without_chat_template_gets_the_familys_default(family, tiny_model_dir, tiny_qwen2audio_dir,
                                                                    tmp_path, capsys):  # fmt: skip
    from transformers import AutoTokenizer, Qwen2AudioProcessor

    from loralab.speech.chat_format import ChatLayout
    from loralab.speech.model.load import load_tokenizer

    source = tiny_model_dir if family == "phi4mm" else tiny_qwen2audio_dir
    folder = _without_chat_template(source, tmp_path / "model")
    assert not AutoTokenizer.from_pretrained(str(folder)).chat_template
    tokenizer = load_tokenizer(folder)
    assert "no chat template" in capsys.readouterr().err
    layout = ChatLayout(tokenizer, lambda n: [0] * n, "paper", "none")
    prompt = tokenizer.decode(layout.prompt_ids("apa", 3))
    answer = tokenizer.decode(layout.answer_ids("apa", '{"accuracy": 7}'))
    if family == "phi4mm":
        assert prompt.startswith("<|user|>") and prompt.endswith("<|end|><|assistant|>")
    else:  # the processor's ChatML, with its default system turn
        assert tokenizer.chat_template == Qwen2AudioProcessor.default_chat_template.fget(None)
        assert prompt.startswith(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        )
        assert prompt.endswith("<|im_start|>assistant\n")
    assert '{"accuracy": 7}' in answer


def recording(seed: int, seconds: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


@pytest.fixture
def penalised_model(tiny_qwen2audio_dir, tmp_path):
    """The tiny Qwen2-Audio with the released generation_config.json's settings (sampling on, a
    repetition penalty), the penalty raised so that it changes this random model's answers."""
    model_dir = shutil.copytree(tiny_qwen2audio_dir, tmp_path / "model")
    own = json.loads((model_dir / "generation_config.json").read_text())
    settings = {
        k: v for k, v in released_content("qwen2audio_generation_config.json").items() if "token_id" not in k
    }
    (model_dir / "generation_config.json").write_text(
        json.dumps({**own, **settings, "repetition_penalty": 3.0})
    )
    return model_dir


def _penalty_changes_greedy_answers(model_dir, items, audios) -> bool:
    """Precondition: generate under the checkpoint's settings (as transformers fills them in)
    writes other tokens than plain greedy on this model."""
    from loralab.speech.collate import SpeechCollator
    from loralab.speech.model.load import load_for_inference

    inf = load_for_inference(model_dir, device="cpu")
    collator = SpeechCollator(
        inf.tokenizer, inf.feature_extractor, inf.backbone, inf.audio_token_id, "short", "phones"
    )
    batch = collator.prompt_batch(items, "mdd", [audios[it.id] for it in items])
    inputs = {
        k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", *inf.backbone.audio_input_keys)
    }
    common = dict(max_new_tokens=12, do_sample=False, pad_token_id=inf.tokenizer.pad_token_id,
                  suppress_tokens=[inf.audio_token_id])  # fmt: skip
    with torch.inference_mode():
        theirs = inf.model.generate(**inputs, **common)
        plain = inf.model.generate(**inputs, **common, repetition_penalty=1.0)
    return not torch.equal(theirs, plain)


def test_evaluate_assess_and_serve_answer_alike_whatever_the_generation_config(penalised_model, capsys):
    from loralab.speech.assessor import Assessor, AssessSettings
    from loralab.speech.inference.generate import BatchedGenerator
    from loralab.speech.inference.recording_answers import AssessItem, assess_items
    from loralab.speech.model.load import load_for_inference

    items = [AssessItem(str(i), f"take{i}.wav", TEXT, 1.5) for i in range(2)]
    audios = {it.id: recording(30 + i) for i, it in enumerate(items)}
    assert _penalty_changes_greedy_answers(penalised_model, items, audios)
    kwargs = dict(prompt_style="short", prompt_reference="phones", max_new_tokens=12)

    inference = load_for_inference(penalised_model, device="cpu")
    assert inference.model.generation_config.repetition_penalty == 3.0
    generator = BatchedGenerator(
        inference, prompt_style="short", prompt_reference="phones", max_new_tokens=12
    )
    assert inference.model.generation_config.repetition_penalty is None  # set aside, and said so
    assert any("sampling" in n for n in generator.decoding_notes)
    assert any("repetition_penalty" in n for n in generator.decoding_notes)
    assert "ignored for evaluation" in capsys.readouterr().err
    with generator:
        evaluated = [a.raw for a in generator.generate("mdd", [audios[it.id] for it in items], items)]

    batched = assess_items(
        load_for_inference(penalised_model, device="cpu"), items, audios=audios, fast=False, **kwargs
    )
    fast = assess_items(
        load_for_inference(penalised_model, device="cpu"), items, audios=audios, fast=True, **kwargs
    )
    served = Assessor(
        load_for_inference(penalised_model, device="cpu"),
        AssessSettings(prompt_style="short", prompt_reference="phones"),
        max_new_tokens=12,
    ).assess_samples([(TEXT, audios[it.id], it.audio_path) for it in items])
    assert [a.raw for a in batched] == [a.raw for a in fast] == [a.raw for a in served]
    assert [a.raw["mdd"] for a in fast] == evaluated
