"""Names shared by every part of the simulation: conditions, channels, cell types, pixel size.

Sits at the bottom of :mod:`dvp_pipeline.simulate`: the tissue, proteomics, slide and cohort modules
all import from here (and nothing else in the package), so these names stay consistent between the
images, the DIA-NN report and the sample sheets.
"""

from __future__ import annotations

__all__ = ["CELL_TYPES", "CHANNELS", "CONDITIONS", "PIXEL_SIZE_UM", "UNASSIGNED"]

#: Conditions of the cohort: toxic epidermal necrolysis and maculopapular drug rash.
CONDITIONS = ("TEN", "MPR")
#: Image channels, in the order of the image's first axis.
CHANNELS = ("DAPI", "KRT14", "CD8", "CD163")
#: Cell types that are typed on the images and measured as separate MS runs.
CELL_TYPES = ("keratinocyte", "cd8_t_cell", "macrophage")
#: Truth type of the unlabelled stromal cells.
UNASSIGNED = "unassigned"
#: Pixel size of the demo images, in micrometres.
PIXEL_SIZE_UM = 0.5
