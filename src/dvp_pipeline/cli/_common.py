"""Helpers shared by the subcommands: stage options and common arguments."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from dvp_pipeline.config import schema, section_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.stats import impute_missing, median_normalize, moderated_ttest, quantile_normalize, valid_value_filter


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


@dataclass
class DifferentialTest:
    """One test of the differential section: where it is written, its groups and its contrast.

    ``groups`` maps each run to its group: the condition for a contrast within a cell type,
    ``{cell_type}.{condition}`` for an interaction.
    """

    folder: str
    name: str
    groups: pd.Series
    cell_types: pd.Series
    weights: dict[str, float]
    description: str

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.name}"


def _run_conditions(samples, runs) -> pd.Series:
    return runs["sample"].map(samples.set_index("sample")["condition"])


def differential_tests(samples, runs, options: dict) -> list[DifferentialTest]:
    """Every test the differential options ask for: each contrast in each cell type, then the interactions."""
    condition = _run_conditions(samples, runs)
    tests = []
    for cell_type in dict.fromkeys(runs["cell_type"]):
        for num, den in options["contrasts"]:
            chosen = (runs["cell_type"] == cell_type) & condition.isin([num, den])
            if not chosen.any():
                raise DVPError(f"no runs of cell type '{cell_type}' in conditions {num} or {den}")
            index = runs.loc[chosen, "run"].to_numpy()
            tests.append(
                DifferentialTest(
                    folder=cell_type,
                    name=f"{num}_vs_{den}",
                    groups=pd.Series(condition[chosen].to_numpy(), index=index),
                    cell_types=pd.Series(cell_type, index=index),
                    weights={num: 1.0, den: -1.0},
                    description=f"{num} - {den} in {cell_type}",
                )
            )
    for i, (num, den, type_a, type_b) in enumerate(options.get("interactions", [])):
        for cell_type in (type_a, type_b):
            if cell_type not in set(runs["cell_type"]):
                raise DVPError(
                    f"differential.interactions[{i}]: cell type '{cell_type}' is not in the runs sheet "
                    f"(cell types: {', '.join(dict.fromkeys(runs['cell_type']))})"
                )
        if type_a == type_b or num == den:
            raise DVPError(f"differential.interactions[{i}]: needs two different conditions and two cell types")
        chosen = runs["cell_type"].isin([type_a, type_b]) & condition.isin([num, den])
        index = runs.loc[chosen, "run"].to_numpy()
        labels = runs.loc[chosen, "cell_type"].to_numpy() + "." + condition[chosen].to_numpy()
        weights = {f"{type_a}.{num}": 1.0, f"{type_a}.{den}": -1.0, f"{type_b}.{num}": -1.0, f"{type_b}.{den}": 1.0}
        absent = sorted(set(weights) - set(labels))
        if absent:
            raise DVPError(f"differential.interactions[{i}]: no runs for {', '.join(absent)}")
        tests.append(
            DifferentialTest(
                folder=f"{type_a}_x_{type_b}",
                name=f"{num}_vs_{den}",
                groups=pd.Series(labels, index=index),
                cell_types=pd.Series(runs.loc[chosen, "cell_type"].to_numpy(), index=index),
                weights=weights,
                description=f"({num} - {den} in {type_a}) - ({num} - {den} in {type_b})",
            )
        )
    return tests


def prepare_matrix(proteins, samples, runs, test: DifferentialTest, options: dict):
    """The protein matrix of one test: normalised per cell type, filtered, imputed as the options say.

    Returns
    -------
    (matrix, imputed, covariates, methods): the matrix to test, a mask of imputed cells, the design
    covariates (or None) and a record of what was done, for ``methods.json``.
    """
    groups = test.groups
    missing = [r for r in groups.index if r not in proteins.columns]
    if missing:
        raise DVPError(f"runs {', '.join(missing)} are in the runs sheet but not in the protein matrix")
    matrix = proteins[list(groups.index)]
    matrix = matrix[matrix.notna().any(axis=1)]
    normalizer = {"median": median_normalize, "quantile": quantile_normalize, "none": lambda m: m}[options["normalize"]]
    # each cell type is normalised on its own: cell types differ in composition, not in loading
    matrix = pd.concat(
        [normalizer(matrix[list(cols)]) for _, cols in test.cell_types.groupby(test.cell_types).groups.items()],
        axis=1,
    )[list(groups.index)]
    n_before = len(matrix)
    matrix = valid_value_filter(
        matrix,
        groups,
        min_per_group=options["min_valid_per_group"],
        min_fraction=options.get("min_valid_fraction"),
        require=options.get("valid_in", "each"),
    )
    matrix, imputed = impute_missing(
        matrix,
        method=options.get("impute", "none"),
        width=options.get("impute_width", 0.3),
        shift=options.get("impute_shift", 1.8),
        seed=options.get("seed", 0),
    )
    covariates = None
    if options.get("covariates"):
        sheet = samples.set_index("sample")
        run_sample = runs.set_index("run")["sample"].loc[list(groups.index)]
        columns = {}
        for column in options["covariates"]:
            if column != "sample" and column not in sheet.columns:
                raise DVPError(
                    f"differential.covariates: '{column}' is not a column of the samples sheet "
                    f"(columns: {', '.join(['sample', *sheet.columns])})"
                )
            values = run_sample if column == "sample" else run_sample.map(sheet[column])
            if values.isna().any():
                raise DVPError(f"differential.covariates: '{column}' is empty for some samples of {test.key}")
            columns[column] = values.astype(str).to_numpy()
        covariates = pd.DataFrame(columns, index=groups.index)
    valid = (
        f"at least {options['min_valid_fraction']:.0%} of the runs"
        if options.get("min_valid_fraction") is not None
        else f"at least {options['min_valid_per_group']} values"
    )
    methods = {
        "test": test.description,
        "groups": {g: int(n) for g, n in groups.value_counts().sort_index().items()},
        "design": "~0 + group" + "".join(f" + {c}" for c in options.get("covariates", [])),
        "normalize": options["normalize"] + " (per cell type)",
        "valid_value_filter": f"{valid} in {options.get('valid_in', 'each')} group; "
        f"{len(matrix)} of {n_before} proteins kept",
        "impute": (
            "none"
            if options.get("impute", "none") == "none"
            else f"{options['impute']}"
            + (
                f" (down-shift {options.get('impute_shift', 1.8)} sd, width {options.get('impute_width', 0.3)} sd, "
                f"per run, seed {options.get('seed', 0)})"
                if options["impute"] == "perseus"
                else " (run minimum)"
            )
        ),
        "imputed_values": int(imputed.to_numpy().sum()),
        "eBayes": f"trend={options.get('trend', False)}, robust={options.get('robust', False)}",
    }
    return matrix, imputed, covariates, methods


def moderated_test(matrix, test: DifferentialTest, covariates, options: dict):
    """limma's moderated t of one prepared test, with the differential options' trend and robust."""
    return moderated_ttest(
        matrix,
        test.groups,
        contrast=test.weights,
        covariates=covariates,
        trend=options["trend"],
        robust=options["robust"],
    )
