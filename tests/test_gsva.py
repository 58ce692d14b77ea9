"""gsva against R GSVA 1.46.0 (reference values made by tests/data/gsva/make_reference.R)."""

import logging

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline import gsva as gsva_module
from dvp_pipeline.errors import DVPError
from dvp_pipeline.gsva import gsva

CASES = {
    "gaussian_mxdiff": ("expr", {}),
    "gaussian_maxdev": ("expr", {"mx_diff": False}),
    "gaussian_size5to100": ("expr", {"min_size": 5, "max_size": 100}),
    "gaussian_absrank_tau05": ("expr", {"abs_ranking": True, "tau": 0.5}),
    "gaussian_maxdev_tau2": ("expr", {"mx_diff": False, "tau": 2, "min_size": 2}),
    "poisson_mxdiff": ("counts", {"kcdf": "poisson"}),
    "poisson_maxdev": ("counts", {"kcdf": "poisson", "mx_diff": False}),
    "wide_gaussian_mxdiff": ("wide", {}),
}


def _read(path):
    return pd.read_csv(path, sep="\t", index_col=0)


@pytest.fixture
def ref_dir(data_dir):
    return data_dir / "gsva"


@pytest.fixture
def sets(ref_dir):
    long = pd.read_csv(ref_dir / "sets.tsv", sep="\t")
    return {name: list(group["gene"]) for name, group in long.groupby("set", sort=False)}


def _agree(ours, ref):
    assert list(ours.index) == list(ref.index)
    assert list(ours.columns) == list(ref.columns)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_gsva_1_46(case, ref_dir, sets):
    matrix, options = CASES[case]
    _agree(gsva(_read(ref_dir / f"{matrix}.tsv"), sets, **options), _read(ref_dir / f"{case}.tsv"))


@pytest.mark.parametrize("mx_diff", [True, False])
def test_matches_gsva_on_degenerate_sets(mx_diff, ref_dir):
    # one-member sets (one lands on the weight-0 middle rank of 20 genes) and a set of every gene
    small = _read(ref_dir / "small.tsv")
    sets = {gene: [gene] for gene in small.index} | {"all": list(small.index)}
    ref = _read(ref_dir / f"small_singles_{'mxdiff' if mx_diff else 'maxdev'}.tsv")
    _agree(gsva(small, sets, mx_diff=mx_diff), ref)


def test_tabulated_cdf_reaches_one():
    # clipping onto the last entry stands in for GSVA's 0 and 1 beyond 10 sd
    assert gsva_module._CDF_TABLE[-1] == 1.0


def test_constant_feature_is_dropped_before_set_sizes(ref_dir, sets, caplog):
    expr = _read(ref_dir / "expr.tsv")
    with_const = {"with_const": sets["with_const"]}  # 7 members, one of them constant
    with caplog.at_level(logging.WARNING, logger="dvp_pipeline.gsva"):
        assert list(gsva(expr, with_const, min_size=6).index) == ["with_const"]
    assert "constant values" in caplog.text and "g300" in caplog.text
    with pytest.raises(DVPError, match="matched sizes: 6"):
        gsva(expr, with_const, min_size=7)


def test_sample_order_does_not_matter(ref_dir, sets):
    expr = _read(ref_dir / "expr.tsv")
    shuffled = expr[expr.columns[::-1]]
    pd.testing.assert_frame_equal(gsva(shuffled, sets)[expr.columns], gsva(expr, sets), rtol=0, atol=1e-12)


@pytest.fixture
def small(ref_dir):
    return _read(ref_dir / "small.tsv")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_refuses_missing_or_infinite_values(small, bad):
    small.iloc[3, 2] = bad
    with pytest.raises(DVPError, match="missing or infinite.*h04"):
        gsva(small, {"a": list(small.index[:5])})


def test_refuses_when_no_set_has_allowed_size(small):
    with pytest.raises(DVPError, match="no gene set has between 10 and 15 members"):
        gsva(small, {"a": list(small.index[:5]), "b": list(small.index)}, min_size=10, max_size=15)


def test_refuses_sets_without_matching_members(small):
    with pytest.raises(DVPError, match="no member of any gene set"):
        gsva(small, {"a": ["P12345", "Q67890"]})


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        (lambda m: m.iloc[:, :1], {}, "at least two samples"),
        (lambda m: m.rename(index={"h02": "h01"}), {}, "unique; repeated: h01"),
        (lambda m: m - 5, {"kcdf": "poisson"}, "non-negative counts"),
        (lambda m: m, {"kcdf": "ecdf"}, "kcdf must be"),
    ],
)
def test_refuses_bad_input(small, change, options, message):
    with pytest.raises(DVPError, match=message):
        gsva(change(small), {"a": list(small.index[:5])}, **options)


def test_refuses_a_string_as_a_set(small):
    with pytest.raises(DVPError, match="list of member names"):
        gsva(small, {"a": "h01"})
