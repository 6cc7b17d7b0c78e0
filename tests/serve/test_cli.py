"""`loralab serve` on the command line: help, a clear message without a model, bad options;
how a run folder stands for its final_model/."""

from __future__ import annotations

from loralab.cli.main import main as cli_main


def test_serve_without_model_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no demo_output/ here
    assert cli_main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "make demo" in err and "--model" in err


def test_serve_rejects_bad_options(tmp_path, capsys):
    assert cli_main(["serve", "--model", str(tmp_path), "--queue-size", "0"]) == 2
    assert "--queue-size 0" in capsys.readouterr().err
    assert cli_main(["serve", "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_demo_model_and_run_folder_resolution(tmp_path):
    from loralab.serve.limits import find_demo_model
    from loralab.speech.assessor import model_id, resolve_model_path

    assert find_demo_model(tmp_path) is None
    final = tmp_path / "speech" / "runs" / "demo_qwen2audio" / "final_model"
    final.mkdir(parents=True)
    (final / "adapter_config.json").write_text("{}")
    assert find_demo_model(tmp_path) == final
    assert resolve_model_path(final.parent) == final and resolve_model_path(final) == final
    assert model_id(final) == "demo_qwen2audio/final_model"


def test_settings_come_from_the_model_card(tmp_path):
    import json

    from loralab.speech.assessor import AssessSettings

    card = {"prompt_style": "short", "prompt_reference": "phones", "score_decoding": "expected",
            "tasks": ["apa_accuracy", "apa_fluency", "mdd"]}  # fmt: skip
    (tmp_path / "loralab_model.json").write_text(json.dumps(card))
    settings = AssessSettings.of_model(tmp_path)
    assert settings == AssessSettings("short", "phones", "expected", ("apa_accuracy", "apa_fluency"))
    assert AssessSettings.of_model(tmp_path, prompt_style="paper").prompt_style == "paper"
    assert AssessSettings.of_model(tmp_path / "nothing") == AssessSettings()


def test_settings_of_a_model_without_a_card_come_from_its_run(tmp_path):
    """final_model/ without a card: the run's training_config.json; a checkpoint: its own
    run.json first; an unreadable run config: the defaults (as for a base model)."""
    import json

    from loralab.speech.assessor import AssessSettings, resolve_model_path

    run = tmp_path / "run"
    (run / "final_model").mkdir(parents=True)
    config = {"speech": {"prompt_style": "short", "prompt_reference": "text", "tasks": ["apa", "mdd"]},
              "evaluation": {"score_decoding": "expected"}}  # fmt: skip
    (run / "training_config.json").write_text(json.dumps({"config": config}))
    final = resolve_model_path(run)
    assert final == run / "final_model"
    assert AssessSettings.of_model(final) == AssessSettings("short", "text", "expected", ("apa",))
    checkpoint = run / "checkpoint-epoch-1"
    checkpoint.mkdir()
    assert AssessSettings.of_model(checkpoint) == AssessSettings("short", "text", "expected", ("apa",))
    own = {"speech": {"prompt_style": "paper", "tasks": ["apa_total", "mdd"]}, "evaluation": {}}
    (checkpoint / "run.json").write_text(json.dumps({"config": own, "epoch": 1, "step": 3}))
    assert AssessSettings.of_model(checkpoint) == AssessSettings("paper", "none", "greedy", ("apa_total",))
    (run / "training_config.json").write_text("{not json")
    assert AssessSettings.of_model(final) == AssessSettings()
