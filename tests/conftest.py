"""Shared fixtures: a tiny random Phi-4-multimodal and a small synthetic corpus.

Both are built once per test session in a temporary folder: no network, no downloads.
"""

from __future__ import annotations

import os

import pytest

# Two pytest workers on two cores: one BLAS/OpenMP thread each avoids oversubscription,
# which made MDS and SMACOF 10-20x slower on a busy machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite computes in fp32 whatever the CPU (its figures are checked against independent fp32
# computations, and CI machines differ); tests of the bf16 path set LORALAB_CPU_BF16=1 themselves.
os.environ.setdefault("LORALAB_CPU_BF16", "0")

import torch  # noqa: E402  (after the thread variables, which torch reads at import)

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A native-layout tiny Phi4MultimodalForCausalLM folder with tokenizer and feature extractor."""
    from loralab.speech.model.tiny import build_tiny_phi4mm

    return build_tiny_phi4mm(tmp_path_factory.mktemp("tiny_phi4mm") / "model")


@pytest.fixture(scope="session")
def synth_corpus_dir(tmp_path_factory):
    """40 synthetic utterances (espeak-ng) in SpeechOcean762's original release layout."""
    from loralab.speech.data.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("synth") / "so"
    synthesize_corpus(out, n=40, seed=1)
    return out


@pytest.fixture(scope="session")
def synth_manifest_dir(synth_corpus_dir, tmp_path_factory):
    """The synthetic corpus prepared into manifests (train.jsonl, test.jsonl, summary.json)."""
    from loralab.speech.data.prepare import prepare_speechocean762

    out = tmp_path_factory.mktemp("synth_manifest") / "manifest"
    prepare_speechocean762(synth_corpus_dir, out)
    return out


@pytest.fixture(scope="session")
def tiny_speech_adapter(tiny_model_dir, tmp_path_factory):
    """A random non-zero PEFT speech LoRA (r=8, alpha 16) for the tiny model."""
    from loralab.speech.model.tiny import build_tiny_speech_adapter

    return build_tiny_speech_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "speech-lora")


@pytest.fixture(scope="session")
def tiny_qwen2audio_dir(tmp_path_factory):
    """A tiny random Qwen2AudioForConditionalGeneration folder (Whisper feature extractor, ChatML)."""
    from loralab.speech.model.tiny_qwen2audio import build_tiny_qwen2audio

    return build_tiny_qwen2audio(tmp_path_factory.mktemp("tiny_qwen2audio") / "model")
