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


def _annotated_population(seed=0, n=300):
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["keratinocyte", "cd8_t_cell", "macrophage"], size=n)
    cells = pd.DataFrame(
        {
            "sample": "S1",
            "cell_id": np.arange(1, n + 1),
            "mean_KRT14": np.where(kinds == "keratinocyte", 900, 100) * rng.lognormal(0, 0.3, n),
            "mean_CD8": np.where(kinds == "cd8_t_cell", 700, 120) * rng.lognormal(0, 0.3, n),
            "mean_CD163": np.where(kinds == "macrophage", 800, 90) * rng.lognormal(0, 0.3, n),
            "area_um2": rng.normal(60, 10, n),
        }
    )
    return cells, kinds


def test_supervised_training_cross_validation_and_safe_model():
    from sklearn.ensemble import RandomForestClassifier

    from dvp_pipeline.classify import _feature_matrix, load_model, predict_cell_types, save_model, train_classifier

    cells, kinds = _annotated_population()
    annotations = pd.DataFrame({"sample": "S1", "cell_id": cells["cell_id"][:200], "cell_type": kinds[:200]})
    model, evaluation = train_classifier(cells, annotations, n_estimators=30)
    assert evaluation["accuracy"] > 0.9
    assert evaluation["n_cells"] == 200
    confusion = evaluation["confusion"]
    assert confusion.to_numpy().sum() == 200
    assert sorted(confusion.index) == ["cd8_t_cell", "keratinocyte", "macrophage"]
    assert np.trace(confusion.to_numpy()) == round(evaluation["accuracy"] * 200)

    text = save_model(model)
    assert text.lstrip().startswith("{")  # JSON, not a pickle
    loaded = load_model(text)
    predicted = predict_cell_types(cells, loaded)
    held_out = predicted.iloc[200:]
    assert (held_out["cell_type"].to_numpy() == kinds[200:]).mean() > 0.9
    assert ((predicted["confidence"] > 0) & (predicted["confidence"] <= 1)).all()
    # Our tree walk reproduces scikit-learn's forest on the same features.
    x = _feature_matrix(cells, model["features"])
    forest = RandomForestClassifier(n_estimators=30, random_state=0, n_jobs=1).fit(
        _feature_matrix(cells.iloc[:200], model["features"]), kinds[:200]
    )
    assert np.allclose(forest.predict_proba(x), predicted[[f"p_{c}" for c in forest.classes_]].to_numpy(), atol=1e-5)


def test_supervised_bad_inputs():
    from dvp_pipeline.classify import load_model, train_classifier

    cells, kinds = _annotated_population(n=40)
    with pytest.raises(DVPError, match="not in the cells table"):
        train_classifier(cells, pd.DataFrame({"sample": "S1", "cell_id": [1, 999], "cell_type": ["a", "b"]}))
    with pytest.raises(DVPError, match="at least two cell types"):
        train_classifier(cells, pd.DataFrame({"sample": "S1", "cell_id": [1, 2], "cell_type": ["a", "a"]}))
    with pytest.raises(DVPError, match="more than once"):
        train_classifier(cells, pd.DataFrame({"sample": "S1", "cell_id": [1, 1, 2], "cell_type": ["a", "b", "b"]}))
    with pytest.raises(DVPError, match="not a dvp-pipeline classifier"):
        load_model('{"format": "pickle"}')
    with pytest.raises(DVPError, match="not a JSON"):
        load_model("\x80\x04\x95 pickle bytes")


def test_cli_train_and_classify_with_model(tmp_path):
    from dvp_pipeline.cli import main

    cells, kinds = _annotated_population()
    cells.to_parquet(tmp_path / "cells.parquet")
    pd.DataFrame({"sample": "S1", "cell_id": cells["cell_id"][:150], "cell_type": kinds[:150]}).to_csv(
        tmp_path / "annotations.csv", index=False
    )
    code = main(
        [
            "train-classifier",
            str(tmp_path / "cells.parquet"),
            "--annotations",
            str(tmp_path / "annotations.csv"),
            "--model",
            str(tmp_path / "model.json"),
            "--confusion",
            str(tmp_path / "confusion.tsv"),
            "--summary",
            str(tmp_path / "summary.json"),
            "--options",
            '{"supervised": {"n_estimators": 20}}',
        ]
    )
    assert code == 0
    confusion = pd.read_csv(tmp_path / "confusion.tsv", sep="\t", index_col=0)
    assert confusion.to_numpy().sum() == 150
    code = main(
        [
            "classify",
            str(tmp_path / "cells.parquet"),
            "--out",
            str(tmp_path / "classified.parquet"),
            "--thresholds",
            str(tmp_path / "thresholds.tsv"),
            "--model",
            str(tmp_path / "model.json"),
            "--anndata",
            str(tmp_path / "cells.h5ad"),
        ]
    )
    assert code == 0
    classified = pd.read_parquet(tmp_path / "classified.parquet")
    assert (classified["cell_type"].to_numpy()[150:] == kinds[150:]).mean() > 0.9
    assert (tmp_path / "cells.h5ad").is_file()
