"""``loralab estimate``: the fake-tensor estimate against a real step of the same code (tiny model),
its parts against independent counts, and clear errors for bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from loralab.config import load_config
from loralab.errors import LoralabError
from loralab.estimate import core, hardware, inputs, speech
from loralab.estimate.fake import AllocationTracker, OracleFakeMode, wide_constants
from loralab.estimate.measure import measure_generation, measure_training
from loralab.speech.model.training import answer_only_loss

EXAMPLE = inputs.Example(task="mdd", seconds=3.0, prompt_tokens=24, audio_tokens=38, answer_tokens=16)


@pytest.fixture(scope="module")
def tiny_cfg(tiny_model_dir):
    return load_config("paper_r64", [f"model.name_or_path={tiny_model_dir}", "lora.rank=8", "lora.alpha=16"])


def _text_token(model) -> int:
    return min(speech.TEXT_TOKEN, model.causal_lm.config.vocab_size - 1)


def _fake_step(cfg, batch_size: int):
    mode = OracleFakeMode()
    with wide_constants():
        model, backbone = speech.build_fake_model(cfg, mode, torch.bfloat16)
        audio_id = backbone.audio_token_id(model.causal_lm.config)
        batch = speech.fake_batch(
            EXAMPLE, batch_size, mode, backbone, audio_id, text_token=_text_token(model)
        )
        with mode:
            costs, opt = measure_training(
                model, answer_only_loss, [batch], cfg.training, torch.bfloat16, AllocationTracker()
            )
    return model, costs[0], opt


def _real_step(cfg, model_dir, batch_size: int):
    from loralab.speech.model import training
    from loralab.speech.model.load import resolve_backbone

    backbone = resolve_backbone(model_dir, "phi4mm")
    base = backbone.load(model_dir, device="cpu", dtype=torch.bfloat16, attn_implementation="sdpa")
    fresh = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, init="fresh"))
    model = training.prepare_training_model(fresh, base, backbone)
    audio_id = backbone.audio_token_id(model.causal_lm.config)
    batch = speech.fake_batch(EXAMPLE, batch_size, None, backbone, audio_id, text_token=_text_token(model))
    costs, opt = measure_training(
        model, answer_only_loss, [batch], cfg.training, torch.bfloat16, AllocationTracker()
    )
    return model, costs[0], opt


def test_estimated_peak_matches_a_real_step_within_10_percent(tiny_cfg, tiny_model_dir):
    torch.manual_seed(0)
    _, fake, fake_opt = _fake_step(tiny_cfg, batch_size=4)
    _, real, real_opt = _real_step(tiny_cfg, tiny_model_dir, batch_size=4)
    assert real.peak_bytes > 0
    assert abs(fake.peak_bytes - real.peak_bytes) / real.peak_bytes < 0.10
    assert fake_opt == real_opt
    assert fake.flops == real.flops > 0


def test_memory_parts_agree_with_independent_counts(tiny_cfg):
    from loralab.speech.system import count_parameters

    model, cost, opt = _fake_step(tiny_cfg, batch_size=2)
    parts = core.memory_breakdown(model, opt, cost.peak_bytes)
    trainable = count_parameters(tiny_cfg)["lora"].trainable  # from layer shapes: r x (in + out)
    assert parts["params"]["trainable"] == trainable
    # AdamW keeps exp_avg and exp_avg_sq in fp32 per trainable value; gradients are fp32 too.
    assert opt == 2 * 4 * trainable
    assert parts["memory_gb"]["gradients"] == round(4 * trainable / 1e9, 2)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert parts["memory_gb"]["weights"] == round((2 * frozen + 4 * trainable) / 1e9, 2)
    assert cost.peak_bytes > 2 * frozen + 4 * trainable + opt


def test_generation_estimate_matches_a_real_generation(tiny_cfg, tiny_model_dir):
    from loralab.speech.model.load import resolve_backbone

    backbone = resolve_backbone(tiny_model_dir, "phi4mm")
    base = backbone.load(tiny_model_dir, device="cpu", dtype=torch.bfloat16, attn_implementation="sdpa")
    audio_id, token = backbone.audio_token_id(base.config), min(speech.TEXT_TOKEN, base.config.vocab_size - 1)
    mode = OracleFakeMode()
    with wide_constants():
        lm = speech.build_fake_inference_model(tiny_cfg, mode, torch.bfloat16)
        batch = speech.fake_batch(EXAMPLE, 3, mode, backbone, audio_id, with_answer=False, text_token=token)
        with mode:
            fake = measure_generation(lm, batch, 5, None, AllocationTracker())
    batch = speech.fake_batch(EXAMPLE, 3, None, backbone, audio_id, with_answer=False, text_token=token)
    real = measure_generation(base, batch, 5, None, AllocationTracker())
    assert fake.prefill_flops == real.prefill_flops > 0 and fake.decode_flops == real.decode_flops > 0
    assert abs(fake.peak_bytes - real.peak_bytes) / real.peak_bytes < 0.10
    assert fake.kv_bytes_per_token == real.kv_bytes_per_token > 0
    cfg = base.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    # Per new position: K and V of every layer for the three sequences in bf16, and the int64
    # attention mask one column longer.
    assert (
        real.kv_bytes_per_token
        == 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * 2 * 3 + 3 * 8
    )


def test_epoch_flops_sum_the_trainers_batches():
    examples = [inputs.Example("apa", 2.0, 10, 20, 5)] * 6 + [inputs.Example("mdd", 2.0, 4, 20, 11)] * 2
    training = load_config("paper_r64", []).training
    points = {"apa": [(35, 350.0), (70, 700.0)], "mdd": [(35, 35.0), (70, 70.0)]}
    flops, batches = core.epoch_flops(examples, 4, training, points)
    # Every example is 35 tokens long: 6 x 350 / 4 + 2 x 35 / 4, whichever batches they fall in.
    assert batches == 2
    assert flops == pytest.approx((6 * 350 + 2 * 35) / 4)


def test_seconds_follow_peak_throughput_and_mfu():
    h100 = hardware.GPUS[0]
    assert hardware.compute_seconds(h100.bf16_flops * 0.4, h100, 0.4) == pytest.approx(1.0)
    # A decoding step that reads 3.35 TB at 60% of 3.35 TB/s is bandwidth-bound.
    assert hardware.decode_seconds(1.0, 3.35e12, h100, 0.4, 0.6) == pytest.approx(1 / 0.6)


def test_durations_follow_speechocean762():
    d = inputs.so762_durations(2500)
    assert d.min() >= 2.0 and d.max() <= 20.0
    assert 4.0 < float(sorted(d)[len(d) // 2]) < 5.0


def test_bad_input_is_a_clear_error(tiny_cfg):
    with pytest.raises(LoralabError, match="at least 1"):
        core.check_batch_size(0, 8)
    with pytest.raises(LoralabError, match="--mfu"):
        core.estimate(tiny_cfg, batch_size=1, mfu=0)
    broken = dataclasses.replace(
        tiny_cfg, lora=dataclasses.replace(tiny_cfg.lora, target_modules="no_such_layer")
    )
    with pytest.raises(LoralabError, match="matches no Linear layer"):
        core.estimate(broken, batch_size=1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["estimate", "no_such_preset"], "neither a file nor a shipped preset"),
        (["estimate", "paper_r64", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["estimate", "paper_r64", "model.name_or_path=/nonexistent/model"], "does not exist"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(argv, message, capsys):
    from loralab.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_protein_estimate_matches_a_real_step(tmp_path):
    from loralab.engine.runtime import Runtime
    from loralab.estimate import protein
    from loralab.protein.build import build_protein_model
    from loralab.protein.tiny import build_tiny_backbone

    model_dir = build_tiny_backbone(tmp_path / "backbone", hidden_size=32, num_layers=2)
    cfg = load_config("qwen2.5-0.5b", [f"model.name_or_path={model_dir}"])
    loss_fn = protein.make_loss_fn(cfg.protein_head)
    mode = OracleFakeMode()
    with wide_constants():
        fake_model = protein.build_fake_model(cfg, mode, torch.bfloat16)
        batch = protein.fake_batch(24, 3, mode)
        with mode:
            (fake,), fake_opt = measure_training(
                fake_model, loss_fn, [batch], cfg.training, torch.bfloat16, AllocationTracker()
            )
    torch.manual_seed(0)
    runtime = Runtime(device=torch.device("cpu"), weight_dtype=torch.bfloat16, autocast_dtype=torch.bfloat16)
    real_model = build_protein_model(cfg, runtime)
    real_batch = {k: v.constant.clone() for k, v in batch.items() if k != "distances"}
    real_batch["distances"] = torch.rand(3, 24, 24) * 20
    (real,), real_opt = measure_training(
        real_model, loss_fn, [real_batch], cfg.training, torch.bfloat16, AllocationTracker()
    )
    assert fake_opt == real_opt > 0
    assert fake.flops == real.flops > 0
    assert abs(fake.peak_bytes - real.peak_bytes) / real.peak_bytes < 0.10


def _cli_estimate(capsys, *argv) -> dict:
    import json

    from loralab.cli.main import main

    assert main(["estimate", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_json_end_to_end_on_the_tiny_model(tiny_model_dir, capsys):
    base = ["paper_r64", f"model.name_or_path={tiny_model_dir}", "evaluation.batch_size=2", "--json"]
    small = _cli_estimate(capsys, *base, "lora.rank=4", "lora.alpha=8", "--batch-size", "2")
    for key in ("peak_gb", "epoch_seconds_h100", "memory_gb", "evaluation", "assumptions"):
        assert key in small
    assert small["micro_batches_per_epoch"] == 2 * inputs.SO762_TRAIN_UTTERANCES // 2
    assert small["epoch_seconds_h100"] == small["epoch_seconds"]["h100"]
    assert set(small["evaluation"]["epoch_seconds"]) == {"h100", "a100_80gb", "rtx4090"}
    assert small["assumptions"]["mfu"] == 0.4
    # A larger LoRA and a larger micro-batch both cost more memory; the text report runs too.
    larger_rank = _cli_estimate(capsys, *base, "lora.rank=32", "lora.alpha=64", "--batch-size", "2")
    larger_batch = _cli_estimate(capsys, *base, "lora.rank=4", "lora.alpha=8", "--batch-size", "4")
    assert larger_rank["peak_bytes"] > small["peak_bytes"]
    assert larger_batch["peak_bytes"] > small["peak_bytes"]
    from loralab.estimate.report import format_estimate

    text = format_estimate(small)
    assert "peak" in text and "MFU 40%" in text and "assumptions:" in text
