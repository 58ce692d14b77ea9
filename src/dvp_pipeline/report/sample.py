"""The sample report: one HTML page per sample, from the image to its runs' pathway scores.

Part of the report stage (``dvp report sample``). :func:`sample_report` is pure: it takes the tables
and arrays of one sample (and the cohort tables its runs are compared with) and returns the page,
assembled from one small builder per section: provenance, image, segmentation quality, cell types,
example cells, markers, LMD selection, MS QC, pathway scores. :func:`build_sample_report` reads those
inputs from a results folder (:mod:`dvp_pipeline.report.inputs`) and calls it; it is what the CLI and
a notebook call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline import __version__
from dvp_pipeline.config import load_config
from dvp_pipeline.errors import DVPError
from dvp_pipeline.layout import Results
from dvp_pipeline.options import ReportOptions
from dvp_pipeline.report import html
from dvp_pipeline.report.figures import (
    cell_gallery_figure,
    cell_type_map_figure,
    identifications_figure,
    image_figure,
    marker_histograms_figure,
    nucleus_shape_figure,
    pathway_score_figure,
    pathway_scores_long,
    segmentation_qc_figure,
)
from dvp_pipeline.report.figures._util import (
    default_highlight,
    default_options,
    is_jak_stat,
    isna,
    png_to_base64,
    run_meta,
)
from dvp_pipeline.report.inputs import read_sample_inputs
from dvp_pipeline.report.palettes import (
    cell_type_palette,
    channel_palette,
    condition_palette,
    config_cell_types,
    config_nuclear_channel,
    config_score_method,
)

__all__ = ["build_sample_report", "sample_report"]

#: Config sections the sample page depends on, listed under provenance.
CONFIG_SECTIONS = ("segment", "classify", "select", "quantify", "pathways", "report")


@dataclass(frozen=True)
class _Page:
    """What every section of one sample page shares: the sample, its markers, options and colours."""

    sample: str
    options: ReportOptions
    channels: list[str] | None
    pixel_size: float | None
    palette: dict[str, str]
    conditions: dict[str, tuple[str, str]]
    nuclear_channel: str | None
    scores: tuple[str, str]  # label and sentence of the per-run pathway scores

    @property
    def dpi(self) -> int:
        return self.options.dpi


def _sample_row(samples: pd.DataFrame, sample: str) -> pd.Series:
    if "sample" not in samples.columns:
        raise DVPError("samples sheet: expected a 'sample' column")
    rows = samples[samples["sample"].astype(str) == str(sample)]
    if rows.empty:
        raise DVPError(f"samples sheet: no row for sample {sample!r}")
    return rows.iloc[0]


def _pixel_size(row: pd.Series, cells: pd.DataFrame | None) -> float | None:
    """The sheet's pixel size, else the one the segment stage's areas tell (pixels and µm²)."""
    pixel_size = row.get("pixel_size_um")
    pixel_size = float(pixel_size) if pixel_size is not None and not isna(pixel_size) else None
    if pixel_size is None and cells is not None and {"area", "area_um2"} <= set(cells.columns) and len(cells):
        pixel_size = float(np.sqrt(np.median(cells["area_um2"] / cells["area"].where(cells["area"] > 0))))
    return pixel_size


def _provenance_section(
    page: _Page,
    row: pd.Series,
    *,
    cells: pd.DataFrame | None,
    selection: pd.DataFrame | None,
    runs: pd.DataFrame | None,
    config: Mapping | None,
    inputs: pd.DataFrame | None,
) -> dict:
    """Overview: summary cards, the sample's sheet row, the config sections and the input files."""
    provenance = [
        ("sample", page.sample),
        ("condition", row.get("condition", "NA")),
        ("patient", row.get("patient", "NA")),
        ("batch", row.get("batch", "NA")),
        ("image", row.get("image", "NA")),
        ("pixel size (µm)", page.pixel_size if page.pixel_size is not None else "NA"),
        ("channels", ", ".join(page.channels) if page.channels else "NA"),
        ("dvp-pipeline version", __version__),
        ("report generated", html.now()),
    ]
    summary = []
    if cells is not None:
        summary.append(("cells segmented", f"{len(cells):,}"))
        if "cell_type" in cells.columns:
            assigned = float((cells["cell_type"].astype(str) != "unassigned").mean() * 100) if len(cells) else 0.0
            summary.append(("cells with a cell type", f"{assigned:.1f}%"))
    if selection is not None:
        summary.append(("cells selected for LMD", f"{len(selection):,}"))
    if runs is not None and "sample" in runs.columns:
        summary.append(("MS runs", str(int((runs["sample"].astype(str) == str(page.sample)).sum()))))
    return {
        "sample": page.sample,
        "provenance": [(k, html.format_value(v)) for k, v in provenance],
        "summary": summary,
        "config": html.config_table(config, CONFIG_SECTIONS),
        "inputs": html.table(inputs) if inputs is not None and len(inputs) else None,
    }


def _image_section(
    page: _Page, image: np.ndarray | None, labels: np.ndarray | None, channels: Sequence[str] | None
) -> dict:
    """The channel composite with the segmentation outlines."""
    if image is None:
        return {"image": None}
    image = np.asarray(image)
    image_pixel = page.pixel_size
    if image_pixel is not None and labels is not None and np.shape(labels)[-1] != image.shape[-1]:
        # a pyramid level: its pixels are larger than the full-resolution pixels of the labels
        image_pixel = image_pixel * np.shape(labels)[-1] / image.shape[-1]
    fig = image_figure(
        image,
        labels,
        channels=channels,
        nuclear_channel=page.nuclear_channel,
        pixel_size_um=image_pixel,
        max_size=page.options.thumbnail_px,
        title=f"{page.sample}: channel composite",
    )
    return {
        "image": html.figure(
            fig,
            alt=f"image of {page.sample} with segmentation outlines",
            dpi=page.dpi,
            caption="Channel composite (each channel scaled to its 1st–99.5th percentile) with the cell "
            "outlines of the segmentation in white; downsampled for display.",
        )
    }


#: Below this share of cells flagged (merged, or missed) the segmentation QC calls a sample sound; above
#: 3x it, it asks for a change. The demo's segmentation (F1 0.97 against truth) flags 3 to 5%.
QC_ATTENTION = 0.05


def _qc_level(fraction: float) -> str:
    if fraction < QC_ATTENTION:
        return "small: no action needed"
    if fraction < 3 * QC_ATTENTION:
        return "worth a look at the window below"
    return "high: consider changing the segmentation settings"


def _qc_sentences(qc: Mapping) -> list[str]:
    """The QC's two findings in words a biologist can act on."""
    n_cells, merged, missed = qc["n_cells"], qc["suspect_merges"], qc["missed_blobs"]
    fence, median = qc.get("nucleus_area_fence_um2"), qc.get("nucleus_area_median_um2")
    fence_text = f"nucleus area above {fence:.0f} µm², " if fence else ""
    median_text = (
        f" (the median nucleus here is {median:.0f} µm², about {2 * np.sqrt(median / np.pi):.1f} µm across)"
        if median
        else ""
    )
    outside = qc.get("missed_blobs_outside_cells")
    outside_text = "" if outside is None else f" ({outside:,} of them outside every cell too)"
    return [
        f"{100 * qc['suspect_merge_fraction']:.1f}% of cells ({merged:,} of {n_cells:,}) look like merged nuclei "
        f"({fence_text}the sample's median + {qc['fence_mad_k']:g} robust SDs of log area, or solidity below "
        f"{qc['min_nucleus_solidity']:g}) — {_qc_level(qc['suspect_merge_fraction'])}. Many merges mean the seeds "
        f"are too sparse: lower segment.classical.nucleus_diameter_um towards the real size{median_text}, or "
        "give a membrane_channel so that cells part along their membranes.",
        f"{missed:,} nuclear-stain blobs ({100 * qc['missed_fraction']:.1f}% of all nuclei in the stain) have no "
        f"nucleus{outside_text}: likely missed cells, mostly dim nuclei — {_qc_level(qc['missed_fraction'])}. "
        "Many misses mean the detection is too strict: lower segment.classical.min_snr (with threshold: auto, the "
        "default) or the fixed threshold, and check nucleus_diameter_um and min_nucleus_area_um2.",
    ]


def _segmentation_qc_section(
    page: _Page,
    cells: pd.DataFrame | None,
    qc: Mapping | None,
    crop: Mapping | None,
    crop_channels: Sequence[str] | None,
) -> dict:
    """Likely merged and likely missed cells: two sentences, the nucleus shape histograms, a flagged window."""
    if qc is None:
        return {"qc_sentences": None}
    shapes = window = None
    if cells is not None and len(cells):
        shapes = html.figure(
            nucleus_shape_figure(cells, qc),
            alt=f"nucleus area and solidity histograms of {page.sample}",
            dpi=page.dpi,
            wide=True,
            caption="Cells right of the area fence or left of the solidity cut (dashed) are counted as likely "
            "merged nuclei: two nuclei in one label are large and not convex.",
        )
    if crop is not None:
        window = html.figure(
            segmentation_qc_figure(
                crop,
                channels=crop_channels,
                nuclear_channel=page.nuclear_channel,
                pixel_size_um=page.pixel_size,
                title=f"{page.sample}: the window with the most flags",
            ),
            alt=f"segmentation QC window of {page.sample}",
            dpi=page.dpi,
            caption="Full-resolution window around the densest cluster of flags: likely merged nuclei outlined "
            "orange, nuclear-stain blobs without a nucleus ringed (Laplacian-of-Gaussian peaks at the nucleus "
            f"scale, {qc['nucleus_diameter_um']:g} µm, at least {qc['blob_z']:g} noise SDs strong), cell outlines "
            "white.",
        )
    shown = "" if qc.get("missed_blob_yx_complete", True) else " (positions of an even subset are kept)"
    return {"qc_sentences": _qc_sentences(qc), "qc_shapes": shapes, "qc_window": window, "qc_note": shown}


def _cell_type_counts(cells: pd.DataFrame, palette: Mapping[str, str]) -> pd.DataFrame:
    counts = cells["cell_type"].astype(str).value_counts()
    order = [c for c in palette if c in counts.index] + [c for c in counts.index if c not in palette]
    table = pd.DataFrame({"cell type": order, "cells": [int(counts[c]) for c in order]})
    table["percent"] = (table["cells"] / max(len(cells), 1) * 100).round(1)
    grouped = cells.assign(cell_type=cells["cell_type"].astype(str)).groupby("cell_type")
    if "confidence" in cells.columns:
        table["mean confidence"] = grouped["confidence"].mean().reindex(order).round(3).to_numpy()
    if "area_um2" in cells.columns:
        table["median area (µm²)"] = grouped["area_um2"].median().reindex(order).round(1).to_numpy()
    total = {"cell type": "all", "cells": len(cells), "percent": 100.0}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def _cell_types_section(page: _Page, cells: pd.DataFrame | None) -> dict:
    """The cell-type map and the cells per type."""
    if cells is None or "cell_type" not in cells.columns:
        return {"cell_map": None, "counts": None}
    return {
        "cell_map": html.figure(
            cell_type_map_figure(cells, palette=page.palette, title=f"{page.sample}: cell types"),
            alt=f"cell-type map of {page.sample}",
            dpi=page.dpi,
        ),
        "counts": html.table(
            _cell_type_counts(cells, page.palette),
            formats={"percent": "{:.1f}", "mean confidence": "{:.2f}", "median area (µm²)": "{:.1f}"},
        ),
    }


def _gallery_section(page: _Page, gallery: Sequence[Mapping] | None, channels: Sequence[str] | None) -> dict:
    """Example cells of each type at full resolution."""
    if not gallery:
        return {"gallery": None}
    fig = cell_gallery_figure(gallery, channels=channels, nuclear_channel=page.nuclear_channel, palette=page.palette)
    return {
        "gallery": html.figure(
            fig,
            alt=f"example cells per cell type in {page.sample}",
            dpi=page.dpi,
            wide=True,
            caption="Example cells of each type at full resolution: the most confident calls, then (red "
            "frame) the least confident. Each crop is the channel composite on one intensity scale "
            "shared by all crops (1st–99.5th percentile per channel), the cell's outline in white; "
            "titles give cell id and confidence.",
        )
    }


def _markers_section(page: _Page, cells: pd.DataFrame | None, thresholds: pd.DataFrame | None) -> dict:
    """Marker intensity histograms with the positivity thresholds, and the thresholds table."""
    markers = None
    if cells is not None and page.channels:
        colors = channel_palette(page.channels, nuclear=page.nuclear_channel)
        markers = html.figure(
            marker_histograms_figure(cells, thresholds, channels=page.channels, colors=colors),
            alt=f"marker intensity histograms of {page.sample}",
            dpi=page.dpi,
            wide=True,
        )
    return {"markers": markers, "thresholds": html.table(thresholds) if thresholds is not None else None}


def _selection_section(
    page: _Page, selection: pd.DataFrame | None, preview_png: bytes | None, plate_png: bytes | None = None
) -> dict:
    """The LMD preview, the plates and the drawn cells per pool and well (the full selection as TSV)."""
    preview = plate = None
    if preview_png is not None:
        preview = {
            "png": png_to_base64(preview_png, max_size=page.options.preview_px),
            "alt": f"shapes selected for laser microdissection in {page.sample}",
        }
    if plate_png is not None:
        plate = {"png": png_to_base64(plate_png, max_size=page.options.preview_px), "alt": "the collection plates"}
    if selection is None or "cell_type" not in selection.columns:
        return {"preview": preview, "plate": plate, "selection": None}
    keys = [c for c in ("cell_type", "pool_id", "plate", "well") if c in selection.columns]
    grouped = selection.groupby(keys, sort=False, dropna=False)
    table = grouped.size().rename("cells").reset_index()
    if "area_um2" in selection.columns:
        table["total area (µm²)"] = grouped["area_um2"].sum().round(1).to_numpy()
        table["mean area (µm²)"] = grouped["area_um2"].mean().round(1).to_numpy()
    rank = {c: i for i, c in enumerate(page.palette)}
    table = table.sort_values("cell_type", key=lambda s: s.map(lambda c: rank.get(c, len(rank))), kind="stable").rename(
        columns={"cell_type": "cell type"}
    )
    return {
        "preview": preview,
        "plate": plate,
        "selection": html.table(
            table,
            download=f"{page.sample}_selection.tsv",
            full=selection,
            formats={"total area (µm²)": "{:.1f}", "mean area (µm²)": "{:.1f}"},
        ),
    }


def _ms_qc_section(
    page: _Page,
    quant_qc: pd.DataFrame | None,
    runs: pd.DataFrame | None,
    samples: pd.DataFrame,
    notes: list[str],
) -> dict:
    """The sample's runs in the quantification QC, against the cohort (a note when it has none)."""
    empty = {"qc_figure": None, "qc": None}
    if quant_qc is None or "sample" not in quant_qc.columns:
        return empty
    mine = quant_qc[quant_qc["sample"].astype(str) == str(page.sample)]
    if mine.empty:
        notes.append(f"quant_qc.tsv has no runs of sample {page.sample}.")
        return empty
    with_condition = (
        quant_qc.merge(run_meta(runs, samples)[["run", "condition"]], on="run", how="left")
        if runs is not None
        else quant_qc
    )
    fig = identifications_figure(
        with_condition, palette=page.palette, conditions=list(page.conditions), highlight_runs=mine["run"]
    )
    table = mine.copy()
    if "cell_type" in quant_qc.columns:
        medians = quant_qc.groupby("cell_type")[["proteins", "precursors"]].median()
        table["cohort median proteins (same cell type)"] = table["cell_type"].map(medians["proteins"])
        table["cohort median precursors (same cell type)"] = table["cell_type"].map(medians["precursors"])
    return {
        "qc_figure": html.figure(fig, alt="identifications per run, this sample highlighted", dpi=page.dpi, wide=True),
        "qc": html.table(table, formats={"missing_fraction": "{:.3f}", "median_log2": "{:.2f}"}),
    }


def _sample_pathway_table(
    long: pd.DataFrame, page: _Page, sets: Sequence[str], highlight: Sequence[str]
) -> dict | None:
    """The sample's score per set and run, its rank among runs of the same cell type, condition means."""
    records = []
    for name in sets:
        data = long[long["set"] == name].dropna(subset=["score"])
        for _, run in data[data["sample"] == page.sample].iterrows():
            peers = data[data["cell_type"] == run["cell_type"]]
            rank = int((peers["score"] > run["score"]).sum()) + 1
            record = {
                "set": name,
                "cell type": run["cell_type"],
                "run": run["run"],
                "score": run["score"],
                "rank (1 = highest)": f"{rank} / {len(peers)}",
            }
            for condition in page.conditions:
                values = peers.loc[peers["condition"] == condition, "score"]
                record[f"mean {condition}"] = values.mean() if len(values) else np.nan
            records.append(record)
    if not records:
        return None
    table = pd.DataFrame(records)
    formats = {c: "{:.2f}" for c in table.columns if c == "score" or c.startswith("mean ")}
    return html.table(table, row_classes=[html.set_class(s, highlight) for s in table["set"]], formats=formats)


def _pathway_scores_section(
    page: _Page,
    pathway_scores: pd.DataFrame | None,
    runs: pd.DataFrame | None,
    samples: pd.DataFrame,
    highlight: Sequence[str],
) -> dict:
    """The highlighted sets' scores in every run (this sample's starred), JAK/STAT first, and their table."""
    if pathway_scores is None or runs is None:
        return {"pathway_figures": [], "pathway_table": None, "missing_sets": []}
    long = pathway_scores_long(pathway_scores, runs, samples)
    present = set(long["set"])
    shown = sorted([s for s in highlight if s in present], key=lambda s: not is_jak_stat(s))
    figures = []
    for name in shown:
        emphasize = is_jak_stat(name)
        fig = pathway_score_figure(
            long,
            set_name=name,
            sample=page.sample,
            palette=page.palette,
            conditions=page.conditions,
            emphasize=emphasize,
            score_label=page.scores[0],
        )
        figures.append(html.figure(fig, alt=f"scores of {name} per run", emphasize=emphasize, dpi=page.dpi))
    return {
        "pathway_figures": figures,
        "pathway_table": _sample_pathway_table(long, page, shown, highlight),
        "missing_sets": [s for s in highlight if s not in present],
    }


def _page_palette(config: Mapping | None, *tables: pd.DataFrame | None) -> dict[str, str]:
    """One palette for the whole page: the config's cell types in rule order, then every type seen."""
    seen = []
    for table in tables:
        if table is not None and "cell_type" in table.columns:
            seen.extend(table["cell_type"].dropna().astype(str))
    return cell_type_palette(seen, order=config_cell_types(config))


def sample_report(
    sample: str,
    *,
    samples: pd.DataFrame,
    runs: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
    thresholds: pd.DataFrame | None = None,
    image: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    segment_qc: Mapping | None = None,
    qc_crop: Mapping | None = None,
    qc_crop_channels: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    image_channels: Sequence[str] | None = None,
    selection: pd.DataFrame | None = None,
    preview_png: bytes | None = None,
    plate_png: bytes | None = None,
    quant_qc: pd.DataFrame | None = None,
    pathway_scores: pd.DataFrame | None = None,
    gallery: Sequence[Mapping] | None = None,
    gallery_channels: Sequence[str] | None = None,
    highlight: Sequence[str] | None = None,
    options: ReportOptions | None = None,
    config: Mapping | None = None,
    inputs: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The per-sample report as one self-contained HTML page.

    A section whose table is ``None`` says so on the page.

    Parameters
    ----------
    sample
        Sample name (a row of ``samples``).
    samples, runs
        The samples and runs sheets.
    cells
        ``cells_classified.parquet`` of the sample (``cells.parquet`` works, without the cell-type map).
    thresholds
        ``thresholds.tsv`` of the sample.
    image, labels
        The image ``(channels, y, x)`` (full resolution or a pyramid level) and the full-resolution
        cell labels (resampled onto the thumbnail). ``image`` alone gives a thumbnail without
        outlines.
    segment_qc, qc_crop, qc_crop_channels
        ``segment_qc.json`` of the sample (:func:`dvp_pipeline.seg_metrics.segment_qc`), and a window
        of the image with its flags and the window's channel names
        (:func:`~dvp_pipeline.report.inputs.segment_qc_crop`); the section says so when ``None``.
    channels
        Marker names for the histograms; default: the ``mean_<channel>`` columns of ``cells``.
    image_channels
        Channel names of ``image`` in order (for the composite colours); default: ``channels``.
    selection, preview_png, plate_png
        ``lmd/selection.tsv`` (with plate and well from the sample key), the bytes of ``lmd/preview.png``
        and of the cohort's ``lmd/plates.png``.
    quant_qc
        Cohort ``quant_qc.tsv``; the sample's runs are shown against the cohort.
    pathway_scores
        Cohort ``pathway_scores.tsv``.
    gallery, gallery_channels
        Crops of example cells (see :func:`~dvp_pipeline.report.figures.cell_gallery_figure`; cells
        chosen by :func:`~dvp_pipeline.report.figures.gallery_cells`) and the channel names of their pixels.
    highlight
        Gene sets to draw (default: the schema's ``pathways.highlight``); JAK/STAT sets are emphasised.
    options
        The report options (title, dpi, thumbnail_px, preview_px); default: the schema's.
    config
        The config: its sections are listed under provenance (segment, classify, select, quantify,
        pathways, report), its cell-type rules order the cell-type colours and its nuclear channel is
        drawn blue.
    inputs
        Table of the input files read (file, bytes, modified), listed under provenance.
    notes
        Messages shown at the top.

    Returns
    -------
    The HTML page.
    """
    options = options if options is not None else default_options()
    highlight = list(highlight) if highlight is not None else list(default_highlight())
    row = _sample_row(samples, sample)
    if channels is None and cells is not None:
        channels = [c[len("mean_") :] for c in cells.columns if c.startswith("mean_")]
    notes = list(notes)
    page = _Page(
        sample=sample,
        options=options,
        channels=list(channels) if channels else None,
        pixel_size=_pixel_size(row, cells),
        palette=_page_palette(config, runs, cells, selection, quant_qc),
        conditions=condition_palette(samples["condition"]) if "condition" in samples.columns else {},
        nuclear_channel=config_nuclear_channel(config),
        scores=config_score_method(config),
    )
    context = {
        "title": f"{options.title}: {sample}",
        "score_sentence": page.scores[1],
        "version": __version__,
        "generated": html.now(),
        "notes": notes,
        **_provenance_section(page, row, cells=cells, selection=selection, runs=runs, config=config, inputs=inputs),
        **_image_section(page, image, labels, image_channels or channels),
        **_segmentation_qc_section(page, cells, segment_qc, qc_crop, qc_crop_channels),
        **_cell_types_section(page, cells),
        **_gallery_section(page, gallery, gallery_channels or channels),
        **_markers_section(page, cells, thresholds),
        **_selection_section(page, selection, preview_png, plate_png),
        **_ms_qc_section(page, quant_qc, runs, samples, notes),
        **_pathway_scores_section(page, pathway_scores, runs, samples, highlight),
    }
    return html.render("sample.html.j2", **context)


def build_sample_report(
    results: Results | str | os.PathLike,
    sample: str,
    *,
    samples_path: str | os.PathLike,
    runs_path: str | os.PathLike,
    options: ReportOptions | None = None,
    highlight: Sequence[str] | None = None,
    config: Mapping | str | os.PathLike | None = None,
) -> str:
    """Read one sample's results and return its report page.

    Parameters
    ----------
    results
        The results layout, or its folder.
    sample
        A sample of the samples sheet.
    samples_path, runs_path
        The samples and runs sheets.
    options
        The report options; default: the schema's.
    highlight
        Gene sets to draw (default: the schema's ``pathways.highlight``).
    config
        The config (a mapping, or ``config.yaml`` to read): listed under provenance, and the order of
        its cell-type rules colours the cell types.

    Raises
    ------
    DVPError
        When an input is missing; the message names the file and the stage that writes it.

    Examples
    --------
    In a project folder after ``dvp run``::

        html = build_sample_report("results", "TEN01", samples_path="config/samples.tsv",
                                   runs_path="config/runs.tsv", config="config/config.yaml")
    """
    results = results if isinstance(results, Results) else Results(str(Path(results)))
    options = options if options is not None else default_options()
    config = load_config(config) if isinstance(config, str | os.PathLike) else config
    data = read_sample_inputs(
        results,
        sample,
        samples_path=samples_path,
        runs_path=runs_path,
        options=options,
        cell_types=config_cell_types(config),
    )
    return sample_report(
        str(sample),
        samples=data.samples,
        runs=data.runs,
        cells=data.cells,
        thresholds=data.thresholds,
        image=data.image,
        labels=data.labels,
        segment_qc=data.segment_qc,
        qc_crop=data.qc_crop,
        qc_crop_channels=data.qc_crop_channels,
        image_channels=data.image_channels,
        selection=data.selection,
        preview_png=data.preview_png,
        plate_png=data.plate_png,
        quant_qc=data.quant_qc,
        pathway_scores=data.pathway_scores,
        gallery=data.gallery,
        gallery_channels=data.gallery_channels,
        highlight=highlight,
        options=options,
        config=config,
        inputs=data.inputs,
        notes=data.notes,
    )
