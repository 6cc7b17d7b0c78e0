"""Round 3: YAML 1.1 reads ``no``/``off``/``yes``/``on`` as booleans, so ``training.mixed_precision=no``
(what --help shows) arrived as False and was refused as "got False". A choice spelled like a
YAML boolean is taken as the word it was written as; a boolean where no such word is a choice
is still an error."""

from __future__ import annotations

import pytest

from loralab.config import ConfigError, load_config


def test_mixed_precision_no_on_the_command_line_is_the_choice_no():
    assert load_config("paper_r64", ["training.mixed_precision=no"]).training.mixed_precision == "no"
    assert load_config("paper_r64", ["training.mixed_precision=bf16"]).training.mixed_precision == "bf16"


def test_mixed_precision_no_in_a_yaml_file_is_the_choice_no(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: paper_r64\ntraining:\n  mixed_precision: no\n")
    assert load_config(path).training.mixed_precision == "no"


def test_a_boolean_that_names_no_choice_is_still_refused():
    with pytest.raises(ConfigError, match=r"'training.mixed_precision' must be one of .* got True"):
        load_config("paper_r64", ["training.mixed_precision=yes"])
    with pytest.raises(ConfigError, match=r"'speech.prompt_style' must be one of .* got False"):
        load_config("paper_r64", ["speech.prompt_style=off"])
