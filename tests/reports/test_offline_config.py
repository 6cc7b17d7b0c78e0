"""engine.known_models.offline_config: the one offline config lookup (parameter counts, the
estimator, the protein system's count)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from loralab.engine.known_models import PUBLISHED_CONFIGS, offline_config  # noqa: E402


def test_a_folder_gives_its_own_config(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4).save_pretrained(tmp_path)
    config, where = offline_config(str(tmp_path))
    assert (config.hidden_size, config.num_hidden_layers) == (64, 3)
    assert where == str(tmp_path / "config.json")


def test_a_published_name_gives_its_published_architecture(monkeypatch):
    import loralab.engine.known_models as known

    monkeypatch.setattr(known, "local_model_dir", lambda *a: None)  # as on a machine without it cached
    name = "Qwen/Qwen2.5-0.5B"
    class_name, fields = PUBLISHED_CONFIGS[name]
    config, where = offline_config(name)
    assert type(config).__name__ == class_name and config.hidden_size == fields["hidden_size"]
    assert where == f"published architecture of {name}"


def test_unknown_name_and_folder_without_config_say_why(tmp_path):
    with pytest.raises(LookupError, match="not available offline"):
        offline_config("nobody/no-such-model-xyz")
    with pytest.raises(LookupError, match="has no config.json"):
        offline_config(str(tmp_path))
