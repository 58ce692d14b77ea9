"""Segmentation metrics (dvp_pipeline.seg_metrics) and the hard synthetic tissue they are scored on."""

import json

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.seg_metrics import (
    area_fence,
    blob_centres,
    merge_suspects,
    merges,
    missed_blobs,
    score_labels,
    segment_qc,
    splits,
    subset_recall,
)
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


# --------------------------------------------------------------------------- truth-free QC


def _stain(labels, rng, *, level=400.0, background=100.0, noise=8.0):
    """A nuclear stain: each labelled nucleus a bright, slightly blurred disc on a noisy background."""
    from scipy import ndimage as ndi

    stain = background + level * (labels > 0)
    return ndi.gaussian_filter(stain, 1.0) + rng.normal(0, noise, labels.shape)


def _grid(n=8, spacing=20, radius=6):
    return _discs([(12 + spacing * i, 12 + spacing * j) for i in range(n) for j in range(n)], radius, (170, 170))


def test_missed_blobs_finds_nuclei_removed_from_the_labels():
    rng = np.random.default_rng(0)
    truth = _grid()
    stain = _stain(truth, rng)
    assert len(missed_blobs(stain, truth, pixel_size_um=0.5, nucleus_diameter_um=6)) == 0  # no false alarm
    removed = rng.choice(np.arange(1, truth.max() + 1), size=10, replace=False)
    labels = np.where(np.isin(truth, removed), 0, truth)
    found = missed_blobs(stain, labels, pixel_size_um=0.5, nucleus_diameter_um=6)
    assert sorted(truth[found[:, 0], found[:, 1]]) == sorted(removed)  # each once, nothing else


def test_missed_blobs_ignore_noise_and_count_each_tile_core_once():
    rng = np.random.default_rng(1)
    flat = rng.normal(100, 8, (170, 170))
    assert len(blob_centres(flat, pixel_size_um=0.5, nucleus_diameter_um=6)) == 0
    truth = _grid()
    stain, labels = _stain(truth, rng), np.zeros_like(truth)
    whole = missed_blobs(stain, labels, pixel_size_um=0.5, nucleus_diameter_um=6)
    cores = [(0, 85, 0, 170), (85, 170, 0, 170)]
    parts = [missed_blobs(stain, labels, pixel_size_um=0.5, nucleus_diameter_um=6, within=c) for c in cores]
    assert len(whole) == truth.max() == sum(len(p) for p in parts)


def test_missed_blobs_on_hard_tissue_find_dropped_nuclei_and_few_false_alarms():
    tissue = simulate_hard_tissue(0, size=384)
    dapi, nuclei = tissue.image[0], tissue.nuclei
    options = {"pixel_size_um": 0.5, "nucleus_diameter_um": 7.0}
    assert len(missed_blobs(dapi, nuclei, **options)) <= 0.01 * nuclei.max()
    rng = np.random.default_rng(2)
    dropped = rng.choice(np.arange(1, nuclei.max() + 1), size=int(nuclei.max()) // 10, replace=False)
    found = missed_blobs(dapi, np.where(np.isin(nuclei, dropped), 0, nuclei), **options)
    hit = nuclei[found[:, 0], found[:, 1]]
    assert np.count_nonzero(hit == 0) <= 2  # blobs found outside every true nucleus
    bright = [d for d in dropped if not tissue.cells.set_index("cell_id").loc[d, "dim"]]
    assert np.isin(dropped, hit).mean() > 0.8 and np.isin(bright, hit).mean() > 0.9


def test_merge_suspects_flag_merged_nuclei_not_single_ones():
    from dvp_pipeline.features import measure_cells

    rng = np.random.default_rng(3)
    centres, pairs = [], []
    for i in range(6):
        for j in range(6):
            cy, cx = 15 + 30 * i, 15 + 30 * j
            if (i + j) % 5 == 0:  # two touching nuclei in one label
                pairs.append(len(centres) + 1)
                centres += [(cy, cx - 4), (cy, cx + 4)]
            else:
                centres.append((cy + rng.integers(-2, 3), cx + rng.integers(-2, 3)))
    truth = _discs(centres, radius=5, shape=(180, 180))
    labels = truth.copy()
    for k in pairs:
        labels[labels == k + 1] = k
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(truth.shape).astype(np.uint32)
    merged_ids = np.unique(labels[np.isin(truth, [k + 1 for k in pairs])])
    cells = measure_cells(labels, labels[None].astype(float), channel_names=["DAPI"], pixel_size_um=0.5, nuclei=labels)
    flags = merge_suspects(cells)
    is_merged = cells["cell_id"].isin(merged_ids).to_numpy()
    assert flags[is_merged].all()
    assert flags[~is_merged].mean() < 0.05
    assert merge_suspects(cells, min_solidity=0.0, fence_um2=np.inf).sum() == 0


def test_segment_qc_counts_thresholds_and_caps_positions():
    cells = pd.DataFrame({"nucleus_area_um2": [30.0] * 9 + [90.0, np.nan], "nucleus_solidity": [0.95] * 10 + [np.nan]})
    missed = np.arange(20).reshape(10, 2)
    qc = segment_qc(cells, missed, nucleus_diameter_um=7, missed_outside_cells=4, max_points=4)
    assert qc["n_cells"] == 11 and qc["suspect_merges"] == qc["suspect_large"] == 1
    assert qc["missed_blobs"] == 10 and qc["missed_blobs_outside_cells"] == 4
    assert qc["missed_fraction"] == pytest.approx(10 / 21)
    assert qc["nucleus_area_fence_um2"] == pytest.approx(area_fence(cells["nucleus_area_um2"]))
    assert len(qc["missed_blob_yx"]) == 4 and not qc["missed_blob_yx_complete"]
    assert qc["missed_blob_yx"][0] == [0, 1] and qc["missed_blob_yx"][-1] == [18, 19]
    json.dumps(qc)  # JSON-ready
