"""YAML -> ExperimentConfig, strictly.

* ``base: other.yaml`` (or a preset name) extends another config; mappings merge deeply,
  the child wins.
* Every key must exist in the schema: a typo is a :class:`ConfigError` naming the key,
  the file and the closest valid key.
* Values are type-checked against the dataclass annotations (ints are accepted where
  floats are expected; ``key=value`` overrides are parsed as YAML scalars first).
* :func:`validate` collects every semantic problem and raises once.

Presets ship inside the package (``loralab/configs/{speech,protein,deepspeed}/``) and are
found through :mod:`importlib.resources`, so a wheel install has them as an editable one does.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
import warnings
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from loralab.config.schema import ExperimentConfig, config_to_dict, system_section_types

# The presets shipped as package data (an installed package is a folder on disk, so a Path).
SHIPPED_CONFIG_DIR = Path(str(files("loralab") / "configs"))


class ConfigError(ValueError):
    """A config problem the user can fix; the message says what, where and how."""


def config_dirs() -> list[Path]:
    """Where presets are looked up: $LORALAB_CONFIG_DIR (if set), then the package's configs/."""
    dirs = []
    if os.environ.get("LORALAB_CONFIG_DIR"):
        dirs.append(Path(os.environ["LORALAB_CONFIG_DIR"]))
    dirs.append(SHIPPED_CONFIG_DIR)
    return dirs


def shipped_deepspeed_configs() -> dict[str, Path]:
    """Shipped DeepSpeed config name (file stem, e.g. 'zero2') -> path."""
    return {p.stem: p for p in sorted((SHIPPED_CONFIG_DIR / "deepspeed").glob("*.json"))}


def resolve_deepspeed_config(name_or_path: str | os.PathLike) -> Path | None:
    """A DeepSpeed JSON: an existing file, else a shipped name ('zero2', 'zero2.json',
    'deepspeed/zero2.json' or the old in-repo 'configs/deepspeed/zero2.json'); None when
    it is neither (a missing file elsewhere is not mistaken for a shipped one)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.parent.as_posix() not in (".", "deepspeed", "configs/deepspeed"):
        return None
    return shipped_deepspeed_configs().get(path.name.removesuffix(".json"))


def list_presets() -> dict[str, Path]:
    """Preset name (file stem, e.g. 'paper_r64') -> path, found recursively."""
    found: dict[str, Path] = {}
    for d in reversed(config_dirs()):
        if d.is_dir():
            for p in sorted(d.rglob("*.yaml")):
                found[p.stem] = p
    return found


def resolve_config_path(name_or_path: str | os.PathLike, relative_to: Path | None = None) -> Path:
    """A path to a YAML file, or a preset name such as 'paper_r64' or 'speech/paper_r64'."""
    text = str(name_or_path)
    candidates = [Path(text)]
    if relative_to is not None:
        candidates.insert(0, relative_to / text)
    for c in candidates:
        if c.is_file():
            return c
    # A path inside a preset folder ('speech/paper_r64') first, so a user's preset of the
    # same name in $LORALAB_CONFIG_DIR can extend the shipped one; then the name anywhere.
    for d in config_dirs():
        p = d / (text if text.endswith(".yaml") else text + ".yaml")
        if p.is_file():
            return p
    presets = list_presets()
    stem = Path(text).stem if text.endswith((".yaml", ".yml")) else Path(text).name
    if stem in presets:
        return presets[stem]
    close = difflib.get_close_matches(stem, list(presets), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"config '{text}' is neither a file nor a shipped preset.{hint} "
        f"Presets: {', '.join(sorted(presets)) or '(none found)'}"
    )


def _deep_merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for k, v in child.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_raw(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The YAML mapping of ``path`` with its ``base:`` chain merged in."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: 'base' chain loops: {chain}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    base = data.pop("base", None)
    # Check this file's own keys now, so a typo names the file it is in, not a child.
    build_dataclass(ExperimentConfig, data, str(path))
    if base is None:
        return data
    base_path = resolve_config_path(base, relative_to=path.parent)
    return _deep_merge(load_raw(base_path, (*_seen, path)), data)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list[{_type_name(get_args(tp)[0])}]"
    return getattr(tp, "__name__", str(tp))


# The words YAML 1.1 turns into booleans: a choice spelled so (mixed_precision: no) is meant as the word.
_YAML_BOOL_WORDS = {False: {"no", "off", "false", "n"}, True: {"yes", "on", "true", "y"}}


def _coerce(value: Any, tp: Any, where: str, source: str) -> Any:
    """Check ``value`` against annotation ``tp``; returns the (possibly converted) value."""
    origin = get_origin(tp)
    bad = ConfigError(f"{source}: '{where}' must be {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where, source)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads no/off/false (yes/on/true) as a bool
            spelled = [a for a in get_args(tp) if str(a).lower() in _YAML_BOOL_WORDS[value]]
            value = spelled[0] if len(spelled) == 1 else value
        if value in get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{source}: '{where}' must be one of {_type_name(tp)}, got {value!r}{hint}")
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item_tp,) = get_args(tp)
        return [_coerce(v, item_tp, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping of keys, got {value!r}")
        return build_dataclass(tp, value, source, prefix=where + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    return value


def key_types(cls: type) -> dict[str, Any]:
    """Key -> type of what a mapping for ``cls`` may hold: its fields; for an ExperimentConfig, its own
    fields and every registered system's sections in place of ``sections``."""
    hints = typing.get_type_hints(cls)
    types = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    if cls is ExperimentConfig:
        del types["sections"]
        types.update(system_section_types())
    return types


def _unknown_key_error(key, types: dict, retired: dict, source: str, prefix: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), [*types, *retired], n=1, cutoff=0.5)
    if close and close[0] in retired:
        hint = f"; '{prefix}{close[0]}' is retired: {retired[close[0]]} replaces it."
    else:
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(f"{source}: unknown key '{prefix}{key}'{hint} Valid keys here: {', '.join(types)}")


def build_dataclass(cls: type, data: dict, source: str, prefix: str = ""):
    """Construct ``cls`` from ``data``, rejecting unknown keys with a suggestion."""
    types = key_types(cls)
    retired = getattr(cls, "RETIRED_KEYS", {})
    kwargs = {}
    for key, value in data.items():
        if key in retired:  # old configs and run folders still load; the value is not used
            warnings.warn(
                f"config key '{prefix}{key}' is retired and ignored: {retired[key]} replaces it",
                FutureWarning,
                stacklevel=1,  # one place, so that the warning shows once however many files hold it
            )
            continue
        if key not in types:
            raise _unknown_key_error(key, types, retired, source, prefix)
        kwargs[key] = _coerce(value, types[key], prefix + key, source)
    if cls is ExperimentConfig:
        sections = {
            key: kwargs.pop(key) for key in list(kwargs) if key not in ExperimentConfig.__dataclass_fields__
        }
        return ExperimentConfig(**kwargs, sections=sections)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'training.learning_rate=1e-4' -> (['training', 'learning_rate'], 1e-4)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. training.epochs=4")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    # YAML reads 2e-5 as a string (no dot); numbers written that way are meant as floats.
    if isinstance(value, str):
        try:
            value = (
                float(value)
                if any(c in value.lower() for c in "e.") and value[0] in "0123456789.-+"
                else value
            )
        except ValueError:
            pass
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[tuple[list[str], Any]]) -> dict:
    out = _deep_merge({}, data)
    for keys, value in overrides:
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{'.'.join(keys)}': '{k}' is not a section")
        node[keys[-1]] = value
    return out


def load_config(
    name_or_path: str | os.PathLike, overrides: list[str] | None = None, validate_now: bool = True
) -> ExperimentConfig:
    """Load a config file or preset, apply ``key=value`` overrides, type-check and validate."""
    path = resolve_config_path(name_or_path)
    data = load_raw(path)
    parsed = [parse_override(o) for o in overrides or []]
    data = apply_overrides(data, parsed)
    source = str(path) + (" (with overrides)" if parsed else "")
    cfg = _resolved_by_system(build_dataclass(ExperimentConfig, data, source))
    if validate_now:
        validate(cfg, source)
    return cfg


def _resolved_by_system(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config with what it leaves to its system filled in (the system's ``resolve_config``)."""
    from loralab.engine.system import registered_systems, system_module

    if registered_systems().get(cfg.system) is None:  # whether there is one (validate says which are)
        return cfg
    resolve = getattr(system_module(cfg.system), "resolve_config", None)
    return resolve(cfg) if resolve is not None else cfg


def _system_problems(cfg: ExperimentConfig) -> list[str]:
    """What the config's system finds wrong with it (its own sections, groups and tasks)."""
    from loralab.engine.system import registered_systems, system_module

    systems, name = registered_systems(), cfg.system
    if systems.get(name) is None:  # not a branch on which system: whether there is one
        close = difflib.get_close_matches(name, list(systems), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return [
            f"system: unknown '{name}'{hint}; registered: {', '.join(systems)} (a package adds "
            "its own with loralab.engine.system.register_system)"
        ]
    return list(system_module(cfg.system).validate_config(cfg))


def validate(cfg: ExperimentConfig, source: str = "config") -> None:
    """Every semantic problem at once, as one ConfigError."""
    problems = []
    t = cfg.training
    for name in ("epochs", "batch_size", "gradient_accumulation", "log_every"):
        if getattr(t, name) < 1:
            problems.append(f"training.{name} must be >= 1 (got {getattr(t, name)})")
    if not t.learning_rate > 0:
        problems.append(f"training.learning_rate must be > 0 (got {t.learning_rate})")
    if not 0 <= t.warmup_ratio < 1:
        problems.append(f"training.warmup_ratio must be in [0, 1) (got {t.warmup_ratio})")
    if len(t.adam_betas) != 2 or not all(0 <= b < 1 for b in t.adam_betas):
        problems.append(f"training.adam_betas must be two numbers in [0, 1) (got {t.adam_betas})")
    if t.gpus is not None and not all(p.strip().isdigit() for p in t.gpus.split(",")):
        problems.append(f"training.gpus must be comma-separated device indices like '0,1' (got {t.gpus!r})")
    if cfg.lora.rank < 1:
        problems.append(f"lora.rank must be >= 1 (got {cfg.lora.rank})")
    if not 0 <= cfg.lora.dropout < 1:
        problems.append(f"lora.dropout must be in [0, 1) (got {cfg.lora.dropout})")
    if cfg.strategy == "unfreeze" and not cfg.model.unfreeze:
        problems.append("strategy 'unfreeze' needs model.unfreeze (e.g. [audio_encoder, audio_projector])")
    if cfg.strategy == "lora" and cfg.model.unfreeze:
        problems.append(f"strategy 'lora' trains LoRA only, but model.unfreeze = {cfg.model.unfreeze}")
    problems += _system_problems(cfg)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
