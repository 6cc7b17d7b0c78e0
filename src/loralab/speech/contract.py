"""The speech system's plug-in (see :mod:`loralab.engine.system`): training from
:mod:`loralab.speech.system`, and the rest of the contract (config problems, a description for
``compare`` and reports, the headline metrics, ``loralab evaluate``) here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from loralab.engine.system import EvalOutcome, EvalRequest, ReferenceResults, SystemDescription
from loralab.speech.prompts import TASKS  # the tasks a config may name: those with a prompt
from loralab.speech.system import build_parts, count_parameters  # noqa: F401  (the contract)

# The paper's Table 3 columns, in its order.
HEADLINE_METRICS = ("acc_pcc", "flu_pcc", "pros_pcc", "total_pcc", "wer", "per", "f1", "precision", "recall")
UNFREEZE_GROUPS = ("audio_encoder", "audio_projector")
EVALUATION_OPTIONS = frozenset(f for f in EvalRequest.__dataclass_fields__)  # every option
ESTIMATOR = "loralab.estimate.speech:estimate_speech"  # loralab estimate (see loralab.engine.system)
PAPER_NOTE = "Paper: Ahn & Nam 2025, Table 3 (SpeechOcean762 test set); epoch 0 = no training."


def resolve_config(cfg):
    """``lora.target_modules`` unset: the text decoder's projections of ``model.family`` (a new
    config; ``cfg`` is not changed)."""
    from loralab.speech.backbones import backbone_named

    targets = backbone_named(cfg.model.family).lora_targets(cfg.lora.target_modules)
    if targets == cfg.lora.target_modules:
        return cfg
    return dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, target_modules=targets))


def validate_config(cfg) -> list[str]:
    """Unknown unfreeze groups and tasks, no task at all, a GOP scorer over a trained encoder."""
    problems = [
        f"model.unfreeze: unknown group '{m}' for speech (known: {sorted(UNFREEZE_GROUPS)})"
        for m in cfg.model.unfreeze
        if m not in UNFREEZE_GROUPS
    ]
    problems += [
        f"speech.tasks: unknown task '{task}' (known: {', '.join(TASKS)})"
        for task in cfg.speech.tasks
        if task not in TASKS
    ]
    if not cfg.speech.tasks:
        problems.append("speech.tasks must name at least one task (apa, mdd)")
    shares = cfg.speech.task_shares
    if shares and (len(shares) != len(cfg.speech.tasks) or not all(0 < x <= 1 for x in shares)):
        problems.append(
            f"speech.task_shares must give one share in (0, 1] per task of speech.tasks {cfg.speech.tasks} "
            f"(got {shares}; empty: all)"
        )
    if cfg.speech.prompt_reference in ("phones_gop", "heard"):
        problems += _gop_problems(cfg)
    if not 0 < cfg.speech.real_voice_max_flagged < 1:
        problems.append(
            f"speech.real_voice_max_flagged must be in (0, 1) (got {cfg.speech.real_voice_max_flagged})"
        )
    if cfg.speech.real_voice_prompts < 1:
        problems.append(f"speech.real_voice_prompts must be >= 1 (got {cfg.speech.real_voice_prompts})")
    return problems


def _gop_problems(cfg) -> list[str]:
    from loralab.speech.prompts import EVIDENCE

    reference = cfg.speech.prompt_reference
    tasks = EVIDENCE[reference]
    problems = []
    if cfg.strategy == "unfreeze" and "audio_encoder" in cfg.model.unfreeze:
        problems.append(
            f"speech.prompt_reference={reference} reads a GOP scorer fit on the frozen audio encoder's output: "
            "drop audio_encoder from model.unfreeze, or use prompt_reference phones"
        )
    if not set(tasks) & set(cfg.speech.tasks):
        problems.append(
            f"speech.prompt_reference={reference} gives its evidence to the {', '.join(tasks)} "
            f"prompts, none of which speech.tasks has (e.g. tasks: [{', '.join(tasks)}])"
        )
    return problems


def _paper_reference(strategy: str) -> ReferenceResults:
    from loralab.speech.reports.paper import TABLE3_COLUMNS, paper_row

    def values(epoch: int) -> dict[str, float] | None:
        row = paper_row(strategy, epoch)
        return {k: v for k, v in row.items() if k in TABLE3_COLUMNS} if row else None

    return ReferenceResults(f"paper ({strategy})", values, PAPER_NOTE)


def describe(cfg) -> SystemDescription:
    """The manifest, tasks and prompt; the adapter training starts from; the unfrozen groups'
    module prefixes as the backbone names them; the paper's Table 3 for the strategy."""
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.layout import SPEECH_ADAPTER_DIR

    s = cfg.speech
    start = "fresh LoRA (B = 0)"
    if cfg.lora.init == "pretrained":
        where = cfg.lora.adapter_path or f"{cfg.model.name_or_path}/{SPEECH_ADAPTER_DIR}"
        start = f"pretrained adapter, trained further ({where})"
    backbone = backbone_named(cfg.model.family)
    groups = [g for g in cfg.model.unfreeze if g in UNFREEZE_GROUPS]
    return SystemDescription(
        data=f"{s.manifest_dir} · tasks {'+'.join(s.tasks)} · prompts {s.prompt_style}",
        start_point=start,
        unfrozen_prefixes={g: backbone.unfreeze_prefixes([g]) for g in groups},
        reference=_paper_reference(cfg.strategy),
    )


def evaluate_run(run_dir: str | Path, request: EvalRequest) -> EvalOutcome:
    """``loralab evaluate`` on a speech run (:mod:`loralab.speech.evaluation.runner`), then the
    ablation table when asked."""
    from loralab.speech.evaluation.runner import evaluate_run as run_evaluation

    out = run_evaluation(
        run_dir,
        request.checkpoints,
        request.split,
        request.limit,
        batch_size=request.batch_size,
        base_model=request.base_model,
        manifest_dir=request.manifest_dir,
        max_new_tokens=request.max_new_tokens,
        device=request.device,
        restart=request.restart,
        progress=request.progress,
    )
    lines = [f"evaluation written to {out} (table3.md, table3.csv, table4.csv, epoch-N/metrics.json)"]
    if request.ablation is not None:
        from loralab.speech.reports.ablation import write_ablation

        table = write_ablation([run_dir, *request.ablation], out)
        lines += [table.read_text(), f"ablation written to {table} (and {table.with_suffix('.csv').name})"]
    return EvalOutcome(out, lines)
