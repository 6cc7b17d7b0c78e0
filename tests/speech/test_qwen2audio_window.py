"""Qwen2-Audio's encoder over a recording's own frames (WindowCrop) gives the embeddings of the
whole 30 s window: the encoder's rows, and the language model's hidden states, of the tiny
random model with and without it, for a batch of two clips of different lengths."""

from __future__ import annotations

import numpy as np
import torch

from loralab.speech.backbones.qwen2audio_window import WindowCrop


def _clips():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(int(s * 16000)).astype(np.float32) * 0.1 for s in (1.3, 2.6)]


def _model(model_dir):
    from loralab.speech.model.load import load_for_inference

    return load_for_inference(model_dir, device="cpu")


def test_encoder_rows_of_the_real_frames_equal_the_full_window(tiny_qwen2audio_dir):
    from transformers.masking_utils import create_bidirectional_mask

    inf = _model(tiny_qwen2audio_dir)
    tower = inf.model.model.audio_tower
    inputs, counts = inf.backbone.audio_features(inf.feature_extractor, _clips())
    feat_lengths, out_lengths = tower._get_feat_extract_output_lengths(
        inputs["feature_attention_mask"].sum(-1)
    )
    width = inputs["input_features"].shape[-1] // 2
    valid = (torch.arange(width)[None, :] < feat_lengths[:, None]).long()
    dummy = torch.zeros(2, width, 1)
    mask = create_bidirectional_mask(config=tower.config, inputs_embeds=dummy, attention_mask=valid)
    with torch.inference_mode():
        full = tower(inputs["input_features"], attention_mask=mask).last_hidden_state
        crop = WindowCrop(tower, tower.forward)
        cropped = crop(inputs["input_features"], attention_mask=mask).last_hidden_state
    assert list(out_lengths) == counts and cropped.shape == full.shape
    assert WindowCrop.real_positions(mask).tolist() == feat_lengths.tolist()
    for row, n in enumerate(counts):
        torch.testing.assert_close(cropped[row, :n], full[row, :n], atol=1e-5, rtol=1e-4)
    assert int(feat_lengths.max()) * 2 + 2 < inputs["input_features"].shape[-1]  # it did crop


def test_language_model_sees_the_same_audio_embeddings(tiny_qwen2audio_dir):
    from loralab.speech.inference.generate import BatchedGenerator

    inf = _model(tiny_qwen2audio_dir)
    generator = BatchedGenerator(inf, prompt_style="short")

    class Record:
        id = "r"
        text = "We call it bear"

    batch = generator.collator.prompt_batch([Record(), Record()], "mdd", _clips())
    inputs = {k: v for k, v in batch.items() if k in generator.model_inputs}

    def hidden():
        with torch.inference_mode():
            return inf.model.model(**inputs).last_hidden_state

    tower = inf.model.model.audio_tower
    before = hidden()  # outside the generator's block: the encoder's own forward over the whole window
    with generator:
        installed = tower.forward  # the generator's: the output cache over the crop, composed explicitly
        assert isinstance(installed.compute, WindowCrop) and installed.compute.full == type(
            tower
        ).forward.__get__(tower)
        after = hidden()
    assert installed.misses == 2
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(after[real], before[real], atol=1e-5, rtol=1e-4)


def test_crop_applies_in_training_mode_only_where_it_is_exact_and_gradient_free(tiny_qwen2audio_dir):
    inf = _model(tiny_qwen2audio_dir)
    tower = inf.model.model.audio_tower.train()
    assert not any(
        getattr(tower.config, k, 0.0) for k in ("dropout", "attention_dropout", "encoder_layerdrop")
    )
    assert WindowCrop.exact(tower)  # frozen, no dropout: the demo's training
    tower.layers[0].fc1.weight.requires_grad_(True)
    assert not WindowCrop.exact(tower)  # gradients must flow through the full forward
    with torch.no_grad():
        assert WindowCrop.exact(tower)
    tower.layers[0].fc1.weight.requires_grad_(False)
    tower.config.dropout = 0.1
    assert not WindowCrop.exact(tower)  # dropout: a different computation in training
    tower.eval()
    assert WindowCrop.exact(tower)
