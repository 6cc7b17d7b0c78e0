"""loralab: LoRA fine-tuning of foundation models for scientific assessment and prediction."""

__version__ = "0.1.0"
