"""bf16 against fp32 on this CPU, in one run: training (the demo's speech model and the protein
CPU preset) and evaluation answers (the demo's trained speech model, when ``make demo`` left one).

Training: the real models of ``make demo`` (Whisper tiny.en + SmolLM2-135M in Qwen2-Audio's
class, preset ``demo_qwen2audio``; SmolLM2's first layers under the ``protein/cpu`` preset),
the same batches for every variant, each variant built afresh (so each pays its own audio
encoder pass, as one demo epoch does), the variants interleaved and repeated; figure:
examples per second of the optimizer steps (forward, backward, AdamW). Variants:

* ``fp32_before``: what the demo ran before (fp32 weights, no autocast, SDPA attention);
* ``fp32``: fp32 with the demo's attention kernel now (eager: on a CPU, for sequences of a few
  hundred tokens, plain bf16/fp32 matrix products beat the fused SDPA kernel);
* ``bf16``: what ``training.mixed_precision: auto`` chooses on a bf16-capable CPU now (bf16
  frozen weights, bf16 autocast, fp32 trainables and optimizer state).

Ratios: bf16 over fp32 (precision alone) and bf16 over fp32_before (the demo's speed-up).
Evaluation (``--eval``): the demo model's test split through the evaluation's route in bf16 and
in fp32: the share of identical greedy APA answers, each aspect's PCC with the human labels
under both, and new tokens per second.

Writes ``benchmarks/results/precision.json`` with the machine (cores, load, bf16 capability).
Usage: ``python benchmarks/bench_precision.py [--steps 6] [--repeats 2] [--threads 1] [--eval]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = {  # name: (weights, autocast, attention)
    "fp32_before": ("fp32", None, "sdpa"),
    "fp32": ("fp32", None, "eager"),
    "bf16": ("bf16", "bf16", "eager"),
}


def _dtype(name):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, None: None}[name]


def _time_steps(parts, batches, autocast) -> dict:
    """Optimizer steps over ``batches``: examples/s (wall) and per CPU-second, the losses."""
    import torch

    from loralab.engine.precision import autocast_context

    model = parts.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    examples, losses = 0, []
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        with autocast_context("cpu", autocast):
            loss = parts.loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        examples += len(batch["ids"])
        losses.append(round(loss.item(), 4))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"examples_per_s": round(examples / wall, 3), "examples_per_cpu_s": round(examples / cpu, 3),
            "seconds": round(wall, 2), "losses": losses}  # fmt: skip


def speech_parts(variant: str):
    from loralab.config import load_config
    from loralab.demo.qwen2audio_demo import ensure_demo_qwen2audio
    from loralab.speech.system import build_parts

    weights, autocast, attention = VARIANTS[variant]
    cfg = load_config("demo_qwen2audio", [
        f"model.name_or_path={ensure_demo_qwen2audio()}", "speech.manifest_dir=demo_output/speech/manifest",
        # the GOP scorer's fit is not a training step: measured by the demo's own clock
        "speech.prompt_reference=phones", "speech.tasks=[apa,mdd]", "speech.task_shares=[]",
        f"model.attn_implementation={attention}",
    ])  # fmt: skip
    return build_parts(cfg, _runtime(weights, autocast))


def protein_parts(variant: str):
    from bench_protein import synthetic_chains
    from loralab.config import load_config
    from loralab.demo.smollm import ensure_smollm2_llama
    from loralab.protein.system import build_parts

    weights, autocast, attention = VARIANTS[variant]
    cfg = load_config("protein/cpu", [f"model.name_or_path={ensure_smollm2_llama()}",
                                      f"model.attn_implementation={attention}"])  # fmt: skip
    chains = synthetic_chains(64, seed=0)
    return build_parts(cfg, _runtime(weights, autocast), train_examples=chains, val_examples=chains[:4])


def _runtime(weights, autocast):
    import torch

    from loralab.engine.runtime import Runtime

    return Runtime(device=torch.device("cpu"), weight_dtype=_dtype(weights), autocast_dtype=_dtype(autocast))


def training_figure(name: str, build, batch_size: int, steps: int, repeats: int) -> dict:
    import torch

    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for repeat in range(repeats):
        order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
        for variant in order:
            torch.manual_seed(0)
            parts = build(variant)
            batches = [parts.collate([parts.train_dataset[i] for i in range(k * batch_size, (k + 1) * batch_size)])
                       for k in range(steps)]  # fmt: skip
            runs[variant].append(_time_steps(parts, batches, _dtype(VARIANTS[variant][1])))
            print(f"{name} {variant} #{repeat + 1}: {runs[variant][-1]}", flush=True)
            del parts, batches
    median = {v: statistics.median(r["examples_per_s"] for r in rs) for v, rs in runs.items()}
    median_cpu = {v: statistics.median(r["examples_per_cpu_s"] for r in rs) for v, rs in runs.items()}
    return {
        "batch_size": batch_size, "steps": steps, "repeats": repeats,
        "examples_per_s": median, "examples_per_cpu_s": median_cpu, "runs": runs,
        "ratio_bf16_vs_fp32": round(median["bf16"] / median["fp32"], 2),
        "ratio_bf16_vs_fp32_before": round(median["bf16"] / median["fp32_before"], 2),
    }  # fmt: skip


def eval_figure(model_dir: Path, limit: int | None) -> dict:
    """The demo model's test split through the evaluation's route (batched generate) in bf16 and fp32."""
    import numpy as np
    import soundfile as sf
    from scipy.stats import pearsonr

    from loralab.speech.assessor import Assessor
    from loralab.speech.data.records import read_manifest

    records = read_manifest(Path("demo_output/speech/manifest"), "test")[:limit]
    requests = [(r.text, sf.read(r.audio_path, dtype="float32")[0], r.id) for r in records]
    out: dict = {}
    for precision in ("bf16", "fp32"):
        assessor = Assessor.load(model_dir, device="cpu", precision=precision, fast=False, batch_size=16)
        start = time.perf_counter()
        answers = assessor.assess(*_items(requests))
        seconds = time.perf_counter() - start
        out[precision] = {"seconds": round(seconds, 1), "answers": answers}
        print(f"eval {precision}: {len(answers)} recordings in {seconds:.1f} s", flush=True)
    greedy = {
        p: [{k: v for k, v in a.raw.items() if k.startswith("apa")} for a in out[p]["answers"]] for p in out
    }
    same = sum(g16 == g32 for g16, g32 in zip(greedy["bf16"], greedy["fp32"]))
    result = {"recordings": len(records), "greedy_apa_identical": round(same / len(records), 3)}
    for aspect in ("accuracy", "fluency", "prosodic", "total"):
        human = np.array([getattr(r.scores, aspect) for r in records], float)
        pcc = {p: pearsonr([a.scores[aspect] for a in out[p]["answers"]], human)[0] for p in out}
        result[f"{aspect}_pcc"] = {p: round(float(v), 3) for p, v in pcc.items()}
        result[f"{aspect}_pcc_difference"] = round(abs(pcc["bf16"] - pcc["fp32"]), 3)
    result["seconds"] = {p: out[p]["seconds"] for p in out}
    result["ratio_speed"] = round(out["fp32"]["seconds"] / out["bf16"]["seconds"], 2)
    return result


def _items(requests):
    from loralab.speech.inference.recording_answers import AssessItem

    items = [
        AssessItem(str(n), label, text, duration=len(s) / 16000)
        for n, (text, s, label) in enumerate(requests)
    ]
    return items, {item.id: s for item, (_, s, _) in zip(items, requests)}


def main(argv: list[str] | None = None) -> int:
    import torch

    from machine import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)"
    )
    parser.add_argument("--eval", action="store_true", help="also the demo model's answers in bf16 vs fp32")
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result: dict = {"name": "precision", "machine": machine_info()}
    if not args.skip_train:
        result["speech_train"] = training_figure("speech", speech_parts, 4, args.steps, args.repeats)
        result["protein_train"] = training_figure("protein", protein_parts, 4, args.steps, args.repeats)
    if args.eval:
        from loralab.serve.limits import find_demo_model

        model = find_demo_model()
        result["eval"] = eval_figure(model, args.eval_limit) if model else {"skipped": "no demo model"}
    result["machine_after"] = {"load_average_1min": machine_info()["load_average_1min"]}
    speech = result.get("speech_train", {})
    result["ratio"] = speech.get("ratio_bf16_vs_fp32")
    result["summary"] = "; ".join(
        f"{k}: bf16/fp32 {v['ratio_bf16_vs_fp32']}x, vs before {v['ratio_bf16_vs_fp32_before']}x"
        for k, v in result.items() if k.endswith("_train")
    )  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "speech_train" and k != "protein_train"}, indent=1,
                     default=str))  # fmt: skip
    print(result["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
