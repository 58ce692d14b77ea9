"""Search-engine readers: format detection, filters and clear errors on real-shaped files."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.quant import maxlfq, report_runs
from dvp_pipeline.readers import Filters, detect_format, read_ions

FILES = {
    "diann18_report.tsv": "diann",
    "diann2_report.parquet": "diann",
    "alphadia_precursors.parquet": "alphadia",
    "spectronaut_fragments.tsv": "spectronaut",
    "maxquant_evidence.txt": "maxquant_evidence",
    "maxquant_proteinGroups.txt": "maxquant_proteingroups",
    "generic_long.csv": "generic",
}


@pytest.fixture
def readers_dir(data_dir):
    return data_dir / "readers"


@pytest.mark.parametrize("name", FILES)
def test_each_format_is_detected_filtered_and_quantified(readers_dir, name):
    path = readers_dir / name
    assert detect_format(path) == FILES[name]
    assert report_runs(path) == {"A", "B", "C"}
    ions = read_ions(path)
    assert list(ions.columns[:5]) == ["run", "protein", "genes", "precursor", "intensity"]
    proteins = set(ions["protein"].astype(str))
    # decoys and contaminants go; MaxQuant's 'Only identified by site' (P2 in the fixture) too
    expected = {"P1", "P3"} if name.startswith("maxquant_protein") else {"P1", "P2", "P3"}
    assert proteins == expected
    if name.startswith("diann") or name.startswith("alphadia"):  # the failing-q precursor is gone
        assert ((ions["run"] == "B") & ions["precursor"].astype(str).str.startswith("DDD")).sum() == 0
    if name.startswith("spectronaut"):  # fragments excluded from quantification are dropped
        assert not ((ions["protein"] == "P3") & (ions["intensity"] == 1.0)).any()
    # every protein doubles from run to run in the fixture
    out = maxlfq(ions, ion="precursor", sample="run")
    np.testing.assert_allclose(out["B"] - out["A"], 1.0, atol=1e-9)
    np.testing.assert_allclose(out["C"] - out["A"], 2.0, atol=1e-9)
    assert isinstance(ions["protein"].dtype, pd.CategoricalDtype)


def test_diann_versions_give_the_same_table(readers_dir):
    old = read_ions(readers_dir / "diann18_report.tsv")
    new = read_ions(readers_dir / "diann2_report.parquet")
    key = ["run", "precursor"]
    a = old.astype({"run": str, "precursor": str}).sort_values(key).reset_index(drop=True)
    b = new.astype({"run": str, "precursor": str}).sort_values(key).reset_index(drop=True)
    np.testing.assert_allclose(a["intensity"], b["intensity"])


def test_match_between_runs_and_quantity_options(readers_dir, tmp_path):
    table = pd.read_parquet(readers_dir / "diann2_report.parquet")
    table.loc[0, "Lib.PG.Q.Value"] = 0.5
    path = tmp_path / "report.parquet"
    table.to_parquet(path)
    assert len(read_ions(path, filters=Filters(match_between_runs=True))) == len(read_ions(path)) - 1
    raw = read_ions(path, filters=Filters(quantity="Precursor.Quantity"))
    np.testing.assert_allclose(raw["intensity"].sum() / read_ions(path)["intensity"].sum(), 1.1)
    kept = read_ions(path, filters=Filters(contaminant_pattern=""))
    assert "Cont_P02768" in set(kept["protein"])


def test_unknown_format_lists_the_supported_ones(tmp_path):
    other = tmp_path / "other.tsv"
    other.write_text("a\tb\n1\t2\n")
    with pytest.raises(DVPError, match="Supported: diann: DIA-NN .*spectronaut.*mzml"):
        read_ions(other)
    with pytest.raises(DVPError, match="unknown format 'skyline'"):
        read_ions(other, fmt="skyline")


def _diann(tmp_path, readers_dir, suffix=".parquet", **changes):
    table = pd.read_parquet(readers_dir / "diann2_report.parquet")
    for key, value in changes.items():
        table[key] = value
    path = tmp_path / f"report{suffix}"
    table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, sep="\t", index=False)
    return path, table


def test_malformed_inputs_give_one_clear_error(tmp_path, readers_dir):
    path, table = _diann(tmp_path, readers_dir)
    table.drop(columns="PG.Q.Value").to_parquet(path)
    with pytest.raises(DVPError, match=r"missing column\(s\) PG.Q.Value expected in DIA-NN"):
        read_ions(path)
    path, _ = _diann(tmp_path, readers_dir, **{"Precursor.Normalised": -1.0})
    with pytest.raises(DVPError, match="column Precursor.Normalised, row 1: negative intensity"):
        read_ions(path)
    path, _ = _diann(tmp_path, readers_dir, **{"Q.Value": 0.5})
    with pytest.raises(DVPError, match="no precursor passes the filters"):
        read_ions(path)
    tsv, table = _diann(tmp_path, readers_dir, ".tsv")
    table["Precursor.Normalised"] = table["Precursor.Normalised"].astype(object)
    table.loc[4, "Precursor.Normalised"] = "high"
    table.to_csv(tsv, sep="\t", index=False)
    with pytest.raises(DVPError, match="row 5: 'high' is not a number"):
        read_ions(tsv)
    path, _ = _diann(tmp_path, readers_dir)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DVPError, match="cannot read the header"):
        read_ions(path)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(DVPError, match="empty"):
        read_ions(empty)
    with pytest.raises(DVPError, match="not found"):
        read_ions(tmp_path / "absent.parquet")


def test_only_needed_columns_are_read(readers_dir, monkeypatch):
    seen = {}
    original = pq.read_table

    def spy(path, columns=None, **kw):
        seen["columns"] = columns
        return original(path, columns=columns, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    read_ions(readers_dir / "diann2_report.parquet")
    assert set(seen["columns"]) <= {"Run", "Protein.Group", "Precursor.Id", "Q.Value", "PG.Q.Value"} | {
        "Precursor.Normalised",
        "Genes",
        "Decoy",
    }
