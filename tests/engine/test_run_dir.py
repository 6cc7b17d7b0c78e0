"""The run directory's one owner: checkpoints, final model, run config, evaluation folders,
the ``--checkpoints`` grammar, and checkpoints that describe themselves (``run.json``)."""

from __future__ import annotations

import json

import pytest
import toy_system
from test_engine_trainer import toy_cfg

from loralab.engine.model_card import model_config, read_card
from loralab.engine.run_dir import RunDir, step_of
from loralab.engine.trainer import run_training
from loralab.errors import LoralabError


def _fake_run(root, epochs=(1, 2), final=True, training_epochs=3):
    """A run folder by hand: config, complete checkpoints, one unfinished save, final_model/."""
    root.mkdir()
    config = {"system": "speech", "training": {"epochs": training_epochs}, "model": {"name_or_path": "m"}}
    (root / "training_config.json").write_text(json.dumps({"config": config}))
    for e in epochs:
        (root / f"checkpoint-epoch-{e}").mkdir()
        (root / f"checkpoint-epoch-{e}" / "trainer_state.json").write_text(
            json.dumps({"global_step": 10 * e})
        )
    (root / ".tmp-checkpoint-epoch-9").mkdir()
    if final:
        (root / "final_model").mkdir()
    return RunDir(root)


def test_checkpoints_and_final_model(tmp_path):
    run = _fake_run(tmp_path / "run")
    assert list(run.checkpoints()) == [1, 2]
    assert list(run.incomplete_checkpoints()) == [9]
    assert run.system == "speech" and run.is_run()
    # final_model/ stands for the last epoch of training.epochs when its checkpoint is gone
    assert run.trained_models() == {1: run.checkpoint(1), 2: run.checkpoint(2), 3: run.final_model}
    assert run.last_checkpoint() == run.checkpoint(2)


@pytest.mark.parametrize(
    ("spec", "epochs"),
    [("all", [0, 1, 2, 3]), ("last", [3]), ("0,2", [0, 2]), (" 2 ", [2]), (1, [1]), ("2,1,2", [1, 2])],
)
def test_selection_grammar(tmp_path, spec, epochs):
    run = _fake_run(tmp_path / "run")
    chosen = run.select(spec)
    assert [c.epoch for c in chosen] == epochs
    assert all((c.path is None) == (c.epoch == 0) for c in chosen)
    assert {c.epoch: c.step for c in chosen if c.epoch in (1, 2)} == {
        e: 10 * e for e in epochs if e in (1, 2)
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [("5", r"epoch\(s\) \[5\].*available: 1, 2, 3"), ("x", "0,2,3"), ("-1", "0,2,3"), (",", "0,2,3")],
)
def test_bad_selections_say_what_exists(tmp_path, spec, message):
    with pytest.raises(LoralabError, match=message):
        _fake_run(tmp_path / "run").select(spec)


def test_nothing_trained_yet_points_at_the_base_model(tmp_path):
    run = _fake_run(tmp_path / "run", epochs=(), final=False)
    with pytest.raises(LoralabError, match="--checkpoints 0"):
        run.select("last")
    assert [c.epoch for c in run.select("0")] == [0]


def test_evaluation_folders_per_split_and_epoch(tmp_path):
    run = _fake_run(tmp_path / "run")
    assert run.eval_epoch_dir("test", 2) == run.path / "eval" / "epoch-2"
    assert run.eval_epoch_dir("dev", 1) == run.path / "eval-dev" / "epoch-1"
    for split, epoch in (("test", 2), ("dev", 1), ("test", 0)):
        run.eval_epoch_dir(split, epoch).mkdir(parents=True)
    (run.eval_dir("test") / "table3.md").write_text("")
    assert [(s, e) for s, e, _ in run.eval_folders()] == [("dev", 1), ("test", 0), ("test", 2)]


def test_not_a_run_is_named(tmp_path):
    with pytest.raises(LoralabError, match="does not exist"):
        RunDir(tmp_path / "nope").require()
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoralabError, match="training_config.json"):
        _ = RunDir(tmp_path / "empty").system
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LoralabError, match="is a file"):
        RunDir(tmp_path / "afile").require()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "training_config.json").write_text("{not json")
    with pytest.raises(LoralabError, match="unreadable"):
        RunDir(bad).config()


def test_each_checkpoint_and_the_final_model_describe_themselves(tmp_path):
    run_path = tmp_path / "run"
    run_training(toy_cfg(run_path, epochs=2), toy_system.make_parts())
    run = RunDir(run_path)
    assert run.config().training.epochs == 2
    folders = [*run.checkpoints().items(), (2, run.final_model)]
    for epoch, path in folders:
        card = read_card(path)
        assert (card.raw["format"], card.version, card.epoch, card.step) == (
            "loralab-checkpoint",
            2,
            epoch,
            2 * epoch,
        )
        assert card.config == run.raw_config() and card.system == "toy" and card.layout == "card"
        assert card.base_model == run.raw_config()["model"]["name_or_path"]
        assert {"torch", "transformers", "peft"} <= set(card.versions)
        assert step_of(path) == (0 if path == run.final_model else 2 * epoch)  # final_model/: as before
    # A checkpoint copied away from its run still says what it is.
    moved = tmp_path / "elsewhere"
    run.checkpoint(1).rename(moved)
    config, where = model_config(moved)
    assert config["training"]["epochs"] == 2 and where == moved / "run.json"
