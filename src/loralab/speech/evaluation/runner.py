"""``loralab evaluate RUN_DIR`` for speech runs: every chosen epoch into ``eval/epoch-N/``.

Checkpoint selection (``checkpoints``) and the output folders are the run directory's
(:class:`loralab.engine.run_dir.RunDir`: ``all``, ``last``, ``N`` or ``N,M,...``, 0 = the base
model without adapter, the paper's "no training" row; ``<run>/eval/`` for the test split,
``<run>/eval-<split>/`` for any other). Per epoch: ``predictions.jsonl`` (appended as answers are produced, so a killed
evaluation resumes where it stopped), ``settings.json`` (what the predictions were made with;
a rerun with different settings is refused rather than mixed, ``restart`` clears it),
``metrics.json`` and the Figure-5 plot. Then ``table3.md``/``.csv`` and ``table4.csv``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from loralab.engine.run_dir import RunDir, Selected
from loralab.errors import DataError, LoralabError
from loralab.json_numbers import jsonable

HEARTBEAT_SECONDS = 60.0


def resolve_manifest_dir(manifest_dir: str | Path, run_dir: Path) -> Path:
    """The manifest folder as configured (relative to the working directory), else relative to
    the run's parent folders (a run moved together with its data)."""
    path = Path(manifest_dir).expanduser()
    if path.is_dir() or path.is_absolute():
        return path
    for base in (run_dir, *run_dir.parents):
        if (base / path).is_dir():
            return base / path
    return path


# Recorded for the reader, not compared: each prediction carries the fingerprint of its inputs
# (speech.evaluation.fingerprint), so a moved or copied manifest folder is the same data.
RECORDED_ONLY = frozenset({"manifest_dir"})


def _comparable(key: str, value):
    """A setting as compared: a checkpoint by its folder name (checkpoint-epoch-N, final_model), so a
    moved run folder resumes its evaluation; a base model by its name."""
    if key == "model" and isinstance(value, str) and not value.startswith("base:"):
        return Path(value).name
    return value


def _check_settings(epoch_dir: Path, settings: dict, restart: bool) -> None:
    from loralab.speech.evaluation.store import PREDICTIONS_FILE

    file = epoch_dir / "settings.json"
    if restart:
        for name in (PREDICTIONS_FILE, "metrics.json", "settings.json"):
            (epoch_dir / name).unlink(missing_ok=True)
    elif file.is_file():
        old = json.loads(file.read_text())
        changed = [
            f"{k}: {old.get(k)!r} -> {v!r}"
            for k, v in settings.items()
            if k not in RECORDED_ONLY and _comparable(k, old.get(k)) != _comparable(k, v)
        ]
        if changed:
            raise LoralabError(
                f"{epoch_dir} holds predictions made with other settings ({'; '.join(changed)}); "
                "pass --restart to discard them, or keep the earlier settings"
            )
    epoch_dir.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(settings, indent=2) + "\n")


@dataclass
class _Plan:
    """What one ``evaluate_run`` call evaluates, resolved from the run and the arguments."""

    run: RunDir
    cfg: object
    split: str
    records: list
    tasks: list[str]
    manifest_dir: Path
    targets: list[Selected]
    batch_size: int


def _plan(run_dir, checkpoints, split, limit, batch_size, manifest_dir) -> _Plan:
    """The run's config, the chosen (verified) checkpoints and the utterances to evaluate."""
    from loralab.engine.checkpoint import verify_checkpoint
    from loralab.speech.data.records import read_manifest

    run = RunDir(Path(run_dir).expanduser().resolve())
    cfg = run.config()
    split = split or cfg.evaluation.split
    limit = limit if limit is not None else cfg.evaluation.limit
    if limit is not None and limit < 1:  # records[:-1] would quietly drop the last utterance
        raise LoralabError(f"--limit (evaluation.limit) must be >= 1, got {limit}")
    targets = run.select(checkpoints, cfg.training.epochs)
    for target in targets:  # a damaged checkpoint fails now, not after the models before it
        if target.path is not None:
            verify_checkpoint(target.path)
    mdir = resolve_manifest_dir(manifest_dir or cfg.speech.manifest_dir, run.path)
    records = read_manifest(mdir, split)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise DataError(f"the '{split}' split of {mdir} holds no utterances to evaluate")
    batch_size = batch_size or cfg.evaluation.batch_size
    return _Plan(run, cfg, split, records, list(cfg.speech.tasks), mdir, targets, batch_size)


def evaluate_run(
    run_dir: str | Path,
    checkpoints: str = "all",
    split: str | None = None,
    limit: int | None = None,
    *,
    batch_size: int | None = None,
    base_model: str | None = None,
    manifest_dir: str | Path | None = None,
    max_new_tokens: int | None = None,
    device: str | None = None,
    restart: bool = False,
    progress: bool = True,
    log=print,
) -> Path:
    """Evaluate the chosen checkpoints of a speech run; returns the eval folder (tables inside).
    One evaluation at a time per eval folder (:mod:`~.eval_lock`)."""
    from loralab.speech.evaluation.eval_lock import evaluation_lock

    plan = _plan(run_dir, checkpoints, split, limit, batch_size, manifest_dir)
    with evaluation_lock(plan.run.eval_dir(plan.split)):
        return _evaluate_plan(plan, base_model, max_new_tokens, device, restart, progress, log)


def _evaluate_plan(
    plan: _Plan, base_model, max_new_tokens, device, restart: bool, progress: bool, log
) -> Path:
    from loralab.engine.events import EventLog
    from loralab.speech.reports.tables import read_epoch_summaries, write_tables

    cfg, run, tasks = plan.cfg, plan.run, plan.tasks
    events = EventLog(run.path)
    budgets: dict[str, int] | None = None
    model = TargetModel(cfg, base_model, device)
    log(
        f"evaluating {len(plan.targets)} model(s) of {run.path.name} on {len(plan.records)} "
        f"'{plan.split}' utterances, tasks {tasks}"
    )
    _warn_short_recordings(plan.records, log)
    for target in plan.targets:
        epoch_dir = run.eval_epoch_dir(plan.split, target.epoch)
        earlier = _earlier_budgets(epoch_dir) if not restart and not max_new_tokens else None
        # Reuse what an earlier (partial) evaluation of this epoch used: no model load just to size it.
        budgets = (
            earlier or budgets or _budgets(cfg, plan.manifest_dir, tasks, max_new_tokens, model, target, log)
        )
        _check_settings(epoch_dir, _settings(plan, target, base_model, budgets), restart)
        metrics = evaluate_target(
            target, plan.records, tasks, epoch_dir, cfg=cfg, budgets=budgets, batch_size=plan.batch_size,
            model=model, events=events, progress=progress, log=log,
        )  # fmt: skip
        events.write("eval", target.step, epoch=target.epoch, split=plan.split, metrics=metrics["summary"])
        _log_summary(log, target.epoch, metrics["summary"], cfg.evaluation.mdd_convention)
    out_root = run.eval_dir(plan.split)
    title = f"{cfg.name}: SpeechOcean762-style evaluation, split '{plan.split}' (the paper's Table 3 layout)"
    paths = write_tables(out_root, read_epoch_summaries(out_root), strategy=cfg.strategy, title=title)
    log(f"tables: {paths['table3_md']}")
    return out_root


def _warn_short_recordings(records, log) -> list[str]:
    """Name the utterances whose recording is short for their sentence (cut off?): the model scores
    them anyway, and those scores say little."""
    from loralab.speech.inference.reading_length import FAST_PHONES_PER_SECOND, phone_rate

    short = [
        r.id
        for r in records
        if phone_rate(len(r.canonical_phones.split()), r.duration) > FAST_PHONES_PER_SECOND
    ]
    if short:
        listed = ", ".join(short[:10]) + (f" and {len(short) - 10} more" if len(short) > 10 else "")
        log(
            f"warning: {len(short)} utterance(s) have a recording short for their sentence (over "
            f"{FAST_PHONES_PER_SECOND:g} canonical phones per second: cut off?), so their scores say little: {listed}"
        )
    return short


def _settings(plan: _Plan, target: Selected, base_model, budgets) -> dict:
    """What one epoch's predictions are made with (a rerun with others is refused)."""
    return {
        "model": str(target.path) if target.path else f"base:{base_model or plan.cfg.model.name_or_path}",
        "split": plan.split,
        "manifest_dir": str(plan.manifest_dir),
        "prompt_style": plan.cfg.speech.prompt_style,
        "prompt_reference": plan.cfg.speech.prompt_reference,
        "tasks": plan.tasks,
        "max_new_tokens": budgets,
    }


def _log_summary(log, epoch: int, s: dict, convention: str) -> None:
    log(
        f"epoch {epoch}: acc PCC {s['acc_pcc']:.3f}, WER {s['wer']:.3f}, PER {s['per']:.3f}, "
        f"F1 {s['f1']:.3f} ({convention} MDD scoring; "
        f"APA parsed {s['apa_parse_rate']:.1%}, MDD parsed {s['mdd_parse_rate']:.1%})"
    )


def _load(target: Selected, cfg, base_model, device):
    """The inference model of a target (loaded on each call; :class:`TargetModel` keeps it)."""
    from loralab.speech.model.load import load_for_inference

    if target.path is None:
        name = base_model or cfg.model.name_or_path
        revision = None if base_model else cfg.model.revision
        return load_for_inference(name, device=device, revision=revision)
    return load_for_inference(target.path, device=device, base_model=base_model)


class TargetModel:
    """The model of the target being evaluated, loaded on first use and kept while the target
    stays the same (the previous one released before the next loads). One per ``evaluate_run``
    call, passed to what needs the model: nothing outlives the call."""

    def __init__(self, cfg, base_model, device):
        self.cfg, self.base_model, self.device = cfg, base_model, device
        self.path: str | None = None
        self.inference = None

    def of(self, target: Selected):
        if self.inference is None or self.path != str(target.path):
            self.inference = None  # free the previous model's memory before loading the next
            self.inference = _load(target, self.cfg, self.base_model, self.device)
            self.path = str(target.path)
        return self.inference


def _earlier_budgets(epoch_dir: Path) -> dict[str, int] | None:
    file = epoch_dir / "settings.json"
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text()).get("max_new_tokens")
    except ValueError:
        return None


def _budgets(cfg, mdir, tasks, max_new_tokens, model: TargetModel, target, log) -> dict[str, int]:
    from loralab.speech.data.records import read_manifest
    from loralab.speech.inference.generate import task_budgets

    fixed = max_new_tokens or cfg.evaluation.max_new_tokens
    if fixed:
        return {t: int(fixed) for t in tasks}
    try:
        reference = read_manifest(mdir, cfg.speech.train_split)
    except DataError:
        reference = read_manifest(mdir, cfg.evaluation.split)
        log(
            f"no '{cfg.speech.train_split}' split in {mdir}: sizing max_new_tokens from the evaluated split's answers"
        )
    budgets = task_budgets(model.of(target).tokenizer, reference, tasks)
    log(f"max_new_tokens per task (longest training answer + margin): {budgets}")
    return budgets


def evaluate_target(target, records, tasks, epoch_dir: Path, *, cfg, budgets, batch_size, model: TargetModel,
                    events, progress, log) -> dict:  # fmt: skip
    """Generate what is missing for one model, then score it; returns (and writes) metrics.json."""
    from loralab.speech.evaluation.fingerprint import SOURCE_KEY, record_fingerprint
    from loralab.speech.evaluation.store import PREDICTIONS_FILE, PredictionStore
    from loralab.speech.scoring.epoch_metrics import compute_metrics

    store = PredictionStore(epoch_dir / PREDICTIONS_FILE)
    sources = {r.id: record_fingerprint(r) for r in records}

    def missing(r, t) -> bool:  # not on disk, or made from other inputs than the manifest's now
        entry = store.get(r.id, t)
        return entry is None or entry.get(SOURCE_KEY) != sources[r.id]

    pending = sum(missing(r, t) for r in records for t in tasks)
    stale = sum((r.id, t) in store for r in records for t in tasks if missing(r, t))
    if stale:
        log(
            f"epoch {target.epoch}: {stale} answer(s) on disk were made from other inputs than the manifest "
            "holds now (text, phones or audio edited since, or written by an older loralab): generating them again"
        )
    if pending:
        done_before = len(records) * len(tasks) - pending
        log(
            f"epoch {target.epoch} ({target.label}): {pending} answers to generate, {done_before} already on disk"
        )
        _generate(model.of(target), target, records, tasks, missing, store, sources, pending,
                  cfg=cfg, budgets=budgets, batch_size=batch_size, events=events, progress=progress)  # fmt: skip
    metrics = compute_metrics(
        records,
        store,
        tasks,
        epoch_dir,
        mdd_convention=cfg.evaluation.mdd_convention,
        score_decoding=cfg.evaluation.score_decoding,
    )
    metrics["epoch"] = target.epoch
    metrics["model"] = target.label
    (epoch_dir / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2) + "\n")
    return metrics


def _generate(inference, target, records, tasks, missing, store, sources, pending, *, cfg, budgets, batch_size,
              events, progress) -> None:  # fmt: skip
    """Generate the ``pending`` answers of one model, appended to ``store`` as they come."""
    from tqdm.auto import tqdm

    from loralab.speech.evaluation.fingerprint import SOURCE_KEY
    from loralab.speech.inference.generate import BatchedGenerator, resolve_route
    from loralab.speech.scoring.parse import parse_answer

    generator = BatchedGenerator(
        inference,
        prompt_style=cfg.speech.prompt_style,
        prompt_reference=cfg.speech.prompt_reference,
        batch_size=batch_size,
        max_new_tokens=budgets,
    )
    one_by_one = resolve_route(cfg.evaluation.speech_route, inference.model) == "one_by_one"
    bar = tqdm(total=pending, desc=f"epoch {target.epoch}", unit="answer", disable=not progress)
    last_beat = [time.monotonic()]

    def on_answers(answers) -> None:
        lines = []
        for a in answers:
            parsed = parse_answer(a.task, a.raw)
            record = {"values": parsed.values, "errors": parsed.errors, SOURCE_KEY: sources[a.id]}
            lines.append({**a.to_dict(), **record})
        store.append_many(lines)
        bar.update(len(answers))
        if time.monotonic() - last_beat[0] >= HEARTBEAT_SECONDS:
            events.write("heartbeat", target.step, epoch=target.epoch, done=bar.n, total=pending)
            last_beat[0] = time.monotonic()

    try:
        with generator:
            generator.run(records, tasks, missing, on_answers, one_by_one=tasks if one_by_one else ())
    finally:
        bar.close()
