"""Tests for collection plates: geometry, fill orders, well assignment, outputs, MS queue and runs sheet."""

import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dvp_pipeline.errors import DVPError
from dvp_pipeline.plates import (
    PLATE_MAP_COLUMNS,
    QUEUE_COLUMNS,
    Plate,
    assign_wells,
    check_runs_against_key,
    fill_order,
    ms_queue,
    plate_figure,
    plate_grid,
    plate_map_csv,
    queue_csv,
    reachable_wells,
    runs_from_key,
    sample_key,
)

SAMPLES = ["TEN_01", "TEN_02", "MPR_01"]
TYPES = ["keratinocyte", "cd8_t_cell", "macrophage"]


def make_pools(n_replicates=2, samples=SAMPLES, types=TYPES):
    rows = [
        {"pool_id": f"{s}-{t}-{r}", "sample": s, "cell_type": t, "replicate": r}
        for s in samples
        for t in types
        for r in range(1, n_replicates + 1)
    ]
    pools = pd.DataFrame(rows)
    pools["n_cells"] = np.arange(len(pools)) + 10
    pools["area_um2"] = pools["n_cells"] * 50.0
    pools["cell_ids"] = [list(range(i, i + 3)) for i in range(len(pools))]
    return pools


def with_control(pools):
    control = {"pool_id": "hela", "sample": "HeLa", "cell_type": "bulk", "replicate": 1, "kind": "control"}
    control.update(n_cells=0, area_um2=800.0, cell_ids="")
    return pd.concat([pools.assign(kind="pool"), pd.DataFrame([control])], ignore_index=True)


def index(well):
    """(row, column) from 0 of a well name."""
    return ord(well[0]) - ord("A"), int(well[1:]) - 1


def neighbours(a, b):
    (r1, c1), (r2, c2) = index(a), index(b)
    return abs(r1 - r2) + abs(c1 - c2) == 1


def quadrant(well):
    r, c = index(well)
    return r // 8, c // 12


# --- geometry -----------------------------------------------------------------------------------


def test_reachable_wells_default_384_leaves_out_outer_rows_and_columns():
    wells = reachable_wells(384)
    assert len(wells) == 14 * 22
    assert not any(w[0] in "AP" or w[1:] in ("1", "24") for w in wells)
    assert {"B2", "B23", "O2", "O23"} <= set(wells)


def test_reachable_wells_96_and_configured_exclusions():
    assert len(reachable_wells(96)) == 96
    assert reachable_wells(384, excluded=[]) == Plate(384, excluded=[]).wells()
    wells = reachable_wells(96, excluded=["A", "12", 11, "D5"])
    assert len(wells) == 7 * 10 - 1
    assert not any(w.startswith("A") or w.endswith(("11", "12")) for w in wells)
    assert "D5" not in wells
    assert reachable_wells(96, excluded="H") == [w for w in reachable_wells(96) if not w.startswith("H")]


@pytest.mark.parametrize(
    ("format", "entry", "message"),
    [
        (384, "Q3", "'Q3' is not on a 384-well plate (rows A-P, columns 1-24)"),
        (96, "H13", "'H13' is not on a 96-well plate (rows A-H, columns 1-12)"),
        (96, "I", "row 'I' is not on a 96-well plate"),
        (384, "25", "column '25' is not on a 384-well plate"),
        (384, 0, "column 0 is not on a 384-well plate"),
        (384, "b2", "did you mean 'B2'?"),
        (384, "A01", "did you mean 'A1'?"),
        (384, "well", "'well' is not a well (e.g. B2), row (e.g. A) or column (e.g. 24)"),
        (384, None, "None is not a well"),
    ],
)
def test_bad_excluded_entries_name_the_entry(format, entry, message):
    with pytest.raises(DVPError, match=re.escape(message)):
        reachable_wells(format, excluded=["B", entry])


def test_bad_format():
    with pytest.raises(DVPError, match="expected 96 or 384 wells, got 48"):
        Plate(48)


# --- fill orders --------------------------------------------------------------------------------


def test_serpentine_quadrants_on_384_default():
    order = fill_order(384)
    assert len(order) == len(set(order)) == 308
    assert set(order) == set(reachable_wells(384))
    assert not any(w[0] in "AP" or w[1:] in ("1", "24") for w in order)
    # the four quadrants one after another, each starting in its top-left reachable well
    quadrants = [quadrant(w) for w in order]
    starts = [i for i in range(len(order)) if i == 0 or quadrants[i] != quadrants[i - 1]]
    assert [order[i] for i in starts] == ["B2", "B13", "I2", "I13"]
    assert [quadrants[i] for i in starts] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # a serpentine: B2..B12, then C12 back to C2, ...
    assert order[:12] == [f"B{c}" for c in range(2, 13)] + ["C12"]
    # consecutive pools sit in neighbouring wells within a quadrant
    for a, b in zip(order, order[1:], strict=False):
        if quadrant(a) == quadrant(b):
            assert neighbours(a, b), (a, b)


def test_serpentine_quadrants_without_exclusions():
    order = fill_order(384, excluded=[])
    assert [order[i] for i in (0, 96, 192, 288)] == ["A1", "A13", "I1", "I13"]
    assert order[10:14] == ["A11", "A12", "B12", "B11"]
    assert order[95] == "H1"  # 8 rows: the serpentine of a quadrant ends where it started, one column


def test_fill_orders_on_96_plate():
    serpentine = fill_order(96)
    assert serpentine == fill_order(96, "serpentine_rows")  # a 96 plate is one quadrant
    assert serpentine[:14] == [f"A{c}" for c in range(1, 13)] + ["B12", "B11"]
    assert all(neighbours(a, b) for a, b in zip(serpentine, serpentine[1:], strict=False))
    assert fill_order(96, "rows")[:13] == [f"A{c}" for c in range(1, 13)] + ["B1"]
    assert fill_order(96, "columns")[:9] == [f"{r}1" for r in "ABCDEFGH"] + ["A2"]


def test_fill_order_skips_excluded_wells_and_keeps_serpentine_neighbours():
    order = fill_order(96, "serpentine_rows", excluded=["B", "C5"])
    assert "C5" not in order and not any(w.startswith("B") for w in order)
    # row B is gone: row C runs backwards after A, so A12 is followed by C12
    assert order[11:13] == ["A12", "C12"]
    assert fill_order(384, "rows")[0] == "B2"
    assert fill_order(384, "columns")[:2] == ["B2", "C2"]


def test_unknown_order_and_nothing_reachable():
    with pytest.raises(DVPError, match="unknown fill order 'serpentine'.*did you mean 'serpentine_rows'"):
        fill_order(384, "serpentine")
    with pytest.raises(DVPError, match=r"every well of the 96-well plate \(rows A-H, columns 1-12\) is excluded"):
        fill_order(96, excluded=list("ABCDEFGH"))


# --- assignment ---------------------------------------------------------------------------------


def test_assign_wells_in_fill_order_grouped_by_sample_and_type():
    pools = make_pools()
    plate_map = assign_wells(pools)
    assert list(plate_map.columns) == list(PLATE_MAP_COLUMNS)
    assert list(plate_map["well"]) == fill_order(384)[: len(pools)]
    assert list(plate_map["pool_id"]) == list(pools["pool_id"])
    assert set(plate_map["plate"]) == {"plate1"} and set(plate_map["kind"]) == {"pool"}
    # interleaved input is grouped by sample, then cell type, in order of first appearance
    shuffled = pools.iloc[[1, 9, 0, 3, 8, 2]]
    grouped = assign_wells(shuffled)
    assert list(grouped["pool_id"]) == list(pools["pool_id"].iloc[[1, 0, 3, 2, 9, 8]])


def test_overflow_onto_further_plates():
    pools = make_pools(n_replicates=12)  # 108 pools onto 96-well plates
    plate_map = assign_wells(pools, format=96, plate_prefix="P")
    assert plate_map["plate"].value_counts().to_dict() == {"P1": 96, "P2": 12}
    assert list(plate_map["well"]) == fill_order(96) + fill_order(96)[:12]
    assert list(plate_map["pool_id"]) == list(pools["pool_id"])
    limited = assign_wells(pools, format=96, max_plates=2)
    assert list(limited["plate"]) == [p.replace("P", "plate") for p in plate_map["plate"]]
    with pytest.raises(
        DVPError,
        match=r"108 wells, but max_plates=1 plates \(96-well plate .*, 96 reachable wells each\) hold 96",
    ):
        assign_wells(pools, format=96, max_plates=1)


def test_blanks_at_fraction_reproducible_and_seeded():
    pools = make_pools(n_replicates=10)  # 90 pools
    plate_map = assign_wells(pools, blank_fraction=0.1, seed=1)
    kinds = plate_map["kind"]
    assert (kinds == "blank").sum() == 10 and (kinds == "pool").sum() == 90
    assert list(plate_map["well"]) == fill_order(384)[:100]
    # pools keep their order; blanks have no pool
    assert list(plate_map.loc[kinds == "pool", "pool_id"]) == list(pools["pool_id"])
    assert plate_map.loc[kinds == "blank", ["pool_id", "sample", "cell_type", "replicate"]].isna().all().all()
    # never two blanks next to each other in fill order
    blank = (kinds == "blank").to_numpy()
    assert not (blank[1:] & blank[:-1]).any()
    pd.testing.assert_frame_equal(plate_map, assign_wells(pools, blank_fraction=0.1, seed=1))
    other = assign_wells(pools, blank_fraction=0.1, seed=2)
    assert set(other.loc[other["kind"] == "blank", "well"]) != set(plate_map.loc[blank, "well"])
    assert (assign_wells(pools)["kind"] == "pool").all()


def test_blank_fraction_validated():
    with pytest.raises(DVPError, match=r"blank_fraction: expected a fraction in \[0, 1\), got 1.0"):
        assign_wells(make_pools(), blank_fraction=1.0)


def test_controls_in_reserved_wells_and_in_order():
    pools = make_pools(n_replicates=1)
    controls = pd.DataFrame(
        {"pool_id": ["hela_1", "hela_2"], "sample": ["HeLa"] * 2, "cell_type": ["bulk"] * 2, "replicate": [1, 2]}
    )
    with_kind = pd.concat([pools, controls.assign(kind="control")], ignore_index=True)
    plate_map = assign_wells(with_kind, controls=["O23"])
    placed = plate_map.set_index("pool_id")
    assert placed.loc["hela_1", "well"] == "O23" and placed.loc["hela_1", "kind"] == "control"
    # the second control has no reserved well left: it is filled in order after the pools
    assert placed.loc["hela_2", "well"] == fill_order(384)[len(pools)]
    assert list(plate_map.loc[plate_map["kind"] == "pool", "well"]) == fill_order(384)[: len(pools)]
    assert plate_map["well"].iloc[-1] == "O23"  # the map reads in fill order
    # without reserved wells, controls are filled in order like pools
    flowing = assign_wells(with_kind)
    assert list(flowing["kind"]) == ["pool"] * len(pools) + ["control"] * 2
    # a reserved well stays out of the flow even when unclaimed
    assert "B2" not in set(assign_wells(pools, controls=["B2"])["well"])


def test_bad_pools_and_controls():
    pools = make_pools()
    with pytest.raises(DVPError, match=r"controls: well 'A1' is excluded"):
        assign_wells(pools, controls=["A1"])
    with pytest.raises(DVPError, match=r"controls: well 'Q1' is not on a 384-well plate"):
        assign_wells(pools, controls=["Q1"])
    with pytest.raises(
        DVPError, match=r"pool 'TEN_01-keratinocyte-1' has kind 'sample'; expected one of pool, control"
    ):
        assign_wells(pools.assign(kind="sample"))
    with pytest.raises(DVPError, match=r"pool_id 'TEN_01-keratinocyte-1' occurs more than once"):
        assign_wells(pd.concat([pools, pools.iloc[:1]]))
    with pytest.raises(DVPError, match=r"pools: missing columns \['replicate'\]"):
        assign_wells(pools.drop(columns="replicate"))
    with pytest.raises(DVPError, match="unknown fill order"):
        assign_wells(pools, order="spiral")


# --- outputs ------------------------------------------------------------------------------------


@pytest.fixture
def plate_map():
    return assign_wells(with_control(make_pools()), blank_fraction=0.2, controls=["O23"])


def test_plate_map_csv_and_grid(plate_map):
    text = plate_map_csv(plate_map)
    back = pd.read_csv(io.StringIO(text))
    assert list(back.columns) == list(PLATE_MAP_COLUMNS)
    assert len(back) == len(plate_map)
    grid = plate_grid(plate_map, "plate1")
    assert grid.shape == (16, 24) and list(grid.columns) == list(range(1, 25))
    assert grid.loc["B", 2] == plate_map["pool_id"].iloc[0] or grid.loc["B", 2] == "blank"
    assert grid.loc["O", 23] == "hela"
    assert (grid != "").to_numpy().sum() == len(plate_map)
    assert (grid == "blank").to_numpy().sum() == (plate_map["kind"] == "blank").sum()
    with pytest.raises(DVPError, match=r"no plate 'plate2' \(plates: plate1\)"):
        plate_grid(plate_map, "plate2")
    with pytest.raises(DVPError, match="'O23' is not on a 96-well plate"):
        plate_grid(plate_map, "plate1", format=96)


def test_plate_figure(plate_map):
    colors = {"keratinocyte": "#1f77b4", "cd8_t_cell": "#ff7f0e"}  # macrophage falls back to grey
    fig = plate_figure(plate_map, "plate1", colors)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 384
    assert sum(1 for p in ax.patches if p.get_hatch()) == 1  # the control
    grey = sum(1 for p in ax.patches if p.get_facecolor()[:3] == pytest.approx((217 / 255,) * 3))
    assert grey == 384 - 308  # unreachable wells
    assert len(ax.lines) == 2 * (plate_map["kind"] == "blank").sum()  # an X per blank
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == TYPES + ["control", "blank", "not reachable"]
    fig.savefig(io.BytesIO(), format="png")


def test_sample_key(plate_map):
    key = sample_key(plate_map, with_control(make_pools()))
    assert list(key.columns) == list(PLATE_MAP_COLUMNS) + ["n_cells", "area_um2", "cell_ids"]
    assert len(key) == len(plate_map)
    first = key.set_index("pool_id").loc["TEN_01-keratinocyte-1"]
    assert (first["n_cells"], first["area_um2"], first["cell_ids"]) == (10, 500.0, "0,1,2")
    blanks = key[key["kind"] == "blank"]
    assert (blanks["n_cells"] == 0).all() and (blanks["cell_ids"] == "").all()
    with pytest.raises(DVPError, match="pool 'hela' of the plate map is not in the pools table"):
        sample_key(plate_map, make_pools())


# --- MS queue and runs sheet --------------------------------------------------------------------


def test_ms_queue_blanks_between_groups_and_safe_unique_names(plate_map):
    queue = ms_queue(plate_map, run_prefix="2024 05_", instrument_method="DIA_21min", path=r"D:\raw", trays=["R"])
    assert list(queue.columns) == list(QUEUE_COLUMNS)
    names = queue["File Name"]
    assert names.is_unique
    assert names.map(lambda n: re.fullmatch(r"[A-Za-z0-9_.-]+", n) is not None).all()
    assert names.str.startswith("2024-05_").all()
    solvent = queue[queue["Sample ID"] == "solvent blank"]
    assert len(solvent) == len(SAMPLES) * len(TYPES) - 1  # one between each pair of consecutive groups
    assert (solvent["Sample Type"] == "Blank").all()
    # every used well is injected once, at its tray position
    wells = queue[queue["Sample ID"] != "solvent blank"]
    assert list(wells["Position"]) == [f"R:{w}" for w in plate_map["well"]]
    kinds = plate_map["kind"].map({"pool": "Unknown", "control": "QC", "blank": "Blank"})
    assert list(wells["Sample Type"]) == list(kinds)
    # each solvent blank sits where the group of the next pool changes
    previous, blank_before = None, False
    for sample_type, sample_id in zip(queue["Sample Type"], queue["Sample ID"], strict=True):
        if sample_id == "solvent blank":
            blank_before = True
        elif sample_type == "Unknown":
            group = sample_id.rsplit("-", 1)[0]  # pool ids are sample-cell_type-replicate
            assert blank_before == (previous is not None and group != previous), sample_id
            previous, blank_before = group, False
    assert (queue["Instrument Method"] == "DIA_21min").all() and (queue["Path"] == r"D:\raw").all()

    by_sample = ms_queue(plate_map, group_by="sample")
    assert (by_sample["Sample ID"] == "solvent blank").sum() == len(SAMPLES) - 1
    assert not (ms_queue(plate_map, blank_every_group=False)["Sample ID"] == "solvent blank").any()
    with pytest.raises(DVPError, match="trays: 2 plates need 2 autosampler trays"):
        ms_queue(assign_wells(make_pools(n_replicates=12), format=96), trays=["R"])


def test_queue_csv_has_xcalibur_header(plate_map):
    text = queue_csv(ms_queue(plate_map, blank_position="R:A1", blank_method="blank_method"))
    lines = text.splitlines()
    assert lines[0] == "Bracket Type=4,"
    assert lines[1] == ",".join(QUEUE_COLUMNS)
    table = pd.read_csv(io.StringIO(text), skiprows=1)
    assert len(table) == len(lines) - 2
    solvent = table[table["Sample ID"] == "solvent blank"]
    assert (solvent["Position"] == "R:A1").all() and (solvent["Instrument Method"] == "blank_method").all()


def test_runs_from_key_matches_queue_and_passes_check(plate_map):
    key = sample_key(plate_map, with_control(make_pools()))
    runs = runs_from_key(key, run_prefix="x_")
    assert list(runs.columns) == ["run", "sample", "cell_type", "well", "plate", "pool"]
    assert len(runs) == len(make_pools())  # pools only: no controls, no blanks
    queue = ms_queue(plate_map, run_prefix="x_")
    assert list(runs["run"]) == list(queue.loc[queue["Sample Type"] == "Unknown", "File Name"])
    check_runs_against_key(runs, key)
    # a key read back from its TSV gives the same runs sheet
    back = pd.read_csv(io.StringIO(key.to_csv(sep="\t", index=False)), sep="\t")
    pd.testing.assert_frame_equal(runs_from_key(back, run_prefix="x_"), runs)
    check_runs_against_key(runs.drop(columns="plate"), back)


@pytest.fixture
def key(plate_map):
    return sample_key(plate_map, with_control(make_pools()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"well": "B1"}, "(well B1, plate1): the sample key has no such well on that plate"),
        (
            {"sample": "MPR_01"},
            "the sample key has sample 'TEN_01', cell type 'keratinocyte' in that well (plate1), "
            "not sample 'MPR_01', cell type 'keratinocyte'",
        ),
        ({"cell_type": "macrophage"}, "not sample 'TEN_01', cell type 'macrophage'"),
        ({"well": "O23"}, "the sample key has a control (hela) in that well"),
        ({"plate": "plate2"}, "(well {well}, plate2): the sample key has no such well on that plate"),
    ],
)
def test_check_runs_against_key_errors(key, change, message):
    runs = runs_from_key(key)
    row = 0  # TEN_01, keratinocyte, replicate 1
    well = runs.loc[row, "well"]
    for column, value in change.items():
        runs.loc[row, column] = value
    expected = f"runs.tsv, row {row + 2}: run '{runs.loc[row, 'run']}' "
    with pytest.raises(DVPError, match=re.escape(expected)) as caught:
        check_runs_against_key(runs, key)
    assert message.format(well=well) in str(caught.value)


def test_check_runs_against_key_blank_and_unchecked_rows(key):
    runs = runs_from_key(key).drop(columns=["plate", "pool"])
    blank_well = key.loc[key["kind"] == "blank", "well"].iloc[0]
    runs.loc[0, "well"] = blank_well
    with pytest.raises(
        DVPError, match=rf"runs.tsv, row 2: run '\S+' \(well {blank_well}\): the sample key has a blank"
    ):
        check_runs_against_key(runs, key)
    runs.loc[0, "well"] = None  # a run without a well is not linked to the plate
    check_runs_against_key(runs, key, source="config/runs.tsv")
    runs.loc[1, "well"] = "P24"
    with pytest.raises(DVPError, match=r"^config/runs.tsv, row 3: .*\(well P24\): the sample key has no such well$"):
        check_runs_against_key(runs, key, source="config/runs.tsv")
    with pytest.raises(DVPError, match=r"runs.tsv: missing columns \['well'\]"):
        check_runs_against_key(runs.drop(columns="well"), key)
