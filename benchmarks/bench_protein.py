"""Protein training throughput (proteins/s): batched vs a batch-size-1 baseline, same run.

Both go through the shared trainer (``loralab.engine.trainer.run_training``) with the
protein plug-in (``loralab.protein.system.build_parts``). Throughput is read from the
run's step events (``training.log_every=1``): proteins between the first and the last
step event over the time between them, so start-up (the first step, CUDA kernels' first
use) and checkpoint writing are not counted.

CPU figure (always): a tiny random Qwen2 backbone (hidden 64, 2 layers) on the real
structures of MDAnalysisTests (``dssp/``, ~40 training chains through ``protein
prepare``), windows of 128 residues; batch 8 vs batch 1, runs interleaved, median of
``--repeats``. Ratio = proteins/s batched / batch-1.

GPU figures (CUDA only; skipped with the reason otherwise): a Qwen2.5-0.5B-sized backbone
(the published Qwen2Config dimensions, random bf16 weights) with the preset
``qwen2.5-0.5b`` (LoRA r=8 on q,k,v,o,gate,up,down, pair head 128/256, 64-bin distogram,
bf16 autocast, gradient checkpointing) on synthetic chains whose lengths follow the
user's data (normal, mean 200, sd 45, clipped to 60-256): batch 8 (the preset) vs batch
1. Target >= 50 proteins/s; the user's original code did ~5 (batch 1, 1.6 s per 8). Beside
them the real-scale preset ``protein/qwen2.5-0.5b-promod3`` (bidirectional context, 8-block
pair trunk, 256-residue crops): proteins/s and peak memory, to set against ``loralab
estimate protein/qwen2.5-0.5b-promod3`` (README).
Context mechanism (CPU, same run, same data and tiny backbone, batch 8): the old causal
backbone with the pair MLP vs the whole-sequence context of the ``protein/cpu`` preset
(bidirectional attention mask + a 4-block 2D-convolution pair trunk), and the bidirectional
mask alone; proteins/s and CPU seconds per protein, median of ``--repeats``.

Writes ``benchmarks/results/protein.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_GPU_PROTEINS_PER_S = 50.0
USER_RUN_PROTEINS_PER_S = 5.0


def step_throughput(run_dir: Path, batch_size: int) -> dict:
    """Proteins/s between the first and the last step event (log_every=1), and peak memory."""
    from loralab.engine.events import read_events

    steps = [e for e in read_events(run_dir) if e["event"] == "step"]
    if len(steps) < 2:
        raise RuntimeError(f"{run_dir}: need at least 2 logged steps, got {len(steps)}")
    seconds = steps[-1]["time"] - steps[0]["time"]
    # The data sizes used here divide into whole batches, so every timed step holds batch_size.
    proteins = batch_size * (len(steps) - 1)
    return {
        "proteins_per_s": round(proteins / seconds, 3),
        "steps_timed": len(steps) - 1,
        "seconds": round(seconds, 3),
        "peak_memory_gb": steps[-1].get("peak_memory_gb"),
    }


def train_once(cfg, train_examples=None) -> dict:
    from loralab.engine.setup import make_accelerator
    from loralab.engine.trainer import run_training
    from loralab.protein.system import build_parts

    accelerator, runtime = make_accelerator(cfg)
    parts = build_parts(cfg, runtime, train_examples=train_examples)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run_dir = run_training(cfg, parts, accelerator=accelerator, runtime=runtime)
    result = step_throughput(run_dir, cfg.training.batch_size)
    result.update(wall_s=round(time.perf_counter() - wall0, 2), cpu_s=round(time.process_time() - cpu0, 2))
    result["proteins_trained"] = len(parts.train_dataset) * cfg.training.epochs
    del parts
    return result


def cpu_bench(work: Path, repeats: int) -> dict:
    from loralab.config import load_config
    from loralab.errors import DataError
    from loralab.protein.prepare import mdanalysis_test_data, prepare_structures
    from loralab.protein.tiny import build_tiny_backbone

    try:
        data = mdanalysis_test_data()
    except DataError as e:
        return {"skipped": str(e)}
    dataset = prepare_structures(data / "dssp", work / "ds", max_length=400, seed=0, progress=False)
    backbone = build_tiny_backbone(work / "tiny", hidden_size=64, num_layers=2)
    runs: dict[int, list[dict]] = {8: [], 1: []}
    for repeat in range(repeats):
        for batch_size in (8, 1):
            cfg = load_config("small", [
                f"model.name_or_path={backbone}", f"protein.dataset_dir={dataset}",
                f"output_dir={work / f'cpu_b{batch_size}_{repeat}'}", "protein.max_length=128",
                "training.epochs=2", f"training.batch_size={batch_size}", "training.gradient_accumulation=1",
                "training.log_every=1", "evaluation.every_epoch=false",
            ])  # fmt: skip
            runs[batch_size].append(train_once(cfg))
            print(
                f"cpu batch {batch_size} (repeat {repeat + 1}): {runs[batch_size][-1]['proteins_per_s']} proteins/s"
            )
    context = context_bench(work, dataset, backbone, repeats)
    median = {b: round(statistics.median(r["proteins_per_s"] for r in rs), 3) for b, rs in runs.items()}
    # CPU seconds per protein (all threads, the whole run) is steadier than wall time on a shared machine.
    cpu_per_protein = {
        b: round(statistics.median(r["cpu_s"] / r["proteins_trained"] for r in rs), 4)
        for b, rs in runs.items()
    }
    return {
        "model": "tiny random Qwen2 (hidden 64, 2 layers), LoRA r=8, pair head 64/128, 64-bin distogram",
        "data": "MDAnalysisTests dssp/ real chains (train split), windows of 128 residues",
        "torch_threads": __import__("torch").get_num_threads(),
        "batched": {
            "batch_size": 8,
            "proteins_per_s": median[8],
            "cpu_s_per_protein": cpu_per_protein[8],
            "runs": runs[8],
        },
        "baseline_batch_1": {
            "batch_size": 1,
            "proteins_per_s": median[1],
            "cpu_s_per_protein": cpu_per_protein[1],
            "runs": runs[1],
        },
        "ratio": round(median[8] / median[1], 2),
        "context": context,
    }


CONTEXT_VARIANTS = {
    "causal (old)": ["protein_head.context=causal", "protein_head.trunk_blocks=0"],
    "bidirectional": ["protein_head.context=bidirectional", "protein_head.trunk_blocks=0"],
    "bidirectional + trunk (new, protein/cpu)": [
        "protein_head.context=bidirectional", "protein_head.trunk_blocks=4", "protein_head.trunk_channels=32",
    ],
}  # fmt: skip


def context_bench(work: Path, dataset: Path, backbone: Path, repeats: int) -> dict:
    """Training throughput of each context mechanism (module doc), runs interleaved."""
    from loralab.config import load_config

    runs: dict[str, list[dict]] = {name: [] for name in CONTEXT_VARIANTS}
    for repeat in range(repeats):
        for k, (name, overrides) in enumerate(CONTEXT_VARIANTS.items()):
            cfg = load_config("small", [
                f"model.name_or_path={backbone}", f"protein.dataset_dir={dataset}",
                f"output_dir={work / f'ctx{k}_{repeat}'}", "protein.max_length=128", "training.epochs=2",
                "training.batch_size=8", "training.gradient_accumulation=1", "training.log_every=1",
                "evaluation.every_epoch=false", *overrides,
            ])  # fmt: skip
            runs[name].append(train_once(cfg))
            print(f"cpu context {name} (repeat {repeat + 1}): {runs[name][-1]['proteins_per_s']} proteins/s")
    out = {
        name: {
            "proteins_per_s": round(statistics.median(r["proteins_per_s"] for r in rs), 3),
            "cpu_s_per_protein": round(statistics.median(r["cpu_s"] / r["proteins_trained"] for r in rs), 4),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    old, new = out["causal (old)"], out["bidirectional + trunk (new, protein/cpu)"]
    out["new_vs_old_throughput"] = round(new["proteins_per_s"] / old["proteins_per_s"], 2)
    return out


def synthetic_chains(n: int, seed: int = 0) -> list:
    """Chains with the user's length distribution; C-alpha random walks with 3.8 A steps."""
    from loralab.protein.dataset import ProteinExample

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.normal(200, 45, n), 60, 256).astype(int)
    out = []
    for i, length in enumerate(lengths):
        steps = rng.normal(size=(length, 3))
        steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
        coords = np.cumsum(steps, axis=0).astype(np.float32)
        out.append(
            ProteinExample(f"synthetic{i}", rng.integers(0, 20, length), coords, np.ones(length, bool))
        )
    return out


def gpu_bench(work: Path, proteins: int, baseline_proteins: int) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device (torch.cuda.is_available() is False)"}
    from loralab.config import load_config
    from loralab.protein.tiny import build_random_backbone, known_backbone_config

    backbone = build_random_backbone(
        work / "qwen05b", known_backbone_config("Qwen/Qwen2.5-0.5B"), torch.bfloat16
    )
    result = {
        "device": torch.cuda.get_device_name(0),
        "model": "Qwen2.5-0.5B dimensions, random bf16 weights",
    }
    runs = (("batched", "qwen2.5-0.5b", 8, proteins), ("baseline_batch_1", "qwen2.5-0.5b", 1, baseline_proteins),
            ("promod3_preset", "protein/qwen2.5-0.5b-promod3", 8, proteins))  # fmt: skip
    for name, preset, batch_size, n in runs:
        torch.cuda.reset_peak_memory_stats()
        cfg = load_config(preset, [
            f"model.name_or_path={backbone}", f"output_dir={work / f'gpu_{name}'}", "training.epochs=1",
            f"training.batch_size={batch_size}", "training.gradient_accumulation=1", "training.log_every=1",
            "evaluation.every_epoch=false",
        ])  # fmt: skip
        run = train_once(cfg, synthetic_chains(n))
        run.update(
            batch_size=batch_size,
            proteins=n,
            peak_memory_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2),
        )
        result[name] = run
        print(f"gpu {name}: {run['proteins_per_s']} proteins/s, peak {run['peak_memory_gb']} GB")
        torch.cuda.empty_cache()
    result["ratio"] = round(
        result["batched"]["proteins_per_s"] / result["baseline_batch_1"]["proteins_per_s"], 2
    )
    result["target_proteins_per_s"] = TARGET_GPU_PROTEINS_PER_S
    result["meets_target"] = result["batched"]["proteins_per_s"] >= TARGET_GPU_PROTEINS_PER_S
    result["vs_user_run"] = round(result["batched"]["proteins_per_s"] / USER_RUN_PROTEINS_PER_S, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="CPU runs per batch size (median)")
    parser.add_argument("--gpu-proteins", type=int, default=640, help="synthetic chains, batched GPU run")
    parser.add_argument("--gpu-baseline-proteins", type=int, default=160, help="chains, batch-1 GPU run")
    parser.add_argument("--skip-cpu", action="store_true", help="GPU part only")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="bench_protein_") as tmp:
        work = Path(tmp)
        cpu = {"skipped": "--skip-cpu"} if args.skip_cpu else cpu_bench(work, args.repeats)
        gpu = gpu_bench(work, args.gpu_proteins, args.gpu_baseline_proteins)
    ratio = gpu.get("ratio", cpu.get("ratio"))
    parts = []
    if "ratio" in cpu:
        parts.append(f"CPU tiny: {cpu['batched']['proteins_per_s']} vs {cpu['baseline_batch_1']['proteins_per_s']} "
                     f"proteins/s batch 8 vs 1 (x{cpu['ratio']})")  # fmt: skip
        ctx = cpu["context"]
        parts.append(f"CPU tiny context: bidirectional + trunk {ctx['bidirectional + trunk (new, protein/cpu)']['proteins_per_s']}"
                     f" vs causal {ctx['causal (old)']['proteins_per_s']} proteins/s (x{ctx['new_vs_old_throughput']})")  # fmt: skip
    if "ratio" in gpu:
        parts.append(f"GPU 0.5B: {gpu['batched']['proteins_per_s']} proteins/s batch 8 (target >= 50), "
                     f"batch 1 {gpu['baseline_batch_1']['proteins_per_s']} (x{gpu['ratio']})")  # fmt: skip
    else:
        parts.append(f"GPU skipped: {gpu['skipped']}")
    summary = "; ".join(parts)
    result = {"name": "protein", "load_average_1min": round(os.getloadavg()[0], 2), "cpu": cpu, "gpu": gpu,
              "ratio": ratio, "summary": summary}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "protein.json").write_text(json.dumps(result, indent=2) + "\n")
    print(summary)
    print(f"wrote {RESULTS / 'protein.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
