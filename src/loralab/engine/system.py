"""The contract between the shared trainer and a system (speech, protein).

The engine knows nothing of audio or proteins. A system module (each system's plug-in is named
alike: ``loralab.speech.contract``, ``loralab.protein.contract``) exposes:

* ``build_parts(cfg, runtime) -> SystemParts``: the trainer does the rest (optimizer,
  schedule, accumulation, mixed precision, checkpoints, resume, events, TensorBoard,
  distributed). ``runtime`` is :class:`loralab.engine.runtime.Runtime` (device, dtypes,
  process rank/world size, ``is_main``, and ``resume_from``: the checkpoint a resumed run
  continues, from which a system may restore what it computes before training).
* ``count_parameters(cfg) -> dict[str, ParamCount]``: the same groups ``build_parts``
  reports, computed without loading weights (the model built on the meta device from its
  config), so ``loralab compare`` can show presets before any run exists.
* ``validate_config(cfg) -> list[str]``: the system's problems with a config (its own
  sections, its groups and tasks), one line each; ``loralab.config`` adds them to its own.
* ``describe(cfg) -> SystemDescription``: what ``loralab compare`` and the reports show
  about a config of this system (data, start point, unfrozen groups, published results).
* ``HEADLINE_METRICS``: metric names (leaves), in the order tables and plots show them.
* ``evaluate_run(run_dir, request: EvalRequest) -> EvalOutcome``: ``loralab evaluate``;
  ``EVALUATION_OPTIONS`` names the :class:`EvalRequest` fields it honours (the CLI notes
  any other given option as ignored).
* optional, ``ESTIMATOR``: ``"module:function"`` of the function that answers ``loralab
  estimate`` (GPU memory and time without a GPU) for the system's configs, called as
  ``function(cfg, batch_size, mfu, weight_dtype, autocast_dtype) -> dict`` (see
  :func:`loralab.estimate.core.estimate`); a name, not an import, so that the estimator may
  use the system's internals without an import cycle. Without it the estimator says the
  system is not supported.
* optional, ``resolve_config(cfg) -> cfg``: the config with the settings it leaves to the system
  filled in (speech: ``lora.target_modules`` unset -> the backbone family's targets), as a new
  config (``cfg`` is not changed); ``loralab.config.load_config`` applies it, so a run records
  what it resolved to.

Nothing outside a system package asks which system a config is: it asks the system.

**The registry is open.** A system is a name and the module implementing :class:`System`,
registered with :func:`register_system`. loralab's own systems are registered below; a package
of another registers itself, either by calling :func:`register_system` when it is imported, or
without any import by the user through an entry point in the group :data:`ENTRY_POINT_GROUP`
(``[project.entry-points."loralab.systems"] mysystem = "mypackage.loralab_plugin:register"``:
the object named is called, or, for a module, importing it is the registration).
A system owns its config sections (``speech``; ``protein`` and ``protein_head``): it names, when
it registers, a light module whose ``CONFIG_SECTIONS`` maps each section to its dataclass, and
:class:`loralab.config.schema.ExperimentConfig` holds every registered system's sections.
``tests/engine/toy_system.py`` implements the whole contract with no model at all and registers
itself as ``toy``.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

ENTRY_POINT_GROUP = "loralab.systems"
# name -> module implementing System; loralab's own systems, then whatever registers itself.
SYSTEM_MODULES: dict[str, str] = {}
# name -> module whose CONFIG_SECTIONS (section name -> dataclass) are that system's config sections.
SYSTEM_CONFIG_SECTIONS: dict[str, str] = {}
_SCANNED_PATH: list[tuple[str, ...]] = []  # sys.path when the entry points were last read


@dataclass
class ParamCount:
    """Trainable and total parameters of one named group (e.g. 'lora', 'audio_encoder')."""

    trainable: int
    total: int


@dataclass
class SystemParts:
    """Everything the trainer needs from a system.

    model: the module to train; exactly the intended parameters have requires_grad=True
        (trainable ones in fp32; frozen ones may be bf16).
    train_dataset: an indexable sequence of examples, passed to ``collate``.
    collate: list of examples -> batch dict of tensors; it also carries ``"ids"``
        (list[str], one per example: utterance or protein ids, named in NaN reports) and
        ``"num_tokens"`` (int, target tokens or pairs, for throughput).
    lengths: one int per train example (for length-grouped batches).
    loss_fn: (model, batch) -> scalar mean loss over target positions only. ``model`` is the
        module as the trainer prepared it (under DDP/DeepSpeed a wrapper): run the forward
        through ``model(...)`` so gradient synchronisation hooks fire; reach attributes of the
        inner module through its ``.module``. Tensors of ``batch`` are already on the device,
        and the call runs under the run's autocast.
    param_groups: name -> ParamCount, printed at start and stored in training_config.json.
    save_trainable(model, dir): write adapter and any unfrozen weights as safetensors (the
        trainer passes the unwrapped module; ``dir`` exists).
    load_trainable(model, dir): load what save_trainable wrote (resume, evaluation).
    save_final(model, dir): write what inference needs (adapter, unfrozen weights,
        tokenizer/processor files, a model card pointing at the base model).
    evaluate: optional (model, run_dir, epoch) -> dict of metrics, run after each epoch
        when cfg.evaluation.every_epoch is set, on the main process only, with the unwrapped
        module; the trainer restores the training RNG afterwards and sets train() mode again.
    """

    model: Any
    train_dataset: Sequence
    collate: Callable[[list], dict]
    lengths: list[int]
    loss_fn: Callable[[Any, dict], Any]
    param_groups: dict[str, ParamCount]
    save_trainable: Callable[[Any, Path], None]
    load_trainable: Callable[[Any, Path], None]
    save_final: Callable[[Any, Path], None]
    evaluate: Callable[[Any, Path, int], dict[str, float]] | None = None


@dataclass
class ReferenceResults:
    """Published results shown beside a run's, epoch by epoch (e.g. a paper's table).

    label: the column header (e.g. 'paper (lora)'). values(epoch): metric leaf -> value, or
    None when the reference has no row for that epoch. note: one line naming the source.
    """

    label: str
    values: Callable[[int], dict[str, float] | None]
    note: str = ""


@dataclass
class SystemDescription:
    """What a system says about one config (``describe(cfg)``), for ``compare`` and reports.

    data: one line, the data the config trains on. start_point: where training starts.
    unfrozen_prefixes: unfrozen group -> module-name prefixes in the plain model (for the
    analytical parameter count when the system's own count cannot run). other_trainable:
    trainable modules besides LoRA and the unfrozen groups (a head) that such a count misses,
    None when there are none. reference: published results to compare with, if any.
    """

    data: str
    start_point: str
    unfrozen_prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    other_trainable: str | None = None
    reference: ReferenceResults | None = None


@dataclass
class EvalRequest:
    """What ``loralab evaluate`` was asked (``None``/``False``: not given, the run's setting)."""

    checkpoints: str = "all"
    split: str | None = None
    limit: int | None = None
    batch_size: int | None = None
    base_model: str | None = None
    manifest_dir: str | None = None
    max_new_tokens: int | None = None
    device: str | None = None
    restart: bool = False
    progress: bool = True
    ablation: list[str] | None = None

    def given(self) -> list[str]:
        """Names of the options set away from their defaults."""
        return [f.name for f in fields(self) if getattr(self, f.name) != f.default]


@dataclass
class EvalOutcome:
    """Where an evaluation was written, and what to tell the user about it."""

    path: Path
    lines: list[str] = field(default_factory=list)


class System(Protocol):
    """What a system module provides (the module doc says what each is for); a module meets it
    by having these attributes. Optional: ``ESTIMATOR``."""

    def build_parts(self, cfg, runtime) -> SystemParts: ...
    def count_parameters(self, cfg) -> dict[str, ParamCount]: ...
    def validate_config(self, cfg) -> list[str]: ...
    def describe(self, cfg) -> SystemDescription: ...
    def evaluate_run(self, run_dir: str | Path, request: EvalRequest) -> EvalOutcome: ...

    HEADLINE_METRICS: Sequence[str]
    EVALUATION_OPTIONS: frozenset[str]


CONTRACT = (
    *(n for n, v in vars(System).items() if callable(v) and not n.startswith("_")),
    *System.__annotations__,
)
OPTIONAL_CONTRACT = ("ESTIMATOR", "resolve_config")


def register_system(name: str, module: str, config_sections: str | None = None) -> None:
    """Make system ``name`` (a config's ``system:``) the module ``module`` (an importable name,
    imported only when the system is asked something). ``config_sections``: an importable module
    whose ``CONFIG_SECTIONS`` maps each config section the system owns (a top-level YAML key) to
    its dataclass; kept apart from ``module`` so that reading a config imports no model code.
    Registering a name again replaces it."""
    if not name.isidentifier():
        raise ValueError(f"system name {name!r}: use letters, digits and '_' (it is a config value)")
    SYSTEM_MODULES[name] = module
    if config_sections is None:
        SYSTEM_CONFIG_SECTIONS.pop(name, None)
    else:
        SYSTEM_CONFIG_SECTIONS[name] = config_sections


register_system("speech", "loralab.speech.contract", config_sections="loralab.speech.config")
register_system("protein", "loralab.protein.contract", config_sections="loralab.protein.config")


def registered_systems() -> dict[str, str]:
    """name -> module of every registered system, packages with an entry point included."""
    path = tuple(sys.path)
    if _SCANNED_PATH != [path]:  # a package put on the path since the last look registers now
        _SCANNED_PATH[:] = [path]
        _load_entry_points()
    return dict(SYSTEM_MODULES)


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            if callable(loaded):
                loaded()
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not stop the others
            warnings.warn(f"loralab system plug-in {point.value!r} ({point.name}) failed: {e}", stacklevel=2)


def config_section_types() -> dict[str, type]:
    """Section name -> dataclass of every registered system's config sections, in the order the
    systems registered (so a config serialises its sections in a stable order)."""
    registered_systems()  # packages with an entry point declare their sections too
    sections: dict[str, type] = {}
    owners: dict[str, str] = {}
    for system_name, module_name in SYSTEM_CONFIG_SECTIONS.items():
        for section, cls in importlib.import_module(module_name).CONFIG_SECTIONS.items():
            if section in sections:
                raise TypeError(
                    f"config section '{section}' is declared by system '{owners[section]}' and by '{system_name}'"
                )
            sections[section], owners[section] = cls, system_name
    return sections


def system_module(name: str) -> System:
    """The module implementing system ``name`` (the members of :class:`System`)."""
    systems = registered_systems()
    if name not in systems:
        raise ValueError(
            f"unknown system '{name}' (registered: {', '.join(systems)}; a package registers its own "
            "with loralab.engine.system.register_system or the 'loralab.systems' entry point group)"
        )
    module = importlib.import_module(systems[name])
    missing = [n for n in CONTRACT if not hasattr(module, n)]
    if missing:
        raise TypeError(
            f"system '{name}' ({module.__name__}) lacks {', '.join(missing)} of the system contract"
        )
    return module


def headline_metric_order() -> tuple[str, ...]:
    """Every registered system's headline metrics, in their order (for tables and plots that
    show runs of any system)."""
    order: list[str] = []
    for name in registered_systems():
        order += [m for m in system_module(name).HEADLINE_METRICS if m not in order]
    return tuple(order)
