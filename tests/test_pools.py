"""Pools of cells for laser microdissection: area targets, replicates, exclusions, reproducibility."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.pools import border_cells, draw_pools, touching_pairs


def _cells(n=400, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "cell_id": np.arange(1, n + 1),
            "cell_type": rng.choice(["keratinocyte", "macrophage"], n, p=[0.7, 0.3]),
            "area_um2": rng.uniform(40, 160, n),
        }
    )


def test_pools_reach_their_area_within_the_tolerance():
    cells = _cells()
    drawn = draw_pools(
        cells, cell_types=["keratinocyte", "macrophage"], target_area_um2=3000, pools_per_type=3, sample="s"
    )
    pools = drawn.pools.set_index("pool_id")
    assert list(pools.index) == [f"s_{t}_{r}" for t in ("keratinocyte", "macrophage") for r in (1, 2, 3)]
    assert pools["reached"].all()
    assert ((pools["area_um2"] >= 2700) & (pools["area_um2"] <= 3300)).all()
    sums = drawn.cells.groupby("pool_id")["area_um2"].sum()
    np.testing.assert_allclose(sums.reindex(pools.index), pools["area_um2"])
    assert not drawn.cells["cell_id"].duplicated().any()  # no cell in two pools
    assert (drawn.cells.groupby("pool_id")["cell_type"].nunique() == 1).all()


def test_a_pool_short_of_its_target_is_flagged_not_dropped():
    cells = _cells(60)
    drawn = draw_pools(cells, cell_types=["macrophage"], target_area_um2=5000, pools_per_type=2)
    first, second = drawn.pools.itertuples()
    available = cells.loc[cells["cell_type"] == "macrophage", "area_um2"].sum()
    assert not first.reached and first.area_um2 == pytest.approx(available)
    assert second.n_cells == 0 and not second.reached


def test_draws_are_reproducible_and_independent_of_row_order_and_other_types():
    cells = _cells()
    a = draw_pools(cells, cell_types=["keratinocyte", "macrophage"], target_area_um2=2000, seed=3)
    b = draw_pools(
        cells.sample(frac=1, random_state=4), cell_types=["keratinocyte", "macrophage"], target_area_um2=2000, seed=3
    )
    pd.testing.assert_frame_equal(a.pools, b.pools)
    assert a.cells["cell_id"].tolist() == b.cells["cell_id"].tolist()
    alone = draw_pools(cells, cell_types=["macrophage"], target_area_um2=2000, seed=3)
    assert set(alone.cells["cell_id"]) == set(a.cells.loc[a.cells["cell_type"] == "macrophage", "cell_id"])
    other = draw_pools(cells, cell_types=["keratinocyte", "macrophage"], target_area_um2=2000, seed=4)
    assert set(other.cells["cell_id"]) != set(a.cells["cell_id"])


def test_count_mode_without_a_target_and_the_cell_cap():
    cells = _cells()
    drawn = draw_pools(cells, cell_types=["keratinocyte"], max_cells=25)
    assert drawn.pools.loc[0, "n_cells"] == 25 and drawn.pools.loc[0, "reached"]
    capped = draw_pools(cells, cell_types=["keratinocyte"], target_area_um2=1e6, max_cells=10)
    assert capped.pools.loc[0, "n_cells"] == 10 and not capped.pools.loc[0, "reached"]


def test_border_and_touching_cells_are_not_drawn():
    labels = np.zeros((12, 12), dtype=np.int32)
    labels[0:3, 0:3] = 1  # on the border
    labels[4:6, 4:6] = 2
    labels[4:6, 6:8] = 3  # touches 2
    labels[8:10, 8:10] = 4
    labels[6:8, 8:10] = 5  # touches 3 diagonally and 4
    assert border_cells(labels) == {1}
    assert touching_pairs(labels).tolist() == [[2, 3], [3, 5], [4, 5]]
    cells = pd.DataFrame({"cell_id": [1, 2, 3, 4, 5], "cell_type": "a", "area_um2": 50.0})
    allowed = ~cells["cell_id"].isin(border_cells(labels)).to_numpy()
    drawn = draw_pools(cells, cell_types=["a"], allowed=allowed, neighbours=touching_pairs(labels), seed=0)
    chosen = set(drawn.cells["cell_id"])
    assert 1 not in chosen and not any({int(a), int(b)} <= chosen for a, b in touching_pairs(labels))
    assert drawn.excluded["on the border or outside the regions"] == 1
    assert drawn.excluded["touching a drawn cell"] == 5 - 1 - len(chosen)


def test_bad_arguments():
    cells = _cells(10)
    with pytest.raises(DVPError, match="missing column"):
        draw_pools(cells.drop(columns="area_um2"), cell_types=["a"])
    with pytest.raises(DVPError, match="non-empty list of unique names"):
        draw_pools(cells, cell_types=[])
    with pytest.raises(DVPError, match="pool area target"):
        draw_pools(cells, cell_types=["keratinocyte"], target_area_um2=-5)
    with pytest.raises(DVPError, match="tolerance"):
        draw_pools(cells, cell_types=["keratinocyte"], target_area_um2=100, tolerance=1.5)
