"""The training loop on the toy system, in-process: arithmetic, records, resume, faults."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import toy_system

from loralab.config.schema import EvaluationConfig, ExperimentConfig, TrainingConfig
from loralab.engine.checkpoint import checkpoint_dir
from loralab.engine.events import read_events
from loralab.engine.sampler import epoch_plan
from loralab.engine.schedule import WarmupDecay
from loralab.engine.trainer import run_training
from loralab.errors import LoralabError

TRAINING = dict(
    epochs=3, batch_size=4, gradient_accumulation=4, learning_rate=0.05, warmup_ratio=0.2, log_every=1, seed=0
)


def toy_cfg(run_dir, every_epoch=False, **training) -> ExperimentConfig:
    return ExperimentConfig(
        name="toy",
        system="toy",  # toy_system registered itself on import
        output_dir=str(run_dir),
        training=TrainingConfig(**{**TRAINING, **training}),
        evaluation=EvaluationConfig(every_epoch=every_epoch),
    )


def final_weights(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final_model" / toy_system.ADAPTER_FILE))


def reference_training(cfg: ExperimentConfig, parts, world_size: int = 1) -> dict[str, torch.Tensor]:
    """A plain loop written from the definitions: the gradient of each optimizer step is the
    mean over its micro-batches (and over processes) of their mean losses; the lr follows the
    closed-form schedule; gradients are clipped by their global norm."""
    t = cfg.training
    model = parts.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params, lr=t.learning_rate, betas=tuple(t.adam_betas), weight_decay=t.weight_decay
    )
    n = len(parts.train_dataset)
    n_micro = math.ceil((n + (-n) % world_size) / (t.batch_size * world_size))
    total = math.ceil(n_micro / t.gradient_accumulation) * t.epochs
    lr_at = WarmupDecay(t.lr_schedule, math.ceil(t.warmup_ratio * total), total)
    step = 0
    for epoch in range(1, t.epochs + 1):
        per_rank = [
            epoch_plan(parts.lengths, t.batch_size, t.seed, epoch, t.group_by_length, world_size, r).batches
            for r in range(world_size)
        ]
        for g in range(0, n_micro, t.gradient_accumulation):
            for pg in opt.param_groups:
                pg["lr"] = t.learning_rate * lr_at(step)
            opt.zero_grad()
            for batches in per_rank:
                group = batches[g : g + t.gradient_accumulation]
                losses = [
                    parts.loss_fn(model, parts.collate([parts.train_dataset[i] for i in b])) for b in group
                ]
                (sum(losses) / len(group) / world_size).backward()
            norm = math.sqrt(sum(float((p.grad**2).sum()) for p in params))
            if norm > t.max_grad_norm:
                for p in params:
                    p.grad.mul_(t.max_grad_norm / (norm + 1e-6))
            opt.step()
            step += 1
    return toy_system.trainable_state(model)


def test_updates_equal_a_plain_reference_loop(tmp_path):
    # 22 examples / batch 4 = 6 micro-batches per epoch: groups of 4 and 2 (a partial last group).
    cfg = toy_cfg(tmp_path / "run", max_grad_norm=0.5)
    run_training(cfg, toy_system.make_parts(dropout=0.0))
    expected = reference_training(cfg, toy_system.make_parts(dropout=0.0))
    got = final_weights(tmp_path / "run")
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)
    start = toy_system.make_parts(dropout=0.0)
    assert not torch.allclose(got["lora_b"], toy_system.trainable_state(start.model)["lora_b"])


def _eval_consuming_rng(model, run_dir, epoch):
    torch.rand(1000)  # like sampling during generation: must not shift the training RNG
    with torch.no_grad():
        data = toy_system.collate(toy_system.make_dataset(8, seed=7))
        model.eval()
        return {"mse": float(toy_system.loss_fn(model, data))}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_training(toy_cfg(run, every_epoch=True), toy_system.make_parts(evaluate=_eval_consuming_rng))
    return run


def test_run_dir_records(uninterrupted):
    run = uninterrupted
    events = read_events(run)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("checkpoint") == 3 and kinds.count("eval") == 3
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 7))  # 2 steps per epoch, log_every=1
    for field in (
        "epoch",
        "loss",
        "grad_norm",
        "lr",
        "samples_per_s",
        "tokens_per_s",
        "memory_gb",
        "peak_memory_gb",
    ):
        assert all(field in e for e in steps), field
    assert [e["epoch"] for e in steps] == pytest.approx([4 / 6, 1, 1 + 4 / 6, 2, 2 + 4 / 6, 3])
    # The logged lr is the one each update used: warm-up over ceil(0.2 * 6) = 2 steps, then linear to 0.
    assert [e["lr"] for e in steps] == pytest.approx([0, 0.025, 0.05, 0.0375, 0.025, 0.0125])
    start = events[0]
    assert start["params"] == {
        "adapter": {"trainable": 41, "total": 41},
        "base": {"trainable": 0, "total": 97},
    }
    assert (start["steps_per_epoch"], start["total_steps"], start["world_size"]) == (2, 6, 1)
    assert start["resumed_from"] is None
    info = json.loads((run / "training_config.json").read_text())
    assert info["config"]["training"]["learning_rate"] == 0.05
    assert {"torch", "transformers", "peft", "accelerate"} <= set(info["versions"])
    assert "git_commit" in info and info["world_size"] == 1 and info["device"] == "cpu"
    assert info["params"]["adapter"] == {"trainable": 41, "total": 41}
    for epoch in (1, 2, 3):
        state = json.loads((checkpoint_dir(run, epoch) / "trainer_state.json").read_text())
        assert (state["epoch"], state["global_step"]) == (epoch, 2 * epoch)
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp")]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "logs"))
    acc.Reload()
    assert [s.step for s in acc.Scalars("train/loss")] == list(range(1, 7))
    assert len(acc.Scalars("eval/mse")) == 3


def test_resume_after_interrupt_reproduces_the_uninterrupted_run(uninterrupted, tmp_path):
    run = tmp_path / "run"
    calls = {"n": 0}

    def interrupted_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # 6 micro-batches per epoch: the 3rd one of epoch 2
            raise KeyboardInterrupt
        return toy_system.loss_fn(model, batch)

    with pytest.raises(KeyboardInterrupt):
        run_training(
            toy_cfg(run, every_epoch=True),
            toy_system.make_parts(loss=interrupted_loss, evaluate=_eval_consuming_rng),
        )
    events = read_events(run)
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "interrupted"
    assert events[-1]["step"] == 2  # interrupted inside the first accumulation group of epoch 2
    with pytest.raises(LoralabError, match="already holds a run"):
        run_training(toy_cfg(run, every_epoch=True), toy_system.make_parts())
    with pytest.raises(LoralabError, match="training.learning_rate"):
        run_training(toy_cfg(run, learning_rate=0.1), toy_system.make_parts(), resume=True)

    # A checkpoint written before speech.eval_split was retired holds it: no difference that matters.
    state_file = checkpoint_dir(run, 1) / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["config_fields"]["speech.eval_split"], state["config_hash"] = "test", "written-before-retiring"
    state_file.write_text(json.dumps(state))
    torch.manual_seed(1234)  # the resumed process starts from a different RNG state; the checkpoint's wins
    run_training(
        toy_cfg(run, every_epoch=True), toy_system.make_parts(evaluate=_eval_consuming_rng), resume=True
    )
    resumed = [e for e in read_events(run) if e["event"] == "start"][-1]
    assert resumed["resumed_from"] == str(checkpoint_dir(run, 1)) and resumed["step"] == 2
    expected, got = final_weights(uninterrupted), final_weights(run)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-7)
    with pytest.raises(LoralabError, match="already finished"):
        run_training(toy_cfg(run, every_epoch=True), toy_system.make_parts(), resume=True)


def test_nan_loss_stops_with_ids_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    calls = {"n": 0, "ids": None}

    def nan_loss(model, batch):
        calls["n"] += 1
        loss = toy_system.loss_fn(model, batch)
        if calls["n"] == 8:  # epoch 2, micro-batch 2 (optimizer step 3)
            calls["ids"] = list(batch["ids"])
            return loss * float("nan")
        return loss

    parts = toy_system.make_parts(loss=nan_loss)
    with pytest.raises(LoralabError, match="non-finite loss") as err:
        run_training(toy_cfg(run), parts)
    message = str(err.value)
    assert "optimizer step 3" in message and "epoch 2" in message and "micro-batch 2" in message
    assert str(calls["ids"]) in message and "checkpoint-epoch-1" in message
    error = read_events(run)[-1]
    assert error["event"] == "error" and error["kind"] == "nan" and error["ids"] == calls["ids"]
    # Nothing of the NaN step was applied: the model still holds the step-2 weights of checkpoint 1.
    from safetensors.torch import load_file

    saved = load_file(str(checkpoint_dir(run, 1) / toy_system.ADAPTER_FILE))
    for name, value in toy_system.trainable_state(parts.model).items():
        assert torch.equal(value, saved[name]), name
    assert not checkpoint_dir(run, 2).exists()


def test_out_of_memory_names_a_setting_with_the_same_effective_batch(tmp_path):
    run = tmp_path / "run"

    def oom_loss(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(LoralabError) as err:
        run_training(
            toy_cfg(run, batch_size=4, gradient_accumulation=2), toy_system.make_parts(loss=oom_loss)
        )
    message = str(err.value)
    assert "out of memory" in message and "batch_size=4" in message
    assert "--batch-size 2 --gradient-accumulation 4" in message  # 4 x 2 = 2 x 4
    error = read_events(run)[-1]
    assert error["kind"] == "oom" and len(error["ids"]) == 4


def test_oom_suggestions_keep_the_product():
    from loralab.engine.faults import smaller_batch_settings

    for b in range(2, 40):
        for a in (1, 3, 8):
            nb, na = smaller_batch_settings(b, a)
            assert nb * na == b * a and nb < b
    assert smaller_batch_settings(1, 8) is None


def test_max_steps_stops_early_and_still_saves_the_final_model(tmp_path):
    run = tmp_path / "run"
    run_training(toy_cfg(run, max_steps=3), toy_system.make_parts())
    events = read_events(run)
    assert max(e["step"] for e in events) == 3 and events[-1]["event"] == "end"
    assert [e["epoch"] for e in events if e["event"] == "checkpoint"] == [1]  # epoch 2 was cut short
    assert (run / "final_model" / toy_system.ADAPTER_FILE).exists()


def test_config_dataclass_round_trip_is_hashable():
    from loralab.engine.run_info import config_hash

    a = toy_cfg("x")
    b = dataclasses.replace(a, evaluation=EvaluationConfig(every_epoch=True), description="other")
    assert config_hash(a) == config_hash(b)  # evaluation and description do not change the numbers
    c = dataclasses.replace(a, training=dataclasses.replace(a.training, seed=1))
    assert config_hash(a) != config_hash(c)


def test_a_crash_while_writing_the_final_model_resumes_to_just_that(tmp_path):
    run = tmp_path / "run"
    parts = toy_system.make_parts()

    def crash_mid_write(model, out):
        (out / "partial.bin").write_bytes(b"x")
        raise KeyboardInterrupt

    parts.save_final = crash_mid_write
    with pytest.raises(KeyboardInterrupt):
        run_training(toy_cfg(run), parts)
    assert not (run / "final_model").exists() and (run / ".tmp-final_model").exists()
    run_training(toy_cfg(run), toy_system.make_parts(), resume=True)
    events = read_events(run)
    assert events[-1]["event"] == "end" and events[-1]["step"] == 6
    last_start = max(i for i, e in enumerate(events) if e["event"] == "start")
    assert [e["event"] for e in events[last_start:]] == ["start", "end"]  # nothing was trained again
    saved = load_adapter(checkpoint_dir(run, 3))
    for name, value in final_weights(run).items():
        assert torch.equal(value, saved[name])
    assert not (run / ".tmp-final_model").exists()


def test_train_tells_the_system_the_checkpoint_it_resumes(tmp_path, monkeypatch):
    """A system restores from it what it would compute before training (speech: the GOP scorer)."""
    from loralab.engine.trainer import train

    run = tmp_path / "run"
    seen = []

    def build_parts(cfg, runtime):
        seen.append(runtime.resume_from)
        parts = toy_system.make_parts()
        if len(seen) == 1:  # the first run stops before its final model: a resume has a checkpoint
            parts.save_final = lambda model, out: (_ for _ in ()).throw(KeyboardInterrupt())
        return parts

    monkeypatch.setattr(toy_system, "build_parts", build_parts)
    with pytest.raises(KeyboardInterrupt):
        train(toy_cfg(run))
    train(toy_cfg(run), resume=True)
    assert seen == [None, checkpoint_dir(run, 3)]


def load_adapter(path):
    from safetensors.torch import load_file

    return load_file(str(path / toy_system.ADAPTER_FILE))
