"""The results layout: where every stage writes its files, defined once.

The Snakemake rules, the command line and the report all ask a :class:`Results` for paths, so a
file that moves moves everywhere at once. Pass a wildcard such as ``"{sample}"`` as the sample to
get a rule's output pattern.

Examples
--------
>>> from dvp_pipeline.layout import Results
>>> results = Results("results")
>>> results.cells("TEN01")
'results/TEN01/cells.parquet'
>>> results.differential("keratinocyte", "TEN_vs_MPR")
'results/cohort/differential/keratinocyte/TEN_vs_MPR.tsv'
>>> results.cells("{sample}")
'results/{sample}/cells.parquet'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXTRA_PATHWAY_METHODS", "RESERVED_NAMES", "Results"]

#: Folders of the results layout beside the samples' own: no sample may take these names.
RESERVED_NAMES = frozenset({"cohort", "reports"})

#: Pathway methods written to their own folders next to camera's (``pathways_{method}/``).
EXTRA_PATHWAY_METHODS = ("camerapr", "ora", "gsea")


@dataclass(frozen=True)
class Results:
    """Paths under one results folder (``results`` in the workflow's working directory)."""

    root: str = "results"

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    # per sample: segment
    def sample_dir(self, sample: str) -> str:
        return self._path(sample)

    def labels(self, sample: str) -> str:
        """uint32 cell labels (0 = background)."""
        return self._path(sample, "labels.tif")

    def nuclei(self, sample: str) -> str:
        """uint32 nucleus labels; nucleus k belongs to cell k."""
        return self._path(sample, "nuclei.tif")

    def cells(self, sample: str) -> str:
        """The measured cells table."""
        return self._path(sample, "cells.parquet")

    def segment_qc(self, sample: str) -> str:
        """Truth-free segmentation QC: likely merged and missed cells (:func:`dvp_pipeline.seg_metrics.segment_qc`)."""
        return self._path(sample, "segment_qc.json")

    def tile_plan(self, sample: str) -> str:
        """The tiling plan when tiles are jobs."""
        return self._path(sample, "tiles", "plan.json")

    def tile(self, sample: str, index: int | str) -> str:
        """One tile's labels when tiles are jobs."""
        return self._path(sample, "tiles", f"{index}.npz")

    # per sample: classify
    def cells_classified(self, sample: str) -> str:
        return self._path(sample, "cells_classified.parquet")

    def thresholds(self, sample: str) -> str:
        return self._path(sample, "thresholds.tsv")

    def labels_pyramid(self, sample: str) -> str:
        """The cell labels as an OME-Zarr multiscale label image (level k = labels[::2**k, ::2**k])."""
        return self._path(sample, "labels.ome.zarr")

    def cell_types_pyramid(self, sample: str) -> str:
        """The classified cell-type map as an OME-Zarr multiscale label image, type names as properties."""
        return self._path(sample, "cell_types.ome.zarr")

    def anndata(self, sample: str) -> str:
        return self._path(sample, "cells.h5ad")

    # per sample: select
    def lmd_xml(self, sample: str) -> str:
        """The Leica LMD file, named after the sample (the microscope shows the name)."""
        return self._path(sample, "lmd", f"{sample}.xml")

    def shapes(self, sample: str) -> str:
        """The cutting shapes and calibration points for QuPath."""
        return self._path(sample, "lmd", "shapes.geojson")

    def shapes_table(self, sample: str) -> str:
        """The cutting shapes (pool, cutting order, cell ids, vertices in pixels)."""
        return self._path(sample, "lmd", "shapes.parquet")

    def pools(self, sample: str) -> str:
        """One row per pool (and control): cell type, replicate, cells, area against its target."""
        return self._path(sample, "lmd", "pools.tsv")

    def selection(self, sample: str) -> str:
        """The drawn cells and their pools."""
        return self._path(sample, "lmd", "selection.tsv")

    def lmd_summary(self, sample: str) -> str:
        """Calibration points, exclusions, vertex counts and cutting path lengths."""
        return self._path(sample, "lmd", "summary.json")

    def preview(self, sample: str) -> str:
        return self._path(sample, "lmd", "preview.png")

    # cohort: plates
    def plates_dir(self) -> str:
        return self._path("cohort", "lmd")

    def plate_map(self) -> str:
        return self._path("cohort", "lmd", "plate_map.csv")

    def sample_key(self) -> str:
        return self._path("cohort", "lmd", "sample_key.tsv")

    def ms_queue(self) -> str:
        return self._path("cohort", "lmd", "ms_queue.csv")

    def generated_runs(self) -> str:
        """The runs sheet the plate map implies (run names as the MS queue gives them)."""
        return self._path("cohort", "lmd", "runs.tsv")

    def plate_figure(self) -> str:
        return self._path("cohort", "lmd", "plates.png")

    # cohort: classifier
    def classifier_model(self) -> str:
        return self._path("cohort", "classifier", "model.json")

    def classifier_confusion(self) -> str:
        return self._path("cohort", "classifier", "confusion.tsv")

    def classifier_summary(self) -> str:
        return self._path("cohort", "classifier", "summary.json")

    # cohort: quantify
    def precursors(self) -> str:
        return self._path("cohort", "precursors.parquet")

    def proteins(self) -> str:
        return self._path("cohort", "proteins.tsv")

    def quant_qc(self) -> str:
        return self._path("cohort", "quant_qc.tsv")

    # cohort: differential and pathways; a test's key is "{folder}/{name}" (e.g. keratinocyte/TEN_vs_MPR)
    def differential_dir(self) -> str:
        return self._path("cohort", "differential")

    def differential(self, folder: str, name: str) -> str:
        return self._path("cohort", "differential", folder, f"{name}.tsv")

    def differential_methods(self) -> str:
        return self._path("cohort", "differential", "methods.json")

    def pathways_dir(self, method: str = "camera") -> str:
        return self._path("cohort", "pathways" if method == "camera" else f"pathways_{method}")

    def pathways(self, folder: str, name: str, method: str = "camera") -> str:
        return f"{self.pathways_dir(method)}/{folder}/{name}.tsv"

    def pathway_scores(self) -> str:
        return self._path("cohort", "pathway_scores.tsv")

    # reports
    def reports_dir(self) -> str:
        return self._path("reports")

    def sample_report(self, sample: str) -> str:
        return self._path("reports", f"{sample}.html")

    def cohort_report(self) -> str:
        return self._path("reports", "cohort.html")
