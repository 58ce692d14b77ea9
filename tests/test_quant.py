"""Quantification: MaxLFQ against iq's own values, top-N, sum, normalisation, QC, the DIA-NN entry point."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.quant import maxlfq, normalize, quant_qc, quantify, read_diann, report_runs, sum_ions, top_n


def _long(matrix: dict[str, list[float]], protein="P") -> pd.DataFrame:
    rows = [(protein, ion, f"s{j + 1}", v) for ion, values in matrix.items() for j, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["protein", "ion", "sample", "intensity"])


def test_two_ions_two_samples_by_hand():
    # log2: ion a = (2, 3), ion b = (4, 5): ratio 1, mean of all 3.5 -> (3, 4)
    out = maxlfq(_long({"a": [4, 8], "b": [16, 32]}))
    np.testing.assert_allclose(out.loc["P"], [3.0, 4.0])


def test_recovers_planted_abundances_with_missing_ions():
    rng = np.random.default_rng(0)
    abundance = rng.normal(20, 2, 6)
    ion_effect = rng.normal(0, 1.5, 8)
    log2 = ion_effect[:, None] + abundance[None, :]
    log2[rng.random(log2.shape) < 0.3] = np.nan
    log2[0] = abundance + ion_effect[0]  # one complete ion keeps all samples connected
    out = maxlfq(_long({f"i{k}": list(2 ** log2[k]) for k in range(8)})).loc["P"].to_numpy()
    np.testing.assert_allclose(out - out.mean(), abundance - abundance.mean(), atol=1e-9)
    assert out.mean() == pytest.approx(np.nanmean(log2))  # iq's constraint


def test_disconnected_samples_are_estimated_separately():
    # s1, s2 share ion a; s3 only has ion b (its own group: median of its ions); s4 nothing
    nan = np.nan
    out = maxlfq(_long({"a": [2.0, 8.0, nan, nan], "b": [nan, nan, 64.0, nan], "c": [nan, nan, 16.0, nan]}))
    np.testing.assert_allclose(out.loc["P"].to_numpy()[:3], [1.0, 3.0, 5.0])
    assert np.isnan(out.loc["P", "s4"])


def test_single_ion_is_returned_and_bad_rows_ignored():
    data = _long({"a": [2.0, 4.0, 0.0]})
    data.loc[len(data)] = ["P", "a", "s4", np.nan]
    out = maxlfq(data)
    np.testing.assert_allclose(out.loc["P"].to_numpy(), [1.0, 2.0, np.nan, np.nan])


def test_missing_column_is_named():
    with pytest.raises(DVPError, match="no column 'ion'"):
        maxlfq(pd.DataFrame({"protein": [], "sample": [], "intensity": []}))


def test_bruderer_spike_ins_follow_the_dilution_series(data_dir):
    """Real Spectronaut data (iq's example set): P12799 was spiked at 8 known levels, 3 replicates each."""
    d = pd.read_csv(data_dir / "bruderer2015_spikeins_long.tsv", sep="\t")
    d["ion"] = d["EG.ModifiedSequence"] + d["FG.Charge"].astype(str) + d["F.FrgIon"] + d["F.Charge"].astype(str)
    out = maxlfq(d, protein="PG.ProteinGroups", ion="ion", sample="R.Condition", intensity="F.PeakArea")
    assert out.shape == (12, 24)
    levels = out.loc["P12799"].groupby(np.arange(24) // 3).mean().to_numpy()
    truth = np.log2([200, 125.99, 79.37, 50, 4, 2.52, 1.59, 1])
    assert np.all(np.diff(levels) < 0)
    np.testing.assert_allclose(levels - levels[-1], truth - truth[-1], atol=0.5)  # ratio compression < 0.5 log2


def _report(tmp_path, suffix=".parquet", **changes):
    rows = []
    for run in ["r1", "r2"]:
        for prot, genes, precs in [("P1", "STAT1", ["AAAK2", "CCCK2"]), ("P2", "JAK1", ["DDDR3"])]:
            for prec in precs:
                rows.append(
                    {
                        "Run": run,
                        "Protein.Group": prot,
                        "Protein.Ids": prot,
                        "Genes": genes,
                        "Precursor.Id": prec,
                        "Q.Value": 0.001,
                        "PG.Q.Value": 0.001,
                        "Precursor.Normalised": 1000.0,
                        "Precursor.Quantity": 900.0,
                        "Decoy": 0,
                    }
                )
    table = pd.DataFrame(rows)
    for key, value in changes.items():
        table[key] = value
    path = tmp_path / f"report{suffix}"
    if suffix == ".parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, sep="\t", index=False)
    return path, table


@pytest.mark.parametrize("suffix", [".parquet", ".tsv"])
def test_read_diann_filters(tmp_path, suffix):
    path, table = _report(tmp_path, suffix)
    table.loc[0, "Q.Value"] = 0.05
    table.loc[1, "PG.Q.Value"] = 0.02
    table.loc[2, "Decoy"] = 1
    (table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, sep="\t", index=False))
    out = read_diann(path)
    assert len(out) == 3 and set(out.columns) >= {"run", "protein", "genes", "precursor", "intensity"}
    assert report_runs(path) == {"r1", "r2"}


def test_read_diann_errors(tmp_path):
    path, table = _report(tmp_path)
    with pytest.raises(DVPError, match="missing column"):
        table.drop(columns="PG.Q.Value").to_parquet(path)
        read_diann(path)
    with pytest.raises(DVPError, match="negative intensity"):
        _report(tmp_path, **{"Precursor.Normalised": -1.0})
        read_diann(path)
    with pytest.raises(DVPError, match="no precursor passes"):
        _report(tmp_path, **{"Q.Value": 0.5})
        read_diann(path)
    tsv, _ = _report(tmp_path, ".tsv", **{"Precursor.Normalised": "high"})
    with pytest.raises(DVPError, match="is not a number"):
        read_diann(tsv)
    _report(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DVPError, match="cannot read the header"):
        read_diann(path)
    other = tmp_path / "other.tsv"
    other.write_text("a\tb\n1\t2\n")
    with pytest.raises(DVPError, match="not a DIA-NN report"):
        read_diann(other)


def test_quant_qc_counts():
    pre = pd.DataFrame({"run": ["a", "a", "b"], "precursor": ["x", "y", "x"]})
    prot = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, np.nan]}, index=["P1", "P2"])
    qc = quant_qc(pre, prot)
    assert qc["precursors"].tolist() == [2, 1] and qc["proteins"].tolist() == [2, 1]
    assert qc["missing_fraction"].tolist() == [0.0, 0.5]


@pytest.mark.parametrize(
    "long, reference, columns",
    [
        ("iq/synthetic_long.tsv", "iq/synthetic_iq_maxlfq.tsv", {}),
        (
            "bruderer2015_spikeins_long.tsv",
            "iq/bruderer2015_iq_maxlfq.tsv",
            {"protein": "PG.ProteinGroups", "sample": "R.Condition", "intensity": "F.PeakArea"},
        ),
    ],
)
def test_maxlfq_equals_iq(data_dir, long, reference, columns):
    """iq 2.0.0's fast_MaxLFQ and maxLFQ values (tests/data/iq/make_references.R), to 1e-6 in log2."""
    d = pd.read_csv(data_dir / long, sep="\t")
    if "F.FrgIon" in d:
        d["ion"] = d["EG.ModifiedSequence"] + d["FG.Charge"].astype(str) + d["F.FrgIon"] + d["F.Charge"].astype(str)
    ours = maxlfq(d, **columns).stack(future_stack=True).rename("ours")
    ref = pd.read_csv(data_dir / reference, sep="\t", skipinitialspace=True).set_index(["protein", "sample"])
    joined = ref.join(ours.rename_axis(["protein", "sample"]), how="outer")
    assert len(joined) == len(ref)  # same proteins and samples
    for column in ("fast_maxlfq", "maxlfq"):
        np.testing.assert_array_equal(joined[column].isna(), joined["ours"].isna())  # same missing entries
        np.testing.assert_allclose(joined["ours"], joined[column], atol=1e-6, equal_nan=True)
    assert joined["ours"].isna().sum() > 0 or "bruderer" in long


def test_maxlfq_batches_agree_with_one_protein_at_a_time(data_dir, monkeypatch):
    import dvp_pipeline.quant as quant

    d = pd.read_csv(data_dir / "iq/synthetic_long.tsv", sep="\t")
    whole = maxlfq(d)
    np.testing.assert_allclose(maxlfq(d, threads=1), whole, atol=1e-10)
    monkeypatch.setattr(quant, "_CHUNK_ELEMENTS", 1)  # every protein its own batch,
    monkeypatch.setattr(quant, "_MEDIAN_ELEMENTS", 1)  # every pair of samples its own block
    np.testing.assert_allclose(maxlfq(d, threads=2), whole, atol=1e-10)


def test_top_n_and_sum():
    nan = np.nan
    d = _long({"a": [2.0**10, 2.0**11, nan], "b": [2.0**4, 2.0**5, 2.0**6], "c": [2.0**8, nan, 2.0**8]})
    top1 = top_n(d, n=1).loc["P"].to_numpy()
    np.testing.assert_allclose(top1, [10.0, 11.0, nan])  # iq's topN: the same ion in every sample
    np.testing.assert_allclose(top_n(d, n=2).loc["P"].to_numpy(), [9.0, 11.0, 8.0])  # mean log2 of a and c
    np.testing.assert_allclose(
        sum_ions(d).loc["P"].to_numpy(), np.log2([2**10 + 2**4 + 2**8, 2**11 + 2**5, 2**6 + 2**8])
    )


def test_normalize_median_within_groups():
    rng = np.random.default_rng(1)
    base = rng.normal(20, 2, 50)
    m = pd.DataFrame({"a": base, "b": base + 1.0, "c": base + 3.0, "d": base - 2.0})
    m.iloc[:5, 1] = np.nan
    out = normalize(m, method="median", groups=pd.Series({"a": "x", "b": "x", "c": "y", "d": "y"}))
    assert np.nanmax(np.abs((out["b"] - out["a"]).dropna())) < 1e-9
    assert np.nanmax(np.abs(out["c"] - out["d"])) < 1e-9
    assert abs((out["a"] - m["a"]).mean() - 0.5) < 1e-9  # both runs of x moved to their common reference
    assert normalize(m, method="none") is m
    with pytest.raises(DVPError, match="unknown method"):
        normalize(m, method="quantile")


@pytest.mark.directlfq
def test_quantify_methods_and_directlfq(data_dir):
    d = pd.read_csv(data_dir / "iq/synthetic_long.tsv", sep="\t").rename(columns={"ion": "precursor", "sample": "run"})
    full = d[d.groupby("protein")["run"].transform("nunique") == 16]
    for method in ("maxlfq", "topn", "sum"):
        assert quantify(d, method=method).shape == (150, 16)
    with pytest.raises(DVPError, match="unknown method"):
        quantify(d, method="ibaq")
    # needs the optional extra dvp-pipeline[directlfq], which the README test command installs
    dl = quantify(full, method="directlfq")
    ml = quantify(full, method="maxlfq")
    common = dl.index.intersection(ml.index)
    # directLFQ and MaxLFQ estimate the same profiles up to a per-protein offset
    centred = (dl.loc[common] - dl.loc[common].mean(axis=1).to_numpy()[:, None]) - (
        ml.loc[common] - ml.loc[common].mean(axis=1).to_numpy()[:, None]
    )
    assert np.nanmedian(np.abs(centred.to_numpy())) < 0.2


def test_quant_qc_cv_and_quartiles():
    pre = pd.DataFrame({"run": ["a", "b", "c"], "precursor": ["x", "x", "y"]})
    prot = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 2.0], "c": [3.0, np.nan]}, index=["P1", "P2"])
    qc = quant_qc(pre, prot, groups=pd.Series({"a": "g", "b": "g", "c": "h"}))
    cv_p1 = np.std([2.0, 4.0], ddof=1) / 3.0
    assert qc["median_cv"].tolist()[:2] == [round(np.median([cv_p1, 0.0]), 4)] * 2
    assert np.isnan(qc["median_cv"].iloc[2])  # a group of one run has no CV
    assert qc["q25_log2"].tolist() == [1.25, 2.0, 3.0]


def test_intensity_cv_figure_for_the_cohort_report():
    from dvp_pipeline.report import intensity_cv_figure

    rng = np.random.default_rng(2)
    runs = pd.DataFrame({"run": ["r1", "r2", "r3", "r4"], "sample": ["a", "b", "c", "d"], "cell_type": ["k"] * 4})
    samples = pd.DataFrame({"sample": ["a", "b", "c", "d"], "condition": ["T", "T", "C", "C"]})
    proteins = pd.DataFrame(rng.normal(20, 1, (30, 4)), columns=runs["run"])
    fig = intensity_cv_figure(proteins, runs, samples)
    ax_int, ax_cv = fig.axes
    assert [t.get_text() for t in ax_int.get_xticklabels()] == ["r1", "r2", "r3", "r4"]
    assert [t.get_text() for t in ax_cv.get_xticklabels()] == ["k\nC", "k\nT"]
