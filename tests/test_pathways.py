"""camera against R limma 3.54.1 (tests/data/limma/make_reference.R), set scores, GMT handling."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.genesets import load_collection, parse_gmt, sets_to_features
from dvp_pipeline.pathways import camera, set_scores


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
