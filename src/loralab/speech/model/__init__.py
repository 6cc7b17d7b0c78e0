"""Model loading, LoRA set-ups, checkpoint conversion and the tiny/demo model builders."""
