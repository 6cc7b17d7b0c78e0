"""Qwen2-Audio (transformers' native ``Qwen2AudioForConditionalGeneration``).

A Whisper-style encoder (``model.audio_tower``: 128 log-mel bins for Qwen2-Audio-7B, 80 for the
demo's Whisper tiny.en, a fixed 30 s window of 3,000 frames, average-pooled to one embedding
per 40 ms), a linear projector (``model.multi_modal_projector``) and a causal LM
(``model.language_model``). In the prompt a clip is ``<|audio_bos|>`` + ``<|AUDIO|>`` x n +
``<|audio_eos|>``, n the embeddings of the clip's real (unpadded) frames.

Audio longer than the 30 s window is cropped to its first 30 s by the feature extractor;
SpeechOcean762 utterances are all far shorter (``speech.max_audio_seconds`` skips longer
ones in training, and ``assess`` says so).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from loralab.errors import LoralabError, ModelLayoutError
from loralab.speech.backbones.base import Backbone

AUDIO_TOKEN = "<|AUDIO|>"
AUDIO_BOS = "<|audio_bos|>"
AUDIO_EOS = "<|audio_eos|>"
WINDOW_SECONDS = 30
TOKENIZER_FILES = (("tokenizer_config.json",), ("tokenizer.json", "vocab.json"))
_INSTALLING = threading.Lock()  # one install or restore of an encoder cache at a time


def encoder_output_length(frames: int) -> int:
    """Audio embeddings for ``frames`` unpadded mel frames (conv stride 2, then average pool 2)."""
    after_conv = (frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


class EncoderOutputCache:
    """Reuses a frozen audio encoder's output per clip (``model.cache_audio_encoder``).

    Installed as the encoder's ``forward``: rows of a batch whose features were seen before
    come from the cache, the rest are computed in one call and stored (on the CPU, in the
    encoder's dtype: 750 x d_model values per clip). Exact for a frozen encoder in eval-like
    mode (no dropout): each row's output depends on that row alone. While the encoder has
    trainable parameters and gradients are on, every call computes (nothing cached).
    """

    def __init__(self, encoder, max_items: int | None = None, compute=None):
        self.encoder = encoder
        self.compute = compute or encoder.forward  # what a miss runs (e.g. a WindowCrop of the forward)
        self.max_items = max_items  # None: keep every clip (training); else the most recent ones
        self.store: dict[str, object] = {}
        self.hits = self.misses = 0
        # Who installed it (install_encoder_cache): concurrent users (serve's workers share one
        # model) share one cache, and the encoder's forward (``replaced``) returns after the last.
        self.installers = 0
        self.replaced = None

    @staticmethod
    def _key(row) -> str:
        return hashlib.sha1(row.detach().float().cpu().numpy().tobytes()).hexdigest()

    def __call__(self, input_features, attention_mask=None, **kwargs):
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        trainable = any(p.requires_grad for p in self.encoder.parameters())
        if trainable and torch.is_grad_enabled():
            return self.compute(input_features, attention_mask=attention_mask, **kwargs)
        keys = [self._key(row) for row in input_features]
        todo = [i for i, k in enumerate(keys) if k not in self.store]
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if todo:
            mask = attention_mask[todo] if attention_mask is not None else None
            with torch.no_grad():
                out = self.compute(input_features[todo], attention_mask=mask).last_hidden_state
            for i, row in zip(todo, out):
                self.store[keys[i]] = row.to("cpu")
        device = input_features.device
        stacked = torch.stack([self.store[k] for k in keys]).to(device)
        while self.max_items is not None and len(self.store) > self.max_items:
            self.store.pop(next(iter(self.store)))  # oldest first (dicts keep insertion order)
        return BaseModelOutput(last_hidden_state=stacked)


def _plain_model(model):
    """The transformers model under a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class Qwen2AudioBackbone(Backbone):
    family = "qwen2audio"
    title = "Qwen2-Audio"
    model_types = ("qwen2_audio",)
    presets = ("qwen2audio_r64", "qwen2audio_unfreeze_r64", "demo_qwen2audio")
    # The language model's attention and MLP projections only (not the Whisper encoder's).
    default_lora_targets = (
        r"model\.language_model\.layers\.\d+\.((self_attn\.(q|k|v|o)_proj)|(mlp\.(gate|up|down)_proj))"
    )
    audio_encoder_prefixes = ("model.audio_tower.",)
    audio_projector_prefixes = ("model.multi_modal_projector.",)
    # The Whisper encoder's sinusoidal position table: transformers builds it frozen
    # (Qwen2AudioEncoder: embed_positions.requires_grad_(False)); training it is not the model.
    fixed_parameters = ("model.audio_tower.embed_positions.weight",)
    audio_input_keys = ("input_features", "feature_attention_mask")
    window_seconds = WINDOW_SECONDS

    def check_model_dir(self, model_dir: Path, config: dict, check_weights: bool = True) -> None:
        model_dir = Path(model_dir)
        if config.get("model_type") not in self.model_types:
            raise ModelLayoutError(
                f"{model_dir} holds a '{config.get('model_type')}' model, not Qwen2-Audio (model_type "
                "'qwen2_audio'); the qwen2audio family needs Qwen2AudioForConditionalGeneration weights"
            )
        missing = [] if (model_dir / "preprocessor_config.json").is_file() else ["preprocessor_config.json"]
        for alternatives in TOKENIZER_FILES:
            if not any((model_dir / name).is_file() for name in alternatives):
                missing.append(" or ".join(alternatives))
        if missing:
            raise ModelLayoutError(
                f"{model_dir} lacks the processor files {', '.join(missing)}: a Qwen2-Audio folder needs its "
                "feature extractor (preprocessor_config.json) and tokenizer beside the weights. Download the "
                "whole repository (huggingface-cli download Qwen/Qwen2-Audio-7B-Instruct --local-dir DIR)"
            )

    def config_from_dict(self, config: dict):
        from transformers import Qwen2AudioConfig

        return Qwen2AudioConfig.from_dict(config)

    def model_class(self):
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration

    def load(self, model_dir: Path, *, device, dtype, attn_implementation: str):
        import torch

        from loralab.speech.model.weights import resolve_attn_implementation

        device = torch.device(device)
        kernels = resolve_attn_implementation(attn_implementation, device)
        kwargs = {"device_map": {"": device}} if device.type != "cpu" else {}
        model = self.model_class().from_pretrained(
            model_dir,
            dtype=dtype,
            attn_implementation={
                "": kernels[""],
                "text_config": kernels[""],
                "audio_config": kernels["audio_config"],
            },
            **kwargs,
        )
        model.requires_grad_(False)
        return model

    def load_feature_extractor(self, model_dir: Path):
        from transformers import WhisperFeatureExtractor

        if not (Path(model_dir) / "preprocessor_config.json").is_file():
            raise LoralabError(
                f"{model_dir} has no preprocessor_config.json (Whisper feature extractor settings); "
                "a Qwen2-Audio folder ships one"
            )
        return WhisperFeatureExtractor.from_pretrained(str(model_dir))

    def audio_token_id(self, model_config) -> int:
        return int(model_config.audio_token_id)

    def default_chat_template(self) -> str:
        """Qwen2AudioProcessor's default (ChatML with a default system turn), which transformers
        uses when the checkpoint's tokenizer files carry no template."""
        from transformers import Qwen2AudioProcessor

        return Qwen2AudioProcessor.default_chat_template.fget(None)

    def min_samples(self, feature_extractor) -> int:
        return int(feature_extractor.n_fft)

    def audio_features(self, feature_extractor, audios: Sequence) -> tuple[dict, list[int]]:
        fe = feature_extractor
        out = fe(
            list(audios),
            sampling_rate=fe.sampling_rate,
            return_attention_mask=True,
            padding="max_length",
            return_tensors="pt",
        )
        mask = out["attention_mask"]
        counts = [encoder_output_length(int(n)) for n in mask.sum(-1).tolist()]
        return {"input_features": out["input_features"], "feature_attention_mask": mask}, counts

    def num_audio_tokens(self, num_samples: int, feature_extractor) -> int:
        fe = feature_extractor
        frames = min(-(-num_samples // fe.hop_length), fe.nb_max_frames)
        return encoder_output_length(frames)

    def audio_span(self, tokenizer, audio_token_id: int, count: int) -> list[int]:
        unk = tokenizer.unk_token_id
        ends = [tokenizer.convert_tokens_to_ids(t) for t in (AUDIO_BOS, AUDIO_EOS)]
        if any(i is None or i == unk for i in ends):
            return [int(audio_token_id)] * count
        return [ends[0]] + [int(audio_token_id)] * count + [ends[1]]

    def audio_encoder_outputs(self, model, audio_inputs: dict):
        """As ``Qwen2AudioModel.forward`` calls the tower: padded frames masked out of attention
        (so through the encoder output cache and window crop when installed)."""
        import torch
        from transformers.masking_utils import create_bidirectional_mask

        tower = _plain_model(model).model.audio_tower
        features = audio_inputs["input_features"].to(tower.device, tower.dtype)
        mask = audio_inputs["feature_attention_mask"].to(tower.device)
        lengths, _ = tower._get_feat_extract_output_lengths(mask.sum(-1))
        width = (features.shape[-1] - 2) // 2 + 1
        valid = (torch.arange(width, device=tower.device)[None, :] < lengths[:, None]).long()
        dummy = torch.zeros((features.shape[0], width, 1), dtype=features.dtype, device=tower.device)
        attention = create_bidirectional_mask(config=tower.config, inputs_embeds=dummy, attention_mask=valid)
        return tower(features, attention_mask=attention).last_hidden_state

    def install_encoder_cache(self, model, max_items: int | None = None) -> Callable[[], None]:
        from loralab.speech.backbones.qwen2audio_window import WindowCrop

        tower = model.model.audio_tower
        with _INSTALLING:
            cache = tower.forward
            if not isinstance(cache, EncoderOutputCache):
                # Clips not yet cached are encoded over their own frames, not the 30 s window (the same
                # embeddings; the crop stands aside where it would not be exact: see WindowCrop.exact).
                cache = EncoderOutputCache(tower, max_items, compute=WindowCrop(tower, tower.forward))
                cache.replaced = tower.__dict__.get("forward")  # None: the class's own forward
                tower.forward = cache
            cache.installers += 1
        released = []

        def restore() -> None:
            with _INSTALLING:
                if released:
                    return
                released.append(True)
                cache.installers -= 1
                if cache.installers == 0 and tower.__dict__.get("forward") is cache:
                    if cache.replaced is None:
                        del tower.forward
                    else:
                        tower.forward = cache.replaced

        return restore
