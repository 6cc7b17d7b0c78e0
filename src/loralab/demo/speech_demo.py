"""The speech half of the demo: synth -> prepare -> train (unfreeze, LoRA-only) -> evaluate -> status.

Every step is the library function behind the matching ``loralab`` command, called in
process, so what the demo shows is exactly what the commands do.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

from loralab.demo.stages import StageClock
from loralab.engine.run_dir import RunDir, epoch_folders
from loralab.speech.model.real_voices import ASTERISK_INSTALL_HINT, ASTERISK_TRANSCRIPTS

UNFREEZE_PRESET = "demo_qwen2audio"
LORA_ONLY_PRESET = "demo_qwen2audio_lora"


def training_loss(run_dir: Path) -> dict:
    """First and last logged training loss of a run (from its event log), and whether it fell.

    "Falls" compares the mean of the first three logged losses with the mean of the last
    three, so one noisy micro-batch cannot decide it either way.
    """
    from loralab.engine.events import read_events, to_float

    losses = [to_float(e["loss"]) for e in read_events(run_dir) if e.get("event") == "step" and "loss" in e]
    if not losses:
        return {"first": None, "last": None, "steps_logged": 0, "falls": False}
    k = min(3, max(1, len(losses) // 3))
    head, tail = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return {
        "first": round(losses[0], 4),
        "last": round(losses[-1], 4),
        "mean_first_logged": round(head, 4),
        "mean_last_logged": round(tail, 4),
        "steps_logged": len(losses),
        "falls": tail < head,
    }


def _epoch_metrics(eval_dir: Path) -> dict[int, dict]:
    """epoch -> the whole ``eval/epoch-N/metrics.json`` (its ``summary`` is the Table-3 row)."""
    rows = {}
    for epoch, folder in epoch_folders(eval_dir).items():
        if (path := folder / "metrics.json").is_file():
            metrics = json.loads(path.read_text())
            rows[int(metrics.get("epoch", epoch))] = metrics
    return rows


def answer_variety(eval_dir: Path, epoch: int, score_decoding: str = "greedy") -> dict:
    """Distinct answers per task among the evaluated utterances: 1 means the model gives every
    recording the same answer (it learned the format and the typical answer, not to listen),
    and Pearson correlations are then undefined. Raw answers; for APA under expected-score
    decoding, the expected scores (to 0.01) are the answer."""
    from loralab.speech.evaluation.store import PREDICTIONS_FILE, PredictionStore

    answers: dict[str, set] = {}
    merged: dict[str, list] = {}  # per utterance, its APA answers (one task, or one per aspect)
    for (uid, task), row in sorted(
        PredictionStore(eval_dir / f"epoch-{epoch}" / PREDICTIONS_FILE).records.items()
    ):
        answer = row["raw"]
        if task.startswith("apa") and score_decoding == "expected" and row.get("expected"):
            answer = tuple(sorted((k, round(v, 2)) for k, v in row["expected"].items()))
        answers.setdefault(task, set()).add(answer)
        if task.startswith("apa"):
            merged.setdefault(uid, []).append(answer)
    counts = {task: len(raw) for task, raw in sorted(answers.items())}
    if merged:  # the whole APA answer of each utterance (one task, or one per aspect)
        counts["apa"] = len({tuple(a) for a in merged.values()})
    return counts


def _status(run_dir: Path) -> dict:
    """Write the status report and plots of a finished run; where they are."""
    from loralab.reports.status import build_status
    from loralab.reports.status_report import write_status_files

    files = write_status_files(build_status(run_dir))
    return {"status_md": str(files.markdown), "plots": [str(p) for p in files.plots]}


def _real_speech_and_listening(final_model, cfg, plan, clock: StageClock, label: str, result: dict) -> None:
    """The held-out listening checks of the trained model and the LibriVox transcription line (from
    the same assessments), or their skips (one plan flag decides both)."""
    if not plan.real_speech:
        clock.skip("speech", f"real speech ({label})", f"not in the {plan.mode} plan")
        clock.skip("speech", f"listening checks ({label})", f"not in the {plan.mode} plan")
        return
    with clock.stage("speech", f"listening checks ({label})", "wrong sentence, pauses, LibriVox"):
        from loralab.demo.listening import listening_checks
        from loralab.demo.real_speech import librivox_clips, real_speech_line

        result["listening"] = listening_checks(final_model, cfg.speech.manifest_dir, librivox_clips())
        librivox = result["listening"]["checks"]["librivox"]
        result["real_speech"] = real_speech_line(librivox, cfg.speech.prompt_reference)


def train_and_evaluate(
    preset: str, overrides: list[str], plan, clock: StageClock, label: str, result: dict
) -> dict:
    """Train one demo strategy, evaluate it with the real evaluator, write its status report
    (``result`` is filled as the stages finish)."""
    from loralab.config import load_config
    from loralab.engine.trainer import train
    from loralab.speech.evaluation.runner import evaluate_run

    cfg = load_config(preset, overrides)
    result.update({"preset": preset, "strategy": cfg.strategy, "run_dir": cfg.run_dir})
    with clock.stage(
        "speech", f"train ({label})", f"{preset}, {cfg.training.epochs} epoch(s), {cfg.strategy}"
    ):
        run_dir = Path(train(cfg))
    gc.collect()  # the training model goes before the evaluation loads its own
    result["training_loss"] = training_loss(run_dir)
    loss = result["training_loss"]
    clock.log(
        f"training loss ({label}): {loss['first']} -> {loss['last']} "
        f"(mean of first/last logged: {loss.get('mean_first_logged')} -> {loss.get('mean_last_logged')}, "
        f"{'falls' if loss['falls'] else 'does NOT fall'})"
    )
    checkpoints = "all" if plan.speech_eval_base else "last"
    with clock.stage(
        "speech", f"evaluate ({label})", f"checkpoints={checkpoints}, limit={plan.speech_eval_limit}"
    ):
        eval_dir = Path(
            evaluate_run(run_dir, checkpoints=checkpoints, limit=plan.speech_eval_limit, log=clock.log)
        )
    by_epoch = _epoch_metrics(eval_dir)
    result["eval_dir"] = str(eval_dir)
    result["table3_md"] = str(eval_dir / "table3.md")
    result["metrics_by_epoch"] = {epoch: m.get("summary", {}) for epoch, m in by_epoch.items()}
    result["metrics"] = result["metrics_by_epoch"][max(by_epoch)] if by_epoch else {}
    if by_epoch:
        result["evaluated_utterances"] = by_epoch[max(by_epoch)].get("n_utterances")
        result["distinct_answers"] = answer_variety(eval_dir, max(by_epoch), cfg.evaluation.score_decoding)
        result["score_decoding"] = cfg.evaluation.score_decoding
        result["prompt_reference"] = cfg.speech.prompt_reference
    _real_speech_and_listening(RunDir(run_dir).final_model, cfg, plan, clock, label, result)
    with clock.stage("speech", f"status ({label})"):
        result.update(_status(run_dir))
    return result


def _common_overrides(plan, model_dir, manifest_dir, clock: StageClock) -> list[str]:
    """The config overrides every speech run of the demo gets from its plan."""
    common = [
        f"model.name_or_path={model_dir}",
        f"speech.manifest_dir={manifest_dir}",
        f"training.epochs={plan.speech_epochs}",
        f"training.seed={plan.seed}",
    ]
    if not ASTERISK_TRANSCRIPTS.is_file():
        clock.log(f"note: no asterisk prompts ({ASTERISK_INSTALL_HINT}): the diagnosis threshold is fit on "
                  "synthetic speakers alone, and real readers get more words flagged")  # fmt: skip
        common.append("speech.real_voice_calibration=none")
    elif plan.real_voice_prompts:
        common.append(f"speech.real_voice_prompts={plan.real_voice_prompts}")
    if plan.speech_max_steps:
        common.append(f"training.max_steps={plan.speech_max_steps}")
    if plan.speech_batch_size:
        common.append(f"training.batch_size={plan.speech_batch_size}")
    return common


def run_speech(out_dir: Path, plan, model_dir: Path, clock: StageClock, result: dict | None = None) -> dict:
    """The whole speech demo under ``out_dir/speech``; fills and returns its part of summary.json."""
    from loralab.speech.data.prepare import prepare_speechocean762
    from loralab.speech.data.synth import synthesize_corpus

    root = out_dir / "speech"
    corpus, manifest_dir, runs = root / "corpus", root / "manifest", root / "runs"
    result = {} if result is None else result
    result.update({"model": str(model_dir), "corpus": str(corpus), "manifest": str(manifest_dir)})
    with clock.stage(
        "speech", "synth", f"{plan.speech_utterances} utterances with espeak-ng (loralab speech synth)"
    ):
        synthesize_corpus(corpus, n=plan.speech_utterances, seed=plan.seed)
    with clock.stage("speech", "prepare", "loralab speech prepare"):
        manifest = prepare_speechocean762(corpus, manifest_dir, progress=False)
    result["utterances"] = {split: len(records) for split, records in manifest.splits.items()}
    clock.log(f"utterances per split: {result['utterances']}")
    from loralab.speech.scoring.epoch_metrics import canonical_phone_baseline

    result["mdd_baseline"] = canonical_phone_baseline(manifest.splits["test"])

    common = _common_overrides(plan, model_dir, manifest_dir, clock)
    strategies = [("unfreeze", UNFREEZE_PRESET)] + (
        [("lora-only", LORA_ONLY_PRESET)] if plan.lora_only else []
    )
    result["runs"] = {}
    for label, preset in strategies:
        overrides = [*common, f"output_dir={runs / preset}"]
        result["runs"][label] = {}
        train_and_evaluate(preset, overrides, plan, clock, label, result["runs"][label])
    if not plan.speech_eval_base:
        limit = f" --limit {plan.speech_eval_limit}" if plan.speech_eval_limit else ""
        clock.skip(
            "speech",
            "evaluate base model",
            "Table 3's 'no training' row is not in this plan (an untrained model answers at full length: "
            f"minutes on a CPU); add it with: loralab evaluate {result['runs']['unfreeze']['run_dir']} "
            f"--checkpoints 0{limit}",
        )
    if not plan.lora_only:
        clock.skip(
            "speech",
            "train (lora-only)",
            f"not in the {plan.mode} plan: it would add about as much time again as the unfreeze run; "
            f"run it with: loralab train {LORA_ONLY_PRESET} model.name_or_path={model_dir} "
            f"speech.manifest_dir={manifest_dir}",
        )
    return result
