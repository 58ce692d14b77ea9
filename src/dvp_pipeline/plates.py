"""Collection plates of the laser microdissection and the link from their wells to the MS runs.

Part of the select stage. Once the cells of a sample are grouped into pools (one cell type of one
sample, one replicate, cut into one well), this module decides where each pool lands on the collection
plates and writes what the people at the microscope and at the mass spectrometer need:

- plate geometry and reach: :class:`Plate` (96 or 384 wells) and :func:`reachable_wells`; the Leica
  LMD7 collector cannot reach the outer rows and columns of a 384 plate, so those are left out by default;
- the order in which wells are filled: :func:`fill_order`;
- the plate map: :func:`assign_wells` (pools, controls and empty blank wells, overflowing onto further
  plates), shown as :func:`plate_map_csv`, :func:`plate_grid` and :func:`plate_figure`;
- the sample key, one row per used well with the cells behind it: :func:`sample_key`;
- the MS acquisition queue (a Thermo Xcalibur sequence): :func:`ms_queue` and :func:`queue_csv`;
- the runs sheet the later stages read, generated from the key (:func:`runs_from_key`) or, when
  written by hand, checked against it (:func:`check_runs_against_key`).

Run names are made once, by :func:`run_name`, so the raw files the queue asks for and the runs sheet
generated from the key agree by construction. Nothing here reads or writes files.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError

__all__ = [
    "FILL_ORDERS",
    "PLATE_MAP_COLUMNS",
    "QUEUE_COLUMNS",
    "Plate",
    "assign_wells",
    "check_runs_against_key",
    "fill_order",
    "link_runs",
    "ms_queue",
    "plate_figure",
    "plate_grid",
    "plate_map_csv",
    "queue_csv",
    "reachable_wells",
    "run_name",
    "runs_from_key",
    "sample_key",
]

#: Fill orders :func:`fill_order` knows.
FILL_ORDERS = ("serpentine_quadrants", "serpentine_rows", "rows", "columns")
#: Columns of the plate map made by :func:`assign_wells`, one row per used well, in fill order.
PLATE_MAP_COLUMNS = ("plate", "well", "kind", "pool_id", "sample", "cell_type", "replicate")
#: Columns of a Thermo Xcalibur sequence, as :func:`ms_queue` fills them.
QUEUE_COLUMNS = ("Sample Type", "File Name", "Sample ID", "Path", "Instrument Method", "Position", "Inj Vol")

_KINDS = ("pool", "control")  # what a row of the pools table may be; "blank" is made here
_POOL_COLUMNS = ("pool_id", "sample", "cell_type", "replicate")
_KEY_COLUMNS = ("n_cells", "area_um2", "cell_ids")
_GEOMETRY = {96: (8, 12), 384: (16, 24)}
_QUADRANT = (8, 12)  # rows x columns of one quadrant: a 384 plate has four, a 96 plate is one
_ENTRY = re.compile(r"([A-Z])?(\d+)?")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_UNREACHABLE_COLOR = "#d9d9d9"
_UNKNOWN_COLOR = "#7f7f7f"  # cell types the colour mapping does not name


@dataclass(frozen=True)
class Plate:
    """A collection plate: its format and the wells the collector cannot reach.

    Parameters
    ----------
    format
        96 (rows A-H, columns 1-12) or 384 (rows A-P, columns 1-24).
    excluded
        Wells left empty because the collector cannot reach them: well names (``"B7"``), whole rows
        (``"A"``) or whole columns (``"24"`` or ``24``). ``None`` takes the default: on a 384 plate the
        outer rows and columns A, P, 1 and 24, which the Leica LMD7 collector cannot reach; on a 96 plate
        none. After construction it holds the excluded well names.

    Examples
    --------
    >>> plate = Plate(384)
    >>> len(plate.wells()), len(plate.reachable_wells())
    (384, 308)
    >>> Plate(96, excluded=["A", "12", "D5"]).reachable_wells()[:3]
    ['B1', 'B2', 'B3']
    """

    format: int = 384
    excluded: Iterable[str | int] | None = None

    def __post_init__(self) -> None:
        if self.format not in _GEOMETRY:
            raise DVPError(f"plate format: expected 96 or 384 wells, got {self.format!r}")
        entries = ["A", "P", "1", "24"] if self.excluded is None and self.format == 384 else self.excluded or []
        if isinstance(entries, str | int):  # one entry given bare; a string would otherwise split into letters
            entries = [entries]
        excluded = frozenset(well for entry in entries for well in self._expand(entry))
        object.__setattr__(self, "excluded", excluded)

    @property
    def rows(self) -> str:
        """Row letters, top to bottom."""
        return "ABCDEFGHIJKLMNOP"[: _GEOMETRY[self.format][0]]

    @property
    def n_columns(self) -> int:
        """Number of columns (numbered from 1)."""
        return _GEOMETRY[self.format][1]

    @property
    def description(self) -> str:
        """E.g. ``"384-well plate (rows A-P, columns 1-24)"``, for messages."""
        return f"{self.format}-well plate (rows A-{self.rows[-1]}, columns 1-{self.n_columns})"

    def wells(self) -> list[str]:
        """Every well, row by row: A1, A2, ..."""
        return [f"{row}{col}" for row in self.rows for col in range(1, self.n_columns + 1)]

    def reachable_wells(self) -> list[str]:
        """The wells not excluded, row by row."""
        return [well for well in self.wells() if well not in self.excluded]

    def position(self, well: str, *, what: str = "well") -> tuple[int, int]:
        """``(row, column)`` indices from 0 of a well on this plate; DVPError (naming ``what``) if none."""
        match = _ENTRY.fullmatch(well) if isinstance(well, str) else None
        if match is None or not match.group(1) or not match.group(2):
            raise DVPError(f"{what}: {well!r} is not a well name (e.g. B2){_name_hint(well)}")
        row, col = self.rows.find(match.group(1)), int(match.group(2))
        if row < 0 or not 1 <= col <= self.n_columns or match.group(2).startswith("0"):
            raise DVPError(f"{what}: well {well!r} is not on a {self.description}{_name_hint(well)}")
        return row, col - 1

    def fill_order(self, order: str = "serpentine_quadrants") -> list[str]:
        """The reachable wells in the order they are filled; see :func:`fill_order`."""
        if order not in FILL_ORDERS:
            near = difflib.get_close_matches(str(order), FILL_ORDERS, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise DVPError(f"order: unknown fill order {order!r}{hint}; expected one of {', '.join(FILL_ORDERS)}")
        n_rows, n_cols = len(self.rows), self.n_columns
        if order == "columns":
            grid = [[(r, c) for r in range(n_rows)] for c in range(n_cols)]
        elif order == "serpentine_quadrants":
            blocks = [(r0, c0) for r0 in range(0, n_rows, _QUADRANT[0]) for c0 in range(0, n_cols, _QUADRANT[1])]
            grid = [
                [(r, c) for c in range(c0, c0 + _QUADRANT[1])]
                for r0, c0 in blocks
                for r in range(r0, r0 + _QUADRANT[0])
            ]
        else:
            grid = [[(r, c) for c in range(n_cols)] for r in range(n_rows)]
        # A quadrant's serpentine restarts at its first row, so each quadrant begins in its top-left well.
        lines_per_block = _QUADRANT[0] if order == "serpentine_quadrants" else len(grid)
        serpentine = order.startswith("serpentine")
        ordered: list[str] = []
        forward = True
        for i, line in enumerate(grid):
            if i % lines_per_block == 0:
                forward = True
            wells = [f"{self.rows[r]}{c + 1}" for r, c in line]
            wells = [well for well in wells if well not in self.excluded]
            if not wells:  # a fully excluded row does not flip the direction: neighbours stay neighbours
                continue
            ordered.extend(wells if forward or not serpentine else wells[::-1])
            forward = not forward
        if not ordered:
            raise DVPError(f"excluded: every well of the {self.description} is excluded; no well is left to fill")
        return ordered

    def _expand(self, entry: str | int) -> list[str]:
        """The wells of one ``excluded`` entry: a well, a row letter or a column number."""
        text = str(entry) if isinstance(entry, int | np.integer) and not isinstance(entry, bool) else entry
        match = _ENTRY.fullmatch(text) if isinstance(text, str) else None
        if match is None or not text:
            raise DVPError(
                f"excluded: {entry!r} is not a well (e.g. B2), row (e.g. A) or column (e.g. 24){_name_hint(entry)}"
            )
        row, col = match.groups()
        if row and col:
            self.position(text, what="excluded")
            return [text]
        if row:
            if row not in self.rows:
                raise DVPError(f"excluded: row {row!r} is not on a {self.description}")
            return [f"{row}{c}" for c in range(1, self.n_columns + 1)]
        if col.startswith("0") or not 1 <= int(col) <= self.n_columns:
            raise DVPError(f"excluded: column {entry!r} is not on a {self.description}")
        return [f"{r}{col}" for r in self.rows]


def _name_hint(name) -> str:
    """A "did you mean" for well names written in lower case or with leading zeros (``a01`` -> ``A1``)."""
    if not isinstance(name, str):
        return ""
    match = re.fullmatch(r"([A-Za-z])0*(\d+)", name.strip())
    if match is None or f"{match.group(1).upper()}{match.group(2)}" == name:
        return ""
    return f" (did you mean '{match.group(1).upper()}{match.group(2)}'?)"


def reachable_wells(format: int = 384, excluded: Iterable[str | int] | None = None) -> list[str]:
    """The wells of a plate the collector can reach, row by row.

    ``excluded`` as for :class:`Plate`: ``None`` leaves out the outer rows and columns of a 384 plate
    (A, P, 1, 24) and nothing of a 96 plate; an empty list leaves out nothing.

    Examples
    --------
    >>> wells = reachable_wells(384)
    >>> wells[0], wells[-1], len(wells)
    ('B2', 'O23', 308)
    >>> len(reachable_wells(96)), len(reachable_wells(384, excluded=[]))
    (96, 384)
    """
    return Plate(format, excluded).reachable_wells()


def fill_order(
    format: int = 384, order: str = "serpentine_quadrants", *, excluded: Iterable[str | int] | None = None
) -> list[str]:
    """The reachable wells of a plate in the order pools are put into them.

    Parameters
    ----------
    format
        96 or 384.
    order
        ``"serpentine_quadrants"`` (default): the plate is split into 8 x 12 quadrants (a 384 plate into
        A-H/1-12, A-H/13-24, I-P/1-12, I-P/13-24; a 96 plate is one), filled one after another, each in
        a serpentine by rows (A1..A12, B12..B1, C1..), the way LMD7 users fill plates, so consecutive
        pools sit in neighbouring wells. ``"serpentine_rows"``: the same over the whole plate width.
        ``"rows"``: A1, A2, ...; ``"columns"``: A1, B1, ....
    excluded
        As for :class:`Plate`; excluded wells are skipped. A serpentine starts each quadrant (or the
        plate) left to right in its first row that has a reachable well, so with the default
        exclusions of a 384 plate the first quadrant runs B2..B12, C12..C2, ...

    Examples
    --------
    >>> fill_order(384)[:3], fill_order(384)[10:13]
    (['B2', 'B3', 'B4'], ['B12', 'C12', 'C11'])
    >>> fill_order(96, "columns")[:3]
    ['A1', 'B1', 'C1']
    """
    return Plate(format, excluded).fill_order(order)


def _text(value) -> str:
    """A table value as text: "" for missing, integral floats (from NA-holding columns) without ".0"."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def run_name(plate: str, well: str, *parts, prefix: str = "") -> str:
    """The run (raw file) name of one well: ``{prefix}{plate}_{well}_{part}_...``, file-name safe.

    Empty parts are dropped; characters outside ``[A-Za-z0-9_.-]`` become ``-``, because instrument
    software and search engines disagree on what else a file name may hold. Plate and well make the
    name unique.

    Examples
    --------
    >>> run_name("plate1", "B2", "S 01", "CD8+ T", 1, prefix="2024_")
    '2024_plate1_B2_S-01_CD8-T_1'
    """
    fields = [_text(p) for p in (plate, well, *parts)]
    return _UNSAFE.sub("-", prefix + "_".join(f for f in fields if f))


def _require(table: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DVPError(f"{what}: missing columns {missing}; has {list(table.columns)}")


def _pool_order(pools: pd.DataFrame) -> pd.DataFrame:
    """Pools grouped by sample, then cell type, each in order of first appearance, replicates in input order.

    A table already sorted that way is left as it is; a table that interleaves samples is grouped
    without reordering anything else, so the plate does not depend on how names sort.
    """
    sample_code = pd.factorize(pools["sample"], use_na_sentinel=False)[0]
    type_code = pd.factorize(pools["cell_type"], use_na_sentinel=False)[0]
    order = np.lexsort((np.arange(len(pools)), type_code, sample_code))
    return pools.iloc[order]


def _blank_slots(n_items: int, n_blanks: int, rng: np.random.Generator) -> np.ndarray:
    """How many blanks go before item i (i = n_items: after the last), spread at random.

    Blanks take distinct gaps between items while there are enough gaps, so no two blanks are
    neighbours in fill order unless there are more blanks than items + 1.
    """
    gaps = n_items + 1
    counts = np.full(gaps, n_blanks // gaps)
    counts[rng.choice(gaps, size=n_blanks % gaps, replace=False)] += 1
    return counts


def assign_wells(
    pools: pd.DataFrame,
    *,
    format: int = 384,
    order: str = "serpentine_quadrants",
    excluded: Iterable[str | int] | None = None,
    blank_fraction: float = 0.0,
    controls: Sequence[str] = (),
    seed: int = 0,
    plate_prefix: str = "plate",
    max_plates: int | None = None,
) -> pd.DataFrame:
    """Put pools, controls and blank wells onto collection plates: the plate map.

    Parameters
    ----------
    pools
        One row per pool: ``pool_id`` (unique), ``sample``, ``cell_type``, ``replicate`` and optionally
        ``kind`` (``"pool"``, the default, or ``"control"``). Pools are grouped by sample, then cell type,
        each in order of first appearance, replicates in input order (sort the table to choose the order).
    format, order, excluded
        Plate format, fill order and excluded wells, as for :func:`fill_order`.
    blank_fraction
        Fraction of the used wells left empty as blanks (process blanks: they go through digestion and
        are measured like pools, to show carry-over and contamination), in ``[0, 1)``. For ``n`` pools and
        controls, ``round(n * f / (1 - f))`` blanks are placed at random (``seed``) among them in fill order,
        never two next to each other while that is possible.
    controls
        Wells of the first plate reserved for the control rows of ``pools``, in order (e.g. a standard
        kept in a fixed corner). Controls beyond the reserved wells are filled in order with the pools;
        reserved wells left over stay empty.
    seed
        Seed of the blank placement; the same seed gives the same plate map.
    plate_prefix
        Plates are named ``{plate_prefix}1``, ``{plate_prefix}2``, ... in the order they fill.
    max_plates
        Most plates to use; more pools than fit raise DVPError. ``None``: no limit.

    Returns
    -------
    pandas.DataFrame
        The plate map, one row per used well in fill order with :data:`PLATE_MAP_COLUMNS`; ``kind`` is
        pool, control or blank, and blanks have no pool, sample, cell type or replicate.

    Examples
    --------
    >>> pools = pd.DataFrame({"pool_id": ["p1", "p2", "p3"], "sample": ["S1", "S1", "S2"],
    ...                       "cell_type": ["ker", "ker", "ker"], "replicate": [1, 2, 1]})
    >>> assign_wells(pools, format=96)[["plate", "well", "pool_id"]].values.tolist()
    [['plate1', 'A1', 'p1'], ['plate1', 'A2', 'p2'], ['plate1', 'A3', 'p3']]
    """
    _require(pools, _POOL_COLUMNS, what="pools")
    pools = pools.reset_index(drop=True)
    if not 0.0 <= blank_fraction < 1.0:
        raise DVPError(f"blank_fraction: expected a fraction in [0, 1), got {blank_fraction!r}")
    if max_plates is not None and max_plates < 1:
        raise DVPError(f"max_plates: expected at least 1 plate or None, got {max_plates!r}")
    duplicated = pools["pool_id"][pools["pool_id"].duplicated()]
    if len(duplicated):
        raise DVPError(f"pools: pool_id {duplicated.iloc[0]!r} occurs more than once; each pool needs its own id")
    pools = pools.assign(kind=pools["kind"].fillna("pool") if "kind" in pools.columns else "pool")
    bad_kind = pools.loc[~pools["kind"].isin(_KINDS), "kind"]
    if len(bad_kind):
        raise DVPError(
            f"pools: pool {pools.loc[bad_kind.index[0], 'pool_id']!r} has kind {bad_kind.iloc[0]!r}; "
            f"expected one of {', '.join(_KINDS)}"
        )
    plate = Plate(format, excluded)
    wells = plate.fill_order(order)
    reserved = [controls] if isinstance(controls, str) else list(controls)
    for well in reserved:
        plate.position(well, what="controls")
        if well not in wells:
            raise DVPError(f"controls: well {well!r} is excluded (the collector cannot reach it); choose another")
    if len(set(reserved)) != len(reserved):
        raise DVPError(f"controls: a well is listed twice in {reserved}")

    ordered = _pool_order(pools)
    is_control = (ordered["kind"] == "control").to_numpy()
    fixed_rows = np.flatnonzero(is_control)[: len(reserved)]
    fixed = ordered.iloc[fixed_rows].to_dict("records")
    flowing = ordered.drop(index=ordered.index[fixed_rows]).to_dict("records")
    n_blanks = round(len(flowing) * blank_fraction / (1.0 - blank_fraction)) if len(flowing) else 0
    per_gap = _blank_slots(len(flowing), n_blanks, np.random.default_rng(seed))
    items: list[dict | None] = []  # None marks a blank
    for i, row in enumerate(flowing):
        items.extend([None] * per_gap[i])
        items.append(row)
    items.extend([None] * per_gap[-1])

    capacity = len(wells) * max_plates - len(reserved) if max_plates is not None else len(items)
    if len(items) > capacity:
        raise DVPError(
            f"pools: {len(flowing)} pools/controls and {n_blanks} blanks need {len(items)} wells, but "
            f"max_plates={max_plates} plates ({plate.description}, {len(wells)} reachable wells each"
            f"{f', {len(reserved)} reserved for controls' if reserved else ''}) hold {capacity}; "
            "raise max_plates, exclude fewer wells or lower blank_fraction"
        )
    assigned: dict[tuple[int, str], dict | None] = dict(zip(((1, w) for w in reserved), fixed, strict=False))
    # Reserved wells stay out of the flow even when no control claims them.
    free = ((n, w) for n in itertools.count(1) for w in wells if n > 1 or w not in reserved)
    assigned.update(zip(free, items, strict=False))  # free never runs out
    n_plates = max((n for n, _ in assigned), default=0)
    records = [
        _map_row(f"{plate_prefix}{n}", well, assigned[n, well])
        for n in range(1, n_plates + 1)
        for well in wells
        if (n, well) in assigned
    ]
    table = pd.DataFrame.from_records(records, columns=list(PLATE_MAP_COLUMNS))
    return table.astype({"replicate": object})


def _map_row(plate: str, well: str, row: Mapping | None) -> dict:
    if row is None:
        return {"plate": plate, "well": well, "kind": "blank"}
    return {"plate": plate, "well": well, "kind": row["kind"], **{c: row[c] for c in _POOL_COLUMNS}}


def _check_plate_map(plate_map: pd.DataFrame) -> None:
    _require(plate_map, PLATE_MAP_COLUMNS, what="plate map")
    twice = plate_map[plate_map.duplicated(["plate", "well"])]
    if len(twice):
        first = twice.iloc[0]
        raise DVPError(f"plate map: well {first['well']} of {first['plate']} is listed twice; a well holds one pool")


def _plate_rows(plate_map: pd.DataFrame, plate: str, layout: Plate) -> pd.DataFrame:
    """The rows of one plate, each well checked to lie on ``layout``."""
    _check_plate_map(plate_map)
    rows = plate_map[plate_map["plate"] == plate]
    if rows.empty:
        plates = ", ".join(map(str, dict.fromkeys(plate_map["plate"]))) or "none"
        raise DVPError(f"plate map: no plate {plate!r} (plates: {plates})")
    for well in rows["well"]:
        layout.position(well, what=f"plate map, {plate}")
    return rows


def _label(kind: str, pool_id) -> str:
    return "blank" if kind == "blank" else _text(pool_id)


def plate_map_csv(plate_map: pd.DataFrame) -> str:
    """The plate map as comma-separated text, one row per used well, for the bench and the lab notebook.

    Examples
    --------
    >>> pools = pd.DataFrame({"pool_id": ["p1"], "sample": ["S1"], "cell_type": ["ker"], "replicate": [1]})
    >>> print(plate_map_csv(assign_wells(pools, format=96)), end="")
    plate,well,kind,pool_id,sample,cell_type,replicate
    plate1,A1,pool,p1,S1,ker,1
    """
    _check_plate_map(plate_map)
    return plate_map[list(PLATE_MAP_COLUMNS)].to_csv(index=False, lineterminator="\n")


def plate_grid(plate_map: pd.DataFrame, plate: str, *, format: int = 384) -> pd.DataFrame:
    """One plate as a grid of labels, rows A.. by columns 1..: the pool id, ``"blank"``, or ``""`` if unused.

    Examples
    --------
    >>> pools = pd.DataFrame({"pool_id": ["p1", "p2"], "sample": ["S1"] * 2, "cell_type": ["ker"] * 2,
    ...                       "replicate": [1, 2]})
    >>> grid = plate_grid(assign_wells(pools, format=96, order="columns"), "plate1", format=96)
    >>> grid.shape, grid.loc["A", 1], grid.loc["B", 1], grid.loc["C", 1]
    ((8, 12), 'p1', 'p2', '')
    """
    layout = Plate(format, excluded=[])
    rows = _plate_rows(plate_map, plate, layout)
    grid = pd.DataFrame("", index=pd.Index(list(layout.rows), name="row"), columns=range(1, layout.n_columns + 1))
    for well, kind, pool_id in zip(rows["well"], rows["kind"], rows["pool_id"], strict=True):
        grid.iat[layout.position(well)] = _label(kind, pool_id)
    return grid


def plate_figure(
    plate_map: pd.DataFrame,
    plate: str,
    colors: Mapping[str, str],
    *,
    format: int = 384,
    excluded: Iterable[str | int] | None = None,
):
    """Draw one plate: pools coloured by cell type, controls hatched, blanks crossed, unreachable wells grey.

    Parameters
    ----------
    plate_map
        As from :func:`assign_wells`.
    plate
        The plate to draw (e.g. ``"plate1"``).
    colors
        Colour per cell type (any matplotlib colour); cell types it does not name are drawn grey.
    format, excluded
        The plate's format and the wells the collector cannot reach, as given to :func:`assign_wells`.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with ``fig.savefig(path)``; it is not registered with pyplot.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, Patch

    layout = Plate(format, excluded)
    rows = _plate_rows(plate_map, plate, layout)
    by_well = {row["well"]: row for row in rows.to_dict("records")}
    n_rows, n_cols = len(layout.rows), layout.n_columns
    fig = Figure(figsize=(0.4 * n_cols + 1.5, 0.4 * n_rows + 1.8), dpi=150)
    ax = fig.add_subplot()
    radius, cross = 0.42, 0.28
    for r, letter in enumerate(layout.rows):
        for c in range(n_cols):
            entry = by_well.get(f"{letter}{c + 1}")
            if entry is None:
                face = _UNREACHABLE_COLOR if f"{letter}{c + 1}" in layout.excluded else "white"
                ax.add_patch(Circle((c, r), radius, facecolor=face, edgecolor="#a0a0a0", linewidth=0.5))
            elif entry["kind"] == "blank":
                ax.add_patch(Circle((c, r), radius, facecolor="white", edgecolor="black", linewidth=0.8))
                ax.plot([c - cross, c + cross], [r - cross, r + cross], color="black", linewidth=1)
                ax.plot([c - cross, c + cross], [r + cross, r - cross], color="black", linewidth=1)
            else:
                cell_type = _text(entry["cell_type"])
                face = colors.get(cell_type, _UNKNOWN_COLOR) if cell_type else "white"
                hatch = "////" if entry["kind"] == "control" else None
                ax.add_patch(Circle((c, r), radius, facecolor=face, edgecolor="black", linewidth=0.8, hatch=hatch))
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(n_rows - 0.4, -0.6)
    ax.set_aspect("equal")
    ax.set_xticks(range(n_cols), [str(c + 1) for c in range(n_cols)])
    ax.set_yticks(range(n_rows), list(layout.rows))
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=7 if format == 384 else 9)
    for spine in ax.spines.values():
        spine.set_visible(False)

    counts = rows["kind"].value_counts()
    cell_types = [t for t in dict.fromkeys(rows.loc[rows["kind"] == "pool", "cell_type"]) if _text(t)]
    handles = [Patch(facecolor=colors.get(t, _UNKNOWN_COLOR), edgecolor="black", label=str(t)) for t in cell_types]
    if counts.get("control", 0):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="////", label="control"))
    if counts.get("blank", 0):
        handles.append(Line2D([], [], color="black", marker="x", linestyle="none", label="blank"))
    if layout.excluded:
        handles.append(Patch(facecolor=_UNREACHABLE_COLOR, edgecolor="#a0a0a0", label="not reachable"))
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(4, len(handles) or 1),
        fontsize="small",
        frameon=False,
    )
    summary = ", ".join(
        f"{n} {k}{'' if n == 1 else 's'}" for k in ("pool", "control", "blank") for n in [counts.get(k, 0)]
    )
    ax.set_title(f"{plate}: {summary}", pad=18)
    fig.tight_layout()
    return fig


def _cell_ids(value) -> str:
    """Cell ids as one comma-separated string, from a list or array or a string already joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set | np.ndarray | pd.Series):
        return ",".join(_text(v) for v in value)
    return _text(value)


def sample_key(plate_map: pd.DataFrame, pools: pd.DataFrame) -> pd.DataFrame:
    """The sample key: every used well with the pool in it and the cells behind it.

    Parameters
    ----------
    plate_map
        As from :func:`assign_wells`.
    pools
        The pools table given to :func:`assign_wells`, with ``n_cells``, ``area_um2`` (total cut area)
        and ``cell_ids`` (a list per pool, or a comma-separated string) as well.

    Returns
    -------
    pandas.DataFrame
        One row per used well, in plate-map order: plate, well, kind, pool_id, sample, cell_type,
        replicate, n_cells, area_um2 and cell_ids (comma-separated). Blank wells are kept (0 cells,
        no ids) so that the key alone says which wells hold nothing: :func:`check_runs_against_key`
        relies on it. :func:`runs_from_key` takes the pools from it.

    Examples
    --------
    >>> pools = pd.DataFrame({"pool_id": ["p1"], "sample": ["S1"], "cell_type": ["ker"], "replicate": [1],
    ...                       "n_cells": [2], "area_um2": [310.5], "cell_ids": [[17, 42]]})
    >>> key = sample_key(assign_wells(pools, format=96), pools)
    >>> key[["well", "n_cells", "cell_ids"]].values.tolist()
    [['A1', 2, '17,42']]
    """
    _check_plate_map(plate_map)
    _require(pools, ("pool_id", *_KEY_COLUMNS), what="pools")
    if pools["pool_id"].duplicated().any():
        raise DVPError(f"pools: pool_id {pools['pool_id'][pools['pool_id'].duplicated()].iloc[0]!r} occurs twice")
    filled = plate_map[plate_map["kind"] != "blank"]
    unknown = filled.loc[~filled["pool_id"].isin(pools["pool_id"]), "pool_id"]
    if len(unknown):
        raise DVPError(f"pools: pool {unknown.iloc[0]!r} of the plate map is not in the pools table")
    cells = pools.set_index("pool_id")[list(_KEY_COLUMNS)]
    key = plate_map[list(PLATE_MAP_COLUMNS)].join(cells, on="pool_id").reset_index(drop=True)
    blank = (key["kind"] == "blank").to_numpy()
    key["cell_ids"] = ["" if is_blank else _cell_ids(v) for is_blank, v in zip(blank, key["cell_ids"], strict=True)]
    key.loc[blank, "n_cells"] = 0
    key.loc[blank, "area_um2"] = 0.0
    return key


def ms_queue(
    plate_map: pd.DataFrame,
    *,
    run_prefix: str = "",
    blank_every_group: bool = True,
    group_by: str | Sequence[str] = ("sample", "cell_type"),
    instrument_method: str = "",
    blank_method: str | None = None,
    path: str = "",
    trays: Sequence[str] | None = None,
    blank_position: str = "",
    injection_volume: float = 1.0,
) -> pd.DataFrame:
    """The MS acquisition queue of a plate map, as a Thermo Xcalibur sequence (write it with :func:`queue_csv`).

    Every used well is injected in plate-map order: pools as ``Unknown``, controls as ``QC``, blank wells
    as ``Blank`` (process blanks). A solvent blank injection (``Blank``) goes between groups of pools.

    Parameters
    ----------
    plate_map
        As from :func:`assign_wells`.
    run_prefix
        Put in front of every file name, e.g. a date and instrument (``"20240501_Astral_"``).
    blank_every_group
        Inject a solvent blank whenever the group of the next pool differs from the previous pool's.
    group_by
        The plate-map columns that make a group: ``("sample", "cell_type")`` (default), ``"sample"``
        or ``"cell_type"``.
    instrument_method, blank_method
        Instrument method of the injections; solvent blanks take ``blank_method`` when given.
    path
        Folder the raw files are written to (the sequence's ``Path``).
    trays
        Autosampler tray of plate 1, 2, ... in plate-map order (e.g. ``["R", "G"]`` for the colour-coded
        slots of a Vanquish Neo); positions are ``{tray}:{well}``. ``None``: the plate names.
    blank_position
        Autosampler position of the solvent the blanks are drawn from.
    injection_volume
        ``Inj Vol`` of every injection (µL).

    Returns
    -------
    pandas.DataFrame
        One row per injection with :data:`QUEUE_COLUMNS`. ``File Name`` is the run name the raw file
        will carry: :func:`run_name` of plate, well, sample, cell type and replicate for pools (as
        :func:`runs_from_key` names them), ``..._blank`` for blank wells, ``{run_prefix}solvent_blank_001``...
        for solvent blanks.

    Examples
    --------
    >>> pools = pd.DataFrame({"pool_id": ["p1", "p2"], "sample": ["S1", "S2"], "cell_type": ["ker"] * 2,
    ...                       "replicate": [1, 1]})
    >>> ms_queue(assign_wells(pools, format=96))["File Name"].tolist()
    ['plate1_A1_S1_ker_1', 'solvent_blank_001', 'plate1_A2_S2_ker_1']
    """
    _check_plate_map(plate_map)
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    _require(plate_map, group_by, what="group_by (columns of the plate map)")
    plates = list(dict.fromkeys(plate_map["plate"]))
    if trays is not None and len(trays) < len(plates):
        raise DVPError(f"trays: {len(plates)} plates need {len(plates)} autosampler trays, got {list(trays)}")
    tray_of = dict(zip(plates, trays if trays is not None else plates, strict=False))
    sample_type = {"pool": "Unknown", "control": "QC", "blank": "Blank"}

    def injection(kind: str, name: str, sample_id: str, position: str, method: str) -> dict:
        values = (sample_type[kind], name, sample_id, path, method, position, injection_volume)
        return dict(zip(QUEUE_COLUMNS, values, strict=True))

    queue, previous, n_solvent = [], None, 0
    for row in plate_map.to_dict("records"):
        if row["kind"] not in sample_type:
            raise DVPError(
                f"plate map: well {row['well']} of {row['plate']} has kind {row['kind']!r}; "
                "expected pool, control or blank"
            )
        if row["kind"] == "pool":
            group = tuple(_text(row[c]) for c in group_by)
            if blank_every_group and previous is not None and group != previous:
                n_solvent += 1
                name = _UNSAFE.sub("-", f"{run_prefix}solvent_blank_{n_solvent:03d}")
                queue.append(
                    injection("blank", name, "solvent blank", blank_position, blank_method or instrument_method)
                )
            previous = group
        if row["kind"] == "blank":
            name = run_name(row["plate"], row["well"], "blank", prefix=run_prefix)
        else:
            name = run_name(
                row["plate"], row["well"], row["sample"], row["cell_type"], row["replicate"], prefix=run_prefix
            )
        position = f"{tray_of[row['plate']]}:{row['well']}"
        queue.append(injection(row["kind"], name, _label(row["kind"], row["pool_id"]), position, instrument_method))
    table = pd.DataFrame(queue, columns=list(QUEUE_COLUMNS))
    return table


def queue_csv(queue: pd.DataFrame) -> str:
    """An acquisition queue as the CSV Xcalibur imports: a ``Bracket Type=4,`` line, then the sequence table.

    Examples
    --------
    >>> pools = pd.DataFrame({"pool_id": ["p1"], "sample": ["S1"], "cell_type": ["ker"], "replicate": [1]})
    >>> print(queue_csv(ms_queue(assign_wells(pools, format=96), path="D:\\\\raw")), end="")
    Bracket Type=4,
    Sample Type,File Name,Sample ID,Path,Instrument Method,Position,Inj Vol
    Unknown,plate1_A1_S1_ker_1,p1,D:\\raw,,plate1:A1,1.0
    """
    _require(queue, QUEUE_COLUMNS, what="queue")
    # Xcalibur reads the first line as the bracket type (4: open brackets, no calibration) before the header.
    return "Bracket Type=4,\n" + queue[list(QUEUE_COLUMNS)].to_csv(index=False, lineterminator="\n")


def runs_from_key(key: pd.DataFrame, *, run_prefix: str = "") -> pd.DataFrame:
    """The runs sheet (``config/runs.tsv``) of a sample key: one run per pool, named as :func:`ms_queue` names it.

    Controls and blank wells are left out: the later stages compare cell types of samples.

    Examples
    --------
    >>> pools = pd.DataFrame({"pool_id": ["p1"], "sample": ["S1"], "cell_type": ["ker"], "replicate": [1],
    ...                       "n_cells": [2], "area_um2": [310.5], "cell_ids": ["17,42"]})
    >>> key = sample_key(assign_wells(pools, format=96), pools)
    >>> runs_from_key(key, run_prefix="x_").values.tolist()
    [['x_plate1_A1_S1_ker_1', 'S1', 'ker', 'A1', 'plate1', 'p1']]
    """
    _require(key, ("plate", "well", "pool_id", "sample", "cell_type", "replicate"), what="sample key")
    pools = key[key["kind"] == "pool"] if "kind" in key.columns else key
    runs = [
        run_name(plate, well, sample, cell_type, replicate, prefix=run_prefix)
        for plate, well, sample, cell_type, replicate in zip(
            pools["plate"], pools["well"], pools["sample"], pools["cell_type"], pools["replicate"], strict=True
        )
    ]
    return pd.DataFrame(
        {
            "run": runs,
            "sample": pools["sample"].to_numpy(),
            "cell_type": pools["cell_type"].to_numpy(),
            "well": pools["well"].to_numpy(),
            "plate": pools["plate"].to_numpy(),
            "pool": pools["pool_id"].to_numpy(),
        }
    )


def check_runs_against_key(runs: pd.DataFrame, key: pd.DataFrame, *, source: str = "runs.tsv") -> None:
    """Check a (hand-written) runs sheet against the sample key; raise one DVPError at the first wrong row.

    A run whose ``well`` is given must sit in a well of the key (on its ``plate``, when the sheet has a
    plate column) that holds a pool of the run's sample and cell type; a well missing from the key,
    holding another sample or cell type, a control, or a blank is an error naming the sheet's row
    (``row 2`` is the first line under the header), the run and its well. Runs without a well are not
    linked to a plate and are not checked.

    Examples
    --------
    >>> key = pd.DataFrame({"plate": ["plate1"] * 2, "well": ["B2", "B3"], "kind": ["pool", "blank"],
    ...                     "sample": ["S1", None], "cell_type": ["ker", None]})
    >>> runs = pd.DataFrame({"run": ["r1", "r2"], "sample": ["S1", "S1"], "cell_type": ["ker", "ker"],
    ...                      "well": ["B2", "B3"]})
    >>> check_runs_against_key(runs, key)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dvp_pipeline.errors.DVPError: runs.tsv, row 3: run 'r2' (well B3): the sample key has a blank in that well ...
    """
    _require(runs, ("run", "sample", "cell_type", "well"), what=source)
    _require(key, ("plate", "well", "kind", "sample", "cell_type"), what="sample key")
    wells: dict[str, list[dict]] = {}
    for entry in key.to_dict("records"):
        wells.setdefault(_text(entry["well"]), []).append(entry)
    has_plate = "plate" in runs.columns
    for i, row in enumerate(runs.to_dict("records")):
        well = _text(row["well"])
        if not well:
            continue
        plate = _text(row["plate"]) if has_plate else ""
        where = f"{source}, row {i + 2}: run {_text(row['run'])!r} (well {well}{f', {plate}' if plate else ''})"
        candidates = [c for c in wells.get(well, []) if not plate or _text(c["plate"]) == plate]
        if not candidates:
            raise DVPError(f"{where}: the sample key has no such well{' on that plate' if plate else ''}")
        sample, cell_type = _text(row["sample"]), _text(row["cell_type"])
        expected = f"not sample {sample!r}, cell type {cell_type!r}"
        if any(
            c["kind"] == "pool" and _text(c["sample"]) == sample and _text(c["cell_type"]) == cell_type
            for c in candidates
        ):
            continue
        found = next((c for c in candidates if c["kind"] == "pool"), candidates[0])
        if found["kind"] == "pool":
            held = f"sample {_text(found['sample'])!r}, cell type {_text(found['cell_type'])!r}"
        elif found["kind"] == "control":
            held = f"a control ({_text(found.get('pool_id'))})" if _text(found.get("pool_id")) else "a control"
        else:
            held = "a blank"
        raise DVPError(f"{where}: the sample key has {held} in that well ({_text(found['plate'])}), {expected}")


def link_runs(runs: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    """Each run of a runs sheet with the well, pool and cells behind it, from the sample key.

    A run is matched by its ``pool`` column when it has one, else by its ``well`` (and ``plate``),
    else by its sample and cell type when those have exactly one pool; unmatched runs keep empty
    fields. Returns the runs sheet with plate, well, pool_id, n_cells and area_um2 added.
    """
    pools = key[key["kind"] == "pool"] if "kind" in key.columns else key
    fields = ["plate", "well", "pool_id", "n_cells", "area_um2"]
    out = runs.drop(columns=[c for c in fields if c in runs.columns and c not in ("plate", "well")]).copy()
    by_pool = pools.set_index("pool_id")
    single = pools.groupby(["sample", "cell_type"]).filter(lambda g: len(g) == 1).set_index(["sample", "cell_type"])
    rows = []
    for run in out.itertuples(index=False):
        run = run._asdict()
        pool, well, plate = (run.get(c) for c in ("pool", "well", "plate"))
        match = None
        if isinstance(pool, str) and pool in by_pool.index:
            match = by_pool.loc[pool]
        elif isinstance(well, str) and well:
            hits = pools[(pools["well"] == well) & ((pools["plate"] == plate) if isinstance(plate, str) else True)]
            match = hits.iloc[0] if len(hits) == 1 else None
        elif (str(run["sample"]), str(run["cell_type"])) in single.index:
            match = single.loc[(str(run["sample"]), str(run["cell_type"]))]
        if match is None:
            rows.append(dict.fromkeys(fields))
        else:
            # by_pool holds the pool id as its index (the row's name), the others as a column
            pool_id = match["pool_id"] if "pool_id" in match.index else match.name
            rows.append({**{f: match.get(f) for f in fields}, "pool_id": pool_id})
    linked = pd.DataFrame(rows, index=out.index)
    for f in fields:
        out[f] = linked[f]
    return out
