"""Tests for the synthetic data generators (dvp_pipeline.simulate) and ``dvp demo``."""

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage as ndi

from dvp_pipeline import simulate
from dvp_pipeline.errors import DVPError

REPORT_COLUMNS = {  # DIA-NN 2.x main report columns the demo promises
    "Run",
    "Run.Index",
    "Channel",
    "Precursor.Id",
    "Modified.Sequence",
    "Stripped.Sequence",
    "Precursor.Charge",
    "Precursor.Mz",
    "Decoy",
    "Proteotypic",
    "Protein.Group",
    "Protein.Ids",
    "Protein.Names",
    "Genes",
    "RT",
    "Q.Value",
    "PEP",
    "Global.Q.Value",
    "Lib.Q.Value",
    "PG.Q.Value",
    "Global.PG.Q.Value",
    "Lib.PG.Q.Value",
    "GG.Q.Value",
    "Precursor.Quantity",
    "Precursor.Normalised",
    "Ms1.Area",
    "Normalisation.Factor",
    "PG.MaxLFQ",
    "Genes.MaxLFQ",
}
N_PROTEINS = 600  # the planted sets and markers need about 330; the rest is filler


@pytest.fixture(scope="module")
def tissues():
    return {cond: simulate.simulate_tissue(cond, seed=3, size=320) for cond in simulate.CONDITIONS}


@pytest.fixture(scope="module")
def proteomics():
    return simulate.simulate_proteomics(simulate.demo_samples(), seed=5, n_proteins=N_PROTEINS)


def test_demo_samples():
    samples = simulate.demo_samples(3)
    assert samples["sample"].tolist() == ["TEN01", "TEN02", "TEN03", "MPR01", "MPR02", "MPR03"]
    assert samples["condition"].tolist() == ["TEN"] * 3 + ["MPR"] * 3
    assert (samples["pixel_size_um"] == 0.5).all()
    with pytest.raises(DVPError, match="samples_per_condition"):
        simulate.demo_samples(0)


def test_tissue_is_deterministic():
    a = simulate.simulate_tissue("MPR", seed=11, size=160)
    b = simulate.simulate_tissue("MPR", seed=11, size=160)
    c = simulate.simulate_tissue("MPR", seed=12, size=160)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.cells, b.cells)
    assert not np.array_equal(a.image, c.image)


def test_tissue_shapes_and_truth_table(tissues):
    for tissue in tissues.values():
        assert tissue.image.shape == (4, 320, 320) and tissue.image.dtype == np.uint16
        assert tissue.labels.shape == (320, 320) and tissue.labels.dtype == np.uint32
        cells = tissue.cells
        # Labels are 1..N, one row per label, with the label's own area and centroid.
        assert cells["cell_id"].tolist() == list(range(1, tissue.labels.max() + 1))
        assert set(np.unique(tissue.labels)) == {0, *cells["cell_id"]}
        ids = cells["cell_id"].to_numpy()
        ones = np.ones_like(tissue.labels)
        np.testing.assert_array_equal(cells["area"], ndi.sum_labels(ones, tissue.labels, ids))
        centroids = np.array(ndi.center_of_mass(ones, tissue.labels, ids))
        np.testing.assert_allclose(cells[["centroid_y", "centroid_x"]].to_numpy(), centroids, atol=1e-6)
        assert set(cells["cell_type"]) == {"keratinocyte", "cd8_t_cell", "macrophage", "unassigned"}
        # Keratinocytes live in the epidermis, stromal cells in the dermis.
        assert (cells.loc[cells.cell_type == "keratinocyte", "region"] == "epidermis").mean() > 0.95
        assert (cells.loc[cells.cell_type == "unassigned", "region"] == "dermis").mean() > 0.95


def test_cell_counts_and_composition(tissues):
    # 1,000 to 3,000 cells per 640 x 640 field, so a quarter of that on 320 x 320.
    for tissue in tissues.values():
        assert 250 <= len(tissue.cells) <= 750
    immune = {cond: t.cells[t.cells.cell_type.isin(["cd8_t_cell", "macrophage"])] for cond, t in tissues.items()}
    assert len(immune["TEN"]) > 1.2 * len(immune["MPR"])  # the denser infiltrate
    cd8 = {cond: (cells.cell_type == "cd8_t_cell").mean() for cond, cells in immune.items()}
    assert cd8["TEN"] > cd8["MPR"]


def test_markers_stain_their_cell_types(tissues):
    tissue = tissues["TEN"]
    ids = tissue.cells["cell_id"].to_numpy()
    kinds = tissue.cells["cell_type"].to_numpy()
    for channel, kind in ((1, "keratinocyte"), (2, "cd8_t_cell"), (3, "macrophage")):
        means = ndi.mean(tissue.image[channel].astype(float), tissue.labels, ids)
        own, other = np.median(means[kinds == kind]), np.median(means[kinds != kind])
        assert own > 2 * other, simulate.CHANNELS[channel]
    # DAPI is brighter over nuclei (inside cells) than between cells.
    assert tissue.image[0][tissue.labels > 0].mean() > 2 * tissue.image[0][tissue.labels == 0].mean()


def test_report_columns_and_identifiers(proteomics):
    report = proteomics.report
    assert REPORT_COLUMNS <= set(report.columns)
    runs = [f"{s}_{t}" for s in simulate.demo_samples()["sample"] for t in simulate.CELL_TYPES]
    assert sorted(report["Run"].unique()) == sorted(runs)
    assert (report["Decoy"] == 0).all()
    assert report["Protein.Group"].str.fullmatch(r"DVP\d{5}(;DVP\d{5})*").all()
    assert (report["Protein.Group"].str.contains(";") == report["Genes"].str.contains(";")).all()
    assert report["Protein.Group"].str.contains(";").any()  # a few two-protein groups
    charge = report["Precursor.Charge"].astype(str)
    assert (report["Precursor.Id"] == report["Modified.Sequence"] + charge).all()
    assert report["Stripped.Sequence"].str.fullmatch(r"[ACDEFGHILMNPQSTVWY]+[KR]").all()
    assert (report.groupby("Precursor.Id")["Protein.Group"].nunique() == 1).all()  # no shared precursors
    per_protein = report.groupby("Protein.Group")["Precursor.Id"].nunique()
    assert per_protein.between(1, 10).all()
    assert not report.duplicated(["Run", "Precursor.Id"]).any()
    np.testing.assert_allclose(
        report["Precursor.Normalised"], report["Precursor.Quantity"] * report["Normalisation.Factor"], rtol=1e-3
    )
    # Gene symbols come from the package's gene sets; all planted-set members are measurable.
    symbols = {g for genes in simulate.read_gmt_symbols().values() for g in genes}
    genes = {g for group in proteomics.proteins["genes"] for g in group.split(";")}
    assert genes <= symbols
    sets = simulate.read_gmt_symbols()
    for name in simulate.PLANTED_SETS:
        assert set(sets[name]) <= genes, name


def test_report_q_values_need_filtering(proteomics):
    report = proteomics.report
    precursor_fail = (report["Q.Value"] > 0.01).mean()
    protein_fail = (report["PG.Q.Value"] > 0.01).mean()
    assert 0.005 < precursor_fail < 0.1 and 0.002 < protein_fail < 0.1
    assert (report["Q.Value"] <= 0.001).mean() > 0.5
    assert (report["Global.Q.Value"] <= report["Q.Value"]).all()
    # Rows failing the filter are unreliable: their quantities sit near the detection limit.
    passing = report["Q.Value"] <= 0.01
    assert (
        np.median(np.log2(report.loc[~passing, "Precursor.Quantity"]))
        < np.median(np.log2(report.loc[passing, "Precursor.Quantity"])) - 2
    )


def test_missing_values_are_not_at_random(proteomics):
    report = proteomics.report[proteomics.report["Q.Value"] <= 0.01]
    keratinocyte = report[report["Run"].str.endswith("_keratinocyte")]
    stats = keratinocyte.groupby("Precursor.Id")["Precursor.Normalised"].agg(["size", "median"])
    low = stats["median"] < stats["median"].quantile(0.25)
    assert stats.loc[low, "size"].mean() < stats.loc[~low, "size"].mean() - 0.5
    assert (stats["size"] < 6).mean() > 0.05  # some values are missing at all


def test_planted_proteins_are_up_in_ten_keratinocytes(proteomics):
    report = proteomics.report
    report = report[(report["Q.Value"] <= 0.01) & (report["PG.Q.Value"] <= 0.01)]
    ker = report[report["Run"].str.endswith("_keratinocyte")].assign(
        log2=lambda d: np.log2(d["Precursor.Normalised"]), condition=lambda d: d["Run"].str[:3]
    )
    # Per precursor: mean TEN minus mean MPR (only precursors seen in at least two runs of each).
    means = ker.groupby(["Precursor.Id", "condition"])["log2"].agg(["mean", "size"]).unstack("condition")
    means = means[(means["size"] >= 2).all(axis=1)]
    diff = (means["mean"]["TEN"] - means["mean"]["MPR"]).rename("diff").reset_index()
    diff["protein"] = diff["Precursor.Id"].map(
        ker.drop_duplicates("Precursor.Id").set_index("Precursor.Id")["Protein.Group"]
    )
    per_protein = diff.groupby("protein")["diff"].median()
    truth = proteomics.proteins.set_index("protein").loc[per_protein.index]
    planted = truth["planted"].to_numpy()
    assert planted.sum() > 50
    assert per_protein[planted].median() > 0.8
    assert abs(per_protein[~planted].median()) < 0.2
    assert (per_protein[planted] > 0.5).mean() > 0.8 and (per_protein[~planted] > 0.5).mean() < 0.1
    assert np.corrcoef(per_protein[planted], truth.loc[planted, "log2fc_keratinocyte"])[0, 1] > 0.3
    effects = proteomics.proteins[[f"log2fc_{t}" for t in simulate.CELL_TYPES]].to_numpy()
    planted_all = proteomics.proteins["planted"].to_numpy()
    assert (effects[~planted_all] == 0).all()
    assert ((effects[planted_all] >= 1) & (effects[planted_all] <= 2)).all()


def test_proteomics_is_deterministic_and_validates():
    samples = simulate.demo_samples(1)
    a = simulate.simulate_proteomics(samples, seed=2, n_proteins=N_PROTEINS)
    b = simulate.simulate_proteomics(samples, seed=2, n_proteins=N_PROTEINS)
    pd.testing.assert_frame_equal(a.report, b.report)
    pd.testing.assert_frame_equal(a.proteins, b.proteins)
    with pytest.raises(DVPError, match="n_proteins"):
        simulate.simulate_proteomics(samples, n_proteins=50)
    with pytest.raises(DVPError, match="condition"):
        simulate.simulate_proteomics(samples.assign(condition="healthy"))


def _digests(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_write_demo_files_and_determinism(tmp_path):
    kwargs = dict(seed=4, samples_per_condition=1, image_size=128, n_proteins=N_PROTEINS)
    summary = simulate.write_demo(tmp_path / "a", **kwargs)
    simulate.write_demo(tmp_path / "b", **kwargs)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert sorted(a) == sorted(summary["files"])
    # Everything but the two files that name the folder is byte-identical.
    named = {"samples.tsv", "README.md"}
    assert {k: v for k, v in a.items() if k not in named} == {k: v for k, v in b.items() if k not in named}
    assert not any(p.name.startswith(".") for p in (tmp_path / "a").rglob("*"))  # no temporary files left

    folder = tmp_path / "a"
    with tifffile.TiffFile(folder / "images" / "TEN01.ome.tif") as tif:
        assert tif.is_ome
        series = tif.series[0]
        assert series.axes == "CYX" and series.shape == (4, 128, 128) and series.dtype == np.uint16
        names = re.findall(r'<Channel [^>]*Name="([^"]+)"', tif.ome_metadata)
        assert names == list(simulate.CHANNELS)
        assert 'PhysicalSizeX="0.5"' in tif.ome_metadata and 'PhysicalSizeY="0.5"' in tif.ome_metadata
    labels = tifffile.imread(folder / "truth" / "MPR01_labels.tif")
    cells = pd.read_csv(folder / "truth" / "MPR01_cells.tsv", sep="\t")
    assert labels.dtype == np.uint32
    assert set(np.unique(labels)) - {0} == set(cells["cell_id"])
    assert summary["cells"]["MPR01"] == {
        t: int((cells.cell_type == t).sum()) for t in (*simulate.CELL_TYPES, simulate.UNASSIGNED)
    }
    report = pd.read_parquet(folder / "diann_report.parquet")
    assert REPORT_COLUMNS <= set(report.columns)
    runs = pd.read_csv(folder / "runs.tsv", sep="\t")
    assert set(report["Run"]) == set(runs["run"])
    proteins = pd.read_csv(folder / "truth" / "proteins.tsv", sep="\t")
    assert set(report["Protein.Group"]) <= set(proteins["protein"])
    assert proteins["planted"].dtype == bool
    samples = pd.read_csv(folder / "samples.tsv", sep="\t")
    for sample, image in zip(samples["sample"], samples["image"], strict=True):
        assert (folder / "images" / f"{sample}.ome.tif").samefile(image)
    assert "--seed 4" in (folder / "README.md").read_text()


def test_cli_demo(tmp_path):
    from dvp_pipeline.cli import main

    rc = main(
        [
            "demo",
            str(tmp_path / "out"),
            "--seed",
            "1",
            "--samples-per-condition",
            "1",
            "--image-size",
            "96",
            "--proteins",
            str(N_PROTEINS),
        ]
    )
    assert rc == 0
    assert (tmp_path / "out" / "diann_report.parquet").is_file()
    assert tifffile.imread(tmp_path / "out" / "images" / "MPR01.ome.tif").shape == (4, 96, 96)
    assert main(["demo", str(tmp_path / "bad"), "--image-size", "10"]) == 2
