"""Deprecated name of :mod:`loralab.engine.activation_checkpointing` (too close to
:mod:`loralab.engine.checkpoint`, the per-epoch checkpoints). Kept only until
``loralab.protein.model`` imports the new name; then this file goes."""

from loralab.engine.activation_checkpointing import (  # noqa: F401
    NON_REENTRANT,
    enable_activation_checkpointing,
    quiet_deprecated_checkpointing_queries,
)
