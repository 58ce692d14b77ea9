"""Helpers shared by the subcommands: stage options and common arguments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

from dvp_pipeline.config import schema, section_options
from dvp_pipeline.errors import DVPError


def add_options_argument(parser: argparse.ArgumentParser, section: str) -> None:
    """Add ``--options`` and list the section's keys, defaults and meanings in the help epilog."""
    parser.add_argument(
        "--options",
        default="{}",
        metavar="JSON",
        help=f"the '{section}' section of config.yaml as JSON, or @FILE (JSON or YAML); "
        "missing keys take their defaults (listed below)",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (parser.epilog or "") + f"\n\noptions ('{section}' section of config.yaml):\n" + describe(section)


def describe(section: str) -> str:
    """A plain-text table of a config section's keys, defaults and descriptions, for --help."""
    props = schema("config.schema.yaml")["properties"][section].get("properties", {})
    lines = []
    for key, spec in props.items():
        default = json.dumps(spec["default"]) if "default" in spec else "(required)"
        lines.append(f"  {key} = {default}")
        if spec.get("description"):
            lines.append(f"      {spec['description']}")
        for sub, sspec in spec.get("properties", {}).items():
            lines.append(
                f"  {key}.{sub} = {json.dumps(sspec.get('default'))}"
                + (f"  ({sspec['description']})" if sspec.get("description") else "")
            )
    return "\n".join(lines)


def parse_options(text: str | None) -> tuple[dict, str]:
    """``--options`` text (JSON or YAML, or @FILE) as a mapping, and where it came from (for messages)."""
    text = text or "{}"
    source = "--options"
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise DVPError(f"--options: file {path} not found")
        source, text = str(path), path.read_text(encoding="utf-8")
    try:
        options = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as err:
        raise DVPError(f"{source}: options are not valid JSON or YAML ({err})") from err
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise DVPError(f"{source}: expected a mapping of option names to values")
    return options, source


def load_options(args: argparse.Namespace, section: str, *, fixed: dict | None = None) -> dict:
    """The stage's options: ``--options`` parsed, validated, defaults filled.

    ``fixed`` sets keys given as their own command-line arguments (they win over ``--options``).
    """
    options, source = parse_options(args.options)
    options.update({k: v for k, v in (fixed or {}).items() if v is not None})
    return section_options(options, section, source=source)


def read_design(samples_path: str, runs_path: str):
    """The samples and runs sheets, validated (see :func:`dvp_pipeline.config.read_sheet`)."""
    from dvp_pipeline.config import read_sheet

    return read_sheet(samples_path, "samples"), read_sheet(runs_path, "runs")


def read_proteins(path: str):
    """The protein matrix written by ``dvp quantify``: (log2 proteins x runs, genes per protein)."""
    from dvp_pipeline.io import read_table

    table = read_table(path, index_col="protein", keep_default_na=False, na_values=["NA", ""])
    if "genes" not in table:
        raise DVPError(f"{path}: expected a 'genes' column after 'protein' (a proteins.tsv from dvp quantify)")
    return table.drop(columns="genes").astype(float), table["genes"].astype(str)


def contrast_matrix(proteins, samples, runs, *, cell_type: str, contrast: tuple[str, str], options: dict):
    """The runs of one cell type in one contrast, normalised and filtered as the differential options say.

    Returns (matrix, groups) where groups maps each run to its sample's condition.
    """
    from dvp_pipeline.stats import median_normalize, valid_value_filter

    condition = runs["sample"].map(samples.set_index("sample")["condition"])
    chosen = runs[(runs["cell_type"] == cell_type) & condition.isin(contrast)]
    if chosen.empty:
        raise DVPError(f"no runs of cell type '{cell_type}' in conditions {contrast[0]} or {contrast[1]}")
    groups = pd.Series(condition[chosen.index].to_numpy(), index=chosen["run"].to_numpy())
    missing = [r for r in groups.index if r not in proteins.columns]
    if missing:
        raise DVPError(f"runs {', '.join(missing)} are in the runs sheet but not in the protein matrix")
    matrix = proteins[list(groups.index)]
    matrix = matrix[matrix.notna().any(axis=1)]
    if options["normalize"] == "median":
        matrix = median_normalize(matrix)
    matrix = valid_value_filter(matrix, groups, min_per_group=options["min_valid_per_group"])
    return matrix, groups
