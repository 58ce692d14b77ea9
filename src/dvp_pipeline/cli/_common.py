"""Helpers shared by the subcommands: stage options, common arguments and the sheets and matrix they read."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dvp_pipeline.config import load_yaml, read_sheet
from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import read_table
from dvp_pipeline.options import SECTIONS, Options
from dvp_pipeline.schema_docs import describe


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


def parse_options(text: str | None, *, name: str = "--options") -> tuple[dict, str]:
    """``--options`` text (JSON or YAML, or @FILE) as a mapping, and where it came from (for messages)."""
    text = text or "{}"
    source = name
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise DVPError(f"--options: file {path} not found")
        source, text = str(path), path.read_text(encoding="utf-8")
    options = load_yaml(text, source=source)  # YAML is a superset of JSON
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise DVPError(f"{source}: expected a mapping of option names to values")
    return options, source


def load_options(
    args: argparse.Namespace, section: str, *, fixed: dict | None = None, argument: str = "options"
) -> Options:
    """A section's typed options (:mod:`dvp_pipeline.options`): parsed, validated, defaults filled.

    ``fixed`` sets keys given as their own command-line arguments (they win over ``--options``);
    ``argument`` names another argument holding a section (e.g. ``differential_options``).
    """
    options, source = parse_options(getattr(args, argument), name="--" + argument.replace("_", "-"))
    options.update({k: v for k, v in (fixed or {}).items() if v is not None})
    return SECTIONS[section].from_mapping(options, source=source)


def read_design(samples_path: str, runs_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The samples and runs sheets, validated (see :func:`dvp_pipeline.config.read_sheet`)."""
    return read_sheet(samples_path, "samples"), read_sheet(runs_path, "runs")


def read_proteins(path: str) -> tuple[pd.DataFrame, pd.Series]:
    """The protein matrix written by ``dvp quantify``: (log2 proteins x runs, genes per protein)."""
    table = read_table(path, index_col="protein", keep_default_na=False, na_values=["NA", ""])
    if "genes" not in table:
        raise DVPError(f"{path}: expected a 'genes' column after 'protein' (a proteins.tsv from dvp quantify)")
    return table.drop(columns="genes").astype(float), table["genes"].astype(str)
