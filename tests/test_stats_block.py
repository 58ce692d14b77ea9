"""Block designs (replicate pools of one sample) against R limma 3.54.1: duplicateCorrelation and
lmFit(block=, correlation=), with reference values made by tests/data/limma/make_block_reference.R."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dvp_pipeline.errors import DVPError
from dvp_pipeline.stats import design_matrix, duplicate_correlation, moderated_ttest

COLUMNS = ["logFC", "AveExpr", "t", "P.Value", "adj.P.Val", "B"]


def _read(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NA"])


def _agree(ours, ref, rtol=1e-8):
    for col in COLUMNS:
        a, b = ours[col].to_numpy(float), ref[col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=rtol, err_msg=col)


@pytest.fixture
def cohort(data_dir):
    """24 runs: 2 groups x 4 samples x 3 replicate pools; block = sample, plate varies within samples."""
    y = _read(data_dir / "limma" / "block_y.tsv")
    runs = _read(data_dir / "limma" / "block_runs.tsv").set_index("run")
    consensus = _read(data_dir / "limma" / "block_consensus.tsv").set_index("design")["consensus"]
    return y, runs, consensus


@pytest.mark.parametrize(
    ("design", "plate", "column"), [("block", False, "atanh"), ("block_plate", True, "atanh_plate")]
)
def test_duplicate_correlation_matches_limma(cohort, data_dir, design, plate, column):
    y, runs, consensus = cohort
    x = design_matrix(runs["group"], covariates=runs[["plate"]] if plate else None)
    ours, atanh = duplicate_correlation(y, x, runs["sample"])
    assert ours == pytest.approx(consensus[design], rel=1e-8)
    ref = _read(data_dir / "limma" / "block_dc.tsv")[column]
    assert list(atanh.index) == list(ref.index)
    # rows 71-73 have too few observations or blocks; rows 75 and 76 hit limma's upper clamp (0.99)
    assert np.array_equal(np.isnan(atanh), np.isnan(ref)) and atanh[["g71", "g72", "g73"]].isna().all()
    np.testing.assert_allclose(atanh.dropna(), ref.dropna(), rtol=1e-8)
    assert atanh[["g75", "g76"]].eq(np.arctanh(0.99)).all()
    if design == "block":  # and one row the lower clamp, 1 / (1 - largest block) + 0.01
        assert atanh.min() == pytest.approx(np.arctanh(-0.49))


def test_duplicate_correlation_without_missing_values(cohort):
    y, runs, consensus = cohort
    ours, _ = duplicate_correlation(y.dropna(), design_matrix(runs["group"]), runs["sample"])
    assert ours == pytest.approx(consensus["block_complete"], rel=1e-8)


@pytest.mark.parametrize(
    ("reference", "rows", "options"),
    [
        ("tt_block", "all", {}),
        ("tt_block_plate", "all", {"plate": True}),
        ("tt_block_trendrobust", "observed", {"trend": True, "robust": True}),
        ("tt_block_fixed", "all", {"correlation": -0.2}),
        ("tt_block_complete", "complete", {}),
    ],
)
def test_moderated_ttest_with_blocks_matches_limma(cohort, data_dir, reference, rows, options):
    y, runs, consensus = cohort
    y = {"all": y, "observed": y.drop(index="g73"), "complete": y.dropna()}[rows]
    options = dict(options)
    covariates = runs[["plate"]] if options.pop("plate", False) else None
    ours = moderated_ttest(
        y, runs["group"], contrast=("TEN", "MPR"), covariates=covariates, block=runs["sample"], **options
    )
    ref = _read(data_dir / "limma" / f"{reference}.tsv")
    assert list(ours.index) == list(ref.index)
    _agree(ours, ref)
    expected = options.get("correlation", consensus[{"tt_block_plate": "block_plate"}.get(reference, "block")])
    if rows == "complete":
        expected = consensus["block_complete"]
    assert ours.attrs["correlation"] == pytest.approx(expected, rel=1e-8)
    # a group entirely missing is not estimable; 3 values still give a t with 1 residual df
    if rows == "all":
        assert np.isnan(ours.loc["g70", "t"]) and np.isfinite(ours.loc["g71", "t"])


def test_given_correlation_is_used_as_is(cohort):
    y, runs, _ = cohort
    estimated = moderated_ttest(y, runs["group"], contrast=("TEN", "MPR"), block=runs["sample"])
    given = moderated_ttest(
        y, runs["group"], contrast=("TEN", "MPR"), block=runs["sample"], correlation=estimated.attrs["correlation"]
    )
    pd.testing.assert_frame_equal(estimated, given)


def test_block_fit_is_independent_of_row_and_run_order(cohort):
    y, runs, _ = cohort
    a = moderated_ttest(y, runs["group"], contrast=("TEN", "MPR"), block=runs["sample"])
    shuffled = y.sample(frac=1, random_state=2).sample(frac=1, axis=1, random_state=3)
    b = moderated_ttest(shuffled, runs["group"], contrast=("TEN", "MPR"), block=runs["sample"])
    pd.testing.assert_frame_equal(a, b.loc[a.index], rtol=1e-10)


def test_blocks_of_one_run_or_in_the_design_give_zero_correlation(cohort):
    y, runs, _ = cohort
    plain = moderated_ttest(y, runs["group"], contrast=("TEN", "MPR"))
    with pytest.warns(UserWarning, match="size 1"):
        single = moderated_ttest(y, runs["group"], contrast=("TEN", "MPR"), block=pd.Series(runs.index, runs.index))
    assert single.attrs["correlation"] == 0
    pd.testing.assert_frame_equal(plain, single, rtol=1e-10)
    x = design_matrix(runs["group"], covariates=runs[["sample"]])
    with pytest.warns(UserWarning, match="already in the design"):
        assert duplicate_correlation(y, x, runs["sample"])[0] == 0


def test_bad_blocks_are_explained(cohort):
    y, runs, _ = cohort
    groups = runs["group"]
    with pytest.raises(DVPError, match="no block for sample"):
        moderated_ttest(y, groups, contrast=("TEN", "MPR"), block=runs["sample"].iloc[1:])
    with pytest.raises(DVPError, match="needs a block"):
        moderated_ttest(y, groups, contrast=("TEN", "MPR"), correlation=0.3)
    with pytest.raises(DVPError, match="between -1 and 1"):
        moderated_ttest(y, groups, contrast=("TEN", "MPR"), block=runs["sample"], correlation=1.0)
    with pytest.raises(DVPError, match="Series"):
        duplicate_correlation(y, design_matrix(groups), list(runs["sample"]))
    with pytest.raises(DVPError, match="cannot be estimated"):
        # four runs of three samples: no feature has enough observations for the mixed model
        moderated_ttest(y.iloc[:, [0, 1, 3, 12]], groups, contrast=("TEN", "MPR"), block=runs["sample"])


def _null_cohort(rng, n_features=2000, samples_per_group=4, runs_per_sample=3):
    """No group effect; replicate runs of one sample share its deviation (correlation 0.33)."""
    n_samples = 2 * samples_per_group
    sample = np.repeat([f"s{i}" for i in range(n_samples)], runs_per_sample)
    scale = np.sqrt(0.1 * 4 / rng.chisquare(4, n_features))[:, None]  # limma's scaled inverse chi-square prior
    y = rng.normal(22, 2, (n_features, 1)) + scale * (
        0.7 * rng.normal(size=(n_features, n_samples))[:, np.repeat(np.arange(n_samples), runs_per_sample)]
        + rng.normal(size=(n_features, sample.size))
    )
    y[rng.random(y.shape) < 0.05] = np.nan
    runs = [f"r{j}" for j in range(sample.size)]
    # shuffle the labels over samples: a sample's runs always share its label
    shuffled = rng.permutation(["TEN"] * samples_per_group + ["MPR"] * samples_per_group)
    labels = dict(zip(np.unique(sample), shuffled, strict=True))
    groups = pd.Series([labels[s] for s in sample], index=runs)
    return pd.DataFrame(y, columns=runs), groups, pd.Series(sample, index=runs)


def test_block_design_p_values_are_uniform_under_shuffled_labels():
    rng = np.random.default_rng(11)
    known, estimated, naive = [], [], []
    for _ in range(10):
        y, groups, block = _null_cohort(rng)
        test = {"matrix": y, "groups": groups, "contrast": ("TEN", "MPR")}
        known.append(moderated_ttest(**test, block=block, correlation=0.49 / 1.49)["P.Value"].dropna())
        estimated.append(moderated_ttest(**test, block=block)["P.Value"].dropna())
        naive.append(moderated_ttest(**test)["P.Value"].dropna())
    # with the true correlation the moderated t is exactly t-distributed
    p = np.concatenate(known)
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.045 < (p < 0.05).mean() < 0.055 and 0.008 < (p < 0.01).mean() < 0.012
    # the consensus estimate is biased low (0.30 for 0.33 here, the same in R), so slightly liberal
    p = np.concatenate(estimated)
    assert stats.kstest(p, "uniform").statistic < 0.025
    assert 0.045 < (p < 0.05).mean() < 0.065 and 0.008 < (p < 0.01).mean() < 0.015
    # treating the replicate runs as independent samples is far too liberal
    assert (np.concatenate(naive) < 0.05).mean() > 0.1
