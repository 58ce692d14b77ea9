"""Segmentation metrics (dvp_pipeline.seg_metrics) and the hard synthetic tissue they are scored on."""

import numpy as np
import pytest

from dvp_pipeline.seg_metrics import merges, score_labels, splits, subset_recall
from dvp_pipeline.simulate import simulate_hard_tissue


def _discs(centres, radius=5, shape=(40, 60)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    labels = np.zeros(shape, dtype=np.uint32)
    for k, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return labels


TRUTH = _discs([(10, 10), (10, 20), (30, 40), (30, 10)])  # the first two touch


def test_perfect_match():
    scores = score_labels(TRUTH, TRUTH)
    assert scores["f1_0.5"] == scores["f1_0.75"] == 1.0
    assert scores["merges"] == scores["splits"] == scores["merged"] == 0


def test_one_merge_counted():
    predicted = TRUTH.copy()
    predicted[predicted == 2] = 1  # the two touching nuclei as one object
    assert len(merges(predicted, TRUTH)) == 1
    scores = score_labels(predicted, TRUTH)
    assert (scores["merges"], scores["merged"], scores["splits"]) == (1, 2, 0)
    # The fused object may still match one of its nuclei at IoU 0.5, never both.
    assert scores["recall"] <= 0.75 and scores["n_predicted"] == 3


def test_one_split_counted():
    predicted = TRUTH.copy()
    half = (predicted == 3) & (np.arange(60)[None, :] >= 40)
    predicted[half] = 9  # nucleus 3 cut in two halves
    table = splits(predicted, TRUTH)
    assert table.values.tolist() == [[3, 2]]
    scores = score_labels(predicted, TRUTH)
    assert (scores["merges"], scores["splits"]) == (0, 1)


def test_dim_recall():
    predicted = TRUTH.copy()
    predicted[predicted == 4] = 0  # the dim one is missed
    assert subset_recall(predicted, TRUTH, [4]) == 0.0
    assert subset_recall(predicted, TRUTH, [1, 4]) == 0.5
    assert score_labels(predicted, TRUTH, subsets={"dim": [4]})["recall_dim"] == 0.0
    assert np.isnan(subset_recall(predicted, TRUTH, []))


@pytest.fixture(scope="module")
def hard():
    return simulate_hard_tissue(3, size=256)


def test_hard_tissue_is_deterministic(hard):
    again = simulate_hard_tissue(3, size=256)
    assert np.array_equal(hard.image, again.image)
    assert np.array_equal(hard.labels, again.labels)
    assert hard.cells.equals(again.cells)
    assert not np.array_equal(hard.image, simulate_hard_tissue(4, size=256).image)


def test_hard_tissue_properties(hard):
    image, labels, nuclei, cells = hard.image, hard.labels, hard.nuclei, hard.cells
    assert image.shape == (5, 256, 256) and image.dtype == np.uint16
    assert hard.channels == ("DAPI", "KRT14", "CD8", "CD163", "WGA")
    assert int(labels.max()) == len(cells) and int(nuclei.max()) == len(cells)
    assert ((nuclei == 0) | (nuclei == labels)).all()  # the nucleus of cell k is labelled k
    assert 0.08 <= cells["dim"].mean() <= 0.12
    # Dim nuclei are 3-5x weaker than the rest (same type mix, so compare medians loosely).
    assert cells.loc[cells["dim"], "dapi"].median() < 0.4 * cells.loc[~cells["dim"], "dapi"].median()
    # Touching clusters: many nuclei share a boundary with another, and T-cell aggregates exist.
    assert cells["touching"].mean() > 0.2
    assert (cells["cluster"] > 0).sum() >= 20
    a, b = nuclei[:, :-1], nuclei[:, 1:]
    assert ((a > 0) & (b > 0) & (a != b)).any()


def test_hard_tissue_uneven_illumination():
    flat = simulate_hard_tissue(5, size=128, illumination=(1.0, 1.0), membrane=False)
    assert flat.image.shape[0] == 4
    with pytest.raises(Exception, match="dim_fraction"):
        simulate_hard_tissue(5, size=128, dim_fraction=1.5)
