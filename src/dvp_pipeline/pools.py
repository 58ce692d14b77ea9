"""Pools of cells for laser microdissection: which cells of a sample go into which collection well.

DVP collects, per sample and cell type, a pool of cells whose total area is a target (protocols
state a tissue area per well, e.g. 10,000 to 80,000 µm², depending on the mass spectrometer), within
a tolerance, in one or more replicate pools. :func:`draw_pools` draws the cells at random but
reproducibly (a stream per cell type from the seed), from the cells that may be cut: large enough, not
on the image border, inside the regions of interest, and not touching a cell already drawn (the laser
would cut through both). Without an area target a pool is up to ``max_cells`` cells, as before.

The pools table says, for each pool, how close it came to its target; a pool short of it is kept and
flagged (``reached``), so the operator can decide, and the select stage warns about it.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError

__all__ = ["Pools", "border_cells", "draw_pools", "touching_pairs"]

POOL_COLUMNS = ["pool_id", "cell_type", "replicate", "n_cells", "area_um2", "target_um2", "reached"]


@dataclass
class Pools:
    """The pools of one sample: ``pools`` (one row per pool, :data:`POOL_COLUMNS`) and ``cells``
    (the drawn cells' rows with ``pool_id`` and ``replicate`` added), and why candidates were left out."""

    pools: pd.DataFrame
    cells: pd.DataFrame
    excluded: dict[str, int]


def border_cells(labels: np.ndarray) -> set[int]:
    """Labels that touch the image border: cut there, they would be cut short.

    >>> border_cells(np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3]]))
    {1, 3}
    """
    labels = np.asarray(labels)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return set(np.unique(edge[edge > 0]).tolist())


def touching_pairs(labels: np.ndarray) -> np.ndarray:
    """``(K, 2)`` pairs of different labels that share a pixel edge or corner (8-connectivity).

    >>> touching_pairs(np.array([[1, 2, 0], [0, 0, 0], [0, 0, 3]])).tolist()
    [[1, 2]]
    """
    labels = np.asarray(labels)
    pairs = []
    for a, b in (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
        (labels[:-1, :-1], labels[1:, 1:]),
        (labels[:-1, 1:], labels[1:, :-1]),
    ):
        differ = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.column_stack([np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])]))
    found = np.concatenate(pairs) if pairs else np.empty((0, 2))
    return np.unique(found.astype(np.int64), axis=0) if len(found) else np.empty((0, 2), dtype=np.int64)


def draw_pools(
    cells: pd.DataFrame,
    *,
    cell_types: Sequence[str],
    target_area_um2: float | None = None,
    tolerance: float = 0.1,
    pools_per_type: int = 1,
    max_cells: int = 300,
    min_area_um2: float = 20.0,
    seed: int = 0,
    allowed: np.ndarray | None = None,
    neighbours: np.ndarray | None = None,
    sample: str = "",
) -> Pools:
    """Draw ``pools_per_type`` pools of each cell type from one sample's classified cells.

    Parameters
    ----------
    cells
        Classified cells with ``cell_id``, ``cell_type``, ``area_um2``.
    cell_types
        Types to collect, in order.
    target_area_um2
        Total cell area each pool aims for; ``None``: no target, up to ``max_cells`` cells a pool.
    tolerance
        Cells are added until the pool reaches the target; a cell that would carry it past
        ``target * (1 + tolerance)`` is passed over for a smaller one. A pool that stays below
        ``target * (1 - tolerance)`` (too few eligible cells) is flagged as not reached.
    pools_per_type
        Replicate pools per type; no cell is in two pools.
    max_cells
        Most cells in one pool (with a target too: a cap on laser time).
    min_area_um2
        Smaller cells (debris, fragments) are never drawn.
    seed
        Random seed; each type draws from its own stream, candidates ordered by ``cell_id`` first,
        so the result depends neither on the row order nor on the other types.
    allowed
        Boolean mask over ``cells`` rows that may be drawn (border, regions of interest); ``None``: all.
    neighbours
        ``(K, 2)`` cell-id pairs that touch (:func:`touching_pairs`): a cell touching one already
        drawn, of any type, is passed over.
    sample
        The sample's name, the first part of each ``pool_id`` (``{sample}_{cell_type}_{replicate}``).

    Examples
    --------
    >>> cells = pd.DataFrame({"cell_id": range(1, 9), "cell_type": ["a"] * 8, "area_um2": [100.0] * 8})
    >>> drawn = draw_pools(cells, cell_types=["a"], target_area_um2=300, pools_per_type=2, sample="s1")
    >>> drawn.pools[["pool_id", "n_cells", "area_um2", "reached"]].values.tolist()
    [['s1_a_1', 3, 300.0, True], ['s1_a_2', 3, 300.0, True]]
    """
    missing = [c for c in ("cell_id", "cell_type", "area_um2") if c not in cells.columns]
    if missing:
        raise DVPError(f"cells table: missing column(s) {missing}; expected cell_id, cell_type, area_um2")
    if isinstance(cell_types, str) or not len(cell_types) or len(set(cell_types)) != len(cell_types):
        raise DVPError(f"cell_types: expected a non-empty list of unique names, got {cell_types!r}")
    if target_area_um2 is not None and not (np.isfinite(target_area_um2) and target_area_um2 > 0):
        raise DVPError(f"pool area target: expected a positive number of µm², got {target_area_um2}")
    if not 0 <= tolerance < 1:
        raise DVPError(f"pool tolerance: expected a fraction in [0, 1), got {tolerance}")
    if int(pools_per_type) < 1 or int(max_cells) < 1:
        raise DVPError(f"pools per type and cells per pool must be positive, got {pools_per_type}, {max_cells}")
    if cells["cell_id"].duplicated().any():
        raise DVPError("cells table: cell_id must be unique")

    ordered_index = np.argsort(cells["cell_id"].to_numpy(), kind="stable")
    table = cells.iloc[ordered_index].reset_index(drop=True)
    ok = np.ones(len(table), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)[ordered_index]
    # NaN areas compare False: unmeasurable cells go with the small ones
    big = table["area_um2"].to_numpy(dtype=float) >= min_area_um2
    excluded = {"too small": int((~big).sum()), "on the border or outside the regions": int((big & ~ok).sum())}
    touching: dict[int, set[int]] = {}
    for a, b in np.asarray(neighbours if neighbours is not None else np.empty((0, 2)), dtype=np.int64):
        touching.setdefault(int(a), set()).add(int(b))
        touching.setdefault(int(b), set()).add(int(a))

    lower = 0.0 if target_area_um2 is None else target_area_um2 * (1 - tolerance)
    upper = np.inf if target_area_um2 is None else target_area_um2 * (1 + tolerance)
    taken: set[int] = set()
    pools, drawn = [], []
    n_touching = 0
    for name in cell_types:
        candidates = table.index[(table["cell_type"].astype(str) == name).to_numpy() & big & ok]
        rng = np.random.default_rng([int(seed), zlib.crc32(str(name).encode())])
        queue = deque(candidates[rng.permutation(len(candidates))].tolist())
        for replicate in range(1, int(pools_per_type) + 1):
            chosen, total, deferred = [], 0.0, []
            # fill up to the target itself (not just its lower bound), never past the upper bound
            while queue and len(chosen) < int(max_cells) and (target_area_um2 is None or total < target_area_um2):
                row = queue.popleft()
                cell, area = int(table.at[row, "cell_id"]), float(table.at[row, "area_um2"])
                if touching.get(cell, set()) & taken:
                    n_touching += 1  # the laser would cut through both
                elif total + area > upper:
                    deferred.append(row)  # too big for what is left of this pool; may fit the next
                else:
                    chosen.append(row)
                    taken.add(cell)
                    total += area
            queue.extendleft(reversed(deferred))
            pool_id = f"{sample}_{name}_{replicate}" if sample else f"{name}_{replicate}"
            reached = bool(chosen) and (target_area_um2 is None or total >= lower)
            pools.append((pool_id, name, replicate, len(chosen), total, target_area_um2, reached))
            drawn.append(table.loc[sorted(chosen)].assign(pool_id=pool_id, replicate=replicate))
    excluded["touching a drawn cell"] = n_touching
    return Pools(
        pools=pd.DataFrame(pools, columns=POOL_COLUMNS).astype({"target_um2": float}),
        cells=pd.concat(drawn, ignore_index=True),
        excluded=excluded,
    )
