"""moderated_ttest against R limma 3.54.1 (reference values made by tests/data/limma/make_reference.R)."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.stats import bh_adjust, median_normalize, moderated_ttest, valid_value_filter

COLUMNS = ["logFC", "AveExpr", "t", "P.Value", "adj.P.Val", "B"]


def _read(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NA"])


def _agree(ours, ref, rtol=1e-8):
    for col in COLUMNS:
        a, b = ours[col].to_numpy(float), ref[col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=rtol, err_msg=col)


@pytest.fixture
def limma(data_dir):
    y = _read(data_dir / "limma" / "y.tsv")
    groups = pd.Series(["TEN"] * 4 + ["MPR"] * 4, index=y.columns)
    prior = _read(data_dir / "limma" / "prior.tsv").set_index("design")
    return y, groups, prior


def test_matches_limma_with_missing_values(limma, data_dir):
    y, groups, prior = limma
    ours = moderated_ttest(y, groups, contrast=("TEN", "MPR"))
    ref = _read(data_dir / "limma" / "tt.tsv")
    assert list(ours.index) == list(ref.index)
    _agree(ours, ref)
    assert ours.attrs["s2.prior"] == pytest.approx(prior.loc["unpaired", "s2.prior"], rel=1e-8)
    assert ours.attrs["df.prior"] == pytest.approx(prior.loc["unpaired", "df.prior"], rel=1e-8)
    # the row with one group missing is not estimable, the row with no residual df still gets a t
    assert np.isnan(ours.loc["g60", "t"]) and np.isfinite(ours.loc["g61", "t"])


def test_matches_limma_paired_with_infinite_prior_df(limma, data_dir):
    y, groups, prior = limma
    patients = pd.DataFrame({"pat": ["p1", "p2", "p3", "p4"] * 2}, index=y.columns)
    ours = moderated_ttest(y, groups, contrast=("TEN", "MPR"), covariates=patients)
    _agree(ours, _read(data_dir / "limma" / "tt_paired.tsv"))
    assert np.isinf(ours.attrs["df.prior"]) and np.isinf(prior.loc["paired", "df.prior"])
    assert ours.attrs["s2.prior"] == pytest.approx(prior.loc["paired", "s2.prior"], rel=1e-8)


def test_sign_follows_contrast_and_row_order_is_kept(limma):
    y, groups, _ = limma
    forward = moderated_ttest(y, groups, contrast=("TEN", "MPR"))
    backward = moderated_ttest(y.iloc[::-1], groups, contrast=("MPR", "TEN"))
    np.testing.assert_allclose(backward["logFC"].loc[forward.index], -forward["logFC"])
    np.testing.assert_allclose(backward["P.Value"].loc[forward.index], forward["P.Value"])


def test_bad_groups_are_explained():
    m = pd.DataFrame(np.ones((3, 2)), columns=["a", "b"])
    with pytest.raises(DVPError, match="no group for sample"):
        moderated_ttest(m, pd.Series(["x"], index=["a"]), contrast=("x", "y"))
    with pytest.raises(DVPError, match="contrast group 'z'"):
        moderated_ttest(m, pd.Series(["x", "y"], index=["a", "b"]), contrast=("z", "y"))


def test_bh_adjust_matches_hand_computation():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 (n = 4): 0.04, 0.0533, 0.0533, 0.5
    np.testing.assert_allclose(bh_adjust(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, np.nan, 0.5])


def test_median_normalize_and_valid_filter():
    m = pd.DataFrame({"a": [1.0, 2.0, 3.0, np.nan], "b": [3.0, 4.0, 5.0, 6.0], "c": [2.0, np.nan, 4.0, 5.0]})
    norm = median_normalize(m, min_shared=2)  # shared rows 0 and 2: medians 2, 4, 3
    np.testing.assert_allclose(norm.loc[0], [2.0, 2.0, 2.0])
    groups = pd.Series(["x", "x", "y"], index=["a", "b", "c"])
    kept = valid_value_filter(m, groups, min_per_group=1)
    assert list(kept.index) == [0, 2, 3]
