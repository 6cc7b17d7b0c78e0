"""Round 3: a model card (``final_model/loralab_model.json``) is checked like a config. A string
where it wants a list (``"tasks": "apa_total"``) or a number where it wants a name is an error
naming the field and the file, before the model loads; never a silent change of prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from loralab.config import ConfigError
from loralab.speech.assessor import AssessSettings


def _card(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    card = {
        "format": 1,
        "system": "speech",
        "base_model": "some/model",
        "tasks": ["apa_total", "mdd"],
        **fields,
    }
    (folder / "loralab_model.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("tasks", "apa_total", ["'tasks' must be list[str]", "'apa_total'"]),
        ("prompt_reference", 5, ["'prompt_reference' must be 'none' | 'text'", "got 5"]),
        ("tasks", ["apa_totl"], ["unknown task", "apa_totl"]),
        ("lora", "r64", ["'lora' must be an object"]),
    ],
)
def test_a_wrong_type_in_the_card_names_the_field_and_the_file(tmp_path, field, value, words):
    folder = _card(tmp_path / "final_model", **{field: value})
    with pytest.raises(ConfigError) as info:
        AssessSettings.of_model(folder)
    message = str(info.value)
    assert str(folder / "loralab_model.json") in message
    assert all(w in message for w in words), message


def test_a_valid_card_still_gives_its_settings(tmp_path):
    folder = _card(tmp_path / "final_model", prompt_reference="phones", future_key={"x": 1})
    settings = AssessSettings.of_model(folder)
    assert settings.apa_tasks == ("apa_total",) and settings.prompt_reference == "phones"


def test_assess_refuses_the_card_before_loading_the_model(cli, tmp_path):
    folder = _card(tmp_path / "final_model", tasks="apa_total")
    (folder / "adapter_config.json").write_text("{}")  # the model load would fail on this
    t = np.arange(8000) / 16000
    sf.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    code, err = cli("assess", "--model", folder, "--audio", tmp_path / "a.wav", "--text", "a")
    assert code == 2 and "'tasks' must be list[str]" in err and "loralab_model.json" in err
