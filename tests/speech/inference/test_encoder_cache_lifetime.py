"""The generator's encoder output cache lives as long as its ``with`` block: the model it was
given has its encoder's own forward back once the block ends (also on an error, and only after
the last of several blocks sharing the model), and the answers are those of the cached route."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from loralab.speech.backbones.qwen2audio import EncoderOutputCache
from loralab.speech.inference.generate import BatchedGenerator


@pytest.fixture(scope="module")
def inference(tiny_qwen2audio_dir):
    from loralab.speech.model.load import load_for_inference

    return load_for_inference(tiny_qwen2audio_dir, device="cpu")


def _records_and_clips():
    rng = np.random.default_rng(3)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (20000, 12000)]
    return [SimpleNamespace(id=f"u{i}") for i in range(len(clips))], clips


def _encoder(inference):
    return inference.model.model.audio_tower


def test_the_model_is_unchanged_after_the_block(inference):
    tower = _encoder(inference)
    own = tower.forward
    assert "forward" not in vars(tower)
    generator = BatchedGenerator(inference, prompt_style="short", max_new_tokens=3)
    assert tower.forward == own  # constructing changes nothing
    with generator:
        assert isinstance(tower.forward, EncoderOutputCache)
    assert "forward" not in vars(tower) and tower.forward == own


def test_the_encoder_is_restored_when_the_block_fails(inference):
    tower = _encoder(inference)
    with pytest.raises(RuntimeError, match="stop"), BatchedGenerator(inference, prompt_style="short"):
        assert isinstance(tower.forward, EncoderOutputCache)
        raise RuntimeError("stop")
    assert "forward" not in vars(tower)


def test_blocks_sharing_a_model_share_one_cache_until_the_last_ends(inference):
    """As serve's workers do: each request's generator opens a block on the one model."""
    tower = _encoder(inference)
    first, second = (BatchedGenerator(inference, prompt_style="short") for _ in range(2))
    with first:
        cache = tower.forward
        with second:
            assert tower.forward is cache
        assert tower.forward is cache  # the first block still runs on it
    assert "forward" not in vars(tower)


def test_a_forward_set_before_the_block_comes_back(inference):
    tower = _encoder(inference)
    hook = tower.forward  # e.g. accelerate's device hook, set on the instance
    tower.forward = hook
    try:
        with BatchedGenerator(inference, prompt_style="short"):
            assert tower.forward.compute.full is hook
        assert vars(tower)["forward"] is hook
    finally:
        del tower.forward


def test_answers_of_the_block_equal_those_of_the_installed_cache(inference):
    """The block's answers are the cached route's (which the constructor installed before)."""
    records, clips = _records_and_clips()
    kwargs = dict(prompt_style="short", batch_size=2, max_new_tokens=6)

    def answers(generator):
        return [
            (a.raw, a.expected) for task in ("apa", "mdd") for a in generator.generate(task, clips, records)
        ]

    with BatchedGenerator(inference, **kwargs) as generator:
        in_block = answers(generator)
    restore = inference.backbone.install_encoder_cache(inference.model, max_items=4)
    try:
        installed = answers(BatchedGenerator(inference, **kwargs))
    finally:
        restore()
    assert in_block == installed
    assert "forward" not in vars(_encoder(inference))
