"""The report's figures, one module per family: imaging, mass spectrometry, pathways.

Part of the report stage. Every function takes tables and arrays and returns a
:class:`matplotlib.figure.Figure` (or ``None`` when there is nothing to draw); the pages render them
with :func:`figure_to_base64`.
"""

from dvp_pipeline.report.figures._util import figure_to_base64
from dvp_pipeline.report.figures.imaging import (
    cell_gallery_figure,
    cell_type_map_figure,
    composite_rgb,
    gallery_cells,
    image_figure,
    marker_histograms_figure,
    nucleus_shape_figure,
    segmentation_qc_figure,
)
from dvp_pipeline.report.figures.ms import (
    identifications_figure,
    intensity_cv_figure,
    missing_values_figure,
    pca_figure,
    volcano_figure,
)
from dvp_pipeline.report.figures.pathways import (
    pathway_dotplot_figure,
    pathway_heatmap_figure,
    pathway_score_figure,
    pathway_scores_long,
    set_member_heatmap_figure,
)

__all__ = [
    "cell_gallery_figure",
    "cell_type_map_figure",
    "composite_rgb",
    "figure_to_base64",
    "gallery_cells",
    "identifications_figure",
    "image_figure",
    "intensity_cv_figure",
    "marker_histograms_figure",
    "missing_values_figure",
    "nucleus_shape_figure",
    "pathway_dotplot_figure",
    "pathway_heatmap_figure",
    "pathway_score_figure",
    "pathway_scores_long",
    "pca_figure",
    "segmentation_qc_figure",
    "set_member_heatmap_figure",
    "volcano_figure",
]
