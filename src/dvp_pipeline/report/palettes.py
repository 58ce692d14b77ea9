"""Colours of the reports: cell types, conditions and image channels, derived from ordered names.

Part of the report stage. Every figure of a page takes its colours from one palette built here, so a
cell type, condition or channel has the same colour everywhere on the page. Colours follow the order
of the names given, never particular names: cell types in the config's rule order
(``classify.cell_types``), conditions in the order of the samples sheet, channels in image order with
the nuclear channel (``nuclear_channel``) in blue. :func:`config_cell_types` and
:func:`config_nuclear_channel` read those orders from a config.

Examples
--------
>>> cell_type_palette(["stroma", "unassigned", "tumour"], order=["tumour", "stroma"])
{'tumour': '#2ca02c', 'stroma': '#d62728', 'unassigned': '#b0b0b0'}
>>> channel_palette(["PanCK", "Hoechst"], nuclear="Hoechst")
{'PanCK': (0.0, 1.0, 0.0), 'Hoechst': (0.0, 0.35, 1.0)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from dvp_pipeline.classify import UNASSIGNED

__all__ = [
    "CELL_TYPE_CYCLE",
    "CHANNEL_CYCLE",
    "CONDITION_COLORS",
    "CONDITION_MARKERS",
    "DOWN_COLOR",
    "EMPHASIS_COLOR",
    "NS_COLOR",
    "NUCLEAR_COLOR",
    "QC_MERGE_COLOR",
    "QC_MISSED_COLOR",
    "UNASSIGNED_COLOR",
    "UP_COLOR",
    "cell_type_palette",
    "channel_colors",
    "channel_palette",
    "condition_palette",
    "config_cell_types",
    "config_nuclear_channel",
]

#: Cell-type colours by position in the cell-type order (the config's rules); repeats when longer.
CELL_TYPE_CYCLE = (
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#1f77b4",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
)
#: Cells matching no rule, always grey and last.
UNASSIGNED_COLOR = "#b0b0b0"

#: Condition colours and markers by order of first appearance in the samples sheet.
CONDITION_COLORS = ("#1f77b4", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
CONDITION_MARKERS = ("o", "s", "^", "D", "v", "P", "X")

#: Composite colour (RGB, 0..1) of the nuclear channel.
NUCLEAR_COLOR = (0.0, 0.35, 1.0)
#: Composite colours of the other channels in image order; channels beyond these are not drawn.
CHANNEL_CYCLE = ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0), (0.0, 1.0, 1.0))

#: Volcano and dot-plot colours: higher in the numerator, higher in the denominator, not significant.
UP_COLOR, DOWN_COLOR, NS_COLOR = "#b2182b", "#2166ac", "#bdbdbd"
#: Frame of the emphasised (JAK/STAT) gene-set figures.
EMPHASIS_COLOR = "#e6a100"
#: Segmentation QC marks on the composite: likely merged nuclei (outline) and likely missed ones (ring);
#: orange and cyan-white stand apart from the nuclear blue and the first marker colours.
QC_MERGE_COLOR = "#ff8c00"
QC_MISSED_COLOR = "#9ffcff"


def _present(names: Iterable) -> list[str]:
    """The distinct names in order of first appearance, missing values dropped."""
    return list(dict.fromkeys(str(n) for n in names if not _isna(n)))


def _isna(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def cell_type_palette(cell_types: Iterable[str], *, order: Sequence[str] = ()) -> dict[str, str]:
    """Colour per cell type, from the position of each type in the cell-type order.

    Parameters
    ----------
    cell_types
        The cell types to colour (e.g. every type a page shows).
    order
        The canonical order, usually the config's rule names (:func:`config_cell_types`). Its types
        take :data:`CELL_TYPE_CYCLE` by their position in it, so a type keeps its colour whichever
        others are present; types not in it follow in order of first appearance in ``cell_types``.

    Returns
    -------
    The types of ``cell_types`` in that order, ``unassigned`` last in :data:`UNASSIGNED_COLOR`; the
    order is the one of legends and axes.
    """
    present = _present(cell_types)
    ordered = [c for c in _present(order) if c != UNASSIGNED]
    ordered += [c for c in present if c not in ordered and c != UNASSIGNED]
    shown = set(present)
    palette = {c: CELL_TYPE_CYCLE[i % len(CELL_TYPE_CYCLE)] for i, c in enumerate(ordered) if c in shown}
    if UNASSIGNED in shown:
        palette[UNASSIGNED] = UNASSIGNED_COLOR
    return palette


def condition_palette(conditions: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``(colour, marker)`` per condition, in order of first appearance."""
    return {
        c: (CONDITION_COLORS[i % len(CONDITION_COLORS)], CONDITION_MARKERS[i % len(CONDITION_MARKERS)])
        for i, c in enumerate(_present(conditions))
    }


def channel_colors(channels: Sequence[str], *, nuclear: str | None = None) -> list[tuple[float, float, float] | None]:
    """Composite colour of each channel by position (``None``: not drawn).

    The nuclear channel (the first when ``nuclear`` is not among ``channels``) is
    :data:`NUCLEAR_COLOR`; the others take :data:`CHANNEL_CYCLE` in image order until it runs out.
    """
    names = [str(c) for c in channels]
    nuclear_index = names.index(nuclear) if nuclear in names else 0
    others = iter(CHANNEL_CYCLE)
    return [NUCLEAR_COLOR if i == nuclear_index else next(others, None) for i in range(len(names))]


def channel_palette(channels: Sequence[str], *, nuclear: str | None = None) -> dict[str, tuple[float, float, float]]:
    """Composite colour per channel name (see :func:`channel_colors`), channels not drawn left out."""
    return {
        str(name): color
        for name, color in zip(channels, channel_colors(channels, nuclear=nuclear), strict=True)
        if color is not None
    }


def config_cell_types(config: Mapping | None) -> list[str]:
    """The cell-type names of the config's classification rules, in rule order (empty without a config)."""
    rules = ((config or {}).get("classify") or {}).get("cell_types") or []
    return [str(rule["name"]) for rule in rules if isinstance(rule, Mapping) and "name" in rule]


def config_score_method(config: Mapping | None) -> tuple[str, str]:
    """How the config's per-run pathway scores are made: a short label, and one sentence for the page."""
    if ((config or {}).get("pathways") or {}).get("scores") == "gsva":
        return "GSVA score", (
            "Score = GSVA enrichment score of the set in a run (GSVA 1.46's method, within the runs of the same "
            "cell type, on their proteins without missing values)."
        )
    return (
        "mean protein z-score",
        "Score = mean z-score of the set's proteins in a run (z across runs of the same cell type).",
    )


def config_nuclear_channel(config: Mapping | None) -> str | None:
    """The config's nuclear channel (``None`` without a config: the first channel is taken as nuclear)."""
    value = (config or {}).get("nuclear_channel")
    return str(value) if value is not None else None
