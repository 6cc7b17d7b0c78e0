"""Round 3: a GOP scorer fit on another model's encoder (another frame width) is an error naming
its file and width, not an "unexpected error" from a matrix product."""

from __future__ import annotations

import pytest
import torch

from loralab.errors import LoralabError
from loralab.speech.model.gop import GopScorer


def test_a_scorer_of_another_encoder_width_names_its_file(tiny_qwen2audio_dir, synth_manifest_dir):
    from loralab.speech.data.audio import load_audio
    from loralab.speech.data.records import read_manifest
    from loralab.speech.inference.generate import BatchedGenerator
    from loralab.speech.model.load import load_for_inference

    record = read_manifest(synth_manifest_dir, "train")[0]
    inference = load_for_inference(tiny_qwen2audio_dir, device="cpu")
    inference.gop_scorer = GopScorer(
        ["AA", "B"], [torch.zeros(3, 7)], [torch.zeros(3)], {"accuracy": [0.0] * 5}
    )
    with (
        BatchedGenerator(inference, prompt_reference="phones_gop") as generator,
        pytest.raises(
            LoralabError, match=r"gop_scorer\.safetensors: the GOP scorer takes 7-wide encoder frames"
        ),
    ):
        generator.prompt_batch([record], "apa_accuracy", [load_audio(record.audio_path)])
