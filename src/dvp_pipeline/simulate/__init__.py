"""Synthetic data with known answers: the demo cohort, test inputs and benchmark slides.

Sits outside the analysis: nothing in the pipeline's stages imports it. ``dvp demo OUTDIR`` (and
``dvp init --demo``) writes a folder like ``data/sample/`` that the pipeline reads as if it came from
a microscope and a mass spectrometer, and the ground truth written next to it lets the tests check
that segmentation, cell typing, quantification and the statistics find what was planted. Everything
is drawn from seeded :class:`numpy.random.Generator` streams, so a seed gives the same files on every
machine.

The cohort copies the design of Nordmann et al. 2024 (Nature): skin biopsies of toxic epidermal
necrolysis (TEN) against drug rash controls (MPR, maculopapular rash); keratinocytes, CD8 T cells and
macrophages are typed on 4-channel images (DAPI, KRT14, CD8, CD163), cut out per sample and cell
type, and measured by DIA mass spectrometry. JAK/STAT and interferon proteins are up in TEN.

Modules:

- :mod:`~dvp_pipeline.simulate.tissue`: one image of a section with its labels and cell types
  (:func:`simulate_tissue`, :func:`write_ome_tiff`, :func:`write_labels`).
- :mod:`~dvp_pipeline.simulate.proteomics`: the DIA-NN report and the protein truth
  (:func:`simulate_proteomics`, :func:`write_report`, :func:`read_gmt_symbols`, the planted sets).
- :mod:`~dvp_pipeline.simulate.cohort`: all of it, to a folder (:func:`demo_samples`, :func:`write_demo`).
- :mod:`~dvp_pipeline.simulate.mzml`: two small mzML runs with mzTab identifications, for the open
  quantification path (:func:`write_mzml_demo`).
- :mod:`~dvp_pipeline.simulate.slide`: a whole slide of any size, drawn tile by tile, for the tiling
  tests and the segmentation benchmark (:func:`big_slide_tile`, :func:`write_big_slide`).
- :mod:`~dvp_pipeline.simulate.hard`: a harder section for the segmentation yardstick: nuclei of varied
  size pressed into touching clusters, uneven illumination, low light, 10% dim cells
  (:func:`simulate_hard_tissue`; ``bench/bench_segment_quality.py``).
"""

from dvp_pipeline.simulate._constants import CELL_TYPES, CHANNELS, CONDITIONS, PIXEL_SIZE_UM, UNASSIGNED
from dvp_pipeline.simulate.cohort import demo_samples, write_demo
from dvp_pipeline.simulate.hard import simulate_hard_tissue
from dvp_pipeline.simulate.mzml import MZML_PROTEINS, simulate_mzml_runs, write_mzml, write_mzml_demo, write_mztab
from dvp_pipeline.simulate.proteomics import (
    CORE_GENES,
    MARKER_GENES,
    PLANTED_SETS,
    Proteomics,
    read_gmt_symbols,
    simulate_proteomics,
    write_report,
)
from dvp_pipeline.simulate.slide import big_slide_tile, write_big_slide
from dvp_pipeline.simulate.tissue import Tissue, simulate_tissue, write_labels, write_ome_tiff

__all__ = [
    "CELL_TYPES",
    "CHANNELS",
    "CONDITIONS",
    "CORE_GENES",
    "MARKER_GENES",
    "MZML_PROTEINS",
    "PIXEL_SIZE_UM",
    "PLANTED_SETS",
    "UNASSIGNED",
    "Proteomics",
    "Tissue",
    "big_slide_tile",
    "demo_samples",
    "read_gmt_symbols",
    "simulate_hard_tissue",
    "simulate_mzml_runs",
    "simulate_proteomics",
    "simulate_tissue",
    "write_big_slide",
    "write_demo",
    "write_labels",
    "write_mzml",
    "write_mzml_demo",
    "write_mztab",
    "write_ome_tiff",
    "write_report",
]
