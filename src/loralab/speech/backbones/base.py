"""The contract of a speech-LLM family: everything the rest of the speech system asks of a backbone.

A family is one model class of transformers (Phi-4-multimodal, Qwen2-Audio) with its own chat
layout, audio features, module names and loading rules. Everything that differs between
families lives in one :class:`Backbone` subclass (``backbones/phi4mm.py``,
``backbones/qwen2audio.py``); the collator, trainer, evaluator, assess, status and compare
call these methods and never branch on the family.

What is the same for every family (and so not here): one audio clip per example, expanded to
one placeholder token per audio embedding; ``model.model(...)`` returns the decoder's last
hidden states and ``model.lm_head`` maps them to logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from loralab.errors import LoralabError


class Backbone:
    """One family. Subclasses set the class attributes and implement the methods."""

    family: str = ""  # the config value (model.family)
    title: str = ""  # for people: "Phi-4-multimodal"
    model_types: tuple[str, ...] = ()  # config.json model_type values of this family
    presets: tuple[str, ...] = ()  # shipped presets for this family
    default_lora_targets: str = ""  # regex: the text decoder's projections only (written only here)
    # Parameter-name prefixes (plain model names) of the reported groups.
    audio_encoder_prefixes: tuple[str, ...] = ()
    audio_projector_prefixes: tuple[str, ...] = ()
    vision_prefixes: tuple[str, ...] = ()
    # Parameters the model class itself freezes (fixed tables, not learned): never unfrozen.
    fixed_parameters: tuple[str, ...] = ()
    # Batch keys the model's forward/generate take besides input_ids and attention_mask.
    audio_input_keys: tuple[str, ...] = ()
    window_seconds: float | None = None  # the encoder's fixed window (longer audio is cropped)

    def lora_targets(self, configured: str | None) -> str:
        """The LoRA target regex of a config's ``lora.target_modules``: unset (null or empty), the family's."""
        return configured or self.default_lora_targets

    # -- folders and loading ------------------------------------------------------------
    def check_model_dir(self, model_dir: Path, config: dict, check_weights: bool = True) -> None:
        """Raise a clear error unless ``model_dir`` holds a loadable model of this family."""
        raise NotImplementedError

    def config_from_dict(self, config: dict):
        raise NotImplementedError

    def model_class(self):
        raise NotImplementedError

    def load(self, model_dir: Path, *, device, dtype, attn_implementation: str):
        """The model, frozen (``requires_grad_(False)``), on ``device``."""
        raise NotImplementedError

    def load_feature_extractor(self, model_dir: Path):
        raise NotImplementedError

    def audio_token_id(self, model_config) -> int:
        raise NotImplementedError

    def default_chat_template(self) -> str:
        """The family's chat template, for a tokenizer that ships none (the processor's default)."""
        raise NotImplementedError

    def removed_parameters(self, model) -> int:
        """Parameters dropped at load time (e.g. an unused vision encoder), still reported."""
        return 0

    # -- audio and chat layout ----------------------------------------------------------
    def min_samples(self, feature_extractor) -> int:
        """The shortest waveform the feature extractor accepts (one analysis window)."""
        raise NotImplementedError

    def audio_features(self, feature_extractor, audios: Sequence) -> tuple[dict, list[int]]:
        """(model inputs for a batch of 16 kHz waveforms, audio embeddings per waveform)."""
        raise NotImplementedError

    def num_audio_tokens(self, num_samples: int, feature_extractor) -> int:
        """Audio embeddings for a waveform of ``num_samples`` (no audio read: length only)."""
        raise NotImplementedError

    def audio_span(self, tokenizer, audio_token_id: int, count: int) -> list[int]:
        """The token ids that stand for one clip of ``count`` embeddings in the prompt."""
        return [int(audio_token_id)] * count

    # -- training -----------------------------------------------------------------------
    def install_encoder_cache(self, model, max_items: int | None = None) -> Callable[[], None] | None:
        """Reuse a frozen audio encoder's output per clip (keep at most ``max_items``; None: all).
        Returns the call that gives the encoder its own forward back (a cache already installed is
        shared, and stays until its last installer calls it); None where the family cannot (its
        encoder is entangled with the embedding step)."""
        return None

    def audio_encoder_outputs(self, model, audio_inputs: dict):
        """The audio encoder's output for a batch of ``audio_features`` inputs, as the model computes
        it inside its forward (batch x frames x width, before the projector). Families whose
        encoder is entangled with the embedding step raise (the GOP scorer needs it)."""
        raise LoralabError(
            f"{self.title}: the audio encoder's output cannot be read apart from the model, which "
            "speech.prompt_reference=phones_gop needs (use the Qwen2-Audio family, or another prompt_reference)"
        )

    def group_of(self, plain_name: str) -> str:
        """Which reported group a plain-model parameter name belongs to (not LoRA)."""
        if plain_name.startswith(self.audio_encoder_prefixes):
            return "audio_encoder"
        if plain_name.startswith(self.audio_projector_prefixes):
            return "audio_projector"
        if self.vision_prefixes and plain_name.startswith(self.vision_prefixes):
            return "vision"
        return "text_decoder"

    def unfreeze_prefixes(self, groups: Sequence[str]) -> tuple[str, ...]:
        known = {
            "audio_encoder": self.audio_encoder_prefixes,
            "audio_projector": self.audio_projector_prefixes,
        }
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise LoralabError(
                f"model.unfreeze: unknown group(s) {unknown}; {self.title} has: {', '.join(known)}"
            )
        return tuple(p for g in groups for p in known[g])

    def audio_path_prefixes(self) -> tuple[str, ...]:
        """Encoder and projector: kept in one dtype when either is trained (see lora.unfreeze)."""
        return self.audio_encoder_prefixes + self.audio_projector_prefixes
