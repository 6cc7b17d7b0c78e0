"""The speech system plug-in on the tiny Phi-4-MM: the three LoRA set-ups train what they should."""

from __future__ import annotations

import json

import pytest
import torch

from loralab.config.schema import config_to_dict
from loralab.engine.model_card import read_card, write_card
from loralab.errors import LoralabError

STEPS = 6


def make_cfg(preset, tiny_model_dir, manifest_dir, *extra):
    from loralab.config import load_config

    return load_config(
        preset,
        [
            f"model.name_or_path={tiny_model_dir}",
            f"speech.manifest_dir={manifest_dir}",
            "speech.prompt_style=short",
            "lora.rank=8",
            "lora.alpha=16",
            *extra,
        ],
    )


def build(cfg):
    from loralab.engine.runtime import Runtime
    from loralab.speech.system import build_parts

    torch.manual_seed(0)
    return build_parts(cfg, Runtime.cpu())


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def train_steps(parts, batch, steps=STEPS, lr=5e-3) -> list[float]:
    model = parts.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = parts.loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def changed_groups_for(before, after, family: str) -> dict[str, bool]:
    """Per reported group: did any of its tensors change (vision listed even when absent)?"""
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.lora import group_of

    changed: dict[str, bool] = {"vision": False}
    for name, value in before.items():
        group = group_of(name, backbone_named(family))
        changed[group] = changed.get(group, False) or not torch.equal(value, after[name])
    return changed


def changed_groups(before, after) -> dict[str, bool]:
    return changed_groups_for(before, after, "phi4mm")


def first_batch(parts, n=4):
    return parts.collate([parts.train_dataset[i] for i in range(n)])


def test_paper_r64_starts_at_the_base_models_loss_and_trains_only_lora(tiny_model_dir, synth_manifest_dir):
    from loralab.speech.model.load import load_phi4mm

    parts = build(make_cfg("paper_r64", tiny_model_dir, synth_manifest_dir))
    batch = first_batch(parts)
    # Independent reference: transformers' own causal-LM loss (full logits, shifted labels) of the base model.
    base = load_phi4mm(tiny_model_dir).eval()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels", "audio_input_features",
                                    "audio_embed_sizes", "audio_attention_mask")}  # fmt: skip
    with torch.no_grad():
        reference = base(**inputs).loss.item()
    before = snapshot(parts.model)
    assert all(not torch.any(v) for n, v in before.items() if ".lora_B." in n)  # B = 0
    losses = train_steps(parts, batch)
    assert losses[0] == pytest.approx(reference, rel=1e-5)
    assert losses[-1] < losses[0] - 0.05
    assert changed_groups(before, snapshot(parts.model)) == {
        "lora": True,
        "audio_encoder": False,
        "audio_projector": False,
        "text_decoder": False,
        "vision": False,
    }
    assert all(p.dtype == torch.float32 for p in parts.model.parameters() if p.requires_grad)


def test_unfreeze_trains_lora_audio_encoder_and_projector(tiny_model_dir, synth_manifest_dir):
    parts = build(make_cfg("unfreeze_r64", tiny_model_dir, synth_manifest_dir))
    batch = first_batch(parts)
    before = snapshot(parts.model)
    losses = train_steps(parts, batch)
    assert losses[-1] < losses[0] - 0.05
    changed = changed_groups(before, snapshot(parts.model))
    assert changed == {
        "lora": True,
        "audio_encoder": True,
        "audio_projector": True,
        "text_decoder": False,
        "vision": False,  # the vision-speech projector is not used for audio alone
    }


def test_pretrained_starts_from_the_given_adapter(tiny_model_dir, synth_manifest_dir, tiny_speech_adapter):
    from safetensors.torch import load_file

    cfg = make_cfg(
        "pretrained_r320", tiny_model_dir, synth_manifest_dir, f"lora.adapter_path={tiny_speech_adapter}"
    )
    parts = build(cfg)
    saved = load_file(str(tiny_speech_adapter / "adapter_model.safetensors"))
    live = {
        n.replace(".default.", "."): p for n, p in parts.model.peft_model.named_parameters() if ".lora_" in n
    }
    assert set(live) == set(saved)
    for name, value in saved.items():
        assert torch.equal(live[name].detach(), value.float()), name
    batch = first_batch(parts)
    before = snapshot(parts.model)
    losses = train_steps(parts, batch)
    assert losses[-1] < losses[0] - 0.05
    changed = changed_groups(before, snapshot(parts.model))
    assert changed["lora"] and not any(v for k, v in changed.items() if k != "lora")


def test_pretrained_without_speech_lora_is_a_clear_error(tiny_model_dir, synth_manifest_dir):
    with pytest.raises(LoralabError, match="speech-lora"):
        build(make_cfg("pretrained_r320", tiny_model_dir, synth_manifest_dir))


def test_pretrained_rank_must_match_the_adapter(tiny_model_dir, synth_manifest_dir, tiny_speech_adapter):
    cfg = make_cfg(
        "pretrained_r320",
        tiny_model_dir,
        synth_manifest_dir,
        f"lora.adapter_path={tiny_speech_adapter}",
        "lora.rank=16",
    )
    with pytest.raises(LoralabError, match="r=8"):
        build(cfg)


@pytest.mark.parametrize("preset", ["paper_r64", "unfreeze_r64", "pretrained_r320"])
def test_counts_without_weights_equal_the_built_model(
    preset, tiny_model_dir, synth_manifest_dir, tiny_speech_adapter
):
    from loralab.speech.system import count_parameters

    cfg = make_cfg(preset, tiny_model_dir, synth_manifest_dir, f"lora.adapter_path={tiny_speech_adapter}")
    parts = build(cfg)
    counted = count_parameters(cfg)
    assert counted == parts.param_groups
    model = parts.model
    assert counted["total"].trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # LoRA by hand: r * (in + out) over qkv/o/gate_up/down of every decoder layer.
    config = json.loads((tiny_model_dir / "config.json").read_text())
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    head = h // config["num_attention_heads"]
    qkv_out = head * (config["num_attention_heads"] + 2 * config["num_key_value_heads"])
    per_rank = layers * ((h + qkv_out) + (h + h) + (h + 2 * i) + (i + h))
    assert counted["lora"].trainable == 8 * per_rank


def _scorer():
    from loralab.speech.model.gop import GopScorer

    calibration = {"accuracy": [0.1, 0.2, 0.3, 0.4, 0.5, -0.2, 5.0]}
    return GopScorer(["AA", "B"], [torch.randn(3, 4)], [torch.randn(3)], calibration, 24.5, {"folds": 1},
                     confusions={"AA": ["<DEL>", "B"]}, threshold=2.5)  # fmt: skip


def test_saved_run_reloads_for_resume_and_inference(tiny_model_dir, synth_manifest_dir, tmp_path):
    from loralab.speech.model.load import load_for_inference

    cfg = make_cfg("unfreeze_r64", tiny_model_dir, synth_manifest_dir)
    parts = build(cfg)
    batch = first_batch(parts, 2)
    train_steps(parts, batch, steps=2)
    trained = snapshot(parts.model)
    checkpoint = tmp_path / "run" / "checkpoint-epoch-1"
    parts.model.gop_scorer = _scorer()
    parts.save_trainable(parts.model, checkpoint)
    assert (checkpoint / "adapter_model.safetensors").is_file() and (
        checkpoint / "unfrozen.safetensors"
    ).is_file()

    resumed = build(cfg)
    resumed.load_trainable(resumed.model, checkpoint)
    for name, value in snapshot(resumed.model).items():
        assert torch.equal(value, trained[name]), name
    frames = torch.randn(6, 4)  # the saved GOP scorer comes back with the checkpoint
    assert torch.equal(resumed.model.gop_scorer.log_probs(frames), parts.model.gop_scorer.log_probs(frames))
    assert resumed.model.gop_scorer.threshold == 2.5
    parts.model.gop_scorer = None

    parts.save_final(parts.model, tmp_path / "run" / "final_model")
    write_card(
        tmp_path / "run" / "final_model", config_to_dict(cfg), epoch=1, step=2, versions={}
    )  # as the engine
    card = read_card(tmp_path / "run" / "final_model")
    assert card.config["strategy"] == "unfreeze" and card.section("model")["unfreeze"] == [
        "audio_encoder",
        "audio_projector",
    ]
    assert card.base_model == str(tiny_model_dir.resolve())
    inference = load_for_inference(tmp_path / "run" / "final_model", device="cpu")
    assert inference.end_token_ids[:2] == inference.tokenizer.convert_tokens_to_ids(
        ["<|end|>", "<|endoftext|>"]
    )
    parts.model.eval()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "audio_input_features",
                                    "audio_embed_sizes", "audio_attention_mask")}  # fmt: skip
    with torch.no_grad():
        expected = parts.model.peft_model(**inputs).logits
        got = inference.model(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    # A checkpoint folder finds its base model through the run's training_config.json.
    (tmp_path / "run" / "training_config.json").write_text(
        json.dumps({"config": {"model": {"name_or_path": str(tiny_model_dir), "revision": None}}})
    )
    from_checkpoint = load_for_inference(checkpoint, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(from_checkpoint.model(**inputs).logits, expected, rtol=1e-4, atol=1e-4)
    (tmp_path / "run" / "checkpoint-epoch-2").mkdir()
    with pytest.raises(LoralabError, match="no adapter"):
        load_for_inference(tmp_path / "run" / "checkpoint-epoch-2", device="cpu")


@pytest.mark.parametrize("groups", ["[audio_projector]", "[audio_encoder]"])
def test_bf16_weights_train_without_autocast(groups, tiny_model_dir, synth_manifest_dir):
    """Frozen weights bf16, trainable ones fp32, and a partly unfrozen audio path still runs."""
    from loralab.engine.runtime import Runtime
    from loralab.speech.system import build_parts

    cfg = make_cfg("unfreeze_r64", tiny_model_dir, synth_manifest_dir, f"model.unfreeze={groups}")
    parts = build_parts(cfg, Runtime(device=torch.device("cpu"), weight_dtype=torch.bfloat16))
    assert {p.dtype for p in parts.model.parameters() if p.requires_grad} == {torch.float32}
    assert parts.model.causal_lm.model.embed_tokens.weight.dtype == torch.bfloat16
    loss = parts.loss_fn(parts.model.train(), first_batch(parts, 2))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in parts.model.named_parameters()
               if p.requires_grad and ".lora_A." not in n)  # fmt: skip


def test_loralab_train_evaluates_each_epoch_and_leaves_a_loadable_final_model(
    tiny_model_dir, synth_manifest_dir, tmp_path
):
    """End to end through the shared trainer (its own smoke test lives in tests/engine)."""
    from loralab.cli.main import main
    from loralab.engine.events import read_events
    from loralab.speech.model.load import load_for_inference

    run = tmp_path / "run"
    argv = ["train", "unfreeze_r64", f"model.name_or_path={tiny_model_dir}", f"speech.manifest_dir={synth_manifest_dir}",
            "speech.prompt_style=short", "speech.limit=2", "lora.rank=4", "lora.alpha=8", "evaluation.every_epoch=true",
            "evaluation.limit=2", "evaluation.max_new_tokens=4", "--epochs", "1", "--batch-size", "2",
            "--gradient-accumulation", "1", "--output-dir", str(run)]  # fmt: skip
    assert main(argv) == 0
    evals = [e for e in read_events(run) if e["event"] == "eval"]
    assert evals and evals[-1]["epoch"] == 1 and "apa_parse_rate" in evals[-1]["metrics"]
    assert (run / "eval" / "epoch-1" / "metrics.json").is_file()
    assert (run / "checkpoint-epoch-1" / "unfrozen.safetensors").is_file()
    inference = load_for_inference(run / "final_model", device="cpu")
    assert "unfrozen" in inference.description
