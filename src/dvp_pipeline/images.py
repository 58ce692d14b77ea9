"""Reading multiplexed immunofluorescence images.

The first step of the pipeline: ``dvp segment`` opens a sample's image here and hands (channels, y,
x) regions of it to :mod:`dvp_pipeline.tiling`, which segments and measures a whole slide tile by
tile. OME-TIFF (channel names and pixel size from the OME metadata; the full-resolution level of a
pyramidal file), plain or ImageJ TIFF and OME-Zarr are read.

:func:`open_image` reads lazily (tifffile's zarr store, or zarr): it returns an :class:`ImageSource`
whose :meth:`~ImageSource.read` loads only the region asked for, so no whole slide is ever in memory.
:func:`read_image` loads a whole (small) image as an array. Every problem with the file becomes a
:class:`~dvp_pipeline.errors.DVPError` that names it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from dvp_pipeline.errors import DVPError

__all__ = ["ImageSource", "check_image_size", "open_image", "read_image", "read_labels", "write_ome_zarr"]

# Microscope vendors' formats, read through bioio and one plugin each (the ``formats`` extra).
_BIOIO_FORMATS = {".czi": ("CZI", "bioio_czi"), ".lif": ("LIF", "bioio_lif"), ".nd2": ("ND2", "bioio_nd2")}

# OME lengths may come in any unit; pixel sizes are reported in micrometres.
_UM_PER_UNIT = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4}


def read_image(
    path: str | os.PathLike, *, channels: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str], float | None]:
    """Read a whole (multi-channel) TIFF, OME-TIFF, OME-Zarr, CZI, LIF or ND2 image into memory.

    For whole slides use :func:`open_image`, which reads regions on request.

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
        Pixel size in micrometres from the OME ``PhysicalSizeX``, ImageJ resolution or CZI/LIF/ND2 metadata, or ``None``
        when the file does not say.

    Examples
    --------
    >>> image, names, pixel_size = read_image(image_path, channels=["DAPI", "CD8"])
    >>> image.shape, names, pixel_size
    ((2, 320, 320), ['DAPI', 'CD8'], 0.5)
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in _BIOIO_FORMATS:  # OME-Zarr, CZI, LIF, ND2
        with open_image(path, channels=channels) as source:
            return source.read(), source.names, source.pixel_size_um
    if not path.is_file():
        raise DVPError(f"{path}: image file not found")
    # tifffile logs (rather than raises) many kinds of damage, e.g. a truncated IFD chain, and then
    # returns fewer planes; collect those messages so a damaged file fails instead.
    damage = _ErrorCollector()
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(damage)
    try:
        with tifffile.TiffFile(path) as tif:
            series = _first_series(tif, path)
            axes = series.axes
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
    names, index = _resolve_channels(path, image.shape[0], ome_names, channels)
    return (image if index is None else image[index]), names, pixel_size


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """A whole (y, x) integer label image (TIFF), failing with a :class:`DVPError` that names the file."""
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: file not found")
    try:
        labels = tifffile.imread(path)
    except Exception as err:  # tifffile raises several types for unreadable files
        raise DVPError(f"{path}: cannot read label image ({err})") from err
    labels = np.squeeze(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DVPError(f"{path}: expected a 2-D integer label image, got {labels.dtype} {labels.shape}")
    return labels


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _first_series(tif: tifffile.TiffFile, path: Path) -> tifffile.TiffPageSeries:
    """The image series a reader uses, after the checks that must come before tifffile interprets the file."""
    # tifffile parses OME-XML (and other XML descriptions) with ElementTree when it builds the series,
    # which expands internal entities; a DTD is refused before that happens.
    description = tif.pages[0].description if len(tif.pages) else ""
    _refuse_xml_declarations(description, path)
    series = tif.series[0]
    _check_page_data(series, tif.filehandle.size, path)
    return series


class _Declaration(Exception):
    """A DOCTYPE or entity declaration met while scanning XML metadata."""


def _refuse_xml_declarations(text: str, path: Path) -> None:
    """Refuse XML metadata with a DOCTYPE or entity declarations (billion laughs, external entities/XXE).

    OME-XML never needs a DTD (it is defined by an XML Schema), so one is a sign of a crafted file. Other
    damage to the XML is left to tifffile, which reports it.
    """
    if not text or "<!" not in text or not text.lstrip().startswith("<"):
        return

    def found(*_args) -> None:
        raise _Declaration

    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = found
    parser.EntityDeclHandler = found
    parser.UnparsedEntityDeclHandler = found
    parser.ExternalEntityRefHandler = found
    try:
        parser.Parse(text, True)
    except _Declaration:
        raise DVPError(
            f"{path}: OME-XML contains a DTD/entity declaration; refused for safety (entities can expand "
            "without bound or read other files). Export the image again without a DOCTYPE"
        ) from None
    except (xml.parsers.expat.ExpatError, LookupError, UnicodeError):
        pass  # damaged XML without a DTD: tifffile reports it when it reads the metadata


def _check_page_data(series: tifffile.TiffPageSeries, size: int, path: Path) -> None:
    """Fail if the series' pages do not hold the data their headers promise (truncated or damaged copy).

    Checked: the number of strips or tiles matches the image size in the header (a damaged size would
    otherwise read as a huge image of zeros), every data segment lies within the file, and uncompressed
    data has all its bytes.
    """
    for page in series.pages:
        if page is None:
            continue
        key = page.keyframe
        if 0 in key.shape:
            continue  # an empty image, reported as such by the readers
        offsets, counts = page.dataoffsets, page.databytecounts
        expected = int(np.prod(key.chunked))
        if len(offsets) != expected or len(counts) != expected:
            raise DVPError(
                f"{path}: damaged TIFF (the header's image size {'x'.join(map(str, key.shape))} needs {expected} "
                f"strips or tiles, the file lists {len(offsets)})"
            )
        ends = [o + c for o, c in zip(offsets, counts, strict=False) if c]
        if ends and max(ends) > size:
            raise DVPError(f"{path}: truncated TIFF (image data ends at byte {max(ends)}, file has {size})")
        if key.compression == 1 and key.bitspersample % 8 == 0 and sum(counts) < key.nbytes:
            raise DVPError(
                f"{path}: damaged TIFF (uncompressed image of {key.nbytes} bytes, the file holds {sum(counts)})"
            )


def check_image_size(
    shape: Sequence[int], *, pixel_size_um: float, nucleus_diameter_um: float, source: str | os.PathLike = "image"
) -> None:
    """Refuse an image too small to hold one cell: each side must span at least one nucleus diameter.

    A smaller image (a 1 x 1 test file, a wrong crop, a pixel size off by a factor of 1000) would
    otherwise segment to no cells and fail later, in the select stage, with a message about something else.

    Parameters
    ----------
    shape
        The image's shape; the last two entries are (y, x) in pixels.
    pixel_size_um
        Micrometres per pixel.
    nucleus_diameter_um
        The smallest side, in micrometres, an image may have (``segment.classical.nucleus_diameter_um``).
    source
        The image, named in the message.

    Examples
    --------
    >>> check_image_size((2, 1, 1), pixel_size_um=0.5, nucleus_diameter_um=7.0, source="a.tif")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dvp_pipeline.errors.DVPError: a.tif: the image is 1 x 1 pixels (0.5 x 0.5 um ...), smaller than one nucleus ...
    """
    if not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise DVPError(f"{source}: pixel size must be a positive number of micrometres, got {pixel_size_um}")
    height, width = (int(n) for n in shape[-2:])
    need = int(np.ceil(nucleus_diameter_um / pixel_size_um - 1e-9))
    if min(height, width) < need:
        raise DVPError(
            f"{source}: the image is {height} x {width} pixels ({height * pixel_size_um:.3g} x "
            f"{width * pixel_size_um:.3g} um at {pixel_size_um:.3g} um per pixel), smaller than one nucleus "
            f"({nucleus_diameter_um:.3g} um = {need} pixels) across; is it the right image, with the right pixel size?"
        )


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


class ImageSource:
    """A lazily read multi-channel image: channel names, pixel size, shape, and regions on request.

    Made by :func:`open_image`. ``shape`` is (channels, y, x) after channel selection; ``read`` loads
    a region of the selected channels from the file, so memory is bounded by the region, not the
    image. Use it as a context manager, or call :meth:`close`, to release the file.
    """

    def __init__(self, array, axes: str, names: list[str], pixel_size_um: float | None, path: Path, closer=None):
        self.path = path
        self.names = names
        self.pixel_size_um = pixel_size_um
        self._array = array
        self._closer = closer
        self._channel_index: list[int] | None = None
        axes = axes.upper()
        # Singleton T/Z axes are indexed at 0; the one non-spatial axis of size > 1 holds channels.
        self._slots: list[str] = []
        channel_axis = None
        for i, a in enumerate(axes):
            if a in "YX":
                self._slots.append(a)
            elif array.shape[i] > 1:
                if channel_axis is not None or a not in "CSIQ":
                    raise DVPError(
                        f"{path}: image has axes {axes!r} with shape {tuple(array.shape)}; expected one 2-D "
                        "plane per channel (project z-stacks / time series first)"
                    )
                channel_axis = i
                self._slots.append("C")
            else:
                self._slots.append("0")
        if "Y" not in self._slots or "X" not in self._slots:
            raise DVPError(f"{path}: image has axes {axes!r}; expected Y and X")
        n = array.shape[channel_axis] if channel_axis is not None else 1
        self._n_file_channels = n
        self._yx = (array.shape[axes.index("Y")], array.shape[axes.index("X")])
        self.dtype = np.dtype(array.dtype)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, y, x) of the selected channels."""
        n = len(self._channel_index) if self._channel_index is not None else self._n_file_channels
        return (n, *self._yx)

    def read(self, y: slice = slice(None), x: slice = slice(None)) -> np.ndarray:
        """Load a region as an array (channels, y, x) in the file's data type."""
        index = []
        for slot in self._slots:
            index.append({"Y": y, "X": x, "C": slice(None), "0": 0}[slot])
        try:
            data = np.asarray(self._array[tuple(index)])
        except Exception as err:  # zarr/tifffile raise many types for damaged data
            raise DVPError(f"{self.path}: cannot read image data ({type(err).__name__}: {err})") from err
        order = [s for s in self._slots if s != "0"]
        if "C" not in order:
            data = data[np.newaxis]
            order = ["C", *order]
        data = np.transpose(data, [order.index("C"), order.index("Y"), order.index("X")])
        if self._channel_index is not None:
            data = data[self._channel_index]
        return data

    def close(self) -> None:
        """Release the file."""
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_image(path: str | os.PathLike, *, channels: Sequence[str] | None = None) -> ImageSource:
    """Open an OME-TIFF, TIFF, OME-Zarr, CZI, LIF or ND2 image for reading regions lazily.

    Parameters
    ----------
    path
        The image: a TIFF/OME-TIFF file (for a pyramid, the full-resolution level is read), an
        OME-Zarr folder (``.zarr``; the first, full-resolution dataset of the first multiscale), or a
        Zeiss ``.czi``, Leica ``.lif`` or Nikon ``.nd2`` file (the first scene at full resolution,
        mosaics stitched; needs the ``formats`` extra).
    channels
        As in :func:`read_image`: names that select and order the file's named channels, or name an
        unnamed file's channels in order (their number must match).

    Returns
    -------
    An :class:`ImageSource`; nothing but metadata is read until :meth:`ImageSource.read`.

    Examples
    --------
    >>> with open_image(image_path, channels=["DAPI", "CD8"]) as image:
    ...     tile = image.read(slice(0, 128), slice(0, 256))
    >>> tile.shape
    (2, 128, 256)
    """
    path = Path(path)
    if not path.exists():
        raise DVPError(f"{path}: image file not found")
    if path.is_dir():
        source, file_names = _open_ome_zarr(path)
    elif path.suffix.lower() in _BIOIO_FORMATS:
        source, file_names = _open_bioio(path)
    else:
        source, file_names = _open_tiff(path)
    try:
        source.names, source._channel_index = _resolve_channels(
            source.path, source._n_file_channels, file_names, channels
        )
        if 0 in source.shape:
            raise DVPError(f"{path}: image is empty (shape {source.shape})")
    except DVPError:
        source.close()
        raise
    return source


def _resolve_channels(
    path, n: int, file_names: list[str] | None, channels: Sequence[str] | None
) -> tuple[list[str], list[int] | None]:
    """Channel names of an image with ``n`` channels, and the indices to keep (None = all, in file order).

    Names in the file (OME) select and order channels by name; without them the configured names
    name the channels in order and must match their number.
    """
    file_names = file_names if file_names is not None and len(file_names) == n else None
    if channels is None:
        return file_names or [f"channel_{i}" for i in range(n)], None
    channels = [str(c) for c in channels]
    if file_names is None:
        if len(channels) != n:
            raise DVPError(
                f"{path}: {len(channels)} channel names configured ({', '.join(channels)}) but the image "
                f"has {n} channel(s)"
            )
        return channels, None
    missing = [c for c in channels if c not in file_names]
    if missing:
        raise DVPError(f"{path}: channel(s) {', '.join(missing)} not in the image; it has {', '.join(file_names)}")
    return channels, [file_names.index(c) for c in channels]


def _open_tiff(path: Path) -> tuple[ImageSource, list[str] | None]:
    import zarr

    damage = _ErrorCollector()
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(damage)
    tif = None
    try:
        tif = tifffile.TiffFile(path)
        series = _first_series(tif, path)
        if series.size == 0:
            raise DVPError(f"{path}: image is empty (shape {series.shape})")
        # level 0 of a pyramid is the full resolution; the other levels are downsampled copies.
        store = series.aszarr(level=0)
        array = zarr.open(store, mode="r")
        names, pixel_size = _ome_metadata(tif.ome_metadata) if tif.is_ome else (None, None)
        if pixel_size is None and tif.is_imagej:
            pixel_size = _imagej_pixel_size(tif)
        axes = series.axes
    except DVPError:
        if tif is not None:
            tif.close()
        raise
    except Exception as err:  # tifffile raises many types for damaged or foreign files
        if tif is not None:
            tif.close()
        raise DVPError(f"{path}: not a readable TIFF image ({type(err).__name__}: {err})") from err
    finally:
        tiff_logger.removeHandler(damage)
    if damage.messages:
        tif.close()
        raise DVPError(f"{path}: damaged or truncated TIFF ({damage.messages[0]})")

    def close() -> None:
        store.close()
        tif.close()

    try:
        source = ImageSource(array, axes, [], pixel_size, path, closer=close)
    except DVPError:
        close()
        raise
    return source, names


def _open_bioio(path: Path) -> tuple[ImageSource, list[str] | None]:
    """The first scene of a CZI, LIF or ND2 file at full resolution, through bioio and the format's plugin.

    Mosaics come stitched by the plugin. A stack (z or time) or any other axis with more than one plane is
    refused, as for TIFF, instead of being read as one of its planes.
    """
    fmt, module = _BIOIO_FORMATS[path.suffix.lower()]
    try:
        import bioio

        plugin = importlib.import_module(module)
    except ImportError:
        raise DVPError(f"{path}: reading {fmt} needs the formats extra: pip install 'dvp-pipeline[formats]'") from None
    try:
        image = bioio.BioImage(path, reader=plugin.Reader)
        sizes = dict(zip(image.dims.order, image.dims.shape, strict=True))
        native = dict(zip(image.reader.dims.order, image.reader.dims.shape, strict=True))
        if fmt == "LIF":
            native.update(_lif_sizes(path))
        names = [str(n) for n in image.channel_names or []]
        pixel_size = image.physical_pixel_sizes.X  # bioio reports micrometres
        order = "CYXS" if "S" in sizes else "CYX"
        stacks = [f"{sizes[a]} {what}" for a, what in (("Z", "z-planes"), ("T", "time points")) if sizes.get(a, 1) > 1]
        other = [f"{a} = {n}" for a, n in native.items() if a not in ("T", "C", "Z", "Y", "X", "S", "M") and n > 1]
        if stacks or other:
            raise DVPError(
                f"{path}: the first scene has {', '.join(stacks + other)}; expected one 2-D plane per channel "
                "(project z-stacks / time series, or export the planes as channels, first)"
            )
        array = _BioioRegions(image, order, indexed=fmt == "ND2")
    except DVPError:
        raise
    except Exception as err:  # the plugins raise many types for damaged or foreign files
        raise DVPError(f"{path}: not a readable {fmt} image ({type(err).__name__}: {err})") from err
    # bioio names unnamed channels Channel:<scene>:<index>; those are no names.
    if not names or any(re.fullmatch(r"Channel:\d+:\d+", n) for n in names):
        names = None
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        pixel_size = None
    return ImageSource(array, order, [], None if pixel_size is None else float(pixel_size), path), names


def _lif_sizes(path: Path) -> dict[str, int]:
    """Axis sizes of a LIF file's first image as liffile reads them.

    bioio-lif keeps only the T, C, Z, Y, X and tile axes and reads the first plane of any other (a
    spectral λ scan, say), so the file's own axes are checked.
    """
    import liffile

    with liffile.LifFile(path) as lif:
        return dict(lif.images[0].sizes) if lif.images else {}


class _BioioRegions:
    """The (channels, y, x[, samples]) planes at T = Z = 0 of a bioio image, read a region at a time."""

    def __init__(self, image, order: str, *, indexed: bool):
        self._image = image
        self._order = order
        self._indexed = indexed
        self._dask = image.get_image_dask_data(order, T=0, Z=0)
        self.shape = self._dask.shape
        self.dtype = self._dask.dtype

    def __getitem__(self, index: tuple) -> np.ndarray:
        if not self._indexed:
            # Dask chunks are the file's tiles (or planes), so only those under the region are read;
            # synchronously, so no thread pool holds several tiles at once.
            return self._dask[index].compute(scheduler="synchronous")
        # An ND2 frame is memory-mapped and the plugin slices the region out of it, where the dask
        # array would copy whole frames (a stitched slide is one frame).
        # bioio needs slices with explicit bounds.
        specs = {
            a: slice(k, k + 1) if isinstance(k, int) else slice(*k.indices(n))
            for a, k, n in zip(self._order, index, self.shape, strict=True)
        }
        data = self._image.get_image_data(self._order, T=0, Z=0, **specs)
        return data[tuple(0 if isinstance(k, int) else slice(None) for k in index)]


def _open_ome_zarr(path: Path) -> tuple[ImageSource, list[str] | None]:
    """The full-resolution array of an OME-Zarr image (NGFF 0.4 attributes, or 0.5 under ``ome``)."""
    import zarr

    try:
        group = zarr.open_group(path, mode="r")
        attrs = dict(group.attrs)
    except Exception as err:
        raise DVPError(f"{path}: not a readable OME-Zarr image ({type(err).__name__}: {err})") from err
    attrs = attrs.get("ome", attrs)
    multiscales = attrs.get("multiscales")
    if not multiscales or not multiscales[0].get("datasets"):
        raise DVPError(f"{path}: not an OME-Zarr image (no 'multiscales' with datasets in its attributes)")
    scale = multiscales[0]
    dataset = scale["datasets"][0]
    try:
        array = group[dataset["path"]]
    except Exception as err:
        raise DVPError(f"{path}: OME-Zarr dataset {dataset['path']!r} cannot be read ({err})") from err
    axes_meta = scale.get("axes") or [{"name": a} for a in "tczyx"[-array.ndim :]]
    axes = "".join(str(a["name"] if isinstance(a, dict) else a)[0] for a in axes_meta).upper()
    if len(axes) != array.ndim:
        raise DVPError(f"{path}: OME-Zarr axes {axes!r} do not match the array's {array.ndim} dimensions")
    pixel_size = None
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale" and "X" in axes:
            value = transform["scale"][axes.index("X")]
            unit = next(
                (a.get("unit") for a in axes_meta if isinstance(a, dict) and a.get("name", "").lower() == "x"),
                "micrometer",
            )
            factor = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3}.get(unit or "micrometer")
            if factor and value and value > 0:
                pixel_size = float(value) * factor
    channels = (attrs.get("omero") or {}).get("channels") or []
    names = [c.get("label") for c in channels] if channels else None
    names = names if names and all(names) else None
    return ImageSource(array, axes, [], pixel_size, path), names


def write_ome_zarr(
    path: str | os.PathLike, image: np.ndarray, *, channel_names: Sequence[str], pixel_size_um: float, chunk: int = 512
) -> None:
    """Write a (channels, y, x) array as a single-scale OME-Zarr image (NGFF 0.4 attributes).

    Used by the demo generator and tests; a reader of :func:`open_image`'s other format.
    """
    import zarr

    group = zarr.open_group(path, mode="w", zarr_format=2)
    array = group.create_array("0", shape=image.shape, dtype=image.dtype, chunks=(1, chunk, chunk))
    array[...] = image
    group.attrs.update(
        json.loads(
            json.dumps(
                {
                    "multiscales": [
                        {
                            "version": "0.4",
                            "axes": [
                                {"name": "c", "type": "channel"},
                                {"name": "y", "type": "space", "unit": "micrometer"},
                                {"name": "x", "type": "space", "unit": "micrometer"},
                            ],
                            "datasets": [
                                {
                                    "path": "0",
                                    "coordinateTransformations": [
                                        {"type": "scale", "scale": [1.0, pixel_size_um, pixel_size_um]}
                                    ],
                                }
                            ],
                        }
                    ],
                    "omero": {"channels": [{"label": str(n)} for n in channel_names]},
                }
            )
        )
    )
