"""Helpers shared by the report's figure families: PNG rendering, run tables, point labels, set names.

Part of the report stage. Figures are drawn on :class:`matplotlib.figure.Figure` objects directly
and rendered here by the Agg canvas, never through ``pyplot``, so the report leaves matplotlib's
global state alone and leaks no figures.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import PathwaysOptions, ReportOptions

__all__ = [
    "default_highlight",
    "default_options",
    "figure_to_base64",
    "first_gene",
    "is_interferon",
    "is_jak_stat",
    "isna",
    "label_points",
    "order_runs",
    "png_to_base64",
    "run_columns",
    "run_meta",
]

# PNGs larger than this are stored with a 256-colour palette
_PALETTE_PNG_BYTES = 300_000


@functools.cache
def default_options() -> ReportOptions:
    """The ``report`` options with every key at the schema's default (for arguments left as ``None``)."""
    return ReportOptions.from_mapping({}, source="report defaults")


@functools.cache
def default_highlight() -> tuple[str, ...]:
    """The gene sets highlighted when none are given: the schema's default ``pathways.highlight``."""
    return tuple(PathwaysOptions.from_mapping({}, source="pathways defaults").highlight)


def isna(value) -> bool:
    """Whether a scalar is missing (``None``, NaN, NA); ``False`` for anything that is not a scalar."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def is_jak_stat(name: str) -> bool:
    """Whether a gene-set name is a JAK/STAT set (these are emphasised everywhere)."""
    return "JAK" in str(name).upper()


def is_interferon(name: str) -> bool:
    """Whether a gene-set name is an interferon set (highlighted in the pathway tables)."""
    upper = str(name).upper()
    return "INTERFERON" in upper or "IFN" in upper


def first_gene(genes, protein) -> str:
    """First gene name of a ``;``-separated list, falling back to the protein identifier."""
    if isinstance(genes, str) and genes.strip():
        return genes.split(";")[0].strip()
    return str(protein).split(";")[0]


def _compact_png(png: bytes, *, max_size: int | None = None) -> bytes:
    """A PNG made smaller for embedding: downscaled to ``max_size`` pixels on its longest side, and
    re-encoded with a 256-colour palette when it is still large (microscopy composites and previews
    are noisy and compress badly as true colour; a palette cuts them about threefold)."""
    from PIL import Image  # Pillow comes with matplotlib

    image = Image.open(io.BytesIO(png))
    changed = False
    if max_size is not None and max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
        changed = True
    if len(png) > _PALETTE_PNG_BYTES and image.mode != "P":
        image = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        changed = True
    if not changed:
        return png
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def figure_to_base64(fig: Figure, *, dpi: int | None = None) -> str:
    """Render a figure to PNG and return it base64-encoded (for a ``data:image/png`` URI).

    ``dpi`` defaults to the ``report.dpi`` of the schema. Large renderings (image composites) are
    stored with a 256-colour palette to keep pages small.
    """
    buffer = io.BytesIO()
    # "tight" keeps legends placed outside the axes (constrained layout ignores add_artist legends).
    fig.savefig(
        buffer,
        format="png",
        dpi=default_options().dpi if dpi is None else dpi,
        facecolor=fig.get_facecolor(),
        bbox_inches="tight",
    )
    return base64.b64encode(_compact_png(buffer.getvalue())).decode("ascii")


def png_to_base64(png: bytes, *, max_size: int) -> str:
    """Base64 of a PNG file's bytes, downscaled to ``max_size`` pixels and compacted as above."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DVPError("preview image: not a PNG file")
    return base64.b64encode(_compact_png(png, max_size=max_size)).decode("ascii")


def run_columns(proteins: pd.DataFrame, runs: pd.DataFrame | None = None) -> list[str]:
    """Run columns of a protein matrix: those named in the runs sheet, else every non-annotation column."""
    columns = [c for c in proteins.columns if c not in ("protein", "genes")]
    if runs is not None and "run" in runs.columns:
        known = set(runs["run"].astype(str))
        named = [c for c in columns if c in known]
        if named:
            return named
    return columns


def run_meta(runs: pd.DataFrame, samples: pd.DataFrame | None) -> pd.DataFrame:
    """run, sample, cell_type, condition for every run of the sheet."""
    meta = runs[["run", "sample", "cell_type"]].astype(str)
    if samples is not None and "condition" in samples.columns:
        meta = meta.merge(samples[["sample", "condition"]].astype(str), on="sample", how="left")
    else:
        meta = meta.assign(condition="NA")
    return meta.fillna({"condition": "NA"})


def order_runs(
    table: pd.DataFrame, palette: Mapping[str, str], conditions: Sequence[str] | None = None
) -> pd.DataFrame:
    """Runs sorted by cell type (palette order), then condition (given order), sample and run name."""
    type_rank = {c: i for i, c in enumerate(palette)}
    order = table.assign(_type=table["cell_type"].map(lambda c: type_rank.get(c, len(type_rank))))
    by = ["_type"]
    if conditions is not None and "condition" in table.columns:
        cond_rank = {c: i for i, c in enumerate(conditions)}
        order["_cond"] = table["condition"].map(lambda c: cond_rank.get(c, len(cond_rank)))
        by.append("_cond")
    by += [k for k in ("sample", "run") if k in table.columns]
    return order.sort_values(by, kind="stable").drop(columns=[c for c in ("_type", "_cond") if c in order])


def label_points(ax, x: np.ndarray, y: np.ndarray, names: Sequence[str], *, gap: float = 0.05) -> None:
    """Label points without overlapping labels: on each side of x = 0 the labels are stacked at
    least ``gap`` (a fraction of the y range) apart, as close to their points' heights as that allows,
    and joined to their points by thin lines."""
    y_low, y_high = ax.get_ylim()
    x_low, x_high = ax.get_xlim()
    step = gap * (y_high - y_low)
    for side in (1, -1):
        index = sorted((i for i in range(len(x)) if (x[i] >= 0) == (side > 0)), key=lambda i: y[i])
        positions: list[float] = []
        for i in index:
            positions.append(max(y[i], positions[-1] + step) if positions else y[i])
        ceiling = y_high - step / 2  # a stack that ran out of the top is pushed back down
        for k in range(len(positions) - 1, -1, -1):
            positions[k] = min(positions[k], ceiling if k == len(positions) - 1 else positions[k + 1] - step)
        shift = 0.05 * (x_high - x_low) * side
        for i, height in zip(index, positions, strict=True):
            ax.annotate(
                names[i],
                (x[i], y[i]),
                xytext=(x[i] + shift, height),
                fontsize=7,
                va="center",
                ha="left" if side > 0 else "right",
                arrowprops={"arrowstyle": "-", "color": "#777777", "linewidth": 0.5, "shrinkB": 2},
            )
