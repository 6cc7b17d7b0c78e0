"""The tasks a speech config may name are the prompts' (one definition): each has a prompt in
both styles, and a config naming another is refused with the known ones listed."""

from __future__ import annotations

import pytest

from loralab.config import ConfigError, load_config
from loralab.speech.prompts import STYLES, TASKS, load_prompt


@pytest.mark.parametrize("style", STYLES)
def test_every_task_a_config_may_name_has_a_prompt(style):
    assert all(load_prompt(task, style) for task in TASKS)


def test_a_config_naming_another_task_is_refused_with_the_known_ones():
    load_config("paper_r64", [f"speech.tasks=[{','.join(TASKS)}]"])  # every one of them is accepted
    with pytest.raises(ConfigError) as problem:
        load_config("paper_r64", ["speech.tasks=[apa,apa_totl]"])
    known = "apa, mdd, apa_accuracy, apa_fluency, apa_prosodic, apa_total"
    assert f"speech.tasks: unknown task 'apa_totl' (known: {known})" in str(problem.value)
