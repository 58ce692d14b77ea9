"""The whole synthetic cohort, written to a folder: what ``dvp demo`` and ``dvp init --demo`` call.

Top of :mod:`dvp_pipeline.simulate`: :func:`write_demo` draws one section per sample of
:func:`demo_samples` (:mod:`~dvp_pipeline.simulate.tissue`), the DIA-NN report of all their runs
(:mod:`~dvp_pipeline.simulate.proteomics`), and writes images, truth tables, sample and run sheets and
a README, like the shipped ``data/sample/`` (made by ``dvp demo data/sample --seed 0``). The pipeline
reads that folder as if it came from a microscope and a mass spectrometer; the tests check what it
finds against the truth written next to it.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import write_json, write_table, write_text
from dvp_pipeline.simulate._constants import CELL_TYPES, CONDITIONS, PIXEL_SIZE_UM, UNASSIGNED
from dvp_pipeline.simulate.proteomics import PLANTED_SETS, simulate_proteomics, write_report
from dvp_pipeline.simulate.tissue import simulate_tissue, write_labels, write_ome_tiff

__all__ = ["demo_samples", "write_demo"]


def demo_samples(samples_per_condition: int = 3) -> pd.DataFrame:
    """The demo cohort's sample sheet: TEN01.., MPR01.. with condition, patient, batch, pixel size.

    Parameters
    ----------
    samples_per_condition
        Samples per condition (3 in the shipped data).

    Returns
    -------
    DataFrame with columns sample, condition, patient, batch, pixel_size_um (TEN samples first).
    """
    if not isinstance(samples_per_condition, int | np.integer) or not 1 <= samples_per_condition <= 99:
        raise DVPError(f"samples_per_condition must be an integer from 1 to 99, got {samples_per_condition!r}")
    rows = [
        {
            "sample": f"{cond}{i:02d}",
            "condition": cond,
            "patient": f"P{i:02d}{cond[0]}",
            "batch": "1",
            "pixel_size_um": PIXEL_SIZE_UM,
        }
        for cond in CONDITIONS
        for i in range(1, samples_per_condition + 1)
    ]
    return pd.DataFrame(rows)


def _sample_rng(seed: int, name: str) -> np.random.Generator:
    # One independent stream per sample name (crc32 is stable across processes, unlike hash()), so a
    # sample's image does not change when the cohort size or the order of generation changes.
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]))


def _write_sections(
    out: Path, samples: pd.DataFrame, *, seed: int, image_size: int
) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Image, labels and truth table of every sample; returns the files written and the cells of
    each type per sample."""
    files: list[str] = []
    cell_counts: dict[str, dict[str, int]] = {}
    for sample, condition in zip(samples["sample"], samples["condition"], strict=True):
        tissue = simulate_tissue(condition, seed=_sample_rng(seed, sample), size=image_size)
        write_ome_tiff(tissue.image, out / "images" / f"{sample}.ome.tif")
        write_labels(tissue.labels, out / "truth" / f"{sample}_labels.tif")
        cells = tissue.cells.assign(sample=sample).round({"centroid_y": 2, "centroid_x": 2})
        cells = cells[["cell_id", "sample", "cell_type", "centroid_y", "centroid_x", "area", "region"]]
        write_table(cells, out / "truth" / f"{sample}_cells.tsv")
        files += [f"images/{sample}.ome.tif", f"truth/{sample}_labels.tif", f"truth/{sample}_cells.tsv"]
        counts = cells["cell_type"].value_counts()
        cell_counts[sample] = {t: int(counts.get(t, 0)) for t in (*CELL_TYPES, UNASSIGNED)}
    return files, cell_counts


def _demo_command(out: Path, *, seed: int, samples_per_condition: int, image_size: int, n_proteins: int) -> str:
    """The ``dvp demo`` command line that makes this cohort (options left at their default omitted)."""
    return f"dvp demo {out.as_posix()} --seed {seed}" + "".join(
        f" --{flag} {value}"
        for flag, value, default in (
            ("samples-per-condition", samples_per_condition, 3),
            ("image-size", image_size, 640),
            ("proteins", n_proteins, 3000),
        )
        if value != default
    )


def _summarise(report: pd.DataFrame, proteins: pd.DataFrame, cell_counts: dict, n_runs: int) -> dict:
    """Counts for the README and the caller: cells, report rows, q-value failures, missingness."""
    passing = (report["Q.Value"] <= 0.01) & (report["PG.Q.Value"] <= 0.01)
    n_groups = report["Protein.Group"].nunique()
    return {
        "cells": cell_counts,
        "report_rows": len(report),
        "protein_groups": int(n_groups),
        "precursors": int(report["Precursor.Id"].nunique()),
        "rows_failing_q": float(1 - passing.mean()),
        "rows_precursor_q_above_0.01": float((report["Q.Value"] > 0.01).mean()),
        "rows_pg_q_above_0.01": float((report["PG.Q.Value"] > 0.01).mean()),
        "protein_missing_fraction": float(
            1 - report[passing].groupby("Run")["Protein.Group"].nunique().sum() / (n_groups * n_runs)
        ),
        "planted_proteins": int(proteins["planted"].sum()),
    }


def demo_calibration(image_size: int) -> str:
    """Three calibration points for a demo section, in pixels, inset 5% from three image corners in the
    order an operator marks them (a real slide has marks on its membrane; the synthetic one has none)."""
    near, far = round(0.05 * image_size), round(0.95 * image_size)
    return f"{near},{near};{far},{near};{near},{far}"


def write_demo(
    outdir: str | os.PathLike,
    *,
    seed: int = 0,
    samples_per_condition: int = 3,
    image_size: int = 640,
    n_proteins: int = 3000,
) -> dict:
    """Write the whole synthetic cohort to ``outdir``.

    Files: ``images/{sample}.ome.tif``, ``truth/{sample}_labels.tif``, ``truth/{sample}_cells.tsv``,
    ``truth/proteins.tsv``, ``truth/planted.json``, ``diann_report.parquet``, ``samples.tsv``,
    ``runs.tsv`` and ``README.md``; each written atomically, replacing what was there. Each sample's
    tissue has its own random stream (from the seed and the sample name), and the runs' loading
    follows the cells of each type in the images (at most 300 are cut per type).

    Parameters
    ----------
    outdir
        Destination folder (created if needed).
    seed
        Seed of everything; the same seed gives the same files.
    samples_per_condition
        Samples per condition (TEN and MPR).
    image_size
        Image height and width in pixels.
    n_proteins
        Protein groups in the report.

    Returns
    -------
    Summary: ``cells`` (sample -> type -> count), report counts and fractions, ``files`` (relative
    paths written) and ``seconds``.
    """
    started = time.perf_counter()
    out = Path(outdir)
    samples = demo_samples(samples_per_condition)
    files, cell_counts = _write_sections(out, samples, seed=seed, image_size=image_size)

    cells_per_run = {f"{s}_{t}": min(300, n[t]) for s, n in cell_counts.items() for t in CELL_TYPES}
    sim = simulate_proteomics(
        samples, seed=_sample_rng(seed, "proteomics"), n_proteins=n_proteins, cells_per_run=cells_per_run
    )
    write_report(sim.report, out / "diann_report.parquet")
    write_table(sim.proteins, out / "truth" / "proteins.tsv")
    parameters = {
        "seed": seed,
        "samples_per_condition": samples_per_condition,
        "image_size": image_size,
        "pixel_size_um": PIXEL_SIZE_UM,
        **sim.parameters,
    }
    write_json(parameters, out / "truth" / "planted.json")
    sheet = samples.assign(
        image=[str(out / "images" / f"{s}.ome.tif") for s in samples["sample"]],
        calibration=demo_calibration(image_size),
    )
    sheet = sheet[["sample", "condition", "image", "patient", "batch", "pixel_size_um", "calibration"]]
    write_table(sheet, out / "samples.tsv")
    # wells come from the plate map (dvp plate), so the runs sheet names none
    runs = pd.DataFrame(sim.parameters["runs"])[["run", "sample", "cell_type"]]
    write_table(runs, out / "runs.tsv")
    files += ["diann_report.parquet", "truth/proteins.tsv", "truth/planted.json", "samples.tsv", "runs.tsv"]

    summary = _summarise(sim.report, sim.proteins, cell_counts, len(runs))
    command = _demo_command(
        out, seed=seed, samples_per_condition=samples_per_condition, image_size=image_size, n_proteins=n_proteins
    )
    write_text(_readme(parameters, summary, command), out / "README.md")
    files.append("README.md")
    summary["files"] = files
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _readme(parameters: dict, summary: dict, command: str) -> str:
    """The README.md of a cohort folder: what each file holds, cells per sample, the planted truth."""
    types = (*CELL_TYPES, UNASSIGNED)
    cells = "\n".join(
        f"| {s} | {s[:3]} | " + " | ".join(str(n[t]) for t in types) + " |" for s, n in summary["cells"].items()
    )
    per_set = "\n".join(
        f"- {name}: {parameters['planted_per_set'][name]} of its {parameters['members_per_set'][name]} members planted"
        for name in PLANTED_SETS
    )
    size, lo, hi = parameters["image_size"], *parameters["log2fc_range"]
    return f"""\
# Sample data: a synthetic TEN vs drug-rash skin cohort

Made by `{command}` (`dvp_pipeline.simulate.write_demo`); the same seed gives the same
files. Nothing here comes from a patient. The design imitates Nordmann et al. 2024
(Nature): toxic epidermal necrolysis (TEN) against maculopapular drug rash (MPR); keratinocytes, CD8 T
cells and macrophages typed on images, cut out per sample and cell type, measured by DIA-MS.

## Files

- `samples.tsv`, `runs.tsv`: sample sheet (sample, condition, image, patient, batch, pixel_size_um,
  calibration: three points in pixels, inset 5% from the image corners)
  and run sheet (run, sample, cell_type; wells come from the plate map of `dvp plate`).
- `images/{{sample}}.ome.tif`: {size} x {size} pixels, uint16, axes CYX, channels DAPI, KRT14, CD8,
  CD163 (names and PhysicalSizeX/Y = {parameters["pixel_size_um"]} µm in the OME-XML), zlib. Epidermis along
  the top (KRT14+ keratinocytes), dermis below with unlabelled stromal cells and an infiltrate of CD8 T cells
  (CD8+ membrane) and macrophages (CD163+), denser and CD8-richer in TEN, which also has T cells in the
  epidermis. PSF blur, channel bleed-through, autofluorescent fibres, uneven illumination, camera
  offset, shot and read noise; about 4 % of marker-positive cells stain weakly and a few stromal cells
  are CD163+, so marker gating is good, not perfect.
- `truth/{{sample}}_labels.tif`: uint32 whole-cell labels (0 = background): nuclei grown by about 3 µm.
- `truth/{{sample}}_cells.tsv`: cell_id (= label), sample, cell_type (keratinocyte, cd8_t_cell,
  macrophage, or unassigned for stromal cells), centroid_y, centroid_x, area (pixels), region.
- `diann_report.parquet`: DIA-NN 2.x-style main report, one row per precursor and run
  (`{{sample}}_{{cell_type}}`); a missing value is an absent row. Protein groups are `DVP00001`-style
  ids (not UniProt accessions) with real human gene symbols in `Genes`; about 1.5 % are two-protein
  groups (`DVP00011;DVP00012`, Genes `A;B`). `Precursor.Normalised` = `Precursor.Quantity` x
  `Normalisation.Factor` (the run's loading correction: runs pool different numbers of cells).
  `PG.MaxLFQ` = `Genes.MaxLFQ`: MaxLFQ over the precursors with `Q.Value` <= 0.01. Rows with `Q.Value`
  or `PG.Q.Value` above 0.01 ({100 * summary["rows_failing_q"]:.1f} % of rows) have unreliable quantities:
  filter them out.
- `truth/proteins.tsv`: protein (= Protein.Group), genes, planted, log2fc_keratinocyte,
  log2fc_cd8_t_cell, log2fc_macrophage (the true TEN over MPR effect), n_precursors.
- `truth/planted.json`: seed, planted sets and every parameter of the simulation.

## Cells per sample

| sample | condition | {" | ".join(types)} |
|---|---|---|---|---|---|
{cells}

## Report

{summary["report_rows"]:,} rows, {summary["protein_groups"]:,} protein groups (of {parameters["n_proteins"]:,}
simulated; the rest were never detected), {summary["precursors"]:,} precursors. After the 1 % q-value
filters {100 * summary["protein_missing_fraction"]:.1f} % of protein x run values are missing, mostly for
low-abundance proteins.

## Planted truth

{summary["planted_proteins"]} proteins are up in TEN in all three cell types, by log2 fold changes drawn
uniformly from {lo} to {hi} per protein and cell type: {", ".join(parameters["core_genes"])}, and a random
{parameters["planted_fraction"]:.0%} of the other members of

{per_set}

Every other protein has no condition effect. Proteins vary between samples with an sd of about
{parameters["biological_sd"]} log2 (varying by protein), so 3 vs 3 statistics are not trivial. camera on
keratinocytes calls the three Hallmark sets (and sets sharing their genes, such as Reactome interferon
signalling) at FDR < 0.05; random sets of null proteins do not come up.
"""
