"""Per-cell measurements: from a label image and the image to the cells table.

Second half of ``dvp segment``: :func:`measure_cells` turns the labels from
:func:`dvp_pipeline.segmentation.segment` into ``results/{sample}/cells.parquet`` (one row per cell
with position, size, shape and mean intensity per channel), which :mod:`dvp_pipeline.classify`
gates into cell types and :mod:`dvp_pipeline.selection` picks cells from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

from dvp_pipeline.errors import DVPError


def measure_cells(
    labels: np.ndarray,
    image: np.ndarray,
    *,
    channel_names: Sequence[str],
    pixel_size_um: float,
    sample: str | None = None,
) -> pd.DataFrame:
    """Measure every labelled cell.

    Parameters
    ----------
    labels
        Cell labels (y, x), 0 = background.
    image
        The image the labels were made from, (channels, y, x) or (y, x).
    channel_names
        One name per channel; they name the intensity columns (``mean_<name>``).
    pixel_size_um
        Pixel size in micrometres, for the ``_um`` columns.
    sample
        Written to the ``sample`` column.

    Returns
    -------
    One row per label, sorted by ``cell_id`` (= the label, int64): ``sample``, ``centroid_y``,
    ``centroid_x`` (pixels), ``centroid_y_um``, ``centroid_x_um``, ``area`` (pixels), ``area_um2``,
    ``perimeter_um``, ``eccentricity``, ``solidity``, then ``mean_<channel>`` (mean raw intensity
    over the cell's pixels) for each channel.

    Examples
    --------
    >>> cells = measure_cells(labels, image, channel_names=["DAPI", "KRT14"], pixel_size_um=0.5,
    ...                       sample="TEN01")
    """
    labels = np.asarray(labels)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[np.newaxis]
    if labels.ndim != 2 or image.ndim != 3 or image.shape[1:] != labels.shape:
        raise DVPError(f"labels {labels.shape} and image {image.shape} do not match; expected (y, x) and (c, y, x)")
    names = [str(n) for n in channel_names]
    if len(names) != image.shape[0]:
        raise DVPError(f"{len(names)} channel names ({', '.join(names)}) for an image with {image.shape[0]} channels")
    if len(set(names)) != len(names) or not all(names):
        raise DVPError(f"channel names must be unique and non-empty, got {', '.join(names)}")
    if not pixel_size_um > 0:
        raise DVPError(f"pixel_size_um must be positive, got {pixel_size_um}")
    if labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
        raise DVPError(f"labels must be non-negative integers, got dtype {labels.dtype}")

    props = regionprops_table(
        labels.astype(np.int64, copy=False),
        intensity_image=np.moveaxis(image, 0, -1),
        properties=("label", "centroid", "area", "perimeter", "eccentricity", "solidity", "intensity_mean"),
    )
    cells = pd.DataFrame(
        {
            "cell_id": np.asarray(props["label"], dtype=np.int64),
            "sample": pd.Series([sample] * len(props["label"]), dtype=object),
            "centroid_y": np.asarray(props["centroid-0"], dtype=float),
            "centroid_x": np.asarray(props["centroid-1"], dtype=float),
        }
    )
    cells["centroid_y_um"] = cells["centroid_y"] * pixel_size_um
    cells["centroid_x_um"] = cells["centroid_x"] * pixel_size_um
    cells["area"] = np.asarray(props["area"], dtype=np.int64)
    cells["area_um2"] = cells["area"] * pixel_size_um**2
    cells["perimeter_um"] = np.asarray(props["perimeter"], dtype=float) * pixel_size_um
    cells["eccentricity"] = np.asarray(props["eccentricity"], dtype=float)
    cells["solidity"] = np.asarray(props["solidity"], dtype=float)
    for i, name in enumerate(names):
        cells[f"mean_{name}"] = np.asarray(props[f"intensity_mean-{i}"], dtype=float)
    return cells.sort_values("cell_id", ignore_index=True)
