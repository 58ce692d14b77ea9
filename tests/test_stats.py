"""moderated_ttest against R limma 3.54.1 (reference values made by tests/data/limma/make_reference.R)."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.differential import impute_missing, valid_value_filter
from dvp_pipeline.errors import DVPError
from dvp_pipeline.normalize import median_normalize, quantile_normalize
from dvp_pipeline.stats import bh_adjust, lowess, moderated_ttest

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


@pytest.mark.parametrize("data", ["y", "yt"])
@pytest.mark.parametrize(
    ("kind", "options"),
    [("trend", {"trend": True}), ("robust", {"robust": True}), ("trendrobust", {"trend": True, "robust": True})],
)
def test_matches_limma_trend_and_robust(data_dir, data, kind, options):
    # yt has intensity-dependent variances and hypervariable rows; the robust prior df differs per row
    y = _read(data_dir / "limma" / f"{data}.tsv")
    groups = pd.Series(["TEN"] * 4 + ["MPR"] * 4, index=y.columns)
    ref = _read(data_dir / "limma" / f"tt_{kind}{'_y' if data == 'y' else ''}.tsv")
    ours = moderated_ttest(y, groups, contrast=("TEN", "MPR"), **options)
    _agree(ours, ref)
    for key in ("s2.prior", "df.prior"):
        np.testing.assert_allclose(np.broadcast_to(ours.attrs[key], len(ref)), ref[key], rtol=1e-8, err_msg=key)


def test_matches_limma_interaction_contrast(data_dir):
    y = _read(data_dir / "limma" / "yi.tsv")
    groups = pd.Series(np.repeat(["A.t", "A.c", "B.t", "B.c"], 3), index=y.columns)
    contrast = {"A.t": 1, "A.c": -1, "B.t": -1, "B.c": 1}
    _agree(moderated_ttest(y, groups, contrast=contrast), _read(data_dir / "limma" / "tt_interaction.tsv"))


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


def test_quantile_normalize_matches_limma(data_dir):
    # normalizeQuantiles(ties = TRUE) with missing values and a tie (make_reference.R)
    x = _read(data_dir / "limma" / "qn_in.tsv")
    np.testing.assert_allclose(quantile_normalize(x), _read(data_dir / "limma" / "qn_out.tsv"), rtol=1e-10)


def test_valid_value_filter_fraction_and_any_group():
    m = pd.DataFrame(
        {"a": [1.0, np.nan, 1.0], "b": [1.0, np.nan, np.nan], "c": [1.0, np.nan, 1.0], "d": [np.nan, 1.0, 1.0]},
        index=["p", "q", "r"],
    )
    groups = pd.Series(["x", "x", "x", "y"], index=m.columns)
    assert list(valid_value_filter(m, groups, min_per_group=1).index) == ["r"]
    assert list(valid_value_filter(m, groups, min_per_group=1, require="any").index) == ["p", "q", "r"]
    # 60% of 3 runs -> 2 values in x, 60% of 1 run -> 1 value in y
    assert list(valid_value_filter(m, groups, min_fraction=0.6, require="any").index) == ["p", "q", "r"]
    assert list(valid_value_filter(m, groups, min_fraction=0.6).index) == ["r"]
    with pytest.raises(DVPError, match="require"):
        valid_value_filter(m, groups, require="all")


def test_perseus_imputation_is_down_shifted_and_order_independent():
    rng = np.random.default_rng(3)
    m = pd.DataFrame(
        rng.normal(25, 2, size=(2000, 3)), columns=["r1", "r2", "r3"], index=[f"p{i}" for i in range(2000)]
    )
    m[m < 24] = np.nan
    filled, mask = impute_missing(m, method="perseus", seed=4)
    assert mask.equals(m.isna()) and not filled.isna().any().any()
    observed = m["r1"].dropna()
    drawn = filled.loc[mask["r1"], "r1"]
    assert drawn.mean() == pytest.approx(observed.mean() - 1.8 * observed.std(), abs=0.05)
    assert drawn.std() == pytest.approx(0.3 * observed.std(), rel=0.1)
    shuffled, _ = impute_missing(m.sample(frac=1, random_state=1)[["r3", "r1", "r2"]], method="perseus", seed=4)
    pd.testing.assert_frame_equal(shuffled.loc[filled.index, filled.columns], filled)
    assert not impute_missing(m, method="perseus", seed=5)[0].equals(filled)
    minimum, _ = impute_missing(m, method="minimum")
    assert minimum.loc[mask["r2"], "r2"].eq(m["r2"].min()).all()


def test_lowess_matches_r(data_dir):
    # lowess(x, y, f = 0.4, iter = 3) with ties and an outlier (make_reference.R)
    ref = _read(data_dir / "limma" / "lowess.tsv")
    np.testing.assert_allclose(lowess(ref["x"], ref["y"], f=0.4, iterations=3), ref["fit"], rtol=1e-10)


def test_moderated_t_is_independent_of_row_order(data_dir):
    y = _read(data_dir / "limma" / "yt.tsv")
    groups = pd.Series(["TEN"] * 4 + ["MPR"] * 4, index=y.columns)
    a = moderated_ttest(y, groups, contrast=("TEN", "MPR"), trend=True, robust=True)
    b = moderated_ttest(y.sample(frac=1, random_state=8), groups, contrast=("TEN", "MPR"), trend=True, robust=True)
    pd.testing.assert_frame_equal(a, b.loc[a.index], rtol=1e-10)
