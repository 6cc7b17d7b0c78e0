"""Activation checkpointing across transformers versions.

transformers 5.x renamed ``gradient_checkpointing_enable`` to
``activation_checkpointing_enable`` (the old name warns and goes in v6), and PEFT still asks
the old ``is_gradient_checkpointing`` question when wrapping a model. Both systems go
through here so the next rename is fixed in one place.
"""

from __future__ import annotations

import contextlib
import warnings

# Reentrant checkpointing with frozen inputs gives no gradients at all (a pitfall of the
# earlier attempt): always non-reentrant.
NON_REENTRANT = {"use_reentrant": False}


def enable_activation_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing through whichever name this transformers has."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=dict(NON_REENTRANT))
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(NON_REENTRANT))


@contextlib.contextmanager
def quiet_deprecated_checkpointing_queries():
    """Silence the FutureWarning PEFT triggers by reading ``is_gradient_checkpointing``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
