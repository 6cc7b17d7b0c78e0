"""The speech system's training parts (the plug-in is :mod:`loralab.speech.contract`).

``build_parts(cfg, runtime)``: the configured backbone family (Phi-4-multimodal, Qwen2-Audio;
:mod:`loralab.speech.backbones`) + the LoRA set-up of the config, the
manifest's utterances as ``(record, task)`` examples (one per task in ``speech.tasks``), the
chat-template collator, lengths for length-grouped batches, and the answer-only loss.
``count_parameters(cfg)``: the same parameter groups from config.json alone (meta device).
The rest of the contract (config problems, description, headline metrics, ``loralab
evaluate``) is :mod:`loralab.speech.contract`'s, which exports these two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loralab.engine.system import ParamCount, SystemParts


def _read_split(cfg, split: str) -> tuple[list, dict[str, int]]:
    """Records of ``split`` after ``speech.max_audio_seconds`` and ``speech.limit`` (with what was skipped)."""
    from loralab.speech.data.records import read_manifest

    records = read_manifest(cfg.speech.manifest_dir, split)
    if cfg.speech.limit is not None:
        records = records[: cfg.speech.limit]
    kept = [r for r in records if r.duration <= cfg.speech.max_audio_seconds]
    return kept, {"read": len(records), "too_long": len(records) - len(kept)}


@dataclass
class Injected:
    """Parts :func:`build_parts` takes as given instead of loading them (benchmarks, tests).

    base_model: a loaded, frozen base model; :func:`training.prepare_training_model` adds the
        LoRA of the config to it. backbone: its family (:mod:`loralab.speech.backbones`).
    model_dir: where the base came from (None: ``save_final`` writes the trainable weights
        only, no tokenizer and feature extractor).
    """

    base_model: Any = None
    backbone: Any = None
    tokenizer: Any = None
    feature_extractor: Any = None
    model_dir: Path | None = None


def _train_records(cfg, runtime) -> list:
    """The training records; a bad manifest fails here, before minutes of model loading."""
    from loralab.errors import DataError

    train_records, train_info = _read_split(cfg, cfg.speech.train_split)
    if not train_records:
        raise DataError(
            f"{cfg.speech.manifest_dir}: no training utterances in split '{cfg.speech.train_split}' "
            f"({train_info['read']} read, {train_info['too_long']} longer than speech.max_audio_seconds="
            f"{cfg.speech.max_audio_seconds})"
        )
    if runtime.is_main and train_info["too_long"]:
        print(
            f"speech: skipped {train_info['too_long']} of {train_info['read']} training utterances longer "
            f"than speech.max_audio_seconds={cfg.speech.max_audio_seconds}"
        )
    return train_records


def _resolve_parts(cfg, runtime, given: Injected) -> Injected:
    """``given`` completed: what was not injected is loaded as the config says."""
    from loralab.speech.model import training
    from loralab.speech.model.layout import resolve_model_dir
    from loralab.speech.model.load import load_tokenizer, resolve_backbone

    model_dir = given.model_dir
    if model_dir is None and (given.base_model is None or given.backbone is None or given.tokenizer is None):
        model_dir = resolve_model_dir(cfg.model.name_or_path, cfg.model.revision)
    backbone = given.backbone or resolve_backbone(model_dir, cfg.model.family)
    tokenizer = given.tokenizer or load_tokenizer(
        model_dir, trust_remote_code=cfg.model.trust_remote_code, backbone=backbone
    )
    feature_extractor = given.feature_extractor or backbone.load_feature_extractor(model_dir)
    if given.base_model is not None:
        model = training.prepare_training_model(cfg, given.base_model, backbone)
    else:
        model = training.build_training_model(cfg, runtime, model_dir)
    return Injected(model, backbone, tokenizer, feature_extractor, model_dir)


def _gop_scorer(cfg, runtime, built: Injected, train_records: list) -> tuple[Any, list]:
    """(GOP scorer, the training records with their estimates): a resumed run's from the checkpoint
    it continues, so that it trains on the prompts it had; else fit on the training records."""
    from loralab.speech.model.gop_fit import NotRestorable, fit_for_training, restore_for_training
    from loralab.speech.prompts import APA_ASPECTS, EVIDENCE

    log = print if runtime.is_main else (lambda *_: None)
    if runtime.resume_from is not None:
        try:
            restored = restore_for_training(runtime.resume_from, train_records)
        except NotRestorable as why:
            log(f"GOP scorer: fitting it again: {why}")
        else:
            log(f"GOP scorer: restored from {runtime.resume_from}")
            return restored
    wanted = {EVIDENCE[cfg.speech.prompt_reference].get(t) for t in cfg.speech.tasks}
    real_voices = []
    if cfg.speech.real_voice_calibration == "asterisk":
        from loralab.speech.model.real_voices import asterisk_prompts

        real_voices = asterisk_prompts(cfg.speech.real_voice_prompts)
    return fit_for_training(
        built.base_model.causal_lm, built.backbone, built.feature_extractor, train_records,
        aspects=[a for a in APA_ASPECTS if a in wanted], seed=cfg.training.seed, log=log,
        real_voices=real_voices, real_max_flagged=cfg.speech.real_voice_max_flagged,
    )  # fmt: skip


def build_parts(cfg, runtime, injected: Injected | None = None) -> SystemParts:
    """Everything the trainer needs for a speech run (see :class:`loralab.engine.system.SystemParts`).

    ``injected``: parts to use as given rather than load (see :class:`Injected`); the training
    model is then the injected base with the config's LoRA set-up."""
    from loralab.speech.collate import SpeechCollator
    from loralab.speech.data.records import task_examples
    from loralab.speech.model import training

    train_records = _train_records(cfg, runtime)
    built = _resolve_parts(cfg, runtime, injected or Injected())
    model, tokenizer, feature_extractor = built.base_model, built.tokenizer, built.feature_extractor
    collator = SpeechCollator(
        tokenizer,
        feature_extractor,
        built.backbone,
        built.backbone.audio_token_id(model.causal_lm.config),
        cfg.speech.prompt_style,
        cfg.speech.prompt_reference,
    )
    if cfg.speech.prompt_reference in ("phones_gop", "heard"):
        model.gop_scorer, train_records = _gop_scorer(cfg, runtime, built, train_records)
        model.gop_training_estimates = {r.id: r.estimates for r in train_records}
    train_examples = task_examples(train_records, cfg.speech.tasks, cfg.speech.task_shares, cfg.training.seed)

    def save_final(m, out_dir: Path) -> None:
        if built.model_dir is None:
            training.save_model_files(m, out_dir)
        else:
            training.save_final(m, out_dir, tokenizer, feature_extractor)

    return SystemParts(
        model=model,
        train_dataset=train_examples,
        collate=collator,
        lengths=[collator.example_length(record, task) for record, task in train_examples],
        loss_fn=training.answer_only_loss,
        param_groups=training.parameter_groups(model),
        save_trainable=training.save_trainable,
        load_trainable=training.load_trainable,
        save_final=save_final,
        evaluate=_epoch_evaluator(runtime) if cfg.evaluation.every_epoch else None,
    )


def _epoch_evaluator(runtime):
    """``evaluation.every_epoch``: the speech evaluator (``loralab evaluate``) on the checkpoint just saved.

    It loads that checkpoint as a second model on the training device (simple and identical to a
    later ``loralab evaluate``, but it needs memory for two copies of the base model).
    """

    def evaluate(model, run_dir: Path, epoch: int) -> dict[str, float]:
        from loralab.engine.run_dir import RunDir
        from loralab.json_numbers import to_float
        from loralab.speech.evaluation.runner import evaluate_run as run_evaluation

        run_evaluation(run_dir, checkpoints=str(epoch), device=str(runtime.device), progress=False)
        run = RunDir(run_dir)
        folder = run.eval_epoch_dir(run.config().evaluation.split, epoch)
        summary = json.loads((folder / "metrics.json").read_text())["summary"]
        # metrics.json writes an undefined metric (e.g. PCC of constant answers) as null: NaN here.
        return {k: to_float(v) for k, v in summary.items()}

    return evaluate


def _meta_model(cfg):
    """(model on the meta device, its backbone, its local folder or None): from config.json alone."""
    import torch

    from loralab.engine.known_models import local_model_dir, published_config
    from loralab.speech.backbones import backbone_for, backbone_named
    from loralab.speech.model.layout import resolve_model_file

    model_dir = None
    if local_model_dir(cfg.model.name_or_path, cfg.model.revision) is None and (
        config := published_config(cfg.model.name_or_path)
    ):
        backbone = backbone_named(cfg.model.family)  # the published architecture: no download just to count
    else:
        config_file = resolve_model_file(cfg.model.name_or_path, cfg.model.revision, "config.json")
        config_dict = json.loads(config_file.read_text())
        model_dir = config_file.parent
        backbone = backbone_for(model_dir, config_dict, cfg.model.family, check_weights=False)
        config = backbone.config_from_dict(config_dict)
    with torch.device("meta"):
        model = backbone.model_class()(config)
    model.requires_grad_(False)
    return model, backbone, model_dir


def count_parameters(cfg) -> dict[str, ParamCount]:
    """The groups :func:`build_parts` reports, from the model's config.json only (no weights read).

    The model is built on the meta device; LoRA parameters are counted from the targeted layers'
    shapes (r x (in + out) each). For ``lora.init = pretrained`` the adapter's own
    targets are used when its PEFT config is at hand (the modules its tensors name, or a
    list of plain names restricted to the text decoder).
    """
    from loralab.engine.model_card import has_adapter
    from loralab.speech.model import lora as lora_setup
    from loralab.speech.model.adapter_targets import adapter_target_regex
    from loralab.speech.model.layout import SPEECH_ADAPTER_DIR

    model, backbone, model_dir = _meta_model(cfg)
    if cfg.strategy == "unfreeze":
        lora_setup.unfreeze(model, cfg.model.unfreeze, backbone)
    groups = lora_setup.count_groups(model.named_parameters(), backbone)

    targets = backbone.lora_targets(cfg.lora.target_modules)
    if cfg.lora.init == "pretrained":
        adapter = (
            Path(cfg.lora.adapter_path).expanduser()
            if cfg.lora.adapter_path
            else (model_dir / SPEECH_ADAPTER_DIR if model_dir else None)
        )
        if adapter is not None and has_adapter(adapter):
            saved = lora_setup.read_adapter_config(adapter).get("target_modules")
            targets = adapter_target_regex(model, adapter, saved or targets, backbone.default_lora_targets)
    lora_params, _ = lora_setup.lora_parameter_count(model, targets, cfg.lora.rank)
    groups["lora"] = ParamCount(lora_params, lora_params)
    return lora_setup.with_total(groups)
