"""Evaluation throughput: batched generation vs one utterance at a time.

CPU figure (always): the tiny random Phi-4-multimodal, both tasks (APA and MDD, the paper's
prompts) for utterances whose audio lengths follow SpeechOcean762's distribution (2-20 s,
median 4.5 s). Figure: ``BatchedGenerator`` at batch 16 (longest-first batches, left-padded,
KV cache); baseline in the same run: the same generator at batch 1. Random weights stop at
random (or never), so every answer is generated to a fixed length (APA 24, MDD 96 new tokens,
about what the trained model writes) and both runs do the same decoding work. Ratio =
utterances/s batched / one at a time.

GPU figure (CUDA only; skipped with the reason otherwise): the full-size Phi-4-multimodal
architecture (``Phi4MultimodalConfig()`` defaults, random bf16 weights, SDPA, vision encoder
dropped; the tiny tokenizer, whose paper prompts are longer in tokens than Phi-4's own, so the
prefill cost is overstated) generating both answers for the 2,500 utterances of the
SpeechOcean762 test set at fixed answer lengths. Target on one H100: <= 5 minutes.
Writes ``benchmarks/results/eval.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SO762_TEST_UTTERANCES = 2500
TARGET_GPU_SECONDS = 300.0
ANSWER_TOKENS = {"apa": 24, "mdd": 96}


def so762_durations(n: int, seed: int) -> np.ndarray:
    """Log-normal durations (median 4.5 s, mean ~5 s), clipped to SpeechOcean762's 2-20 s."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(math.log(4.5), 0.45, n), 2.0, 20.0)


def fake_utterances(n: int, seed: int = 0):
    """Records (id, duration, audio_path) and their waveforms (quiet noise; content is irrelevant)."""
    rng = np.random.default_rng(seed)
    records, audio = [], {}
    for i, seconds in enumerate(so762_durations(n, seed)):
        uid = f"utt{i:05d}"
        records.append(SimpleNamespace(id=uid, duration=float(seconds), audio_path=uid))
        audio[uid] = (0.05 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    return records, audio


def throughput(inference, records, audio, batch_size: int) -> dict:
    """Utterances/s (both tasks each) of one generation pass."""
    from loralab.speech.inference.generate import BatchedGenerator

    answers = []
    sync = _cuda_sync(inference)
    with BatchedGenerator(
        inference,
        prompt_style="paper",
        batch_size=batch_size,
        max_new_tokens=ANSWER_TOKENS,
        load_audio=audio.__getitem__,
        fixed_length=True,
    ) as gen:
        sync()
        start = time.perf_counter()
        gen.run(records, ["apa", "mdd"], lambda r, t: True, answers.extend)
        sync()
        seconds = time.perf_counter() - start
    assert len(answers) == 2 * len(records)
    tokens = sum(a.new_tokens for a in answers)
    return {
        "batch_size": batch_size,
        "utterances": len(records),
        "seconds": round(seconds, 3),
        "utterances_per_s": round(len(records) / seconds, 3),
        "new_tokens_per_s": round(tokens / seconds, 1),
    }


def _cuda_sync(inference):
    import torch

    device = next(inference.model.parameters()).device
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def cpu_figure(n: int, batch_size: int) -> dict:
    import torch

    from loralab.speech.model.load import load_for_inference
    from loralab.speech.model.tiny import build_tiny_phi4mm

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_phi4mm(Path(tmp) / "tiny")
        inference = load_for_inference(model_dir, device="cpu")
        records, audio = fake_utterances(n)
        throughput(inference, records[:2], audio, batch_size)  # warm-up (allocations, kernels)
        batched = throughput(inference, records, audio, batch_size)
        single = throughput(inference, records, audio, 1)
    return {
        "model": "tiny random Phi-4-multimodal (CPU)",
        "torch_threads": torch.get_num_threads(),
        "answer_tokens": ANSWER_TOKENS,
        "batched": batched,
        "one_at_a_time": single,
        "ratio": round(batched["utterances_per_s"] / single["utterances_per_s"], 2),
    }


def full_size_inference(tokenizer_dir: Path, config=None, device: str = "cuda"):
    """Full-size Phi-4-multimodal architecture (or ``config``) with random bf16 weights on ``device``."""
    import torch
    from transformers import (
        AutoTokenizer,
        Phi4MultimodalConfig,
        Phi4MultimodalFeatureExtractor,
        Phi4MultimodalForCausalLM,
    )

    from loralab.speech.chat_format import answer_end_token_ids
    from loralab.speech.model.load import InferenceModel, drop_vision_encoder

    config = config or Phi4MultimodalConfig()
    with torch.device(device):
        model = Phi4MultimodalForCausalLM._from_config(
            config,
            dtype=torch.bfloat16,
            attn_implementation={"": "sdpa", "audio_config": "sdpa", "vision_config": "sdpa"},
        )
    drop_vision_encoder(model)
    model.eval().requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return InferenceModel(
        model=model,
        tokenizer=tokenizer,
        feature_extractor=Phi4MultimodalFeatureExtractor.from_pretrained(tokenizer_dir),
        audio_token_id=int(config.audio_config.audio_token_id),
        end_token_ids=answer_end_token_ids(tokenizer),
        description="full-size Phi-4-multimodal, random bf16 weights",
    )


def gpu_figure(n: int, batch_size: int) -> dict:
    import torch

    from loralab.speech.model.tiny import build_tiny_phi4mm

    if not torch.cuda.is_available():
        reason = "no CUDA device: full-size GPU figure skipped"
        print(reason)
        return {"skipped": reason}
    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir = build_tiny_phi4mm(Path(tmp) / "tiny")
        inference = full_size_inference(tiny_dir)
        params = sum(p.numel() for p in inference.model.parameters())
        records, audio = fake_utterances(n, seed=1)
        throughput(inference, records[:batch_size], audio, batch_size)  # warm-up
        torch.cuda.reset_peak_memory_stats()
        result = throughput(inference, records, audio, batch_size)
        peak = torch.cuda.max_memory_allocated() / 2**30
    seconds_2500 = result["seconds"] * SO762_TEST_UTTERANCES / n
    return {
        "model": f"full-size Phi-4-multimodal architecture, random bf16 weights ({params / 1e9:.2f}B parameters)",
        "device": torch.cuda.get_device_name(),
        "answer_tokens": ANSWER_TOKENS,
        **result,
        "peak_memory_gb": round(peak, 2),
        "seconds_for_2500_utterances": round(seconds_2500, 1),
        "target_seconds": TARGET_GPU_SECONDS,
        "meets_target": seconds_2500 <= TARGET_GPU_SECONDS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=32, help="CPU figure: utterances (default 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="CPU figure: batch size (default 16)")
    parser.add_argument("--gpu-utterances", type=int, default=SO762_TEST_UTTERANCES)
    parser.add_argument("--gpu-batch-size", type=int, default=64)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: the tiny model's matrices are too small to share out, "
        "and on a busy 2-core machine more threads spin against each other, ~10x slower measured)",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    cpu = cpu_figure(args.utterances, args.batch_size)
    b, s = cpu["batched"], cpu["one_at_a_time"]
    print(
        f"CPU tiny model, {args.utterances} utterances x 2 tasks: batched (batch {args.batch_size}) "
        f"{b['utterances_per_s']:.2f} utt/s vs one at a time {s['utterances_per_s']:.2f} utt/s: "
        f"ratio {cpu['ratio']:.2f}x"
    )
    gpu = gpu_figure(args.gpu_utterances, args.gpu_batch_size)
    if "skipped" not in gpu:
        print(
            f"GPU {gpu['device']}: {gpu['utterances']} utterances x 2 tasks in {gpu['seconds']:.0f} s "
            f"({gpu['utterances_per_s']:.1f} utt/s, peak {gpu['peak_memory_gb']:.1f} GB); 2,500 utterances: "
            f"{gpu['seconds_for_2500_utterances']:.0f} s (target <= {TARGET_GPU_SECONDS:.0f} s)"
        )
    summary = f"batched {b['utterances_per_s']:.2f} vs single {s['utterances_per_s']:.2f} utt/s (tiny, CPU)"
    if "skipped" not in gpu:
        summary += f"; full size 2,500 utt x 2 tasks: {gpu['seconds_for_2500_utterances']:.0f} s"
    result = {"name": "eval", "ratio": cpu["ratio"], "summary": summary, "cpu": cpu, "gpu": gpu}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
