"""The open path: synthetic mzML runs + mzTab identifications -> MS1 areas -> planted ratios back."""

import json

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.cli import main
from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import QuantifyOptions
from dvp_pipeline.quant import config_runs, maxlfq
from dvp_pipeline.readers.mzml import MS1Settings, quantify_runs, read_identifications, read_ms1
from dvp_pipeline.simulate import write_mzml_demo


@pytest.fixture(scope="module")
def mzml_demo(tmp_path_factory):
    return write_mzml_demo(tmp_path_factory.mktemp("mzml"))


def test_planted_ratios_are_recovered(mzml_demo):
    ions = quantify_runs(mzml_demo["spectra"], mzml_demo["identifications"])
    assert set(ions["run"]) == {"mzml_run1", "mzml_run2"}
    assert not ions["protein"].astype(str).str.startswith("DECOY_").any()
    out = maxlfq(ions, ion="precursor", sample="run")
    found = out["mzml_run2"] - out["mzml_run1"]
    truth = np.log2(pd.Series(mzml_demo["ratios"]))
    np.testing.assert_allclose(found.reindex(truth.index), truth, atol=0.25)


def test_fdr_filter_and_xic_window(mzml_demo):
    psms = read_identifications(mzml_demo["identifications"][0])
    assert len(psms) == 15 and psms["rt"].between(10, 30).all()  # all targets, no decoy
    loose = read_identifications(mzml_demo["identifications"][0], MS1Settings(fdr=1.0))
    assert len(loose) == 15  # decoys are removed even when the FDR lets them through
    times, mzs, _ = read_ms1(mzml_demo["spectra"][0])
    assert len(times) == len(mzs) == 1000 and np.all(np.diff(times) > 0)
    narrow = quantify_runs(mzml_demo["spectra"][:1], mzml_demo["identifications"][:1], MS1Settings(ppm=0.001))
    wide = quantify_runs(mzml_demo["spectra"][:1], mzml_demo["identifications"][:1])
    assert narrow["intensity"].sum() < wide["intensity"].sum()


def test_malformed_mzml_and_identifications(mzml_demo, tmp_path):
    bad = tmp_path / "mzml_run1.mzML"  # the run its identifications name, but not mzML
    bad.write_text("this is not XML at all")
    with pytest.raises(DVPError, match="mzml_run1.mzML: not a readable mzML file"):
        quantify_runs([bad], mzml_demo["identifications"][:1])
    with pytest.raises(DVPError, match="one identification file per mzML run"):
        quantify_runs(mzml_demo["spectra"], mzml_demo["identifications"][:1])
    with pytest.raises(DVPError, match="unknown identification format"):
        read_identifications(bad)
    bad_ids = tmp_path / "ids.mzid"
    bad_ids.write_text("<mzIdentML>truncated")
    with pytest.raises(DVPError, match="cannot read mzIdentML identifications"):
        read_identifications(bad_ids)


def test_quantify_stage_with_format_mzml(mzml_demo, tmp_path):
    (tmp_path / "samples.tsv").write_text("sample\tcondition\timage\ns1\tctrl\tx.tif\ns2\ttreated\ty.tif\n")
    (tmp_path / "runs.tsv").write_text(
        "run\tsample\tcell_type\nmzml_run1\ts1\tkeratinocyte\nmzml_run2\ts2\tkeratinocyte\n"
    )
    options = {"format": "mzml", "spectra": mzml_demo["spectra"], "identifications": mzml_demo["identifications"]}
    assert config_runs(QuantifyOptions.from_mapping(options)) == {"mzml_run1", "mzml_run2"}
    out = {k: tmp_path / f"{k}.{ext}" for k, ext in [("precursors", "parquet"), ("proteins", "tsv"), ("qc", "tsv")]}
    argv = ["quantify", "--samples", str(tmp_path / "samples.tsv"), "--runs", str(tmp_path / "runs.tsv")]
    argv += [f"--{k}={v}" for k, v in out.items()] + ["--options", json.dumps(options)]
    assert main(argv) == 0
    proteins = pd.read_csv(out["proteins"], sep="\t", index_col="protein")
    assert proteins.shape == (5, 3) and proteins.loc["P40763", "mzml_run2"] > proteins.loc["P40763", "mzml_run1"]
    qc = pd.read_csv(out["qc"], sep="\t")
    assert qc["precursors"].tolist() == [15, 15] and "median_cv" in qc
    assert main(argv[:-1] + [json.dumps({"format": "mzml"})]) == 2  # spectra and identifications required
