"""The model card (:mod:`loralab.engine.model_card`): folders written before it still load.

The fixture folders under ``fixtures/pre_card_runs`` were written by the code before the card
(see their README): a speech run whose ``final_model/`` has the flat speech card, a protein run
whose ``final_model/`` has the bare config, and checkpoints with a version-1 card.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loralab.engine import model_card as mc
from loralab.engine.run_dir import RunDir, step_of
from loralab.errors import LoralabError

OLD = Path(__file__).parent / "fixtures" / "pre_card_runs"


@pytest.fixture
def old(tmp_path):
    shutil.copytree(OLD, tmp_path / "old")
    return tmp_path / "old"


def test_an_old_speech_final_model_reads_as_a_card(old):
    card = mc.read_card(old / "speech_run" / "final_model")
    assert card.layout == mc.LEGACY_SPEECH and card.system == "speech"
    assert (card.base_model, card.revision) == ("Qwen/Qwen2-Audio-7B-Instruct", None)
    assert card.section("speech") == {
        "prompt_style": "short", "prompt_reference": "phones", "tasks": ["apa_total", "mdd"],
    }  # fmt: skip
    assert card.section("evaluation") == {"score_decoding": "expected"}
    assert card.section("model")["family"] == "qwen2audio" and card.config["lora"]["rank"] == 64


def test_an_old_checkpoint_card_gives_its_config_base_model_and_step(old):
    checkpoint = old / "speech_run" / "checkpoint-epoch-1"
    card = mc.read_card(checkpoint)
    assert (card.layout, card.version, card.epoch, card.step) == (mc.CARD, 1, 1, 3)
    assert card.base_model == "Qwen/Qwen2-Audio-7B-Instruct"  # from the config: version 1 has none
    assert step_of(checkpoint) == 3
    config, where = mc.model_config(checkpoint)
    assert config == RunDir(old / "speech_run").raw_config() and where == checkpoint / mc.CARD_FILE


def test_an_old_protein_final_model_reads_its_config(old):
    from loralab.protein.inference import find_checkpoint

    final = old / "protein_run" / "final_model"
    card = mc.read_card(final)
    assert card.layout == mc.LEGACY_CONFIG and card.system == "protein"
    assert card.config == RunDir(old / "protein_run").raw_config()
    folder, cfg = find_checkpoint(final)
    assert folder == final and cfg.system == "protein" and cfg.name == "old_protein"
    assert find_checkpoint(old / "protein_run")[0] == final


def test_old_speech_folders_give_the_settings_and_base_model_they_were_trained_with(old):
    from loralab.speech.assessor import AssessSettings, resolve_model_path
    from loralab.speech.model.load import _find_base

    run = old / "speech_run"
    final = resolve_model_path(run)
    assert final == run / "final_model"
    expected = AssessSettings("short", "phones", "expected", ("apa_total",))
    assert AssessSettings.of_model(final) == expected
    assert AssessSettings.of_model(run / "checkpoint-epoch-1") == expected
    assert _find_base(final, None) == ("Qwen/Qwen2-Audio-7B-Instruct", None)
    assert _find_base(run / "checkpoint-epoch-1", None) == ("Qwen/Qwen2-Audio-7B-Instruct", None)


def test_a_run_folder_stands_for_its_final_model_else_its_newest_checkpoint(old):
    run = old / "speech_run"
    assert mc.model_folder(run) == run / "final_model"
    assert mc.model_folder(run / "checkpoint-epoch-1") == run / "checkpoint-epoch-1"
    shutil.rmtree(run / "final_model")
    assert mc.model_folder(run) == run / "checkpoint-epoch-1"
    shutil.rmtree(run / "checkpoint-epoch-1")
    assert mc.model_folder(run) is None
    assert mc.model_folder(old / "nothing") == old / "nothing"


def test_a_new_card_records_a_local_base_model_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    config = {"system": "speech", "model": {"name_or_path": "models/tiny", "revision": "main"}}
    mc.write_card(tmp_path, config, epoch=2, step=7, versions={"torch": "x"})
    card = mc.read_card(tmp_path)
    assert (card.base_model, card.revision) == (str(tmp_path / "models" / "tiny"), None)
    assert (card.epoch, card.step, card.version, card.config) == (2, 7, mc.CARD_VERSION, config)
    hub = {"system": "protein", "model": {"name_or_path": "org/model", "revision": "v1"}}
    mc.write_card(tmp_path, hub, epoch=1, step=1, versions={})
    assert (mc.read_card(tmp_path).base_model, mc.read_card(tmp_path).revision) == ("org/model", "v1")


def test_a_damaged_card_is_named_when_read_strictly(tmp_path):
    (tmp_path / mc.CARD_FILE).write_text("{not json")
    assert mc.read_card(tmp_path) is None
    with pytest.raises(LoralabError, match="cannot read this model card"):
        mc.read_card(tmp_path, strict=True)
    (tmp_path / mc.CARD_FILE).unlink()
    (tmp_path / mc.LEGACY_SPEECH_CARD_FILE).write_text(json.dumps([1]))
    with pytest.raises(LoralabError, match="a model card is a JSON object"):
        mc.read_card(tmp_path)
