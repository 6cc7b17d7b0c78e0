"""Training throughput of the shared engine on the speech system (samples/s, tokens/s).

Data: the espeak-ng synthetic corpus, each utterance's audio re-timed (tiled speech, cropped)
to a duration drawn from SpeechOcean762's length distribution (2-20 s, mean ~5 s), so that
lengths vary as in the real corpus.

CPU figure (always): the tiny random Phi-4-multimodal, one epoch with the engine's
length-grouped batches; baseline in the same run: the same epoch with randomly composed
batches (``training.group_by_length=false``), runs interleaved, median of ``--repeats``. Ratio =
samples/s grouped / random; the padding share of both plans and CPU time per sample (steadier
than wall time on a shared machine) are reported too.

GPU figure (CUDA only; skipped with the reason otherwise): the full-size Phi-4-multimodal
architecture (``Phi4MultimodalConfig()`` defaults, random bf16 weights, vision encoder dropped;
the tiny tokenizer with the model's 200k vocabulary left as is) for paper_r64 and
pretrained_r320 (a rank-320 adapter of the same shapes; B != 0 changes no cost) at batch 8,
accumulation 8: samples/s, tokens/s, peak memory and the time of one epoch of SpeechOcean762
(2,500 utterances x 2 tasks). Targets on one H100: peak <= 24 GB, epoch <= 5 minutes.
Writes ``benchmarks/results/train.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SO762_UTTERANCES = 2500
TARGET_PEAK_GB, TARGET_EPOCH_S = 24.0, 300.0


def so762_durations(n: int, seed: int) -> np.ndarray:
    """Log-normal durations (median 4.5 s, mean ~5 s), clipped to SpeechOcean762's 2-20 s."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(math.log(4.5), 0.45, n), 2.0, 20.0)


def retimed_manifest(source: Path, out: Path, n: int, seed: int = 0) -> Path:
    """A manifest of ``n`` utterances whose audio lengths follow :func:`so762_durations`."""
    import soundfile as sf

    from loralab.speech.data.records import read_manifest, write_manifest

    records = read_manifest(source, "train")[:n]
    durations = so762_durations(len(records), seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    retimed = []
    for record, seconds in zip(records, durations):
        audio, rate = sf.read(record.audio_path, dtype="float32")
        gap = np.zeros(int(0.2 * rate), dtype=np.float32)
        unit = np.concatenate([audio, gap])
        target = int(seconds * rate)
        tiled = np.tile(unit, target // len(unit) + 1)[:target]
        path = out / "audio" / f"{record.id}.wav"
        sf.write(str(path), tiled, rate, subtype="PCM_16")
        retimed.append(dataclasses.replace(record, audio_path=str(path), duration=target / rate))
    write_manifest(retimed, out, "train")
    return out


def throughput(run_dir: Path) -> dict:
    """Samples/s and tokens/s over the whole run: from the 'start' event to the last step.

    Each step event holds the rates of its own window (log_every=1); times come from the
    events' timestamps, so checkpointing after the last step is not counted.
    """
    from loralab.engine.events import read_events

    events = read_events(run_dir)
    start = [e for e in events if e["event"] == "start"][-1]["time"]
    steps = [e for e in events if e["event"] == "step"]
    if not steps:
        raise RuntimeError(f"{run_dir}: no step events to measure")
    samples = tokens = 0.0
    previous = start
    for e in steps:
        dt = e["time"] - previous
        samples, tokens, previous = (
            samples + e["samples_per_s"] * dt,
            tokens + e["tokens_per_s"] * dt,
            e["time"],
        )
    seconds = steps[-1]["time"] - start
    return {
        "samples": round(samples),
        "tokens": round(tokens),
        "samples_per_s": round(samples / seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "steps": len(steps),
        "seconds": round(seconds, 2),
        "peak_memory_gb": round(max(e["peak_memory_gb"] or 0 for e in steps), 2),
    }


def _train_once(cfg, parts, accelerator, runtime) -> dict:
    from loralab.engine.sampler import epoch_plan, padding_fraction
    from loralab.engine.trainer import run_training

    start, cpu_start = time.perf_counter(), time.process_time()
    run_dir = run_training(cfg, parts, accelerator=accelerator, runtime=runtime)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    plan = epoch_plan(
        parts.lengths, cfg.training.batch_size, cfg.training.seed, 1, cfg.training.group_by_length
    )
    measured = throughput(run_dir)
    return {
        **measured,
        "wall_s": round(wall, 1),
        # CPU time of the whole run_training call (start-up and the epoch's checkpoint included).
        "samples_per_cpu_s": round(measured["samples"] / cpu, 3),
        "tokens_per_cpu_s": round(measured["tokens"] / cpu, 1),
        "padding_fraction": round(padding_fraction(plan.batches, parts.lengths), 3),
    }


def cpu_bench(work: Path, manifest: Path, utterances: int, repeats: int) -> dict:
    import torch

    from loralab.config import load_config
    from loralab.engine.setup import make_accelerator
    from loralab.speech.model.tiny import build_tiny_phi4mm
    from loralab.speech.system import build_parts

    # One thread: on a shared 2-core machine OpenMP workers spin-wait and inflate both wall and
    # CPU time unevenly; one thread makes the two variants' costs comparable.
    torch.set_num_threads(1)
    model_dir = build_tiny_phi4mm(work / "tiny")
    overrides = [
        f"model.name_or_path={model_dir}",
        f"speech.manifest_dir={manifest}",
        f"speech.limit={utterances}",
        "speech.prompt_style=short",
        "lora.rank=8",
        "lora.alpha=16",
        "training.epochs=1",
        "training.batch_size=8",
        "training.gradient_accumulation=1",
        "training.log_every=1",
    ]
    cfg = load_config("paper_r64", overrides)
    accelerator, runtime = make_accelerator(cfg)
    parts = build_parts(cfg, runtime)
    # A short warm-up run first, so neither measured run pays for first-call costs.
    warm = dataclasses.replace(
        cfg, output_dir=str(work / "cpu_warmup"), training=dataclasses.replace(cfg.training, max_steps=2)
    )
    _train_once(warm, parts, accelerator, runtime)
    # Interleaved repeats (random, grouped, random, grouped, ...): a shared machine's load drifts,
    # and the median of alternating runs keeps that drift out of the ratio.
    runs: dict[str, list[dict]] = {"random": [], "grouped": []}
    for repeat in range(repeats):
        for grouped in (False, True):
            key = "grouped" if grouped else "random"
            run_cfg = dataclasses.replace(
                cfg,
                output_dir=str(work / f"cpu_{key}_{repeat}"),
                training=dataclasses.replace(cfg.training, group_by_length=grouped),
            )
            runs[key].append(_train_once(run_cfg, parts, accelerator, runtime))
            print(f"cpu {key} #{repeat + 1}: {runs[key][-1]}")
    results = {}
    for key, measured in runs.items():
        results[key] = {
            "samples_per_cpu_s": statistics.median(r["samples_per_cpu_s"] for r in measured),
            "tokens_per_cpu_s": statistics.median(r["tokens_per_cpu_s"] for r in measured),
            "samples_per_s": statistics.median(r["samples_per_s"] for r in measured),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in measured),
            "padding_fraction": measured[0]["padding_fraction"],
            "runs": measured,
        }
    grouped, random_order = results["grouped"], results["random"]
    return {
        "model": "tiny random Phi-4-multimodal (hidden 64, 2 layers)",
        "torch_threads": 1,
        "examples": len(parts.train_dataset),
        "batch_size": 8,
        **results,
        # Headline ratio on CPU time: with one thread it equals wall time on an idle machine, and
        # unlike wall time it does not follow the other jobs of a shared machine.
        "ratio": round(grouped["samples_per_cpu_s"] / random_order["samples_per_cpu_s"], 2),
        "ratio_basis": "samples per CPU-second, median of interleaved runs",
        "wall_ratio": round(grouped["samples_per_s"] / random_order["samples_per_s"], 2),
    }


def full_size_parts(preset: str, manifest: Path, work: Path, utterances: int, dry_run: bool = False):
    """SystemParts of the full-size architecture with random bf16 weights (CUDA).

    ``dry_run``: the same code path with the tiny architecture on CPU (checks this script
    on machines without a GPU; its numbers mean nothing)."""
    import torch
    from transformers import Phi4MultimodalConfig, Phi4MultimodalFeatureExtractor, Phi4MultimodalForCausalLM

    from loralab.config import load_config
    from loralab.engine.setup import make_accelerator
    from loralab.speech import system as speech_system
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.load import drop_vision_encoder
    from loralab.speech.model.tiny import AUDIO_TOKEN, IMAGE_TOKEN, train_tiny_tokenizer
    from loralab.speech.system import Injected

    overrides = [
        f"speech.manifest_dir={manifest}",
        f"speech.limit={utterances}",
        "training.log_every=1",
        "training.epochs=1",
        f"output_dir={work / preset}",
        "lora.init=fresh",  # pretrained_r320: same shapes as Microsoft's adapter; values change no cost
    ]
    cfg = load_config(preset, overrides)
    accelerator, runtime = make_accelerator(cfg)
    tokenizer = train_tiny_tokenizer()
    if dry_run:
        from loralab.speech.model.tiny import tiny_config

        config = tiny_config(tokenizer)
    else:
        config = Phi4MultimodalConfig()
    config.audio_config.audio_token_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
    config.vision_config.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config.pad_token_id = tokenizer.pad_token_id
    # Built directly on the GPU in bf16: initialising on 'meta' and materialising would leave the
    # rotary buffers uninitialised; random init of 5.6B values on an H100 takes seconds.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(runtime.weight_dtype)
    try:
        with torch.device(runtime.device):
            base = Phi4MultimodalForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    drop_vision_encoder(base)
    base.requires_grad_(False)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    # The system's own build_parts on the injected model: the LoRA, fp32 trainables and
    # activation checkpointing of the preset, the collator and the lengths, as in a real run.
    injected = Injected(
        base_model=base,
        backbone=backbone_named("phi4mm"),
        tokenizer=tokenizer,
        feature_extractor=Phi4MultimodalFeatureExtractor(),
    )
    parts = speech_system.build_parts(cfg, runtime, injected)
    return cfg, parts, accelerator, runtime


def gpu_bench(work: Path, manifest: Path, max_steps: int, utterances: int, dry_run: bool = False) -> dict:
    import torch

    out = {}
    for preset in ("paper_r64", "pretrained_r320"):
        cfg, parts, accelerator, runtime = full_size_parts(preset, manifest, work, utterances, dry_run)
        cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, max_steps=max_steps))
        if not dry_run:
            torch.cuda.reset_peak_memory_stats()
        result = _train_once(cfg, parts, accelerator, runtime)
        result["mean_example_tokens"] = round(sum(parts.lengths) / len(parts.lengths), 1)
        if not dry_run:
            result["peak_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 2)
        result["epoch_s"] = round(2 * SO762_UTTERANCES / result["samples_per_s"], 1)
        result["params"] = {k: dataclasses.asdict(v) for k, v in parts.param_groups.items()}
        result["meets_targets"] = (
            result["peak_memory_gb"] <= TARGET_PEAK_GB and result["epoch_s"] <= TARGET_EPOCH_S
        )
        print(f"gpu {preset}: {result}")
        out[preset] = result
        del parts
        if not dry_run:
            torch.cuda.empty_cache()
    out["device"] = "cpu (dry run, tiny architecture)" if dry_run else torch.cuda.get_device_name(0)
    out["batch_size"], out["gradient_accumulation"] = 8, 8
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--utterances", type=int, default=32, help="utterances for the CPU figure (x 2 tasks)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="alternating CPU runs per variant (median)")
    parser.add_argument("--gpu-utterances", type=int, default=160, help="utterances for the GPU figure")
    parser.add_argument("--gpu-steps", type=int, default=4, help="optimizer steps per GPU preset")
    parser.add_argument(
        "--dry-run-gpu-path",
        action="store_true",
        help="only run the GPU code path with the tiny architecture on CPU (a check of this script)",
    )
    args = parser.parse_args(argv)

    import torch

    from loralab.errors import LoralabError
    from loralab.speech.data.prepare import prepare_speechocean762
    from loralab.speech.data.synth import synthesize_corpus

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result: dict = {"name": "train", "load_average_1min": round(os.getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        gpu = torch.cuda.is_available() or args.dry_run_gpu_path
        # The synthetic corpus splits into train and test: make enough for the train split.
        n_source = 2 * max(args.utterances, args.gpu_utterances if gpu else 0)
        try:
            synthesize_corpus(work / "so", n=n_source, seed=0)
        except LoralabError as e:
            print(f"skipped: {e}")
            return 0
        prepare_speechocean762(work / "so", work / "prepared", progress=False)
        manifest = retimed_manifest(work / "prepared", work / "manifest", n_source)

        if args.dry_run_gpu_path:
            print(json.dumps(gpu_bench(work, manifest, 2, 8, dry_run=True), indent=2))
            return 0
        result["cpu"] = cpu_bench(work, manifest, args.utterances, args.repeats)
        result["ratio"] = result["cpu"]["ratio"]
        if torch.cuda.is_available():
            result["gpu"] = gpu_bench(work, manifest, args.gpu_steps, args.gpu_utterances)
        else:
            reason = "no CUDA device (torch.cuda.is_available() is False)"
            print(f"gpu: skipped: {reason}")
            result["gpu"] = {"skipped": reason}

    cpu = result["cpu"]
    summary = (
        f"tiny CPU, samples per CPU-second: {cpu['grouped']['samples_per_cpu_s']:.1f} length-grouped vs "
        f"{cpu['random']['samples_per_cpu_s']:.1f} random (padding {cpu['grouped']['padding_fraction']:.0%} vs "
        f"{cpu['random']['padding_fraction']:.0%}); wall samples/s {cpu['grouped']['samples_per_s']:.1f} vs "
        f"{cpu['random']['samples_per_s']:.1f} (load {result['load_average_1min']})"
    )
    if "skipped" not in result["gpu"]:
        gpu = result["gpu"]
        summary += "; " + ", ".join(
            f"{p}: {gpu[p]['samples_per_s']} samples/s, peak {gpu[p]['peak_memory_gb']} GB, "
            f"epoch {gpu[p]['epoch_s']:.0f} s"
            for p in ("paper_r64", "pretrained_r320")
        )
    result["summary"] = summary
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"ratio (length-grouped / random, samples per CPU-second): {result['ratio']}")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
