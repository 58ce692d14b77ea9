import argparse

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.classify import classify_cells
from dvp_pipeline.cli import classify as classify_cli
from dvp_pipeline.errors import DVPError

RULES = [
    {"name": "keratinocyte", "positive": ["KRT14"]},
    {"name": "cd8_t_cell", "positive": ["CD8"], "negative": ["KRT14"]},
    {"name": "macrophage", "positive": ["CD163"], "negative": ["KRT14", "CD8"]},
]

# Which markers each planted population expresses; the expected call follows rule order.
POPULATIONS = {
    "keratinocyte": ({"KRT14"}, "keratinocyte"),
    "krt14_cd8": ({"KRT14", "CD8"}, "keratinocyte"),  # first rule wins
    "cd8_t_cell": ({"CD8"}, "cd8_t_cell"),
    "cd8_cd163": ({"CD8", "CD163"}, "cd8_t_cell"),  # CD8 rule comes before macrophage
    "macrophage": ({"CD163"}, "macrophage"),
    "krt14_cd163": ({"KRT14", "CD163"}, "keratinocyte"),  # KRT14 negative required for macrophage
    "none": (set(), "unassigned"),
}


def planted_cells(sample="S1", sizes=(300, 20, 80, 10, 80, 10, 60), brightness=1.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for (population, (markers, expected)), n in zip(POPULATIONS.items(), sizes, strict=True):
        for _ in range(n):
            row = {"sample": sample, "population": population, "expected": expected}
            for marker in ("KRT14", "CD8", "CD163"):
                level = 1500 if marker in markers else 60
                row[f"mean_{marker}"] = brightness * level * rng.lognormal(0, 0.25)
            rows.append(row)
    cells = pd.DataFrame(rows)
    cells.insert(0, "cell_id", np.arange(1, len(cells) + 1))
    return cells


@pytest.mark.parametrize("method", ["otsu", "gmm"])
def test_rules_with_hierarchy_and_negative_markers(method):
    cells = planted_cells()
    typed, thresholds = classify_cells(cells, cell_types=RULES, threshold_method=method)
    assert (typed["cell_type"] == typed["expected"]).all()
    assert thresholds["marker"].tolist() == ["KRT14", "CD8", "CD163"]
    assert set(thresholds["method"]) == {method}
    assert set(thresholds["transform"]) == {"arcsinh"}
    # The raw thresholds lie between the populations (negatives ~60, positives ~1500).
    assert ((thresholds["threshold"] > 120) & (thresholds["threshold"] < 900)).all()
    assert typed.columns.tolist() == cells.columns.tolist() + ["cell_type", "confidence"]


def test_otsu_and_gmm_differ_on_unbalanced_populations():
    cells = planted_cells(sizes=(20, 0, 0, 0, 0, 0, 500))
    otsu = classify_cells(cells, cell_types=RULES, threshold_method="otsu")[1].set_index("marker")
    gmm = classify_cells(cells, cell_types=RULES, threshold_method="gmm")[1].set_index("marker")
    assert otsu.loc["KRT14", "threshold"] != pytest.approx(gmm.loc["KRT14", "threshold"], rel=0.01)


def test_fixed_threshold_overrides_automatic():
    cells = planted_cells()
    typed, thresholds = classify_cells(cells, cell_types=RULES, thresholds={"KRT14": 1e6})
    row = thresholds.set_index("marker").loc["KRT14"]
    assert row["method"] == "fixed" and row["threshold"] == 1e6
    assert "keratinocyte" not in set(typed["cell_type"])
    # With KRT14 never positive, KRT14+CD8+ cells become CD8 T cells.
    assert (typed.loc[typed["population"] == "krt14_cd8", "cell_type"] == "cd8_t_cell").all()


def test_thresholds_are_per_sample():
    cells = pd.concat([planted_cells("A"), planted_cells("B", brightness=4.0, seed=1)], ignore_index=True)
    typed, thresholds = classify_cells(cells, cell_types=RULES)
    assert (typed["cell_type"] == typed["expected"]).all()
    by_sample = thresholds.set_index(["sample", "marker"])["threshold"]
    assert by_sample[("B", "KRT14")] > 2 * by_sample[("A", "KRT14")]


@pytest.mark.parametrize("transform", ["log", "none"])
def test_other_transforms(transform):
    cells = planted_cells()
    typed, thresholds = classify_cells(cells, cell_types=RULES, transform=transform, cofactor=50.0)
    assert (typed["cell_type"] == typed["expected"]).mean() > 0.97
    assert set(thresholds["transform"]) == {transform}


def test_confidence_grows_with_distance_from_threshold():
    cells = planted_cells()
    typed, thresholds = classify_cells(cells, cell_types=RULES)
    assert typed["confidence"].between(0.5, 1.0).all()
    assert typed["confidence"].median() > 0.9
    cut = thresholds.set_index("marker").loc["KRT14", "threshold"]
    near = cells.iloc[[0]].assign(mean_KRT14=cut * 1.05)
    far = cells.iloc[[0]].assign(mean_KRT14=cut * 20)
    probe = pd.concat([cells, near, far], ignore_index=True)
    conf = classify_cells(probe, cell_types=RULES, thresholds={"KRT14": cut})[0]["confidence"]
    assert conf.iloc[-2] < 0.7 < conf.iloc[-1]


def test_unknown_marker_names_marker_and_available():
    cells = planted_cells()
    rules = RULES + [{"name": "cd4_t_cell", "positive": ["CD4"]}]
    with pytest.raises(DVPError, match="CD4.*available: KRT14, CD8, CD163"):
        classify_cells(cells, cell_types=rules)


def test_bad_rules_and_options():
    cells = planted_cells()
    with pytest.raises(DVPError, match=r"cell_types\[1\].*defined twice"):
        classify_cells(cells, cell_types=[RULES[0], RULES[0]])
    with pytest.raises(DVPError, match="both positive and negative"):
        classify_cells(cells, cell_types=[{"name": "x", "positive": ["CD8"], "negative": ["CD8"]}])
    with pytest.raises(DVPError, match="threshold_method"):
        classify_cells(cells, cell_types=RULES, threshold_method="kmeans")


def test_cli_writes_classified_cells_and_thresholds(tmp_path):
    cells = planted_cells().drop(columns=["population", "expected"])
    expected = planted_cells()["expected"]
    cells.to_parquet(tmp_path / "cells.parquet", index=False)
    parser = argparse.ArgumentParser()
    classify_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "classify",
            str(tmp_path / "cells.parquet"),
            "--out",
            str(tmp_path / "out" / "classified.parquet"),
            "--thresholds",
            str(tmp_path / "out" / "thresholds.tsv"),
            "--options",
            '{"threshold_method": "gmm"}',
        ]
    )
    args.func(args)
    typed = pd.read_parquet(tmp_path / "out" / "classified.parquet")
    assert (typed["cell_type"] == expected).all()
    table = pd.read_csv(tmp_path / "out" / "thresholds.tsv", sep="\t")
    assert table.columns[:4].tolist() == ["sample", "marker", "threshold", "method"]
    assert set(table["method"]) == {"gmm"}
