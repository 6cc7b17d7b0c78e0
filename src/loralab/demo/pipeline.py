"""``loralab demo``: both systems end to end on a CPU with real small pretrained models.

:func:`run_demo` runs, in process and timed stage by stage, the library functions behind
``loralab speech synth`` / ``speech prepare`` / ``train`` / ``evaluate`` / ``status`` and
``loralab protein prepare`` / ``train`` / ``evaluate`` / ``protein predict``, then prints a
closing summary and writes it to ``<out>/summary.json``. A failing system is reported in
the summary (with its error) and the other one still runs; the exit status says whether
everything passed. Sizes come from :class:`DemoPlan` (:data:`FULL` or :data:`QUICK`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loralab.demo.stages import StageClock, failure_text


@dataclass(frozen=True)
class DemoPlan:
    """How big the demo is. Sized for 2 CPU cores: full <= 15 min, quick < 3 min (measured)."""

    mode: str
    budget_seconds: int  # the promise, printed beside the measured total
    speech_utterances: int  # synthetic corpus size (split ~70/30 by speaker into train/test)
    speech_epochs: int
    speech_max_steps: int | None  # None: whole epochs
    speech_batch_size: int | None  # None: the preset's
    speech_eval_limit: int | None  # test utterances evaluated (None: all)
    speech_eval_max_new_tokens: int | None  # None: longest training answer + margin (the evaluator's rule)
    speech_eval_base: bool  # also evaluate the untrained model (Table 3's "no training" row)
    lora_only: bool  # train the LoRA-only strategy beside unfreeze
    real_speech: bool  # transcribe the LibriVox clips with the trained model
    protein_structures: int | None  # structure files (None: all ~50)
    protein_epochs: int
    # ProMod3 StructureDB chains (40-128 residues, spread over the database) added when
    # Debian's python3-promod3 is installed (make sysdeps installs it as root); 0: none.
    protein_promod3_chains: int = 0
    # the backbone ablation (token embeddings only) trained and evaluated beside the model: ~100 s
    # more than the 15 minutes hold with the listening checks; the README gives its figures and command
    protein_ablation: bool = False
    # real asterisk prompts that bound the diagnosis threshold (the preset's count when None)
    real_voice_prompts: int | None = None
    seed: int = 0


FULL = DemoPlan(
    mode="full",
    budget_seconds=15 * 60,
    # ~245 train / ~105 test utterances; one epoch of the preset's batches (4, two accumulated):
    # ~83 optimizer steps over apa, apa_accuracy, apa_total and mdd (task_shares), what the answer
    # format needs (measured: ~70), in ~9 of the 15 minutes on an idle 2-core machine.
    # One epoch over more speakers rather than two over fewer: the same steps, a bigger corpus.
    speech_utterances=350,
    speech_epochs=1,
    speech_max_steps=None,
    speech_batch_size=None,
    speech_eval_limit=None,
    speech_eval_max_new_tokens=None,
    speech_eval_base=False,
    lora_only=False,
    real_speech=True,
    protein_structures=None,
    # 3 of the preset's 4 epochs: the protein stage then costs what it did with the 6-layer
    # preset's 2 (~100 s of training), leaving the speech stages their margin in the 15 minutes
    protein_epochs=3,
    protein_promod3_chains=480,
)
QUICK = DemoPlan(
    mode="quick",
    budget_seconds=3 * 60,
    speech_utterances=20,
    speech_epochs=1,
    speech_max_steps=3,
    speech_batch_size=4,
    speech_eval_limit=4,
    # 3 steps teach no format: the answers would run to the full budget; cap them.
    speech_eval_max_new_tokens=24,
    speech_eval_base=False,
    lora_only=False,
    real_speech=False,  # 3 steps teach no format: answers would run to the full budget
    protein_structures=12,
    protein_epochs=1,
    protein_promod3_chains=40,
    real_voice_prompts=12,
)

# Owned by the demo and rewritten on every run (nothing else is removed from --out).
DEMO_SUBDIRS = ("speech", "protein")


def _fresh_out_dir(out_dir: Path, log) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in DEMO_SUBDIRS:
        if (out_dir / name).exists():
            log(f"removing the previous demo's {out_dir / name}")
            shutil.rmtree(out_dir / name)
    (out_dir / "summary.json").unlink(missing_ok=True)


def _torch_threads() -> int:
    """Threads torch computes with (its default: one per physical core), reported in the summary."""
    import torch

    return torch.get_num_threads()


def run_demo(out_dir: str | Path = "demo_output", quick: bool = False, *, plan: DemoPlan | None = None,
             log=print) -> dict:  # fmt: skip
    """Run the demo into ``out_dir``; returns the summary (also written to ``out_dir/summary.json``)."""
    from loralab.demo.protein_demo import run_protein
    from loralab.demo.qwen2audio_demo import ensure_demo_qwen2audio
    from loralab.demo.smollm import cache_root, ensure_smollm2_llama
    from loralab.demo.speech_demo import run_speech
    from loralab.demo.summary import build_summary, render_summary

    plan = plan or (QUICK if quick else FULL)
    out_dir = Path(out_dir).expanduser().resolve()
    clock = StageClock(log=log)
    started_at = time.time()
    log(f"loralab demo ({plan.mode}): both systems on this machine's CPU, results in {out_dir}")
    _fresh_out_dir(out_dir, log)
    threads = _torch_threads()

    results: dict = {}
    errors: dict[str, str] = {}
    models: dict[str, Path] = {}
    try:
        what = f"SmolLM2-135M-Instruct (GGUF) and Whisper tiny.en (CTranslate2), converted once into {cache_root()}"
        with clock.stage("setup", "models", what):
            models["llama"] = ensure_smollm2_llama()
            models["speech"] = ensure_demo_qwen2audio()
    except Exception as e:  # without the models neither system can run
        errors["setup"] = failure_text(e)
    for system, run, model_key in (("speech", run_speech, "speech"), ("protein", run_protein, "llama")):
        if "setup" in errors:
            clock.skip(system, "all", "the demo models could not be built")
            continue
        model = models[model_key]
        results[system] = {}  # filled stage by stage: a failure keeps what was done before it
        try:
            run(out_dir, plan, model, clock, results[system])
        except Exception as e:  # report it and still run the other system
            errors[system] = failure_text(e)
            log(f"\n!!! {system} demo failed: {errors[system]}")

    summary = build_summary(plan=asdict(plan), clock=clock, results=results, errors=errors,
                            out_dir=out_dir, started_at=started_at, threads=threads)  # fmt: skip
    path = out_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log(render_summary(summary, path))
    return summary
