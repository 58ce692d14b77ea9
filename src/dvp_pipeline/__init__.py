"""dvp-pipeline: Deep Visual Proteomics analysis from images to pathway reports.

One library function per stage, each over in-memory data (the ``dvp`` subcommands and the Snakemake
rules only read, call it and write): :func:`slide.segment_slide` (segmentation and measurement),
:func:`classify.classify_sample` (cell types), :func:`selection.select_sample` (laser
microdissection), :func:`quant.quantify_cohort` (search-engine output to a protein matrix),
:func:`differential.differential_analysis` (limma moderated t, :mod:`stats`),
:func:`pathways.pathway_analysis` (camera, ORA, GSEA, scores) and :mod:`report` (HTML pages).
Options are typed in :mod:`options`, result paths defined in :mod:`layout`; synthetic data with a
known truth comes from :mod:`simulate`. The README's code map says where each kind of change goes.
"""

from dvp_pipeline.errors import DVPError

__version__ = "0.1.0"
__all__ = ["DVPError", "__version__"]
