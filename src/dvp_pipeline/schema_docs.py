"""The config schema as text people read: the starter config, the config reference and ``--help``.

Every key's default and meaning live in ``schemas/config.schema.yaml`` alone; this module renders
them as the commented starter ``config.yaml`` (``dvp init`` writes it, and the repository's
``config/config.yaml`` is the same text), the key tables of ``config/README.md``, and the option
lists of each stage's ``--help``. A test checks that the committed files are what it renders.

Examples
--------
>>> print(describe("report").splitlines()[1])
  dpi = 100
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from dvp_pipeline.config import schema

__all__ = ["DEMO_VALUES", "config_reference", "describe", "starter_config"]

#: The values of the keys without a default (and the demo's channels) in the starter config: the
#: demo cohort of ``data/sample``, so that ``dvp init --demo`` runs as written.
DEMO_VALUES: dict[str, Any] = {
    "samples": "config/samples.tsv",
    "runs": "config/runs.tsv",
    "channels": ["DAPI", "KRT14", "CD8", "CD163"],
    "quantify.report": "data/sample/diann_report.parquet",
    "differential.contrasts": [["TEN", "MPR"]],
}

_HEADER = """\
# dvp-pipeline configuration, for the demo cohort in data/sample: edit it for your own data.
# Paths are relative to the project folder (where `dvp run` runs). Every key is shown with its
# default; unknown keys are errors (usually typos), reported before any job runs.
# Reference: config/README.md; `dvp STAGE --help` lists the keys of each stage's section.
"""


def _entries(properties: Mapping, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """(dotted key, spec) of every key, depth first, in the schema's order."""
    for key, spec in properties.items():
        yield prefix + key, spec
        if "properties" in spec:
            yield from _entries(spec["properties"], prefix + key + ".")


def _choices(spec: Mapping) -> str:
    options = spec.get("enum") or next((s["enum"] for s in spec.get("anyOf", []) if "enum" in s), None)
    return " | ".join(str(o) for o in options) if options else ""


def _flow(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _comment(spec: Mapping) -> str:
    text = spec.get("description", "")
    choices = _choices(spec)
    if choices and choices not in text:
        text = f"{text} ({choices})" if text else choices
    return text.strip()


def starter_config(values: Mapping[str, Any] = DEMO_VALUES) -> str:
    """The commented ``config.yaml``: every key with its default, ``values`` (dotted keys) filled in.

    Keys with neither a default nor a value (e.g. ``quantify.spectra``) are shown commented out.
    """
    lines = [_HEADER.rstrip("\n")]

    def emit(properties: Mapping, indent: str, prefix: str) -> None:
        for key, spec in properties.items():
            path = prefix + key
            if not indent:  # a blank line between top-level keys and sections
                lines.append("")
            comment = _comment(spec)
            lines.extend(f"{indent}# {line}" for line in textwrap.wrap(comment, 100 - len(indent)))
            if "properties" in spec and path not in values:
                lines.append(f"{indent}{key}:")
                emit(spec["properties"], indent + "  ", path + ".")
                continue
            if path in values:
                value = values[path]
            elif "default" in spec:
                value = spec["default"]
            else:
                lines.append(f"{indent}# {key}: (no default; set it when needed)")
                continue
            if isinstance(value, list) and value and all(isinstance(v, dict | list) for v in value):
                lines.append(f"{indent}{key}:")
                lines.extend(f"{indent}  - {_flow(v)}" for v in value)
            else:
                lines.append(f"{indent}{key}: {_flow(value)}")

    emit(schema("config.schema.yaml")["properties"], "", "")
    return "\n".join(lines) + "\n"


def config_reference() -> str:
    """The tables of ``config/README.md`` (Markdown): the sheets' columns, then one table per config section."""
    out = []
    for sheet in ("samples", "runs"):
        spec = schema(f"{sheet}.schema.yaml")
        out += [f"### `config/{sheet}.tsv`", "", spec["description"], "", "| column | required | meaning |"]
        out.append("|---|---|---|")
        for column, cspec in spec["properties"].items():
            required = "yes" if column in spec["required"] else "no"
            out.append(f"| `{column}` | {required} | {cspec.get('description', '')} |")
        out.append("")
    root = schema("config.schema.yaml")["properties"]
    top = {k: v for k, v in root.items() if "properties" not in v}
    sections = {"top level": top} | {k: v["properties"] for k, v in root.items() if "properties" in v}
    for name, properties in sections.items():
        title = f"### `config.yaml`: `{name}`" if name != "top level" else "### `config.yaml`: top level"
        out += [title, "", "| key | default | meaning |"]
        out.append("|---|---|---|")
        for key, spec in _entries(properties):
            if "properties" in spec:
                continue
            default = f"`{_flow(spec['default'])}`" if "default" in spec else "(required)"
            meaning = _comment(spec).replace("|", "\\|")
            out.append(f"| `{key}` | {default.replace('|', chr(92) + '|')} | {meaning} |")
        out.append("")
    return "\n".join(out)


def describe(section: str) -> str:
    """A plain-text list of a config section's keys, defaults and meanings, for ``--help``."""
    lines = []
    for key, spec in _entries(schema("config.schema.yaml")["properties"][section].get("properties", {})):
        if "properties" in spec:
            continue
        default = json.dumps(spec["default"]) if "default" in spec else "(required)"
        lines.append(f"  {key} = {default}")
        if comment := _comment(spec):
            lines.append(f"      {comment}")
    return "\n".join(lines)
