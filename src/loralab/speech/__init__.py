"""Pronunciation assessment (APA + MDD) with Phi-4-multimodal and LoRA."""
