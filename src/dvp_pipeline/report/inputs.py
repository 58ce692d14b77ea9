"""Reading what the stages wrote, for the reports: every path from the results layout.

Part of the report stage, between the results folder and the pages. :func:`read_sample_inputs` and
:func:`read_cohort_inputs` ask :class:`~dvp_pipeline.layout.Results` for each file, read it and record
it (size and modification time, listed under provenance). A missing input is an error that names the
file and the stage that writes it; only the supervised classifier's files are optional, since gating
rules leave none. The differential and pathway tables read are those of the tests the
``differential`` options configure (:func:`dvp_pipeline.differential.differential_tests`), so stale
tables of tests no longer configured never reach a report.

The image of a sample is read at the smallest pyramid level still large enough for the thumbnail,
and example cells as small windows of the full-resolution image and labels, so a whole slide costs
no more than a small one.
"""

from __future__ import annotations

import datetime
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline import io
from dvp_pipeline.config import read_sheet
from dvp_pipeline.differential import differential_tests
from dvp_pipeline.errors import DVPError
from dvp_pipeline.layout import Results
from dvp_pipeline.options import DifferentialOptions, ReportOptions
from dvp_pipeline.plates import link_runs
from dvp_pipeline.report.figures.imaging import gallery_cells

__all__ = [
    "COHORT_INPUTS",
    "SAMPLE_INPUTS",
    "WRITERS",
    "CohortInputs",
    "InputLog",
    "SampleInputs",
    "describe_inputs",
    "gallery_crops",
    "read_cohort_inputs",
    "read_sample_inputs",
    "read_thumbnail_image",
    "resolve_image",
    "segment_qc_crop",
]

log = logging.getLogger(__name__)

#: The command that writes each input of the reports, by the :class:`~dvp_pipeline.layout.Results` method naming it.
WRITERS = {
    "cells_classified": "dvp classify",
    "labels": "dvp segment",
    "segment_qc": "dvp segment",
    "thresholds": "dvp classify",
    "selection": "dvp select",
    "preview": "dvp select",
    "sample_key": "dvp plate",
    "plate_figure": "dvp plate",
    "quant_qc": "dvp quantify",
    "proteins": "dvp quantify",
    "differential": "dvp differential",
    "pathways": "dvp pathways",
    "pathway_scores": "dvp pathways",
    "classifier_confusion": "dvp train-classifier",
    "classifier_summary": "dvp train-classifier",
}
#: Inputs of the sample report, in reading order (all required but the segmentation QC, shown when present).
SAMPLE_INPUTS = (
    "cells_classified",
    "labels",
    "segment_qc",
    "thresholds",
    "selection",
    "preview",
    "quant_qc",
    "pathway_scores",
)
#: Inputs of the cohort report, in reading order; the classifier's are read when present.
COHORT_INPUTS = (
    "quant_qc",
    "proteins",
    "differential",
    "pathways",
    "pathway_scores",
    "classifier_confusion",
    "classifier_summary",
)
_OPTIONAL = ("classifier_confusion", "classifier_summary", "segment_qc")
#: Side of the segmentation-QC window in full-resolution pixels.
QC_CROP_PX = 320


class InputLog:
    """The files a report read (listed under provenance) and notes for its reader."""

    def __init__(self) -> None:
        self.read: list[dict] = []
        self.notes: list[str] = []

    def record(self, path: str | Path) -> None:
        """Remember a file that was read, with its size and modification time."""
        stat = Path(path).stat()
        modified = datetime.datetime.fromtimestamp(stat.st_mtime).astimezone().isoformat(timespec="seconds")
        self.read.append({"file": str(Path(path)), "bytes": stat.st_size, "modified": modified})

    def frame(self) -> pd.DataFrame:
        """The files read as a table: file, bytes, modified."""
        return pd.DataFrame(self.read, columns=["file", "bytes", "modified"])


def _required(path: str, name: str) -> Path:
    """``path`` (the layout's ``name`` file) if it exists; else an error naming the stage that writes it."""
    if not Path(path).is_file():
        raise DVPError(
            f"{path} not found: the report needs it, and `{WRITERS[name]}` writes it "
            "(run that stage first, or point the report at the results folder that has it)"
        )
    return Path(path)


def _table(files: InputLog, path: str, name: str, **kwargs) -> pd.DataFrame:
    """A required table of the layout, read and recorded."""
    table = io.read_table(_required(path, name), **kwargs)
    files.record(path)
    return table


def describe_inputs(results: Results) -> str:
    """The report inputs as a plain-text list for ``--help``: one path pattern and its writer per line."""

    def pattern(name: str) -> str:
        method = getattr(results, name)
        required = [p for p in inspect.signature(method).parameters.values() if p.default is inspect.Parameter.empty]
        return method(*(f"{{{p.name}}}" for p in required))

    lines = []
    for kind, names in (("sample", SAMPLE_INPUTS), ("cohort", COHORT_INPUTS)):
        lines.append(f"  {kind}:")
        for name in names:
            note = "  (read when present)" if name in _OPTIONAL else ""
            lines.append(f"    {pattern(name):<52} {WRITERS[name]}{note}")
        if kind == "sample":
            lines.append(f"    {'the image named in the samples sheet':<52} (example cells read window by window)")
    return "\n".join(lines)


def resolve_image(image: str, samples_path: str | Path) -> Path | None:
    """The image path of a samples-sheet row: as given (relative to the working directory, as the
    workflow resolves it), else relative to the sheet's folder or its parent (the project)."""
    candidates = [Path(image)]
    if not Path(image).is_absolute():
        sheet_dir = Path(samples_path).resolve().parent
        candidates += [sheet_dir / image, sheet_dir.parent / image]
    return next((p for p in candidates if p.is_file()), None)


def read_thumbnail_image(path: str | Path, max_size: int) -> tuple[np.ndarray, list[str] | None]:
    """The image as (channels, y, x) and its channel names (``None`` when the file has none).

    Reads the smallest pyramid level still at least ``max_size`` pixels on its longest side, so
    whole-slide pyramids never load at full resolution.
    """
    import tifffile

    from dvp_pipeline.images import read_image

    path = Path(path)
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


def gallery_crops(
    cells: pd.DataFrame,
    image_path: str | Path,
    labels_path: str | Path,
    *,
    per_type: int,
    crop_px: int,
    order: Sequence[str] = (),
) -> tuple[list[dict], list[str]]:
    """Full-resolution crops around the gallery's example cells, and the crops' channel names.

    The cells are chosen by :func:`~dvp_pipeline.report.figures.imaging.gallery_cells` (types in
    ``order``); only the crop windows are read from the image and the labels (both opened lazily).
    """
    if not {"centroid_y", "centroid_x", "cell_id"} <= set(cells.columns):
        raise DVPError("cells table: expected columns cell_id, centroid_y, centroid_x (pixels) for the gallery")
    chosen = gallery_cells(cells, per_type=per_type, order=order)
    image, labels = _open_image_and_labels(cells, image_path, labels_path)
    with image, labels:
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


def _open_image_and_labels(cells: pd.DataFrame, image_path: str | Path, labels_path: str | Path):
    """The image (channels named as in the cells table when they can be) and its labels, opened lazily."""
    from dvp_pipeline.images import open_image

    marker_names = [c[len("mean_") :] for c in cells.columns if c.startswith("mean_")]
    try:
        image = open_image(image_path, channels=marker_names or None)
    except DVPError:
        # the cells' channel names may not be the file's (unnamed channels, a subset): show the file's
        image = open_image(image_path)
    labels = open_image(labels_path)
    if tuple(labels.shape[1:]) != tuple(image.shape[1:]):
        image.close()
        labels.close()
        raise DVPError(f"{labels_path}: labels are {labels.shape[1:]}, the image {image.shape[1:]}; not the same slide")
    return image, labels


def segment_qc_crop(
    cells: pd.DataFrame, qc: dict, image_path: str | Path, labels_path: str | Path, *, crop_px: int
) -> tuple[dict, list[str]]:
    """A full-resolution window showing the most flagged cells of the segmentation QC, and its channel names.

    The window (``crop_px`` square) is centred on the densest cluster of likely merged cells (their
    centroids, flagged by :func:`~dvp_pipeline.seg_metrics.merge_suspects` with the fence recorded in
    ``qc``) and missed blobs (``qc["missed_blob_yx"]``); only it is read from the image and labels.
    Returns the crop as :func:`~dvp_pipeline.report.figures.segmentation_qc_figure` takes it.
    """
    from dvp_pipeline.seg_metrics import merge_suspects

    suspects = merge_suspects(
        cells, fence_um2=qc.get("nucleus_area_fence_um2") or np.inf, min_solidity=qc["min_nucleus_solidity"]
    )
    flagged = cells.loc[suspects, ["cell_id", "centroid_y", "centroid_x"]]
    blobs = np.asarray(qc.get("missed_blob_yx") or np.zeros((0, 2)), dtype=float).reshape(-1, 2)
    points = np.concatenate([flagged[["centroid_y", "centroid_x"]].to_numpy(dtype=float), blobs])
    image, labels = _open_image_and_labels(cells, image_path, labels_path)
    with image, labels:
        height, width = image.shape[1:]
        centre = np.array([height / 2, width / 2])
        if len(points):
            # the coarse cell (half a window) holding most flags, then the mean of its flags
            cell = np.floor(points / max(crop_px // 2, 1)).astype(np.int64)
            keys, inverse, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
            centre = points[inverse.ravel() == int(np.argmax(counts))].mean(axis=0)
        y0 = int(np.clip(round(centre[0]) - crop_px // 2, 0, max(height - crop_px, 0)))
        x0 = int(np.clip(round(centre[1]) - crop_px // 2, 0, max(width - crop_px, 0)))
        window = (slice(y0, min(y0 + crop_px, height)), slice(x0, min(x0 + crop_px, width)))
        pixels, crop_labels = image.read(*window), labels.read(*window)[0]
        names = list(image.names)
    inside = (blobs[:, 0] >= y0) & (blobs[:, 0] < y0 + crop_px) & (blobs[:, 1] >= x0) & (blobs[:, 1] < x0 + crop_px)
    crop = {
        "pixels": pixels,
        "labels": crop_labels,
        "origin": (y0, x0),
        "suspects": flagged["cell_id"].to_numpy(dtype=np.int64),
        "blobs": blobs[inside] - [y0, x0],
    }
    return crop, names


def _design(files: InputLog, samples_path: str | Path, runs_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    samples, runs = read_sheet(samples_path, "samples"), read_sheet(runs_path, "runs")
    files.record(samples_path)
    files.record(runs_path)
    return samples, runs


@dataclass
class SampleInputs:
    """Everything the sample report shows, as read from the results (see :func:`read_sample_inputs`)."""

    samples: pd.DataFrame
    runs: pd.DataFrame
    cells: pd.DataFrame
    thresholds: pd.DataFrame
    selection: pd.DataFrame
    preview_png: bytes
    plate_png: bytes | None
    quant_qc: pd.DataFrame
    pathway_scores: pd.DataFrame
    labels: np.ndarray
    segment_qc: dict | None = None
    qc_crop: dict | None = None
    qc_crop_channels: list[str] | None = None
    image: np.ndarray | None = None
    image_channels: list[str] | None = None
    gallery: list[dict] | None = None
    gallery_channels: list[str] | None = None
    inputs: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def _sample_image(
    files: InputLog, samples: pd.DataFrame, sample: str, samples_path: str | Path, max_size: int
) -> tuple[Path, np.ndarray | None, list[str] | None]:
    """The sample's image path, its thumbnail-sized pixels and channel names (pixels ``None`` if unreadable)."""
    row = samples[samples["sample"].astype(str) == sample].iloc[0]
    image_path = resolve_image(str(row["image"]), samples_path) if row.get("image") else None
    if image_path is None:
        raise DVPError(
            f"{samples_path}: image {row.get('image')!r} of sample {sample} not found (looked relative to the "
            "working directory, the sheet's folder and its parent)"
        )
    try:
        image, channels = read_thumbnail_image(image_path, max_size)
    except DVPError as err:
        files.notes.append(f"image not shown: {err}")
        return image_path, None, None
    files.record(image_path)
    return image_path, image, channels


def read_sample_inputs(
    results: Results,
    sample: str,
    *,
    samples_path: str | Path,
    runs_path: str | Path,
    options: ReportOptions,
    cell_types: Sequence[str] = (),
) -> SampleInputs:
    """Read what the sample report of ``sample`` shows from the results and the sheets.

    Parameters
    ----------
    results
        The results layout.
    sample
        A sample of the samples sheet.
    samples_path, runs_path
        The samples and runs sheets.
    options
        The report options (thumbnail size, gallery size and crop side).
    cell_types
        The cell-type order of the page's palette (the gallery's row order).

    Raises
    ------
    DVPError
        When the sample is not in the sheet or an input is missing (naming the stage that writes it).
    """
    import tifffile

    files = InputLog()
    samples, runs = _design(files, samples_path, runs_path)
    sample = str(sample)
    if sample not in set(samples["sample"].astype(str)):
        raise DVPError(f"{samples_path}: no row for sample {sample!r}")
    tables = {
        "cells": _table(files, results.cells_classified(sample), "cells_classified"),
        "thresholds": _table(files, results.thresholds(sample), "thresholds"),
        "selection": _table(files, results.selection(sample), "selection"),
    }
    preview_png = _required(results.preview(sample), "preview").read_bytes()
    files.record(results.preview(sample))
    plate_png = None
    if Path(results.sample_key()).is_file() and "pool_id" in tables["selection"].columns:
        # each drawn cell's well, from the cohort's plate map
        key = _table(files, results.sample_key(), "sample_key", dtype={"sample": str})
        wells = key.loc[key["kind"] == "pool", ["pool_id", "plate", "well"]]
        tables["selection"] = tables["selection"].merge(wells, on="pool_id", how="left")
        plate_png = _required(results.plate_figure(), "plate_figure").read_bytes()
        files.record(results.plate_figure())
    else:
        files.notes.append(f"{results.sample_key()} not found (dvp plate): the cells' wells are not shown")
    tables["quant_qc"] = _table(files, results.quant_qc(), "quant_qc", dtype={"run": str, "sample": str})
    tables["pathway_scores"] = _table(files, results.pathway_scores(), "pathway_scores")
    image_path, image, image_channels = _sample_image(files, samples, sample, samples_path, options.thumbnail_px)
    labels_path = _required(results.labels(sample), "labels")
    labels = tifffile.imread(labels_path)
    files.record(results.labels(sample))
    qc = qc_crop = qc_crop_channels = None
    if Path(results.segment_qc(sample)).is_file():
        qc = json.loads(Path(results.segment_qc(sample)).read_text(encoding="utf-8"))
        files.record(results.segment_qc(sample))
        try:
            qc_crop, qc_crop_channels = segment_qc_crop(
                tables["cells"], qc, image_path, labels_path, crop_px=QC_CROP_PX
            )
        except DVPError as err:
            files.notes.append(f"segmentation QC window not shown: {err}")
    else:
        files.notes.append(
            f"{results.segment_qc(sample)} not found: segmentation quality not shown (run `dvp segment --qc`)"
        )
    gallery = gallery_channels = None
    if options.gallery_cells > 0 and "cell_type" in tables["cells"].columns:
        try:
            gallery, gallery_channels = gallery_crops(
                tables["cells"],
                image_path,
                labels_path,
                per_type=options.gallery_cells,
                crop_px=options.gallery_crop_px,
                order=cell_types,
            )
        except DVPError as err:
            files.notes.append(f"example cells not shown: {err}")
    return SampleInputs(
        samples=samples,
        runs=runs,
        **tables,
        preview_png=preview_png,
        plate_png=plate_png,
        labels=labels,
        segment_qc=qc,
        qc_crop=qc_crop,
        qc_crop_channels=qc_crop_channels,
        image=image,
        image_channels=image_channels,
        gallery=gallery,
        gallery_channels=gallery_channels,
        inputs=files.frame(),
        notes=files.notes,
    )


@dataclass
class CohortInputs:
    """Everything the cohort report shows, as read from the results (see :func:`read_cohort_inputs`).

    ``differential`` and ``pathways`` map ``(folder, name)`` of each configured test (e.g.
    ``("keratinocyte", "TEN_vs_MPR")``) to its table, sorted by folder and name.
    """

    samples: pd.DataFrame
    runs: pd.DataFrame
    quant_qc: pd.DataFrame
    proteins: pd.DataFrame
    differential: dict[tuple[str, str], pd.DataFrame]
    pathways: dict[tuple[str, str], pd.DataFrame]
    pathway_scores: pd.DataFrame
    classifier_confusion: pd.DataFrame | None = None
    classifier_summary: dict | None = None
    inputs: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    run_wells: pd.DataFrame | None = None  # the runs sheet with each run's plate, well, pool and cells


def _classifier(files: InputLog, results: Results) -> tuple[pd.DataFrame | None, dict | None]:
    """The supervised classifier's confusion matrix and summary, when it was trained here."""
    if not Path(results.classifier_confusion()).is_file():
        return None, None  # gating rules have nothing to evaluate: no section, and nothing to note
    confusion = _table(files, results.classifier_confusion(), "classifier_confusion", dtype={"true": str})
    path = Path(results.classifier_summary())
    if not path.is_file():
        return confusion, None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DVPError(f"{path}: not valid JSON ({err})") from err
    files.record(path)
    return confusion, summary


def read_cohort_inputs(
    results: Results,
    *,
    samples_path: str | Path,
    runs_path: str | Path,
    differential: DifferentialOptions,
) -> CohortInputs:
    """Read what the cohort report shows from the results and the sheets.

    Parameters
    ----------
    results
        The results layout.
    samples_path, runs_path
        The samples and runs sheets.
    differential
        The ``differential`` options: their tests name the differential and pathway tables read.

    Raises
    ------
    DVPError
        When an input is missing (naming the stage that writes it).
    """
    files = InputLog()
    samples, runs = _design(files, samples_path, runs_path)
    quant_qc = _table(files, results.quant_qc(), "quant_qc", dtype={"run": str, "sample": str})
    proteins = _table(files, results.proteins(), "proteins", dtype={"protein": str, "genes": str})
    keys = sorted((test.folder, test.name) for test in differential_tests(samples, runs, differential))
    tables = {
        name: {key: _table(files, getattr(results, name)(*key), name) for key in keys}
        for name in ("differential", "pathways")
    }
    pathway_scores = _table(files, results.pathway_scores(), "pathway_scores")
    confusion, summary = _classifier(files, results)
    run_wells = None
    if Path(results.sample_key()).is_file():  # each run back to its well and cells
        run_wells = link_runs(runs, _table(files, results.sample_key(), "sample_key", dtype={"sample": str}))
    else:
        files.notes.append(f"{results.sample_key()} not found (dvp plate): runs are not linked to their wells")
    return CohortInputs(
        samples=samples,
        runs=runs,
        run_wells=run_wells,
        quant_qc=quant_qc,
        proteins=proteins,
        **tables,
        pathway_scores=pathway_scores,
        classifier_confusion=confusion,
        classifier_summary=summary,
        inputs=files.frame(),
        notes=files.notes,
    )
