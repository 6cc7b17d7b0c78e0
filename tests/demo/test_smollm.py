"""SmolLM2's chat template without its default system turn (what the speech demo's
tokenizer keeps)."""

from __future__ import annotations

from loralab.demo import smollm


def test_default_system_turn_removal_leaves_other_templates_alone():
    smollm2 = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}"
    )
    assert smollm.without_default_system_prompt(smollm2) == (
        "{% for message in messages %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}"
    )
    other = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert smollm.without_default_system_prompt(other) == other
