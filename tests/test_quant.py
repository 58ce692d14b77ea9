"""Quantification: MaxLFQ (iq's definition) and the DIA-NN reader."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.quant import maxlfq, quant_qc, read_diann, report_runs


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
    with pytest.raises(DVPError, match="cannot read"):
        read_diann(path)
    other = tmp_path / "other.tsv"
    other.write_text("a\tb\n1\t2\n")
    with pytest.raises(DVPError, match="supported"):
        read_diann(other)


def test_quant_qc_counts():
    pre = pd.DataFrame({"run": ["a", "a", "b"], "precursor": ["x", "y", "x"]})
    prot = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, np.nan]}, index=["P1", "P2"])
    qc = quant_qc(pre, prot)
    assert qc["precursors"].tolist() == [2, 1] and qc["proteins"].tolist() == [2, 1]
    assert qc["missing_fraction"].tolist() == [0.0, 0.5]
