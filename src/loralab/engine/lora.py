"""LoRA attached in one place for every system: PEFT's ``get_peft_model``.

Both systems wrap their model here, so a change in how PEFT is called (its deprecation
noise, a new argument) is made once."""

from __future__ import annotations

from loralab.engine.activation_checkpointing import quiet_deprecated_checkpointing_queries


def wrap_with_lora(model, config):
    """``model`` wrapped by PEFT with the ``LoraConfig`` ``config``, without the deprecation
    noise PEFT's gradient-checkpointing queries trigger in transformers 5."""
    from peft import get_peft_model

    with quiet_deprecated_checkpointing_queries():
        return get_peft_model(model, config)
