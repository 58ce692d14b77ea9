"""camera against R limma 3.54.1 (tests/data/limma/make_reference.R), set scores, GMT handling."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dvp_pipeline.errors import DVPError
from dvp_pipeline.genesets import load_collection, parse_gmt, sets_to_features
from dvp_pipeline.gsva import gsva
from dvp_pipeline.pathways import camera, camera_pr, gsea_preranked, ora, set_scores
from dvp_pipeline.stats import moderated_ttest


@pytest.fixture
def cam(data_dir):
    y = pd.read_csv(data_dir / "limma" / "cam_y.tsv", sep="\t")
    sets = parse_gmt((data_dir / "limma" / "cam_sets.gmt").read_text())
    sets = {k: [g.lower() for g in v] for k, v in sets.items()}
    groups = pd.Series(["TEN"] * 4 + ["MPR"] * 4, index=y.columns)
    return y, groups, sets


@pytest.mark.parametrize(("reference", "cor"), [("cam_fixed.tsv", 0.01), ("cam_est.tsv", None)])
def test_camera_matches_limma(cam, data_dir, reference, cor):
    y, groups, sets = cam
    ref = pd.read_csv(data_dir / "limma" / reference, sep="\t", keep_default_na=False, na_values=["NA"])
    ours = camera(y, groups, sets, contrast=("TEN", "MPR"), inter_gene_cor=cor).loc[ref.index]
    assert (ours["NGenes"] == ref["NGenes"]).all()
    assert (ours["Direction"] == ref["Direction"]).all()
    for col in ["PValue", "FDR"] + (["Correlation"] if cor is None else []):
        np.testing.assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-8, err_msg=col)
    assert ours.loc["up", "PValue"] < 1e-3 and ours.loc["up", "Direction"] == "Up"


def _compare(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    ours = ours.loc[ref["set"]]
    assert (ours["NGenes"].to_numpy() == ref["NGenes"].to_numpy()).all()
    assert (ours["Direction"].to_numpy() == ref["Direction"].to_numpy()).all()
    for col in ["PValue", "FDR"]:
        np.testing.assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-8, err_msg=col)


@pytest.mark.parametrize("cor", [0.01, None])
def test_camera_with_a_covariate_matches_limma(cam, data_dir, cor):
    """camera given the full design (groups + batch), as limma's camera takes it (make_camera_reference.R)."""
    _, groups, sets = cam
    y = pd.read_csv(data_dir / "limma" / "cam_batch_y.tsv", sep="\t")
    batch = pd.DataFrame({"batch": ["b1", "b2", "b1", "b2", "b2", "b1", "b2", "b1"]}, index=y.columns)
    ref = pd.read_csv(data_dir / "limma" / "cam_batch.tsv", sep="\t", keep_default_na=False, na_values=[""])
    ref = ref[ref["cor"] == ("NA" if cor is None else "0.01")]
    ours = camera(y, groups, sets, contrast=("TEN", "MPR"), covariates=batch, inter_gene_cor=cor)
    _compare(ours, ref)
    ignored = camera(y, groups, sets, contrast=("TEN", "MPR"), inter_gene_cor=cor)
    assert not np.allclose(ignored.loc[ref["set"], "PValue"], ref["PValue"])  # the covariate matters


@pytest.mark.parametrize("cor", [0.01, 0.05])
def test_camera_pr_matches_limma(cam, data_dir, cor):
    """cameraPR on the NA-aware moderated t (every tested protein), as limma's (make_camera_reference.R)."""
    _, _, sets = cam
    t = pd.read_csv(data_dir / "limma" / "campr_t.tsv", sep="\t")["t"]
    ref = pd.read_csv(data_dir / "limma" / "campr.tsv", sep="\t")
    _compare(camera_pr(t, sets, inter_gene_cor=cor), ref[ref["cor"] == cor])


def test_camera_is_independent_of_row_order(cam):
    y, groups, sets = cam
    a = camera(y, groups, sets, contrast=("TEN", "MPR"))
    b = camera(y.sample(frac=1, random_state=3), groups, sets, contrast=("TEN", "MPR"))
    pd.testing.assert_frame_equal(a, b.loc[a.index], rtol=1e-10)


def test_camera_refuses_missing_values(cam):
    y, groups, sets = cam
    y = y.copy()
    y.iloc[0, 0] = np.nan
    with pytest.raises(DVPError, match="missing values"):
        camera(y, groups, sets, contrast=("TEN", "MPR"))


def test_set_scores_standardise_within_strata():
    m = pd.DataFrame({"a": [1.0, 10.0], "b": [3.0, 30.0], "c": [5.0, 0.0], "d": [7.0, 0.0]}, index=["p", "q"])
    strata = pd.Series(["x", "x", "y", "y"], index=m.columns)
    scores = set_scores(m, {"S": ["p"], "T": ["p", "q"], "none": ["zz"]}, strata=strata)
    z = 1 / np.sqrt(2)  # two values per stratum: z = -/+ 0.7071
    np.testing.assert_allclose(scores.loc["S"], [-z, z, -z, z])
    np.testing.assert_allclose(scores.loc["T"], [-z, z, -z, z])  # q is constant in stratum y: no z there
    assert "none" not in scores.index


def test_gmt_parsing_and_mapping():
    sets = parse_gmt("A\tdesc\tstat1\tSTAT3\tstat1\nB\tx\tgag\n")
    assert sets["A"] == ["STAT1", "STAT3"]
    genes = pd.Series({"P1": "STAT1;STAT3", "P2": "stat3", "P3": "JAK1"})
    assert sets_to_features(sets, genes) == {"A": ["P1", "P2"], "B": []}
    with pytest.raises(DVPError, match="line 1"):
        parse_gmt("only_a_name\n")


def test_builtin_collections_are_shipped():
    hallmark = load_collection("hallmark")
    assert len(hallmark) == 50 and "STAT1" in hallmark["HALLMARK_IL6_JAK_STAT3_SIGNALING"]
    assert len(load_collection("reactome")) > 2000
    with pytest.raises(DVPError, match="built-in"):
        load_collection("kegg")


def test_gsea_enrichment_scores_match_gseapy(data_dir):
    # reference made with gseapy 1.3.1 (tests/data/gsea/make_reference.py)
    ranking = pd.read_csv(data_dir / "gsea" / "ranking.tsv", sep="\t", index_col="feature")["stat"]
    sets = parse_gmt((data_dir / "gsea" / "sets.gmt").read_text())
    ref = pd.read_csv(data_dir / "gsea" / "es.tsv", sep="\t", index_col="set")["ES"]
    ours = gsea_preranked(ranking, sets, permutations=200, seed=1)
    np.testing.assert_allclose(ours.loc[ref.index, "ES"], ref, rtol=1e-10)
    # p-values are (b + 1) / (n + 1): never 0, even for the strongest set
    assert (ours["PValue"] > 0).all() and ours.loc["S_UP", "PValue"] <= 2 / 100
    assert ours.loc["S_UP", "NES"] > 0 > ours.loc["S_DOWN", "NES"]


def test_gsea_ora_and_scores_do_not_depend_on_row_order(data_dir):
    ranking = pd.read_csv(data_dir / "gsea" / "ranking.tsv", sep="\t", index_col="feature")["stat"]
    sets = parse_gmt((data_dir / "gsea" / "sets.gmt").read_text())
    shuffled = ranking.sample(frac=1, random_state=5)
    a = gsea_preranked(ranking, sets, permutations=200, seed=7)
    pd.testing.assert_frame_equal(a, gsea_preranked(shuffled, sets, permutations=200, seed=7))
    hits = ranking.index[ranking > 1.5]
    pd.testing.assert_frame_equal(ora(hits, ranking.index, sets), ora(hits[::-1], shuffled.index, sets))
    rng = np.random.default_rng(0)
    m = pd.DataFrame(rng.normal(size=(500, 6)), index=ranking.index)
    g = gsva(m, sets)
    pd.testing.assert_frame_equal(g, gsva(m.sample(frac=1, random_state=2), sets), rtol=0, atol=1e-12)


def test_ora_matches_hand_computed_hypergeometric():
    universe = [f"p{i}" for i in range(20)]
    sets = {"S": ["p0", "p1", "p2", "p3", "unmeasured"], "T": ["p10", "p11"]}
    table = ora(["p0", "p1", "p5"], universe, sets)
    # P(X >= 2), X ~ hypergeometric(20 proteins, 4 in S, 3 drawn) = (C(4,2) C(16,1) + C(4,3)) / C(20,3)
    assert table.loc["S", "PValue"] == pytest.approx((6 * 16 + 4) / 1140)
    assert table.loc["S", "NGenes"] == 4 and table.loc["S", "Overlap"] == 2
    assert table.loc["T", "PValue"] == 1.0
    with pytest.raises(DVPError, match="not in the universe"):
        ora(["zz"], universe, sets)


def _null_cohort(seed, n_features=2000, n_runs=8):
    """Independent proteins with their own means and variances (scaled inverse chi-square, 4 df)."""
    rng = np.random.default_rng(seed)
    sd = np.sqrt(0.1 * 4 / rng.chisquare(4, n_features))
    y = rng.normal(size=(n_features, n_runs)) * sd[:, None] + rng.normal(22, 2, n_features)[:, None]
    return pd.DataFrame(y, index=[f"p{i}" for i in range(n_features)], columns=[f"r{j}" for j in range(n_runs)])


def test_calibration_under_label_shuffling():
    """Null data: p-values pooled over every balanced 4 vs 4 labelling of 3 null cohorts are uniform.

    3 cohorts of 2000 independent proteins x 8 runs, all 35 distinct 4 vs 4 labellings each.
    moderated t (210,000 p-values): Kolmogorov-Smirnov distance to U(0, 1) below 0.01 and the rate
    of p < alpha within 10% of alpha for alpha = 0.01, 0.05, 0.1. camera on 100 disjoint random sets
    of 20 proteins (10,500 p-values): with the true inter-gene correlation (0) KS distance below 0.03
    and rates within 30% of alpha; with the default preset 0.01 never above alpha (conservative). The
    same for cameraPR on the moderated t of the cohort with missing values added (rates within 40%: the
    moderated t's tails are a little heavier than camera's z-scores; 1.35%, 5.7%, 10.9% at the true
    correlation, 0.71%, 3.7%, 8.1% with the preset 0.01).
    (Labellings of one cohort share its data, so the pooled p-values are not independent: hence
    distances and rates with tolerances, not a KS p-value.)
    """
    t_p, cam_true, cam_default, pr_true, pr_default = [], [], [], [], []
    for seed in (11, 12, 13):
        y = _null_cohort(seed)
        rng = np.random.default_rng(seed)
        names = rng.permutation(y.index)
        # cameraPR takes the NA-aware moderated t: a fifth of the proteins miss one or two values
        ym = y.mask((rng.random(y.shape) < 0.2) & (rng.random(len(y)) < 0.2)[:, None])
        sets = {f"set{k}": list(names[20 * k : 20 * (k + 1)]) for k in range(100)}
        for others in itertools.combinations(range(1, 8), 3):
            labels = np.array(["B"] * 8)
            labels[[0, *others]] = "A"
            groups = pd.Series(labels, index=y.columns)
            t_p.append(moderated_ttest(y, groups, contrast=("A", "B"))["P.Value"].to_numpy())
            cam_true.append(camera(y, groups, sets, contrast=("A", "B"), inter_gene_cor=0.0)["PValue"].to_numpy())
            cam_default.append(camera(y, groups, sets, contrast=("A", "B"))["PValue"].to_numpy())
            t = moderated_ttest(ym, groups, contrast=("A", "B"))["t"]
            pr_true.append(camera_pr(t, sets, inter_gene_cor=0.0)["PValue"].to_numpy())
            pr_default.append(camera_pr(t, sets)["PValue"].to_numpy())
    t_p, cam_true, cam_default, pr_true, pr_default = map(
        np.concatenate, (t_p, cam_true, cam_default, pr_true, pr_default)
    )
    assert stats.kstest(t_p, "uniform").statistic < 0.01
    assert stats.kstest(cam_true, "uniform").statistic < 0.03
    assert stats.kstest(pr_true, "uniform").statistic < 0.03
    for alpha in (0.01, 0.05, 0.1):
        assert abs((t_p < alpha).mean() / alpha - 1) < 0.1
        assert abs((cam_true < alpha).mean() / alpha - 1) < 0.3
        assert abs((pr_true < alpha).mean() / alpha - 1) < 0.4  # 1.35%, 5.7%, 10.9%
        assert (cam_default < alpha).mean() <= alpha
        assert (pr_default < alpha).mean() <= alpha


def test_planted_jak_stat_signal_is_found():
    """4 vs 4 runs of 4384 proteins (all Hallmark genes); 30 of the 87 IL6/JAK/STAT3 members up by
    0.8 log2 (median protein sd about 0.3): camera ranks the set first at FDR < 0.05."""
    hallmark = load_collection("hallmark")
    universe = sorted({g for members in hallmark.values() for g in members})
    rng = np.random.default_rng(21)
    y = _null_cohort(22, n_features=len(universe))
    y.index = universe
    planted = rng.choice(hallmark["HALLMARK_IL6_JAK_STAT3_SIGNALING"], size=30, replace=False)
    y.loc[planted, ["r0", "r1", "r2", "r3"]] += 0.8
    groups = pd.Series(["TEN"] * 4 + ["MPR"] * 4, index=y.columns)
    table = camera(y, groups, hallmark, contrast=("TEN", "MPR"))
    assert table.index[0] == "HALLMARK_IL6_JAK_STAT3_SIGNALING"
    assert table.loc["HALLMARK_IL6_JAK_STAT3_SIGNALING", "FDR"] < 0.05
    assert table.loc["HALLMARK_IL6_JAK_STAT3_SIGNALING", "Direction"] == "Up"
    ranking = moderated_ttest(y, groups, contrast=("TEN", "MPR"))["t"]
    gsea = gsea_preranked(ranking, hallmark, permutations=1000)
    # with 1000 permutations the smallest attainable p is about 1/500 (same-signed nulls only)
    assert gsea.loc["HALLMARK_IL6_JAK_STAT3_SIGNALING", "PValue"] < 0.01
    assert gsea.loc["HALLMARK_IL6_JAK_STAT3_SIGNALING", "NES"] > 0
