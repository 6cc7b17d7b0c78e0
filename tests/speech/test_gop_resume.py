"""A resumed phones_gop run takes the GOP scorer and the training prompts' estimates from the
checkpoint it continues instead of fitting them again; a checkpoint without the estimates (an
older loralab's) fits again and says why. ``final_model/`` gets the scorer, not the estimates."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from loralab.speech.model import gop_fit
from loralab.speech.model.gop import GOP_FILE, GOP_TRAINING_ESTIMATES_FILE


def _build(cfg, resume_from=None):
    from loralab.engine.runtime import Runtime
    from loralab.speech.system import build_parts

    torch.manual_seed(0)
    return build_parts(cfg, dataclasses.replace(Runtime.cpu(), resume_from=resume_from))


@pytest.fixture(scope="module")
def fitted(tiny_qwen2audio_dir, synth_manifest_dir, tmp_path_factory):
    """(config, the parts of a fresh run, its checkpoint)."""
    from speech.test_training import make_cfg

    cfg = make_cfg(
        "qwen2audio_r64", tiny_qwen2audio_dir, synth_manifest_dir,
        "speech.prompt_reference=phones_gop", "speech.tasks=[apa,apa_accuracy,mdd]",
    )  # fmt: skip
    parts = _build(cfg)
    checkpoint = tmp_path_factory.mktemp("run") / "checkpoint-epoch-1"
    parts.save_trainable(parts.model, checkpoint)
    return cfg, parts, checkpoint


def _examples(parts) -> list:
    return [(record.id, record.estimates, task) for record, task in parts.train_dataset]


def test_a_resumed_run_restores_the_scorer_and_estimates_without_fitting(fitted, monkeypatch, capsys):
    cfg, parts, checkpoint = fitted

    def no_fit(*args, **kwargs):
        raise AssertionError("the resumed run fit the GOP scorer again")

    monkeypatch.setattr(gop_fit, "fit_for_training", no_fit)
    monkeypatch.setattr(gop_fit, "fit_gop_scorer", no_fit)
    resumed = _build(cfg, resume_from=checkpoint)
    assert f"GOP scorer: restored from {checkpoint}" in capsys.readouterr().out
    saved, restored = parts.model.gop_scorer, resumed.model.gop_scorer
    frames = torch.randn(12, saved.weights[0].shape[1])
    assert torch.equal(restored.log_probs(frames), saved.log_probs(frames))
    assert restored.threshold == saved.threshold and restored.calibration == saved.calibration
    # The prompts it trains on are the first run's: the same estimates, so the same lengths.
    assert _examples(resumed) == _examples(parts) and resumed.lengths == parts.lengths
    assert resumed.model.gop_training_estimates == parts.model.gop_training_estimates


def test_a_checkpoint_without_the_estimates_fits_again_and_says_why(fitted, tmp_path, monkeypatch, capsys):
    cfg, parts, checkpoint = fitted
    older = tmp_path / "checkpoint-epoch-1"
    shutil.copytree(checkpoint, older)
    (older / GOP_TRAINING_ESTIMATES_FILE).unlink()
    fits = []
    fit = gop_fit.fit_for_training
    monkeypatch.setattr(gop_fit, "fit_for_training", lambda *a, **k: (fits.append(1), fit(*a, **k))[1])
    resumed = _build(cfg, resume_from=older)
    assert fits == [1]
    out = capsys.readouterr().out
    assert f"GOP scorer: fitting it again: {older} has no {GOP_TRAINING_ESTIMATES_FILE}" in out
    assert set(resumed.model.gop_training_estimates) == set(parts.model.gop_training_estimates)


def test_the_final_model_gets_the_scorer_and_not_the_training_estimates(fitted, tmp_path):
    _, parts, checkpoint = fitted
    assert (checkpoint / GOP_FILE).is_file() and (checkpoint / GOP_TRAINING_ESTIMATES_FILE).is_file()
    parts.save_final(parts.model, tmp_path / "final_model")
    assert (tmp_path / "final_model" / GOP_FILE).is_file()
    assert not (tmp_path / "final_model" / GOP_TRAINING_ESTIMATES_FILE).exists()
