"""HTML reports: one page per sample and one for the cohort (the pipeline's last stage).

:func:`build_sample_report` and :func:`build_cohort_report` read a results folder
(:class:`~dvp_pipeline.layout.Results`) and return a page; :func:`sample_report` and
:func:`cohort_report` build the same pages from tables and arrays already in memory. Pages are
self-contained HTML. The package is laid out as:

- :mod:`~dvp_pipeline.report.inputs`: reading what the stages wrote (a missing input is an error);
- :mod:`~dvp_pipeline.report.sample`, :mod:`~dvp_pipeline.report.cohort`: the two pages, each assembled
  from small section builders;
- :mod:`~dvp_pipeline.report.figures`: the figures, by family (imaging, mass spectrometry, pathways);
- :mod:`~dvp_pipeline.report.palettes`: colours from the config's ordered names;
- :mod:`~dvp_pipeline.report.html`: tables, figure embedding and the Jinja2 templates.

Examples
--------
In a project folder after ``dvp run`` (``tests/test_stages.py`` builds a page from in-memory tables)::

    from dvp_pipeline.report import build_cohort_report
    html = build_cohort_report("results", samples_path="config/samples.tsv", runs_path="config/runs.tsv",
                               config="config/config.yaml")
"""

from dvp_pipeline.report.cohort import build_cohort_report, classifier_table, cohort_report
from dvp_pipeline.report.figures import (
    cell_gallery_figure,
    cell_type_map_figure,
    composite_rgb,
    figure_to_base64,
    gallery_cells,
    identifications_figure,
    image_figure,
    intensity_cv_figure,
    marker_histograms_figure,
    missing_values_figure,
    pathway_dotplot_figure,
    pathway_heatmap_figure,
    pathway_score_figure,
    pathway_scores_long,
    pca_figure,
    set_member_heatmap_figure,
    volcano_figure,
)
from dvp_pipeline.report.palettes import cell_type_palette, channel_palette, condition_palette
from dvp_pipeline.report.sample import build_sample_report, sample_report

__all__ = [
    "build_cohort_report",
    "build_sample_report",
    "cell_gallery_figure",
    "cell_type_map_figure",
    "cell_type_palette",
    "channel_palette",
    "classifier_table",
    "cohort_report",
    "composite_rgb",
    "condition_palette",
    "figure_to_base64",
    "gallery_cells",
    "identifications_figure",
    "image_figure",
    "intensity_cv_figure",
    "marker_histograms_figure",
    "missing_values_figure",
    "pathway_dotplot_figure",
    "pathway_heatmap_figure",
    "pathway_score_figure",
    "pathway_scores_long",
    "pca_figure",
    "sample_report",
    "set_member_heatmap_figure",
    "volcano_figure",
]
