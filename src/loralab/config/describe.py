"""Every config field with its type, default and help text (``loralab train --help-config``).

Generated from :mod:`loralab.config.schema` and the sections the registered systems declare
(``dataclasses.fields`` and their ``help`` metadata): nothing here is written per field.
"""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
import typing

from loralab.config.schema import ExperimentConfig, system_section_types


def _format_value(value) -> str:
    """A default as it would be written in YAML (null, true, 'text', [a, b])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return repr(value)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return _format_value(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _format_value(f.default_factory())
    return "(required)"


def _type_name(f: dataclasses.Field) -> str:
    # `from __future__ import annotations` keeps annotations as their source text.
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", repr(f.type))


def _section_fields(cls, prefix: str, width: int) -> list[str]:
    hints = typing.get_type_hints(cls)
    lines: list[str] = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints.get(f.name)) or (cls is ExperimentConfig and f.name == "sections"):
            continue  # a nested section, or the systems' ones: each listed on its own
        lines.append(f"  {prefix}{f.name}: {_type_name(f)} = {_default(f)}")
        text = f.metadata.get("help", "")
        if text:
            lines.extend(
                textwrap.wrap(
                    text,
                    width=width,
                    initial_indent="      ",
                    subsequent_indent="      ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
    for key, replacement in getattr(cls, "RETIRED_KEYS", {}).items():
        lines.append(f"  {prefix}{key}: retired, ignored if given; use {replacement}")
    return lines


def config_sections() -> list[tuple[str, type]]:
    """(section name, dataclass) pairs: '' for top-level fields, then each nested section, then
    each registered system's sections."""
    hints = typing.get_type_hints(ExperimentConfig)
    sections: list[tuple[str, type]] = [("", ExperimentConfig)]
    for f in dataclasses.fields(ExperimentConfig):
        if dataclasses.is_dataclass(hints.get(f.name)):
            sections.append((f.name, hints[f.name]))
    return sections + list(system_section_types().items())


def format_config_help(width: int | None = None) -> str:
    """The whole schema as readable text, grouped by section, help wrapped to the terminal."""
    if width is None:
        width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    width = max(width, 40)
    top_help = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(ExperimentConfig)}
    out = [
        "Experiment config fields (YAML keys; override any with key=value, e.g. lora.rank=32).",
        "Format: section.field: type = default, then its description.",
        "",
    ]
    for name, cls in config_sections():
        if name:
            title = f"{name}:"
            about = (cls.__doc__ or "").strip() or top_help.get(name, "")
            prefix = f"{name}."
        else:
            title = "top level:"
            about = (ExperimentConfig.__doc__ or "").strip()
            prefix = ""
        out.append(f"{title}  {about}" if about else title)
        out.extend(_section_fields(cls, prefix, width))
        out.append("")
    return "\n".join(out).rstrip() + "\n"
