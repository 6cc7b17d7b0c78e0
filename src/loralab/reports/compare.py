"""Configurations and runs side by side: what ``loralab compare`` prints.

Each argument is a run directory (it has ``events.jsonl`` or ``training_config.json``), a
config file, or a preset name. Presets work before any run exists: trainable parameters
come from :func:`loralab.reports.params.count_for_config`. For runs they come from the
``start`` record (the model that was actually built). Results by epoch are shown for runs,
with the published results each run's system names beside them (``describe(cfg).reference``:
for speech, the paper's Table 3 rows of the run's strategy). No system is named here: each
answers for itself through :mod:`loralab.engine.system`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from loralab.config.loader import load_config
from loralab.config.schema import ExperimentConfig
from loralab.engine.events import EVENTS_FILE
from loralab.engine.run_dir import RunDir
from loralab.engine.system import ReferenceResults, system_module
from loralab.errors import LoralabError
from loralab.reports.formatting import fmt_count, fmt_duration, fmt_num, json_safe, md_table
from loralab.reports.params import ParamSummary, count_for_config, from_groups, with_released
from loralab.reports.run_log import TRAINING_CONFIG_FILE, headline_metrics
from loralab.reports.status import RunStatus, build_status


@dataclass
class CompareEntry:
    label: str
    kind: str  # 'run' | 'preset' | 'config file'
    source: str
    cfg: ExperimentConfig | None
    params: ParamSummary
    status: RunStatus | None = None


def is_run_dir(path: Path) -> bool:
    return RunDir(path).is_run()


def load_entry(arg: str) -> CompareEntry:
    """A run directory, a config file or a preset name -> what the table shows for it."""
    path = Path(arg).expanduser()
    if is_run_dir(path):
        status = build_status(path)
        from loralab.reports.run_log import read_run

        cfg = read_run(path).typed_config()
        if status.params:
            params = from_groups(status.params, source="the run's built model (start record)")
        elif cfg is not None:
            params = count_for_config(cfg)
        else:
            params = ParamSummary({}, None, None, "n/a", "n/a (no start record and no readable config)")
        return CompareEntry(status.name, "run", str(path), cfg, params, status)
    if path.is_dir():
        raise LoralabError(
            f"'{arg}' is a folder but not a run directory (no {EVENTS_FILE} or {TRAINING_CONFIG_FILE}); "
            "pass a run directory, a config file or a preset name"
        )
    cfg = load_config(arg)
    kind = "config file" if path.is_file() else "preset"
    return CompareEntry(cfg.name, kind, str(arg), cfg, with_released(cfg, count_for_config(cfg)))


def _pct(p: ParamSummary) -> str:
    return (">= " if p.partial else "") + f"{p.percent:.3f}%" if p.percent is not None else "n/a"


def _trainable(p: ParamSummary) -> str:
    return (
        (">= " if p.partial else "") + fmt_count(p.trainable) if p.trainable is not None else p.note or "n/a"
    )


def _released(p: ParamSummary) -> str:
    return f"{fmt_count(p.released[0])}: {p.released[1]}" if p.released else "n/a"


def config_rows(entries: list[CompareEntry]) -> list[tuple[str, list]]:
    """(label, one value per entry) for the configuration table."""

    def col(fn):
        return [fn(e.cfg) if e.cfg is not None else "n/a" for e in entries]

    rows: list[tuple[str, list]] = [
        ("kind", [e.kind for e in entries]),
        ("source", [e.source for e in entries]),
        ("description", col(lambda c: c.description or "–")),
        ("system", col(lambda c: c.system)),
        ("strategy", col(lambda c: c.strategy)),
        (
            "model",
            col(lambda c: c.model.name_or_path + (f" @ {c.model.revision}" if c.model.revision else "")),
        ),
        ("start point", col(_start_point)),
        (
            "LoRA rank / alpha / dropout",
            col(lambda c: f"{c.lora.rank} / {c.lora.alpha} / {c.lora.dropout:g}"),
        ),
        ("LoRA scaling (alpha / r)", col(lambda c: f"{c.lora.alpha / c.lora.rank:g}")),
        ("LoRA targets", col(lambda c: f"`{c.lora.target_modules}`")),
        ("unfrozen modules", col(lambda c: ", ".join(c.model.unfreeze) or "–")),
        ("trainable parameters", [_trainable(e.params) for e in entries]),
        ("total parameters", [fmt_count(e.params.total) for e in entries]),
        ("trainable %", [_pct(e.params) for e in entries]),
        ("released checkpoint (hub count)", [_released(e.params) for e in entries]),
        (
            "parameter count from",
            [e.params.source + (" (see notes)" if e.params.note else "") for e in entries],
        ),
        ("epochs", col(lambda c: c.training.epochs)),
        (
            "batch x accumulation",
            col(lambda c: f"{c.training.batch_size} x {c.training.gradient_accumulation}"),
        ),
        ("learning rate", col(lambda c: f"{c.training.learning_rate:g}")),
        ("schedule (warm-up)", col(lambda c: f"{c.training.lr_schedule} ({c.training.warmup_ratio:g})")),
        (
            "weight decay / max grad norm",
            col(lambda c: f"{c.training.weight_decay:g} / {c.training.max_grad_norm:g}"),
        ),
        ("mixed precision / weights", col(lambda c: f"{c.training.mixed_precision} / {c.model.dtype}")),
        ("gradient checkpointing", col(lambda c: c.model.gradient_checkpointing)),
        ("seed", col(lambda c: c.training.seed)),
        ("data", col(_data_summary)),
        ("output dir", col(lambda c: c.run_dir)),
    ]
    if any(e.status for e in entries):
        rows += _run_rows(entries)
    return rows


def _start_point(c: ExperimentConfig) -> str:
    return system_module(c.system).describe(c).start_point


def _data_summary(c: ExperimentConfig) -> str:
    return system_module(c.system).describe(c).data


def _run_rows(entries: list[CompareEntry]) -> list[tuple[str, list]]:
    def col(fn):
        return [fn(e.status) if e.status is not None else "–" for e in entries]

    return [
        ("run state", col(lambda s: s.state)),
        ("progress", col(lambda s: f"{s.step} / {s.total_steps or '?'} steps")),
        ("device", col(lambda s: f"{s.device or '?'} x {s.world_size or 1}")),
        ("s/step", col(lambda s: fmt_num(s.s_per_step) if s.s_per_step is not None else "n/a")),
        ("samples/s", col(lambda s: fmt_num(s.samples_per_s) if s.samples_per_s is not None else "n/a")),
        ("elapsed", col(lambda s: fmt_duration(s.elapsed_s))),
        ("loss first -> last", col(lambda s: f"{fmt_num(s.loss_first)} -> {fmt_num(s.loss_last)}")),
        ("loss drop", col(lambda s: f"{s.loss_drop_pct:+.1f}%" if s.loss_drop_pct is not None else "n/a")),
        ("peak memory (GB)", col(lambda s: fmt_num(s.peak_memory_gb))),
    ]


def _default_split_evals(e: CompareEntry) -> list[dict]:
    """A run's evaluations of its default split (test); other splits stay in its status report."""
    return [ev for ev in (e.status.evals if e.status else []) if ev.get("split") is None]


def _references(runs: list[CompareEntry]) -> list[ReferenceResults]:
    """The published results the runs' systems name (e.g. the paper's rows for a strategy),
    each once."""
    found: dict[str, ReferenceResults] = {}
    for e in runs:
        if e.cfg is not None:
            reference = system_module(e.cfg.system).describe(e.cfg).reference
            if reference is not None:
                found.setdefault(reference.label, reference)
    return list(found.values())


def results_rows(entries: list[CompareEntry]) -> tuple[list[str], list[list]]:
    """Headers and rows (epoch, metric, one value per run, then each reference's values)."""
    runs = [e for e in entries if _default_split_evals(e)]
    if not runs:
        return [], []
    references = _references(runs)
    metrics = headline_metrics([ev for e in runs for ev in _default_split_evals(e)])
    epochs = sorted({ev["epoch"] for e in runs for ev in _default_split_evals(e)})
    headers = ["epoch", "metric", *(e.label for e in runs), *(r.label for r in references)]
    rows = []
    for epoch in epochs:
        for m in metrics:
            values = []
            for e in runs:
                ev = next((x for x in _default_split_evals(e) if x["epoch"] == epoch), None)
                values.append(ev["metrics"].get(m) if ev else None)
            leaf = m.rsplit(".", 1)[-1]
            targets = [(r.values(epoch) or {}).get(leaf) for r in references]
            if any(v is not None for v in values):
                rows.append([epoch, m, *values, *targets])
    return headers, rows


def compare(args: list[str]) -> list[CompareEntry]:
    if not args:
        raise LoralabError("nothing to compare: pass run directories, config files or preset names")
    return [load_entry(a) for a in args]


def render_markdown(entries: list[CompareEntry]) -> str:
    headers = ["", *(e.label for e in entries)]
    out = [
        "# Comparison",
        "",
        md_table(headers, [[label, *vals] for label, vals in config_rows(entries)]),
        "",
    ]
    groups: list[str] = []
    for e in entries:
        groups += [g for g in e.params.groups if g not in groups]
    if groups:
        rows = []
        for g in groups:
            cells = []
            for e in entries:
                t = e.params.groups.get(g)
                cells.append(f"{t[0]:,} / {t[1]:,}" if t else "–")
            rows.append([g, *cells])
        out += ["## Parameter groups (trainable / total)", "", md_table(headers, rows), ""]
    r_headers, r_rows = results_rows(entries)
    if r_rows:
        out += ["## Results by epoch", "", md_table(r_headers, r_rows), ""]
        runs = [e for e in entries if _default_split_evals(e)]
        sources = list(dict.fromkeys(r.note for r in _references(runs) if r.note))
        if sources:
            out += [*sources, ""]
    notes = [f"- **{e.label}** ({e.kind}): {e.params.note}" for e in entries if e.params.note]
    if notes:
        out += ["## Notes on parameter counts", "", *notes, ""]
    return "\n".join(out)


def render_json(entries: list[CompareEntry]) -> str:
    from dataclasses import asdict

    from loralab.config.loader import config_to_dict

    r_headers, r_rows = results_rows(entries)
    data = {
        "entries": [
            {
                "label": e.label,
                "kind": e.kind,
                "source": e.source,
                "config": config_to_dict(e.cfg) if e.cfg is not None else None,
                "params": {**asdict(e.params), "percent": e.params.percent},
                "status": e.status.to_dict() if e.status is not None else None,
            }
            for e in entries
        ],
        "results": {"headers": r_headers, "rows": r_rows},
    }
    return json.dumps(json_safe(data), indent=2, default=str)
