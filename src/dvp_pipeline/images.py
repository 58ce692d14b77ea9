"""Reading multiplexed immunofluorescence images.

The first step of the pipeline: ``dvp segment`` reads a sample's image here, then hands the
(channels, y, x) array to :func:`dvp_pipeline.segmentation.segment` and
:func:`dvp_pipeline.features.measure_cells`. OME-TIFF (channel names and pixel size from the OME
metadata) and plain or ImageJ TIFF are read; every problem with the file becomes a
:class:`~dvp_pipeline.errors.DVPError` that names it.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from dvp_pipeline.errors import DVPError

# OME lengths may come in any unit; pixel sizes are reported in micrometres.
_UM_PER_UNIT = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4}


def read_image(
    path: str | os.PathLike, *, channels: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str], float | None]:
    """Read a (multi-channel) TIFF or OME-TIFF image.

    Parameters
    ----------
    path
        The image file. Singleton T and Z axes are dropped; RGB samples count as channels. For a
        pyramidal OME-TIFF the full-resolution level is read.
    channels
        Channel names from the configuration. If the file carries OME channel names, these select
        (and order) channels by name, and a name the image lacks is an error. If it does not, they
        name the image's channels in order and their number must match the image's channel count.
        ``None`` keeps all channels with the file's names (``channel_0``, ``channel_1`` ... when it
        has none).

    Returns
    -------
    image
        Array of shape (channels, y, x) in the file's data type; a 2-D image is one channel.
    names
        One name per channel of ``image``.
    pixel_size_um
        Pixel size in micrometres from the OME ``PhysicalSizeX`` or ImageJ resolution, or ``None``
        when the file does not say.

    Examples
    --------
    >>> image, names, pixel_size = read_image("TEN01.ome.tif", channels=["DAPI", "KRT14", "CD8", "CD163"])
    """
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: image file not found")
    # tifffile logs (rather than raises) many kinds of damage, e.g. a truncated IFD chain, and then
    # returns fewer planes; collect those messages so a damaged file fails instead.
    damage = _ErrorCollector()
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(damage)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            _check_data_within_file(series, tif.filehandle.size, path)
            data = series.asarray()
            ome_names, pixel_size = _ome_metadata(tif.ome_metadata) if tif.is_ome else (None, None)
            if pixel_size is None and tif.is_imagej:
                pixel_size = _imagej_pixel_size(tif)
    except DVPError:
        raise
    except Exception as err:  # tifffile raises many types for damaged or foreign files
        raise DVPError(f"{path}: not a readable TIFF image ({type(err).__name__}: {err})") from err
    finally:
        tiff_logger.removeHandler(damage)
    if damage.messages:
        raise DVPError(f"{path}: damaged or truncated TIFF ({damage.messages[0]})")

    if data.size == 0:
        raise DVPError(f"{path}: image is empty (shape {data.shape})")
    image = _to_cyx(data, axes, path)
    n = image.shape[0]
    file_names = ome_names if ome_names is not None and len(ome_names) == n else None

    if channels is None:
        names = file_names or [f"channel_{i}" for i in range(n)]
        return image, names, pixel_size
    channels = [str(c) for c in channels]
    if file_names is None:
        if len(channels) != n:
            raise DVPError(
                f"{path}: {len(channels)} channel names configured ({', '.join(channels)}) but the image "
                f"has {n} channel(s)"
            )
        return image, channels, pixel_size
    missing = [c for c in channels if c not in file_names]
    if missing:
        raise DVPError(f"{path}: channel(s) {', '.join(missing)} not in the image; it has {', '.join(file_names)}")
    index = [file_names.index(c) for c in channels]
    return image[index], channels, pixel_size


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_data_within_file(series: tifffile.TiffPageSeries, size: int, path: Path) -> None:
    """Fail if any image data segment of the series lies past the end of the file (truncated copy)."""
    for page in series.pages:
        if page is None:
            continue
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False) if c]
        if ends and max(ends) > size:
            raise DVPError(f"{path}: truncated TIFF (image data ends at byte {max(ends)}, file has {size})")


def _to_cyx(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Bring an array with tifffile axes codes to (channels, y, x)."""
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes:
        raise DVPError(f"{path}: image has axes {axes!r}; expected Y and X")
    # Squeeze singleton axes other than Y, X so e.g. TCZYX with T = Z = 1 becomes CYX.
    keep = [i for i, a in enumerate(axes) if a in "YX" or data.shape[i] > 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    # Channels (C), RGB samples (S) and the pages of a plain multi-page TIFF (I, or Q for tifffile's
    # shaped files) all count as channels; Z stacks and time series must be projected first.
    other = [a for a in axes if a not in "YX"]
    if len(other) > 1 or (other and other[0] not in "CSIQ"):
        raise DVPError(
            f"{path}: image has axes {axes!r} with shape {data.shape}; expected one 2-D plane per channel "
            "(project z-stacks / time series first)"
        )
    if not other:
        return data[np.newaxis]
    order = [axes.index(other[0]), axes.index("Y"), axes.index("X")]
    return np.transpose(data, order)


def _ome_metadata(xml: str | None) -> tuple[list[str] | None, float | None]:
    """Channel names and pixel size (um) of the first image in an OME-XML document."""
    if not xml:
        return None, None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None
    # Namespaces differ between OME schema versions, so match on the local tag name.
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None, None
    names = [el.get("Name") for el in pixels if el.tag.rsplit("}", 1)[-1] == "Channel"]
    names = names if names and all(names) else None
    pixel_size = None
    size = pixels.get("PhysicalSizeX")
    unit = pixels.get("PhysicalSizeXUnit", "µm")
    if size is not None and unit in _UM_PER_UNIT:
        try:
            pixel_size = float(size) * _UM_PER_UNIT[unit]
        except ValueError:
            pixel_size = None
    return names, pixel_size if pixel_size and pixel_size > 0 else None


def _imagej_pixel_size(tif: tifffile.TiffFile) -> float | None:
    """Pixel size (um) from an ImageJ TIFF whose unit is a micron."""
    meta = tif.imagej_metadata or {}
    unit = str(meta.get("unit", "")).replace("\\u00B5", "µ")
    if unit not in ("micron", "µm", "um"):
        return None
    tag = tif.pages[0].tags.get("XResolution")
    if tag is None:
        return None
    numerator, denominator = tag.value
    return denominator / numerator if numerator else None
