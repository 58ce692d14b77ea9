"""``dvp report``: the HTML reports, one per sample and one for the cohort.

The last stage. This module reads what the other stages wrote under ``results/`` (the layout of
the workflow, see the epilog) and hands the tables and arrays to :func:`dvp_pipeline.report.sample_report`
and :func:`dvp_pipeline.report.cohort_report`, which return the HTML; it is written atomically.
A missing optional input (e.g. no pathway scores yet) leaves its section with a note instead of
failing, so a report can be made from a partial run by hand; the workflow always supplies them all.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline import io
from dvp_pipeline.cli._common import parse_options
from dvp_pipeline.config import load_config, read_sheet, section_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.report import DEFAULT_HIGHLIGHT, cohort_report, gallery_cells, sample_report

log = logging.getLogger(__name__)

DESCRIPTION = "Write a self-contained HTML report for one sample or for the cohort."

EPILOG = """\
kinds:
  dvp report sample --sample S ...   per-sample page: provenance, image with segmentation outlines,
                                     cell-type map and counts, example cells per type, marker
                                     histograms with thresholds, LMD selection, MS QC of the
                                     sample's runs, its pathway scores against the cohort
  dvp report cohort ...              cohort page: design, classifier accuracy and confusion matrix
                                     (supervised), identifications, missing values, PCA, volcano
                                     plots, pathway tables, pathway-score heatmap

inputs (under --results, as the workflow writes them; missing ones leave a note in the report):
  sample: {sample}/cells_classified.parquet (or cells.parquet), {sample}/labels.tif,
          {sample}/thresholds.tsv, {sample}/lmd/selection.tsv, {sample}/lmd/preview.png,
          cohort/quant_qc.tsv, cohort/pathway_scores.tsv, and the image named in samples.tsv
          (example-cell crops are read from the image and labels.tif window by window)
  cohort: cohort/quant_qc.tsv, cohort/proteins.tsv, cohort/differential/{cell_type}/{num}_vs_{den}.tsv,
          cohort/pathways/{cell_type}/{num}_vs_{den}.tsv, cohort/pathway_scores.tsv, and with a
          supervised classifier cohort/classifier/confusion.tsv and summary.json

options (--options JSON or @file; the config's `report` section, plus `highlight`, the pathways
section's list of gene sets to show and highlight):
  title          page title                                    "Deep Visual Proteomics report"
  highlight      gene sets drawn and highlighted                the three JAK/STAT and IFN hallmarks
  dpi            figure resolution                              100
  thumbnail_px   longest side of the image thumbnail (pixels)   800
  fdr            adj.P.Val cut-off for the volcano colours      0.05
  top_proteins   proteins labelled and listed per volcano       10
  top_sets       gene sets listed per pathway table             15
  gallery_cells  example cells per type in the sample report    8 (0: no gallery)
  gallery_crop_px  side of each example crop (pixels)           64

The report lists the input files and, with --config, the config sections it depends on.
"""

_OWN_KEYS = ("highlight",)  # taken from another config section, so not validated as `report` options


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp report sample`` and ``dvp report cohort``."""
    parser = subparsers.add_parser(
        "report",
        help="write the HTML reports (per sample, cohort)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="report_kind", metavar="{sample,cohort}", required=True)
    sample = kinds.add_parser(
        "sample",
        help="one sample's report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sample.add_argument("--sample", required=True, help="sample name (a row of the samples sheet)")
    cohort = kinds.add_parser(
        "cohort",
        help="the cohort report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for sub in (sample, cohort):
        sub.add_argument("--results", default="results", help="results folder of the workflow (default: results)")
        sub.add_argument("--samples", default="config/samples.tsv", help="samples sheet (default: config/samples.tsv)")
        sub.add_argument("--runs", default="config/runs.tsv", help="runs sheet (default: config/runs.tsv)")
        sub.add_argument(
            "--config",
            default=None,
            metavar="CONFIG.yaml",
            help="config file whose sections are listed under provenance (optional)",
        )
        sub.add_argument("--out", required=True, metavar="OUT.html", help="HTML file to write")
        sub.add_argument("--options", default=None, metavar="JSON", help="report options as JSON or @file (see below)")
        sub.set_defaults(func=run)
    parser.set_defaults(func=run)
    return parser


def load_report_options(text: str | None) -> tuple[dict, list[str]]:
    """The validated ``report`` options and the list of highlighted sets (from the pathways section)."""
    options, source = parse_options(text)
    highlight = options.pop("highlight", None)
    if highlight is None:
        highlight = list(DEFAULT_HIGHLIGHT)
    if not isinstance(highlight, list) or not all(isinstance(s, str) for s in highlight):
        raise DVPError(f"{source}: highlight: expected a list of gene-set names, got {highlight!r}")
    return section_options(options, "report", source=source), highlight


class _Inputs:
    """Reads optional inputs, remembering what was read (for provenance) and what was missing."""

    def __init__(self) -> None:
        self.read: list[dict] = []
        self.notes: list[str] = []

    def record(self, path: Path) -> None:
        stat = path.stat()
        modified = datetime.datetime.fromtimestamp(stat.st_mtime).astimezone().isoformat(timespec="seconds")
        self.read.append({"file": str(path), "bytes": stat.st_size, "modified": modified})

    def table(self, path: Path, **kwargs) -> pd.DataFrame | None:
        if not path.is_file():
            self.notes.append(f"{path} not found; its section is left out.")
            log.warning("%s not found; its section of the report is left out", path)
            return None
        table = io.read_table(path, **kwargs)
        self.record(path)
        return table

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.read, columns=["file", "bytes", "modified"])


def _resolve_image(image: str, samples_path: str) -> Path | None:
    """The image path of a samples-sheet row: as given (relative to the working directory, as the
    workflow resolves it), else relative to the sheet's folder or its parent (the project)."""
    candidates = [Path(image)]
    if not Path(image).is_absolute():
        sheet_dir = Path(samples_path).resolve().parent
        candidates += [sheet_dir / image, sheet_dir.parent / image]
    return next((p for p in candidates if p.is_file()), None)


def _read_thumbnail_image(path: Path, max_size: int) -> tuple[np.ndarray, list[str] | None]:
    """The image as (channels, y, x) and its channel names (``None`` when the file has none).

    Reads the smallest pyramid level still at least ``max_size`` pixels on its longest side, so
    whole-slide pyramids never load at full resolution.
    """
    import tifffile

    from dvp_pipeline.images import read_image

    try:
        with tifffile.TiffFile(path) as tif:
            levels = list(tif.series[0].levels)
            chosen = None
            for level in levels[1:]:
                sizes = dict(zip(level.axes, level.shape, strict=True))
                if max(sizes.get("Y", 0), sizes.get("X", 0)) >= max_size:
                    chosen = level
            if chosen is not None:
                from dvp_pipeline.images import _to_cyx  # same axes handling as the full-resolution reader

                return _to_cyx(chosen.asarray(), chosen.axes, path), None
    except DVPError:
        raise
    except Exception as err:  # tifffile raises many types; read_image below reports them properly
        log.debug("%s: no pyramid level used (%s)", path, err)
    image, names, _ = read_image(path)
    # read_image names unnamed channels channel_0, channel_1 ...: no better than the cells table's
    return image, None if all(n.startswith("channel_") for n in names) else names


def _gallery_crops(
    cells: pd.DataFrame, image_path: Path, labels_path: Path, *, per_type: int, crop_px: int
) -> tuple[list[dict], list[str]]:
    """Full-resolution crops around the gallery's example cells, and the crops' channel names.

    Only the crop windows are read from the image and the labels (both opened lazily), so a
    whole slide costs no more than a small one.
    """
    from dvp_pipeline.images import open_image

    if not {"centroid_y", "centroid_x", "cell_id"} <= set(cells.columns):
        raise DVPError("cells table: expected columns cell_id, centroid_y, centroid_x (pixels) for the gallery")
    chosen = gallery_cells(cells, per_type=per_type)
    marker_names = [c[len("mean_") :] for c in cells.columns if c.startswith("mean_")]
    try:
        image = open_image(image_path, channels=marker_names or None)
    except DVPError:
        # the cells' channel names may not be the file's (unnamed channels, a subset): show the file's
        image = open_image(image_path)
    with image, open_image(labels_path) as labels:
        if tuple(labels.shape[1:]) != tuple(image.shape[1:]):
            raise DVPError(
                f"{labels_path}: labels are {labels.shape[1:]}, the image {image.shape[1:]}; not the same slide"
            )
        height, width = image.shape[1:]
        crops = []
        for row in chosen.itertuples(index=False):
            y0 = int(np.clip(round(row.centroid_y) - crop_px // 2, 0, max(height - crop_px, 0)))
            x0 = int(np.clip(round(row.centroid_x) - crop_px // 2, 0, max(width - crop_px, 0)))
            window = (slice(y0, min(y0 + crop_px, height)), slice(x0, min(x0 + crop_px, width)))
            crops.append(
                {
                    "cell_type": str(row.cell_type),
                    "cell_id": int(row.cell_id),
                    "confidence": float(getattr(row, "confidence", np.nan)),
                    "gallery": row.gallery,
                    "pixels": image.read(*window),
                    "labels": labels.read(*window)[0],
                }
            )
        return crops, list(image.names)


def _sample(args, options: dict, highlight: list[str]) -> str:
    samples = read_sheet(args.samples, "samples")
    runs = read_sheet(args.runs, "runs")
    results = Path(args.results)
    sample = str(args.sample)
    if sample not in set(samples["sample"].astype(str)):
        raise DVPError(f"{args.samples}: no row for sample {sample!r}")
    inputs = _Inputs()
    inputs.record(Path(args.samples))
    inputs.record(Path(args.runs))
    folder = results / sample

    cells_path = folder / "cells_classified.parquet"
    cells = inputs.table(
        cells_path if cells_path.is_file() or not (folder / "cells.parquet").is_file() else folder / "cells.parquet"
    )
    thresholds = inputs.table(folder / "thresholds.tsv")
    selection = inputs.table(folder / "lmd" / "selection.tsv")
    preview_path = folder / "lmd" / "preview.png"
    preview = None
    if preview_path.is_file():
        preview = preview_path.read_bytes()
        inputs.record(preview_path)
    else:
        inputs.notes.append(f"{preview_path} not found; the selection preview is left out.")
    quant_qc = inputs.table(results / "cohort" / "quant_qc.tsv", dtype={"run": str, "sample": str})
    scores = inputs.table(results / "cohort" / "pathway_scores.tsv")

    image = labels = image_channels = None
    row = samples[samples["sample"].astype(str) == sample].iloc[0]
    image_path = _resolve_image(str(row["image"]), args.samples) if row.get("image") else None
    if image_path is None:
        inputs.notes.append(f"image {row.get('image')!r} of sample {sample} not found; no thumbnail.")
    else:
        try:
            image, image_channels = _read_thumbnail_image(image_path, int(options.get("thumbnail_px", 800)))
            inputs.record(image_path)
        except DVPError as err:
            inputs.notes.append(f"image not shown: {err}")
    labels_path = folder / "labels.tif"
    if labels_path.is_file():
        import tifffile

        labels = tifffile.imread(labels_path)
        inputs.record(labels_path)
    else:
        inputs.notes.append(f"{labels_path} not found; the thumbnail has no cell outlines.")
    gallery = gallery_channels = None
    per_type = int(options.get("gallery_cells", 8))
    if (
        per_type > 0
        and cells is not None
        and "cell_type" in cells.columns
        and image_path is not None
        and labels_path.is_file()
    ):
        try:
            gallery, gallery_channels = _gallery_crops(
                cells, image_path, labels_path, per_type=per_type, crop_px=int(options.get("gallery_crop_px", 64))
            )
        except DVPError as err:
            inputs.notes.append(f"example cells not shown: {err}")

    return sample_report(
        sample,
        samples=samples,
        runs=runs,
        cells=cells,
        thresholds=thresholds,
        image=image,
        labels=labels,
        image_channels=image_channels,
        selection=selection,
        preview_png=preview,
        quant_qc=quant_qc,
        pathway_scores=scores,
        gallery=gallery,
        gallery_channels=gallery_channels,
        highlight=highlight,
        options=options,
        config=(load_config(args.config) if args.config else None),
        inputs=inputs.frame(),
        notes=inputs.notes,
    )


def _by_cell_type_and_contrast(folder: Path, inputs: _Inputs, what: str) -> dict[tuple[str, str], pd.DataFrame]:
    """``{cell_type}/{contrast}.tsv`` files of a folder as ``(cell_type, contrast) -> table``."""
    tables = {}
    if not folder.is_dir():
        inputs.notes.append(f"{folder} not found; no {what}.")
        return tables
    for path in sorted(folder.glob("*/*.tsv")):
        tables[(path.parent.name, path.stem)] = inputs.table(path)
    if not tables:
        inputs.notes.append(f"{folder} has no {{cell_type}}/{{contrast}}.tsv files; no {what}.")
    return tables


def _cohort(args, options: dict, highlight: list[str]) -> str:
    samples = read_sheet(args.samples, "samples")
    runs = read_sheet(args.runs, "runs")
    cohort = Path(args.results) / "cohort"
    inputs = _Inputs()
    inputs.record(Path(args.samples))
    inputs.record(Path(args.runs))
    quant_qc = inputs.table(cohort / "quant_qc.tsv", dtype={"run": str, "sample": str})
    proteins = inputs.table(cohort / "proteins.tsv", dtype={"protein": str, "genes": str})
    differential = _by_cell_type_and_contrast(cohort / "differential", inputs, "differential results")
    pathways = _by_cell_type_and_contrast(cohort / "pathways", inputs, "pathway results")
    scores = inputs.table(cohort / "pathway_scores.tsv")
    # only a supervised classifier leaves these; gating rules have nothing to evaluate, so no note
    confusion = summary = None
    if (cohort / "classifier" / "confusion.tsv").is_file():
        confusion = inputs.table(cohort / "classifier" / "confusion.tsv", dtype={"true": str})
        summary_path = cohort / "classifier" / "summary.json"
        if summary_path.is_file():
            try:
                summary = json.loads(summary_path.read_text(encoding="utf-8"))
            except ValueError as err:
                raise DVPError(f"{summary_path}: not valid JSON ({err})") from err
            inputs.record(summary_path)
    return cohort_report(
        samples=samples,
        runs=runs,
        quant_qc=quant_qc,
        proteins=proteins,
        differential=differential,
        pathways=pathways,
        pathway_scores=scores,
        classifier_confusion=confusion,
        classifier_summary=summary,
        highlight=highlight,
        options=options,
        config=(load_config(args.config) if args.config else None),
        inputs=inputs.frame(),
        notes=inputs.notes,
    )


def run(args) -> None:
    """Run ``dvp report sample`` or ``dvp report cohort`` with parsed arguments."""
    options, highlight = load_report_options(args.options)
    html = _sample(args, options, highlight) if args.report_kind == "sample" else _cohort(args, options, highlight)
    io.write_text(html, args.out)
    log.info("wrote %s (%.1f MB)", args.out, os.path.getsize(args.out) / 1e6)
