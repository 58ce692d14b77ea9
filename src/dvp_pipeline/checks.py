"""Checks of a project before any job: what the schemas cannot say about the config, sheets and files.

Called by :func:`dvp_pipeline.config.load_project` (so by ``dvp run`` and ``dvp run --dry-run``)
after schema validation. Everything a job would later trip over and that can be known from the
sheets, the image metadata, the search-engine report's header and the gene-set files is checked
here, so a mistake costs seconds instead of a night: images and their channel names, gating markers,
reserved names, calibration points, regions and plate wells, every test's design (confounded
covariates), output names that would collide, gene-set collections and highlighted sets, and the
report's columns. Each problem raises one
:class:`~dvp_pipeline.errors.DVPError` naming the file, row or key and what was expected.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.classify import UNASSIGNED
from dvp_pipeline.errors import DVPError
from dvp_pipeline.layout import RESERVED_NAMES

__all__ = [
    "check_channels",
    "check_design",
    "check_gene_sets",
    "check_names",
    "check_project",
    "check_report",
    "check_sheets",
    "check_lmd",
]

log = logging.getLogger(__name__)


def check_project(
    config: dict,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    base: Path,
    source: str,
    samples_path: Path,
    runs_path: Path,
    check_report: bool = True,
) -> None:
    """Every cross-check of a validated config and its sheets; see the module docstring."""
    check_names(config, samples, source=source, samples_path=samples_path)
    check_segment(config, source=source)
    check_sheets(config, samples, runs, base=base, source=source, samples_path=samples_path, runs_path=runs_path)
    geometry = check_channels(config, samples, base=base, source=source, samples_path=samples_path)
    check_lmd(config, samples, geometry, base=base, source=source, samples_path=samples_path)
    check_design(config, samples, runs, source=source)
    check_gene_sets(config, base=base, source=source)
    if check_report:
        check_report_runs(config, runs, base=base, runs_path=runs_path)


def check_segment(config: dict, *, source: str) -> None:
    """Segmentation options that the schema lets through but that do not go together."""
    from dvp_pipeline.segmentation import check_seeds

    classical = config["segment"]["classical"]
    if config["segment"]["method"] == "classical":
        try:
            check_seeds(classical["threshold"], classical["seeds"])
        except DVPError as err:
            raise DVPError(f"{source}: segment.classical.seeds: {err}") from None


def _hint(name: str, choices) -> str:
    near = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def check_names(config: dict, samples: pd.DataFrame, *, source: str, samples_path: Path) -> None:
    """Sample and cell-type names that would collide with the pipeline's own folders or labels."""
    for i, sample in enumerate(samples["sample"]):
        if sample in RESERVED_NAMES:
            raise DVPError(
                f"{samples_path}, row {i + 2}: sample name '{sample}' is reserved (results/{sample}/ holds "
                f"{'the cohort tables' if sample == 'cohort' else 'the reports'}); rename the sample"
            )
    rules = [r["name"] for r in config["classify"]["cell_types"]]
    if len(set(rules)) != len(rules):
        raise DVPError(f"{source}: classify.cell_types: each rule needs a distinct name")
    if UNASSIGNED in rules:
        raise DVPError(
            f"{source}: classify.cell_types: '{UNASSIGNED}' is the label of cells that match no rule; "
            "give the rule another name"
        )


def check_sheets(
    config: dict,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    base: Path,
    source: str,
    samples_path: Path,
    runs_path: Path,
) -> None:
    """Images exist; runs name known samples and cell types; selected types and contrasts are known."""
    for i, row in samples.iterrows():
        if not (base / row["image"]).exists():
            raise DVPError(f"{samples_path}, row {i + 2} (sample {row['sample']}): image '{row['image']}' not found")
    known = set(samples["sample"])
    rules = [r["name"] for r in config["classify"]["cell_types"]]
    for i, row in runs.iterrows():
        if row["sample"] not in known:
            raise DVPError(
                f"{runs_path}, row {i + 2} (run {row['run']}): sample '{row['sample']}' "
                f"is not in the samples sheet {samples_path}{_hint(row['sample'], known)}"
            )
        if row["cell_type"] not in rules:
            raise DVPError(
                f"{runs_path}, row {i + 2} (run {row['run']}): cell_type '{row['cell_type']}' "
                f"is not defined in classify.cell_types ({', '.join(rules)}){_hint(row['cell_type'], rules)}"
            )
    for name in config["select"]["cell_types"] or []:
        if name not in rules:
            raise DVPError(
                f"{source}: select.cell_types: '{name}' is not defined in classify.cell_types ({', '.join(rules)})"
            )
    conditions = set(samples["condition"])
    for i, (num, den) in enumerate(config["differential"]["contrasts"]):
        for c in (num, den):
            if c not in conditions:
                raise DVPError(
                    f"{source}: differential.contrasts[{i}]: condition '{c}' is not in the samples "
                    f"sheet (conditions: {', '.join(sorted(conditions))}){_hint(c, conditions)}"
                )
        if num == den:
            raise DVPError(f"{source}: differential.contrasts[{i}]: compares '{num}' with itself")


def _used_channels(config: dict) -> dict[str, str]:
    """Channel name -> the config key that uses it (nuclear stain, segmentation helpers, gating markers)."""
    used = {config["nuclear_channel"]: "nuclear_channel"}
    segment = config["segment"]
    for method in ("classical", "cellpose"):
        for key in ("membrane_channel", "cytoplasm_channel"):
            if segment[method].get(key) and segment["method"] == method:
                used.setdefault(segment[method][key], f"segment.{method}.{key}")
    classify = config["classify"]
    if classify["method"] == "gating":
        for i, rule in enumerate(classify["cell_types"]):
            for side in ("positive", "negative"):
                for marker in rule.get(side, []):
                    used.setdefault(marker, f"classify.cell_types[{i}] ({rule['name']}).{side}")
        for marker in classify["thresholds"]:
            used.setdefault(marker, "classify.thresholds")
    return used


def check_channels(
    config: dict, samples: pd.DataFrame, *, base: Path, source: str, samples_path: Path
) -> dict[str, tuple[tuple[int, int], float]]:
    """Every image opens with the configured channels, has a pixel size, holds at least one nucleus, and
    every channel the config uses is one of its channels. Returns each sample's image (height, width)
    and pixel size.

    Reads only the images' metadata, through the same :func:`~dvp_pipeline.images.open_image` the
    segment stage uses, so the names checked are the names the stages will see; the pixel size is
    resolved as the segment rule does (samples sheet, then config, then the image's metadata).
    """
    from dvp_pipeline.images import check_image_size, open_image

    used = _used_channels(config)
    geometry = {}
    for i, row in samples.iterrows():
        where = f"{samples_path}, row {i + 2} (sample {row['sample']})"
        try:
            with open_image(base / row["image"], channels=config.get("channels")) as image:
                names, shape, file_pixel_size = list(image.names), image.shape, image.pixel_size_um
            sheet_pixel_size = row.get("pixel_size_um")
            pixel_size = next(
                (p for p in (sheet_pixel_size, config["pixel_size_um"], file_pixel_size) if p is not None and p == p),
                None,
            )
            if pixel_size is None:
                raise DVPError(
                    f"{row['image']}: no pixel size in the image metadata; set pixel_size_um in the samples sheet "
                    "or the config"
                )
            diameter = config["segment"]["classical"]["nucleus_diameter_um"]
            check_image_size(shape, pixel_size_um=float(pixel_size), nucleus_diameter_um=diameter, source=row["image"])
            geometry[row["sample"]] = (tuple(shape[-2:]), float(pixel_size))
        except DVPError as err:
            raise DVPError(f"{where}: {err}") from err
        for channel, key in used.items():
            if channel not in names:
                raise DVPError(
                    f"{source}: {key}: channel '{channel}' is not a channel of {row['image']} "
                    f"({', '.join(names)}){_hint(channel, names)}"
                )
    return geometry


def check_lmd(
    config: dict,
    samples: pd.DataFrame,
    geometry: dict[str, tuple[tuple[int, int], float]],
    *,
    base: Path,
    source: str,
    samples_path: Path,
) -> None:
    """Each sample has three usable calibration points (samples sheet, config or explicit image corners)
    and readable regions of interest with polygons of ``select.region_classes``; the plate's excluded wells
    leave a well to collect into.

    ``geometry`` is each sample's image (height, width) and pixel size, from :func:`check_channels`.
    """
    from dvp_pipeline.options import SelectOptions
    from dvp_pipeline.plates import reachable_wells
    from dvp_pipeline.qupath import read_geojson, region_polygons
    from dvp_pipeline.selection import resolve_calibration

    options = SelectOptions.from_validated(config["select"])
    try:
        if not reachable_wells(options.plate.format, options.plate.excluded_wells):
            raise DVPError(f"no well of the {options.plate.format}-well plate is left to collect into")
    except DVPError as err:
        raise DVPError(f"{source}: select.plate.excluded_wells: {err}") from err
    for i, row in samples.iterrows():
        where = f"{samples_path}, row {i + 2}"  # the messages below name the sample
        shape, pixel_size = geometry[row["sample"]]
        value = row.get("calibration")
        try:
            resolve_calibration(
                None if value is None or value != value else value,
                options.calibration,
                sample=row["sample"],
                image_shape=shape,
                pixel_size_um=pixel_size,
                base=base,
            )
            regions = row.get("regions")
            if regions is not None and regions == regions and str(regions).strip():
                try:
                    region_polygons(read_geojson(base / str(regions)), options.region_classes)
                except DVPError as err:
                    raise DVPError(f"sample {row['sample']}: regions: {err}") from err
        except DVPError as err:
            raise DVPError(f"{where}: {err}") from err


def check_design(config: dict, samples: pd.DataFrame, runs: pd.DataFrame, *, source: str) -> None:
    """Every test the differential section implies can be fitted, and writes a file of its own.

    Builds each test's design matrix (groups plus covariates, as the differential stage will) and
    names a covariate that makes it rank-deficient; duplicate contrasts and tests whose output files
    would coincide are errors; groups with fewer than two samples are warned about.
    """
    from dvp_pipeline.differential import design_covariates, differential_tests
    from dvp_pipeline.options import DifferentialOptions
    from dvp_pipeline.stats import design_matrix

    options = DifferentialOptions.from_validated(config["differential"])
    if not options.contrasts and not options.interactions:
        raise DVPError(f"{source}: differential: no test asked for; give contrasts, interactions or both")
    pairs = [tuple(c) for c in options.contrasts]
    for i, pair in enumerate(pairs):
        if pair in pairs[:i]:
            raise DVPError(f"{source}: differential.contrasts[{i}]: {list(pair)} is listed twice")
    try:
        tests = differential_tests(samples, runs, options)
    except DVPError as err:
        raise DVPError(f"{source}: differential: {err}") from err
    seen: dict[str, str] = {}
    for test in tests:
        if test.key in seen:
            raise DVPError(
                f"{source}: differential: '{test.description}' and '{seen[test.key]}' would both be written "
                f"to {test.key}.tsv; rename a condition or cell type so that their names differ"
            )
        seen[test.key] = test.description
        covariates = design_covariates(samples, runs, test, options) if options.covariates else None
        _check_rank(test, covariates, design_matrix, source=source)
        # replicate pools of one sample are not independent samples: count samples per group
        sizes = pd.Series(test.pools.to_numpy(), index=test.groups.to_numpy()).groupby(level=0).nunique()
        small = sorted(g for g in test.weights if sizes.get(g, 0) < 2)
        if small:
            log.warning(
                "%s: group(s) %s have fewer than two samples; the test has little or no power",
                test.description,
                ", ".join(small),
            )


def _check_rank(test, covariates: pd.DataFrame | None, design_matrix, *, source: str) -> None:
    design = design_matrix(test.groups, covariates=covariates)
    if np.linalg.matrix_rank(design.to_numpy()) == design.shape[1]:
        return
    for column in covariates.columns if covariates is not None else []:
        alone = design_matrix(test.groups, covariates=covariates[[column]])
        if np.linalg.matrix_rank(alone.to_numpy()) < alone.shape[1]:
            per_level = pd.crosstab(covariates[column], test.groups)
            single = int((per_level.gt(0).sum(axis=1) == 1).sum())
            raise DVPError(
                f"{source}: differential.covariates: '{column}' is confounded with the groups in "
                f"{test.description}: {single} of {len(per_level)} {column} value(s) occur in one group only, "
                f"so the {column} effect cannot be told from the group effect. Drop '{column}' from "
                f"differential.covariates, or use it only when its values are shared across the groups "
                f"(e.g. patient for a paired design, where each patient gives samples of both conditions)"
            )
    raise DVPError(
        f"{source}: differential.covariates: together they are confounded with the groups in "
        f"{test.description}; drop one of {', '.join(covariates.columns)}"
    )


def check_gene_sets(config: dict, *, base: Path, source: str) -> None:
    """Each collection loads, no two share a label, set sizes make sense, highlighted sets exist."""
    from dvp_pipeline.genesets import collection_label, load_collection

    pathways = config["pathways"]
    if "camerapr" in pathways["methods"] and pathways["inter_gene_cor"] is None:
        raise DVPError(
            f"{source}: pathways.methods: camerapr needs a preset pathways.inter_gene_cor (e.g. 0.01); "
            "only camera can estimate the correlation, from its residuals"
        )
    if pathways["min_set_size"] > pathways["max_set_size"]:
        raise DVPError(
            f"{source}: pathways.min_set_size ({pathways['min_set_size']}) is larger than "
            f"pathways.max_set_size ({pathways['max_set_size']}): no set could be tested"
        )
    labels: dict[str, str] = {}
    names: set[str] = set()
    for entry in pathways["gene_sets"]:
        label = collection_label(entry)
        if label in labels:
            raise DVPError(
                f"{source}: pathways.gene_sets: '{entry}' and '{labels[label]}' would both be reported as "
                f"collection '{label}'; rename one file"
            )
        labels[label] = entry
        try:
            names |= set(load_collection(entry, base=base))
        except DVPError as err:
            raise DVPError(f"{source}: pathways.gene_sets: {err}") from err
    for name in pathways["highlight"]:
        if name not in names:
            raise DVPError(
                f"{source}: pathways.highlight: gene set '{name}' is in none of the collections "
                f"{', '.join(labels)}{_hint(name, names)}"
            )


def check_report(config: dict, *, base: Path) -> str:
    """The search-engine report has every column the quantify stage will read (header only); its format."""
    from dvp_pipeline.options import QuantifyOptions
    from dvp_pipeline.readers import Filters, check_columns

    options = QuantifyOptions.from_validated(config["quantify"])
    return check_columns(base / options.report, fmt=options.format, filters=Filters.from_options(options))


def check_report_runs(config: dict, runs: pd.DataFrame, *, base: Path, runs_path: Path) -> None:
    """Every run of the runs sheet is in the search-engine output (or is an mzML file), whose columns fit."""
    from dvp_pipeline.options import QuantifyOptions
    from dvp_pipeline.quant import config_runs

    options = QuantifyOptions.from_validated(config["quantify"])
    if options.format != "mzml":
        fmt = check_report(config, base=base)
        log.info("%s: %s format, every column the quantify stage reads is there", base / options.report, fmt)
    report = "quantify.spectra (mzML)" if options.format == "mzml" else base / options.report
    present = config_runs(options, base=base)
    absent = [r for r in runs["run"] if r not in present]
    if absent:
        shown = ", ".join(sorted(present)[:3]) + (" ..." if len(present) > 3 else "")
        raise DVPError(
            f"{runs_path}: run(s) {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''} "
            f"not found in the report {report}{_hint(absent[0], present)}; its {len(present)} runs are named "
            f"like {shown}"
        )
