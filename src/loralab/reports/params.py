"""Trainable-parameter counts for ``loralab compare``, before any run exists.

First choice: the system's own ``count_parameters(cfg)`` (the model built on the meta
device from its config.json, no weights; the same groups a run reports). When that cannot
run (a hub id not available offline, a system not installed), the LoRA parameters are
counted analytically: the backbone is built on the meta device from a config (a local
folder, the Hugging Face cache, or the published architecture below), and every
``nn.Linear`` whose name full-matches ``lora.target_modules`` (PEFT's rule for a regex)
adds ``r x (in_features + out_features)`` (A is r x in, B is out x r, no bias).

For Phi-4-multimodal-instruct this gives, per unit of rank, 32 text layers x (qkv
3072->5120: 8192, o 3072->3072: 6144, gate_up 3072->16384: 19456, down 8192->3072:
11264) = 1,441,792 parameters; nothing here states that number, it comes from the shapes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from loralab.config.schema import ExperimentConfig
from loralab.engine.known_models import RELEASED_ADAPTERS, local_model_dir, offline_config, published_config
from loralab.engine.system import system_module


@dataclass
class ParamSummary:
    """What the compare table shows for one configuration. ``groups`` is name ->
    (trainable, total); the groups partition the model. ``trainable``/``total`` are None when
    unknown; ``note`` says where the numbers came from or why there are none."""

    groups: dict[str, tuple[int, int]]
    trainable: int | None
    total: int | None
    source: str
    note: str = ""
    partial: bool = False  # trainable modules known to be missing from ``trainable``
    # (parameters of the base model as released, with the adapters it ships; how counted): the
    # number a model hub shows. None when unknown.
    released: tuple[int, str] | None = None

    @property
    def percent(self) -> float | None:
        if self.trainable is None or not self.total:
            return None
        return 100.0 * self.trainable / self.total


def from_groups(groups: dict, source: str, note: str = "") -> ParamSummary:
    """From {group: ParamCount or {'trainable', 'total'}} (the system's or a run's). A group
    named 'total' (the speech system adds one) is the sum of the others, not a part."""
    out: dict[str, tuple[int, int]] = {}
    for name, g in groups.items():
        if isinstance(g, dict):
            out[name] = (int(g["trainable"]), int(g["total"]))
        else:
            out[name] = (int(g.trainable), int(g.total))
    if "total" in out:
        trainable, total = out.pop("total")
    else:
        trainable, total = sum(t for t, _ in out.values()), sum(n for _, n in out.values())
    return ParamSummary(out, trainable, total, source=source, note=note)


@functools.lru_cache(maxsize=4)
def _meta_model(name_or_path: str, revision: str | None):
    """(model on the meta device, where its config came from); cached: presets share a model."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    config, where = offline_config(name_or_path, revision)
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config), where
        except ValueError:  # not a causal LM class (e.g. an encoder backbone)
            return AutoModel.from_config(config), where


def lora_rank(cfg: ExperimentConfig) -> tuple[int, str]:
    """The rank that will be trained, and how to say it: ``lora.rank``, the one source (the
    systems' own counts read it too; for init=pretrained training refuses an adapter of another r)."""
    how = " (the pretrained adapter's, checked when training starts)" if cfg.lora.init == "pretrained" else ""
    return cfg.lora.rank, f"r={cfg.lora.rank}{how}"


def lora_shapes(model, target_regex: str) -> list[tuple[str, int, int]]:
    """(name, in_features, out_features) of each Linear that PEFT would wrap."""
    import torch

    pattern = re.compile(target_regex)
    return [
        (name, m.in_features, m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and pattern.fullmatch(name)
    ]


def analytical_count(cfg: ExperimentConfig) -> ParamSummary:
    """LoRA parameters from layer shapes on the meta device, plus the unfrozen groups by the
    module-name prefixes the system gives (``describe``); 'n/a' with the reason if the model
    config cannot be had offline. ``partial`` is set where the system names trainable modules
    this count leaves out (a protein head)."""
    try:
        model, where = _meta_model(str(Path(cfg.model.name_or_path).expanduser()), cfg.model.revision)
    except Exception as e:  # noqa: BLE001 - a cell says n/a, the table goes on
        return ParamSummary({}, None, None, source="n/a", note=f"n/a ({e})")
    rank, rank_note = lora_rank(cfg)
    shapes = lora_shapes(model, cfg.lora.target_modules)
    lora = sum(rank * (i + o) for _, i, o in shapes)
    per_rank = sum(i + o for _, i, o in shapes)
    groups: dict[str, tuple[int, int]] = {"lora": (lora, lora)}
    params = dict(model.named_parameters())
    described = system_module(cfg.system).describe(cfg)  # the unfrozen groups, as the backbone names them
    unfrozen = 0
    for group, prefixes in described.unfrozen_prefixes.items():
        n = sum(p.numel() for name, p in params.items() if name.startswith(prefixes))
        groups[group] = (n, n)
        unfrozen += n
    base = sum(p.numel() for p in params.values())
    groups["frozen"] = (0, base - unfrozen)
    note = f"{len(shapes)} LoRA target modules, {per_rank:,} parameters per unit of rank, {rank_note}; config: {where}"
    partial = described.other_trainable is not None
    if partial:
        note += (
            f"; LoRA only: the system's own trainable modules ({described.other_trainable}) are not counted"
        )
    return ParamSummary(
        groups, lora + unfrozen, lora + base, source="analytical (layer shapes)", note=note, partial=partial
    )


def count_for_config(cfg: ExperimentConfig) -> ParamSummary:
    """The system's count on a local copy of the model, else the analytical LoRA count (with
    the reason the system's count could not be used)."""
    from dataclasses import replace

    local = local_model_dir(cfg.model.name_or_path, cfg.model.revision)
    if local is None and published_config(cfg.model.name_or_path) is None:
        reason = f"'{cfg.model.name_or_path}' is not available offline (neither a folder nor cached)"
    else:
        # A local copy, or a published architecture the systems know offline: never the network.
        count_cfg = (
            cfg
            if local is None
            else replace(cfg, model=replace(cfg.model, name_or_path=str(local), revision=None))
        )
        try:
            groups = system_module(cfg.system).count_parameters(count_cfg)
            return from_groups(groups, source="system count (model built on the meta device)")
        except Exception as e:  # noqa: BLE001 - never crash the table: fall back and say why
            reason = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    summary = analytical_count(cfg)
    if summary.trainable is None:  # no count at all: lead with the n/a and its reason
        summary.note += "" if local is None else f"; the system's count failed: {reason}"
    else:
        summary.note = f"system count not used: {reason}; {summary.note}"
    return summary


def _local_adapters(folder: Path) -> list[tuple[str, int]]:
    """(subfolder, parameters) of each adapter a local model folder ships (safetensors headers only)."""
    from safetensors import safe_open

    found = []
    for weights in sorted(folder.glob("*/adapter_model.safetensors")):
        with safe_open(str(weights), framework="pt") as f:
            count = 0
            for key in f.keys():
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= d
                count += n
        found.append((weights.parent.name, count))
    return found


def released_checkpoint(cfg: ExperimentConfig, summary: ParamSummary) -> tuple[int, str] | None:
    """The base model's parameters as released, its shipped adapters included (the hub's count):
    the count's total less the LoRA being trained, plus each shipped adapter (read from a local
    folder's adapter headers, else from :data:`RELEASED_ADAPTERS` and the layer shapes)."""
    if summary.total is None or "lora" not in summary.groups:
        return None
    base = summary.total - summary.groups["lora"][1]
    local = local_model_dir(cfg.model.name_or_path, cfg.model.revision)
    if local is not None:
        shipped = _local_adapters(local)
    else:
        specs = RELEASED_ADAPTERS.get(cfg.model.name_or_path, ())
        shipped = []
        if specs:
            model, _ = _meta_model(cfg.model.name_or_path, cfg.model.revision)
            for folder, rank, targets in specs:
                shipped.append(
                    (f"{folder} r={rank}", rank * sum(i + o for _, i, o in lora_shapes(model, targets)))
                )
    how = "base model" + "".join(f" + {name} ({n:,})" for name, n in shipped)
    return base + sum(n for _, n in shipped), how


def with_released(cfg: ExperimentConfig, summary: ParamSummary) -> ParamSummary:
    """``summary`` with :attr:`ParamSummary.released` filled in where it can be counted offline."""
    try:
        summary.released = released_checkpoint(cfg, summary)
    except Exception:  # noqa: BLE001 - an extra row: never worth failing the table for
        summary.released = None
    return summary
