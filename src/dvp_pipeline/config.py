"""Configuration: the project's config.yaml and its two sheets, validated before any job runs.

The JSON Schemas in ``schemas/`` (draft 2020-12) define every key, its type and its default.
:func:`load_project` reads the config, fills defaults, reads ``samples.tsv`` and ``runs.tsv`` and
checks what a schema cannot (unique ids, cross-references, files that exist, runs present in the
search-engine report), so a wrong value fails in seconds with the file, the row or key, and what
was expected, instead of hours later inside a job.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import read_text

__all__ = ["Project", "load_config", "load_yaml", "load_project", "read_sheet", "schema", "section_options", "validate"]

SHEET_SCHEMAS = {"samples": "samples.schema.yaml", "runs": "runs.schema.yaml"}


@functools.cache
def schema(name: str) -> dict:
    """The package's JSON Schema ``name`` (e.g. ``"config.schema.yaml"``)."""
    text = resources.files("dvp_pipeline").joinpath("schemas", name).read_text()
    return yaml.safe_load(text)


def _with_defaults(cls):
    """A validator class that also fills ``default`` values into the instance as it walks it."""
    check_properties = cls.VALIDATORS["properties"]

    def properties(validator, props, instance, sch):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, sch)

    return jsonschema.validators.extend(cls, {"properties": properties})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _where(error: jsonschema.ValidationError) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts) or "top level"


def _path_key(error: jsonschema.ValidationError) -> list[tuple]:
    # YAML keys need not be strings (1:, null:, true:): list indices sort as numbers, keys as text.
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.path]


def _explain(error: jsonschema.ValidationError) -> str:
    where = _where(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed), key=str)  # YAML keys may be numbers, null ...
        lines = []
        for key in extra:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            lines.append(f"{where}: unknown key '{key}'{hint}; expected one of: {', '.join(allowed)}")
        return "\n".join(lines)
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "pattern":
        return (
            f"{where}: {error.instance!r} may contain only letters, digits, '_', '.' and '-' "
            "and must start with a letter or digit"
        )
    return f"{where}: {error.message}"


def validate(instance, schema_name: str, *, source: str):
    """Validate ``instance`` against a package schema in place, filling defaults; return it.

    Raises :class:`DVPError` listing every problem, each prefixed by ``source`` and the key path.
    """
    errors = sorted(_Validator(schema(schema_name)).iter_errors(instance), key=_path_key)
    if errors:
        raise DVPError("\n".join(f"{source}: {_explain(e)}" for e in errors))
    return instance


def section_options(options: dict, section: str, *, source: str) -> dict:
    """Validate the options of one config section (e.g. ``"classify"``) in place, filling defaults."""
    root = schema("config.schema.yaml")
    sub = {"$defs": root["$defs"], **root["properties"][section]}
    errors = sorted(_Validator(sub).iter_errors(options), key=_path_key)
    if errors:
        raise DVPError(
            "\n".join(f"{source}: {section}.{_explain(e)}".replace(f"{section}.top level", section) for e in errors)
        )
    return options


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML lets the last win)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key '{key}' appears twice (line {seen[key]} and line {key_node.start_mark.line + 1}); "
                "only one value can count",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str, *, source: str):
    """Parse YAML text safely, refusing duplicate keys; errors name ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise DVPError(f"{source}: not valid YAML ({err})") from err


def load_config(path: str | Path) -> dict:
    """Read and validate ``config.yaml``; return it with every default filled."""
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: config file not found")
    config = load_yaml(read_text(path, what="the config.yaml"), source=str(path))
    if not isinstance(config, dict):
        raise DVPError(f"{path}: expected a mapping of keys to values at the top level")
    return validate(config, "config.schema.yaml", source=str(path))


def read_sheet(path: str | Path, kind: str) -> pd.DataFrame:
    """Read a samples or runs sheet (TSV) and validate each row; ids are read as strings."""
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: {kind} sheet not found")
    try:
        sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
        header = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#", header=None, nrows=1)
    except Exception as err:  # pandas raises several parser error types
        raise DVPError(f"{path}: cannot read {kind} sheet as tab-separated text ({err})") from err
    if not isinstance(sheet.index, pd.RangeIndex):  # pandas took the extra leading values as an index
        raise DVPError(
            f"{path}: row 2 has more values than the header has columns ({len(sheet.columns)}); a stray tab?"
        )
    names = [str(c).strip() for c in header.iloc[0]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DVPError(f"{path}: column(s) {', '.join(repr(n) for n in twice)} appear more than once in the header")
    sheet.columns = [c.strip() for c in sheet.columns]
    sheet = sheet.apply(lambda col: col.str.strip())
    if sheet.empty:
        raise DVPError(f"{path}: the {kind} sheet has no rows")
    problems = []
    for i, row in enumerate(sheet.to_dict("records")):
        record = {k: (None if v == "" else v) for k, v in row.items()}
        if record.get("pixel_size_um") is not None:
            try:
                record["pixel_size_um"] = float(record["pixel_size_um"])
            except ValueError:
                pass  # the schema reports it as not a number
            else:
                if not math.isfinite(record["pixel_size_um"]):  # nan and inf pass the schema's bound
                    problems.append(
                        f"{path}, row {i + 2}: pixel_size_um: expected a positive number of micrometres, "
                        f"got {row['pixel_size_um']!r}"
                    )
                    continue
        record = {k: v for k, v in record.items() if v is not None}  # an empty required cell reads as missing
        try:
            validate(record, SHEET_SCHEMAS[kind], source=f"{path}, row {i + 2}")
        except DVPError as err:
            problems.append(str(err))
    if problems:
        raise DVPError("\n".join(problems))
    key = "sample" if kind == "samples" else "run"
    dup = sheet[key][sheet[key].duplicated(keep=False)]
    if not dup.empty:
        rows = ", ".join(str(i + 2) for i in dup.index)
        raise DVPError(f"{path}: {key} '{dup.iloc[0]}' appears more than once (rows {rows}); each {key} must be unique")
    if "pixel_size_um" in sheet:
        sheet["pixel_size_um"] = pd.to_numeric(sheet["pixel_size_um"].replace("", None))
    return sheet


@dataclass
class Project:
    """A validated config with its sheets: everything the workflow needs to plan its jobs."""

    config: dict
    samples: pd.DataFrame
    runs: pd.DataFrame

    @functools.cached_property
    def options(self):
        """Every stage's typed options (:class:`dvp_pipeline.options.PipelineOptions`)."""
        from dvp_pipeline.options import PipelineOptions  # options builds on this module's validation

        return PipelineOptions.from_config(self.config)

    @property
    def cell_types(self) -> list[str]:
        """Cell types that have MS runs, in the order of the classification rules."""
        order = [r["name"] for r in self.config["classify"]["cell_types"]]
        return [c for c in order if c in set(self.runs["cell_type"])]


def load_project(config: str | Path | dict, *, base: str | Path = ".", check_report: bool = True) -> Project:
    """Validate a config (path or already-loaded mapping) and its sheets against each other.

    ``base`` is the directory relative paths are resolved from (the workflow's working directory).
    With ``check_report`` the run names are checked against the search-engine report, which reads
    only its run column.
    """
    base = Path(base)
    if isinstance(config, dict):
        config = validate(copy.deepcopy(config), "config.schema.yaml", source="config")
        source = "config"
    else:
        source = str(config)
        config = load_config(config)
    samples_path, runs_path = base / config["samples"], base / config["runs"]
    samples = read_sheet(samples_path, "samples")
    runs = read_sheet(runs_path, "runs")

    from dvp_pipeline.checks import check_project  # the checks use the stages' own code

    check_project(
        config,
        samples,
        runs,
        base=base,
        source=source,
        samples_path=samples_path,
        runs_path=runs_path,
        check_report=check_report,
    )
    # Spelled out so the select stage (and its wells) never depends on which types a sample happens to have.
    config["select"]["cell_types"] = config["select"]["cell_types"] or [
        r["name"] for r in config["classify"]["cell_types"]
    ]
    return Project(config=config, samples=samples, runs=runs)
