"""dvp-pipeline: Deep Visual Proteomics analysis from images to pathway reports.

Stages (one module each): :mod:`segmentation` and :mod:`features` (images to cell tables),
:mod:`classify` (cell types), :mod:`selection` and :mod:`leica` (laser microdissection export),
:mod:`quant` (search-engine output to a protein matrix), :mod:`stats` (limma moderated t),
:mod:`pathways` (gene-set tests), :mod:`report` (HTML reports).
"""

from dvp_pipeline.errors import DVPError

__version__ = "0.1.0"
__all__ = ["DVPError", "__version__"]
