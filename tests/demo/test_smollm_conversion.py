"""SmolLM2-135M-Instruct (GGUF) -> the Phi-4-multimodal demo model: same text model, same logits.

The reference is SmolLM2 loaded straight from the GGUF file by transformers' own GGUF
reader (LlamaForCausalLM), independent of our conversion. One GGUF load (~30 s) and one
conversion are shared by the whole module.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from loralab.demo import smollm  # noqa: E402

SMOLLM2_VOCAB = 49152
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    'Rate the pronunciation as JSON: {"accuracy": 8, "fluency": 7}',
]


@pytest.fixture(scope="module")
def reference():
    """SmolLM2 from the GGUF (the reference), and its tokenizer."""
    try:
        smollm.find_smollm2_gguf()
    except smollm.LoralabError as e:
        pytest.skip(str(e))
    return smollm.load_smollm2_from_gguf()


@pytest.fixture(scope="module")
def demo_dir(reference, tmp_path_factory):
    """The demo model folder built by ensure_demo_phi4mm from a cached plain-Llama folder."""
    llama, tokenizer = reference
    root = tmp_path_factory.mktemp("loralab_cache")
    llama_dir = root / smollm.LLAMA_FOLDER
    llama.save_pretrained(llama_dir, safe_serialization=True)
    tokenizer.save_pretrained(llama_dir)
    marker = {
        "source": smollm.GGUF_FILE,
        "version": smollm.BUILD_VERSIONS[smollm.LLAMA_FOLDER],
    }  # as ensure_smollm2_llama leaves it
    (llama_dir / smollm.COMPLETE_MARKER).write_text(json.dumps(marker))
    return smollm.ensure_demo_phi4mm(root)


@pytest.fixture(scope="module")
def demo(demo_dir):
    from transformers import AutoTokenizer, Phi4MultimodalForCausalLM

    model = Phi4MultimodalForCausalLM.from_pretrained(demo_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(demo_dir)


def _left_padded(tokenizer, texts):
    ids = [tokenizer(t).input_ids for t in texts]
    width = max(map(len, ids))
    input_ids = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return input_ids, mask


def test_text_logits_equal_smollm2(reference, demo):
    llama, ref_tokenizer = reference
    model, tokenizer = demo
    input_ids, mask = _left_padded(ref_tokenizer, TEXTS)
    assert torch.equal(input_ids, _left_padded(tokenizer, TEXTS)[0]), "text must tokenize as in SmolLM2"
    with torch.no_grad():
        expected = llama(input_ids=input_ids, attention_mask=mask).logits
        got = model(input_ids=input_ids, attention_mask=mask).logits
    assert got.shape[-1] == SMOLLM2_VOCAB + len(smollm.ADDED_TOKENS)
    valid = mask.bool()
    diff = (got[..., :SMOLLM2_VOCAB] - expected)[valid].abs().max().item()
    assert diff < 1e-4, f"max abs logit difference {diff}"
    # Greedy next tokens agree too (what generation sees).
    assert torch.equal(got[:, -1, :SMOLLM2_VOCAB].argmax(-1), expected[:, -1].argmax(-1))


def test_layout_tokens_and_config(demo, demo_dir):
    model, tokenizer = demo
    cfg = model.config
    assert type(model).__name__ == "Phi4MultimodalForCausalLM"
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "tied embeddings"
    layer = model.model.layers[0]
    assert layer.self_attn.qkv_proj.weight.shape == (576 + 2 * 3 * 64, 576)
    assert layer.mlp.gate_up_proj.weight.shape == (2 * 1536, 576)
    ids = tokenizer.convert_tokens_to_ids(smollm.ADDED_TOKENS)
    assert ids == list(range(SMOLLM2_VOCAB, SMOLLM2_VOCAB + 4))
    assert cfg.audio_config.audio_token_id == tokenizer.convert_tokens_to_ids(smollm.AUDIO_TOKEN)
    assert cfg.vision_config.image_token_id == tokenizer.convert_tokens_to_ids(smollm.IMAGE_TOKEN)
    # Each control/audio token is one id, even glued to text.
    assert tokenizer("<|MDD|><|endoftext11|><|endoftext11|>Hi").input_ids[:3] == [ids[1], ids[2], ids[2]]
    # SmolLM2's chat template is kept, without its default system turn; the answer ends with
    # its end-of-turn token, the eos.
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "<|APA|>x"}, {"role": "assistant", "content": "{}"}], tokenize=False
    )
    assert text == "<|im_start|>user\n<|APA|>x<|im_end|>\n<|im_start|>assistant\n{}<|im_end|>\n"
    own_system = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "x"}], tokenize=False
    )
    assert own_system == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
    assert cfg.eos_token_id == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert tokenizer.pad_token_id not in cfg.eos_token_id
    assert json.loads((demo_dir / smollm.COMPLETE_MARKER).read_text())["source"] == smollm.GGUF_FILE
    assert (demo_dir / "preprocessor_config.json").is_file()


def test_audio_path_runs_and_cache_is_reused(demo, demo_dir):
    """The random audio encoder yields one embedding per audio token; a second ensure does not rebuild."""
    import numpy as np
    from transformers import Phi4MultimodalFeatureExtractor

    model, tokenizer = demo
    features = Phi4MultimodalFeatureExtractor.from_pretrained(demo_dir)
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    feats = features([audio], sampling_rate=16000, return_tensors="pt")
    n_audio = int(feats["audio_embed_sizes"][0])
    assert n_audio == 13  # 1 s at 80 ms per embedding, rounded up
    audio_id = model.config.audio_config.audio_token_id
    input_ids = torch.tensor(
        [tokenizer("<|MDD|>").input_ids + [audio_id] * n_audio + tokenizer("Hi").input_ids]
    )
    with torch.no_grad():
        logits = model(input_ids=input_ids, **feats).logits
    assert logits.shape[1] == input_ids.shape[1] and torch.isfinite(logits).all()

    stamp = (demo_dir / "model.safetensors").stat().st_mtime_ns
    assert smollm.ensure_demo_phi4mm(demo_dir.parent) == demo_dir
    assert (demo_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_default_system_turn_removal_leaves_other_templates_alone():
    smollm2 = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}"
    )
    assert smollm.without_default_system_prompt(smollm2) == (
        "{% for message in messages %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}"
    )
    other = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert smollm.without_default_system_prompt(other) == other
