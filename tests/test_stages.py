"""Every stage through its library function, on small inputs, without the CLI or Snakemake.

These are the functions the ``dvp`` subcommands call (each subcommand only parses, calls one of them
and writes), so what is tested here is the production path: segment a slide, classify its cells,
select them for laser microdissection, quantify a search-engine report, run the differential tests,
score pathways and build the cohort report, chained on one simulated sample and a simulated cohort.
"""

import json

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline import simulate
from dvp_pipeline.classify import classify_sample
from dvp_pipeline.differential import differential_analysis, differential_tests, prepare_test
from dvp_pipeline.images import open_image
from dvp_pipeline.leica import orientation_matrix, read_lmd_xml
from dvp_pipeline.options import (
    ClassifyOptions,
    DifferentialOptions,
    PathwaysOptions,
    QuantifyOptions,
    ReportOptions,
    SegmentOptions,
    SelectOptions,
)
from dvp_pipeline.pathways import pathway_analysis
from dvp_pipeline.quant import quantify_cohort
from dvp_pipeline.report import cohort_report
from dvp_pipeline.segmentation import match_labels
from dvp_pipeline.selection import lmd_collection, select_sample
from dvp_pipeline.slide import plan_slide, save_tile, segment_plan_tile, segment_slide
from dvp_pipeline.stats import moderated_ttest

CHANNELS = list(simulate.CHANNELS)


@pytest.fixture(scope="module")
def tissue():
    return simulate.simulate_tissue("TEN", seed=4, size=384)


@pytest.fixture(scope="module")
def segmented(tissue, tmp_path_factory):
    path = tmp_path_factory.mktemp("slide") / "TEN01.ome.tif"
    simulate.write_ome_tiff(tissue.image, path, channels=CHANNELS, pixel_size_um=0.5)
    options = SegmentOptions.from_mapping({"tile_size": 256})
    with open_image(path) as image:
        plan = plan_slide(image, options, nuclear_channel="DAPI", pixel_size_um=0.5)
        return segment_slide(image, plan, sample="TEN01", pixel_size_um=0.5, neighbourhood_radius_um=30)


@pytest.fixture(scope="module")
def classified(segmented):
    return classify_sample(segmented.cells, ClassifyOptions.from_mapping({}))


def test_segment_slide_in_memory(tissue, segmented):
    assert segmented.n_cells == len(segmented.cells) == int(segmented.labels.max())
    assert segmented.cells["cell_id"].tolist() == list(range(1, segmented.n_cells + 1))
    assert {"neighbours", "mean_DAPI", "nucleus_mean_KRT14", "area_um2"} <= set(segmented.cells.columns)
    assert set(np.unique(segmented.nuclei)) <= set(np.unique(segmented.labels))
    assert match_labels(segmented.labels, tissue.labels)["f1"] > 0.9


def test_classify_sample(tissue, segmented, classified):
    cells, thresholds = classified
    assert set(cells["cell_type"]) <= {"keratinocyte", "cd8_t_cell", "macrophage", "unassigned"}
    assert set(thresholds["marker"]) == {"KRT14", "CD8", "CD163"}
    # the planted type of the true cell under each centroid
    y = cells["centroid_y"].round().astype(int).clip(0, 383)
    x = cells["centroid_x"].round().astype(int).clip(0, 383)
    truth = tissue.cells.set_index("cell_id")["cell_type"].reindex(tissue.labels[y, x])
    assert (truth.to_numpy() == cells["cell_type"].to_numpy()).mean() > 0.85


def test_select_sample(segmented, classified):
    cells, _ = classified
    options = SelectOptions.from_mapping(
        {"cell_types": ["keratinocyte", "cd8_t_cell"], "max_cells_per_pool": 20, "calibration": {"image_corners": True}}
    )
    calibration = np.array([[0.0, 0.0], [384.0, 0.0], [0.0, 384.0]])
    chosen = select_sample(cells, segmented.labels, options, sample="TEN01", calibration=calibration, pixel_size_um=0.5)
    table = chosen.cells
    assert 0 < len(table) <= 40 and set(table["cell_type"]) <= {"keratinocyte", "cd8_t_cell"}
    assert table.groupby("cell_type")["pool_id"].nunique().eq(1).all()
    plate_map = pd.DataFrame({"plate": "plate1", "well": ["B2", "B3"], "kind": "pool",
                              "pool_id": list(chosen.pools["pool_id"]), "sample": "TEN01"})  # fmt: skip
    collection = lmd_collection(
        chosen.shapes, plate_map, sample="TEN01", calibration=calibration, orientation=orientation_matrix()
    )
    back = read_lmd_xml(collection.to_xml())
    assert len(back.shapes) == len(chosen.shapes) and {s.well for s in back.shapes} == {"B2", "B3"}
    assert len(chosen.geojson["features"]) == len(chosen.shapes) + 3


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    samples = simulate.demo_samples(3)
    proteomics = simulate.simulate_proteomics(samples, seed=5, n_proteins=600)
    report = tmp_path_factory.mktemp("ms") / "report.parquet"
    simulate.write_report(proteomics.report, report)
    runs = pd.DataFrame(
        [(f"{s}_{t}", s, t) for s in samples["sample"] for t in simulate.CELL_TYPES],
        columns=["run", "sample", "cell_type"],
    )
    result = quantify_cohort(samples, runs, QuantifyOptions.from_mapping({"report": str(report)}))
    proteins = result.proteins.set_index("protein")
    return samples, runs, proteomics, result, proteins.drop(columns="genes"), proteins["genes"]


def test_quantify_cohort(cohort):
    _, runs, proteomics, result, matrix, _ = cohort
    assert list(matrix.columns) == list(runs["run"])
    assert len(matrix) > 500 and result.qc["run"].tolist() == list(runs["run"])
    assert {"run", "protein", "precursor", "intensity"} <= set(result.precursors.columns)


def test_differential_analysis_finds_the_planted_proteins(cohort):
    samples, runs, proteomics, _, matrix, genes = cohort
    options = DifferentialOptions.from_mapping({"contrasts": [["TEN", "MPR"]]})
    results = differential_analysis(matrix, samples, runs, options, genes=genes)
    assert [t.key for t in results.tests] == [f"{t}/TEN_vs_MPR" for t in simulate.CELL_TYPES]
    table = results.tables["keratinocyte/TEN_vs_MPR"].set_index("protein")
    truth = proteomics.proteins.set_index("protein")["log2fc_keratinocyte"].reindex(table.index)
    # a quarter of these 600 proteins are planted up, so median centring pulls the rest down a little:
    # the planted truth is checked on the proteins called up
    found = table.index[(table["adj.P.Val"] < 0.05) & (table["logFC"] > 0)]
    assert len(found) > 50 and (truth[found] > 0).mean() > 0.95
    assert results.methods["keratinocyte/TEN_vs_MPR"]["design"] == "~0 + group"


def _with_replicate_pools(cohort, n=3, correlation_sd=0.3, seed=8):
    """Each run split into ``n`` replicate pools: the run's values plus a shared pool effect and noise."""
    samples, runs, _, _, matrix, genes = cohort
    rng = np.random.default_rng(seed)
    columns, rows = {}, []
    for run in runs.itertuples(index=False):
        for k in range(n):
            name = f"{run.run}_pool{k + 1}"
            columns[name] = matrix[run.run] + rng.normal(0, correlation_sd, len(matrix))
            rows.append((name, run.sample, run.cell_type))
    return samples, pd.DataFrame(rows, columns=["run", "sample", "cell_type"]), pd.DataFrame(columns), genes


@pytest.mark.parametrize("replicates", ["block", "average"])
def test_replicate_pools_are_not_counted_as_samples(cohort, replicates):
    """Three LMD pools per sample and cell type: a block (duplicateCorrelation) or averaged, never
    independent samples (tests/test_stats.py shows that calibration); both find the planted proteins."""
    samples, runs, matrix, genes = _with_replicate_pools(cohort)
    options = DifferentialOptions.from_mapping({"contrasts": [["TEN", "MPR"]], "replicates": replicates})
    results = differential_analysis(matrix, samples, runs, options, genes=genes)
    record = results.methods["keratinocyte/TEN_vs_MPR"]
    table = results.tables["keratinocyte/TEN_vs_MPR"].set_index("protein")
    keratinocytes = runs[runs["cell_type"] == "keratinocyte"]
    if replicates == "block":
        assert "consensus correlation" in record["replicates"]
        test = next(t for t in differential_tests(samples, runs, options) if t.key == "keratinocyte/TEN_vs_MPR")
        prepared = prepare_test(matrix, samples, runs, test, options)
        pools = keratinocytes.set_index("run")["sample"]  # the block: each sample's pools
        direct = moderated_ttest(prepared.matrix, test.groups, contrast=("TEN", "MPR"), block=pools)
        np.testing.assert_allclose(table["t"], direct.loc[table.index, "t"], rtol=1e-10)
    else:
        assert record["replicates"].startswith("18 runs of 6 replicate pools averaged")
        assert record["groups"] == {"MPR": 3, "TEN": 3}
    _, _, proteomics, _, _, _ = cohort
    truth = proteomics.proteins.set_index("protein")["log2fc_keratinocyte"].reindex(table.index)
    found = table.index[(table["adj.P.Val"] < 0.05) & (table["logFC"] > 0)]
    assert len(found) > 30 and (truth[found] > 0).mean() > 0.95


@pytest.fixture(scope="module")
def pathways(cohort):
    samples, runs, _, _, matrix, genes = cohort
    differential = DifferentialOptions.from_mapping({"contrasts": [["TEN", "MPR"]]})
    options = PathwaysOptions.from_mapping({"gene_sets": ["hallmark"], "methods": ["camera", "ora"]})
    return pathway_analysis(matrix, genes, samples, runs, options, differential)


def test_pathway_analysis_finds_the_planted_sets(pathways):
    assert set(pathways.tables) == {"camera", "ora"}
    camera = pathways.tables["camera"]["keratinocyte/TEN_vs_MPR"].set_index("set")
    for name in simulate.PLANTED_SETS:
        assert camera.loc[name, "FDR"] < 0.05 and camera.loc[name, "Direction"] == "Up", name
    assert pathways.scores.shape[1] == 2 + 18  # set, collection, one column per run


def test_pathway_tests_and_scores_take_the_covariates(cohort):
    """With differential.covariates, camera gets the full design and cameraPR, ORA and GSEA the adjusted
    moderated t, so their tables change (they used to stay byte-identical); scores may drop the effects."""
    samples, runs, _, _, matrix, genes = cohort
    samples = samples.assign(batch=["b1", "b2", "b1", "b2", "b1", "b2"][: len(samples)])
    shifted = matrix.copy()
    in_b2 = runs["sample"].map(samples.set_index("sample")["batch"]).eq("b2").to_numpy()
    shifted.loc[:, in_b2] += np.random.default_rng(3).normal(0, 1, (len(matrix), 1))  # a batch effect per protein
    options = {"gene_sets": ["hallmark"], "methods": ["camera", "camerapr"]}
    tables = {}
    for covariates in ([], ["batch"]):
        differential = DifferentialOptions.from_mapping({"contrasts": [["TEN", "MPR"]], "covariates": covariates})
        pathway_options = PathwaysOptions.from_mapping({**options, "scores_remove_covariates": bool(covariates)})
        tables[bool(covariates)] = pathway_analysis(shifted, genes, samples, runs, pathway_options, differential)
    for method in ("camera", "camerapr"):
        plain = tables[False].tables[method]["keratinocyte/TEN_vs_MPR"].set_index("set")["PValue"]
        adjusted = tables[True].tables[method]["keratinocyte/TEN_vs_MPR"].set_index("set")
        assert not np.allclose(plain.reindex(adjusted.index), adjusted["PValue"]), method
        for name in simulate.PLANTED_SETS:  # the batch removed, the planted sets come out again
            assert adjusted.loc[name, "FDR"] < 0.05 and adjusted.loc[name, "Direction"] == "Up", (method, name)
    assert not tables[False].scores.equals(tables[True].scores)


def test_cohort_report_from_the_stage_results(cohort, pathways):
    samples, runs, _, result, matrix, genes = cohort
    differential = differential_analysis(
        matrix, samples, runs, DifferentialOptions.from_mapping({"contrasts": [["TEN", "MPR"]]}), genes=genes
    )
    html = cohort_report(
        samples=samples,
        runs=runs,
        quant_qc=result.qc,
        proteins=result.proteins,
        differential={tuple(k.split("/")): t for k, t in differential.tables.items()},
        pathways={tuple(k.split("/")): t for k, t in pathways.tables["camera"].items()},
        pathway_scores=pathways.scores,
        highlight=list(simulate.PLANTED_SETS),
        options=ReportOptions.from_mapping({"title": "stage test"}),
    )
    assert html.startswith("<!DOCTYPE html>") and "stage test" in html
    assert "HALLMARK_INTERFERON_GAMMA_RESPONSE" in html


def test_a_cell_type_without_cells_is_warned_about(segmented, caplog):
    rules = [
        {"name": "keratinocyte", "positive": ["KRT14"]},
        {"name": "ghost", "positive": ["CD8", "CD163", "KRT14"]},  # no cell is positive for all three
    ]
    cells, _ = classify_sample(segmented.cells, ClassifyOptions.from_mapping({"cell_types": rules}))
    assert "ghost" not in set(cells["cell_type"])
    assert any("no cell is typed ghost" in r.getMessage() for r in caplog.records)
    options = SelectOptions.from_mapping({"cell_types": ["keratinocyte", "ghost"], "max_cells_per_pool": 5})
    corners = np.array([[0.0, 0.0], [384.0, 0.0], [0.0, 384.0]])
    select_sample(cells, segmented.labels, options, sample="TEN01", calibration=corners, pixel_size_um=0.5)
    assert any("pool TEN01_ghost_1 reached 0" in r.getMessage() for r in caplog.records)


def test_segment_qc_is_small_on_a_good_segmentation_and_the_same_from_tile_jobs(tissue, segmented, tmp_path):
    """The truth-free QC comes with every segmentation, and tile jobs gathered give the same numbers."""
    qc = segmented.qc
    assert qc["n_cells"] == segmented.n_cells
    assert qc["suspect_merge_fraction"] < 0.08 and qc["missed_fraction"] < 0.08
    blobs = np.array(qc["missed_blob_yx"], dtype=int).reshape(-1, 2)
    assert len(blobs) == qc["missed_blobs"] and (segmented.nuclei[blobs[:, 0], blobs[:, 1]] == 0).all()
    path = tmp_path / "TEN01.ome.tif"
    simulate.write_ome_tiff(tissue.image, path, channels=CHANNELS, pixel_size_um=0.5)
    with open_image(path) as image:
        plan = plan_slide(
            image, SegmentOptions.from_mapping({"tile_size": 256}), nuclear_channel="DAPI", pixel_size_um=0.5
        )
        saved = []
        for index in range(len(plan["tiles"])):
            tile, cells, nuclei = segment_plan_tile(image, plan, index)
            saved.append(tmp_path / f"{index}.npz")
            save_tile(saved[-1], tile, cells, nuclei)
        segment_slide(
            image,
            plan,
            sample="TEN01",
            pixel_size_um=0.5,
            neighbourhood_radius_um=30,
            labels=tmp_path / "labels.tif",
            cells=tmp_path / "cells.parquet",
            tiles=saved,
            qc=tmp_path / "segment_qc.json",
        )
    assert json.loads((tmp_path / "segment_qc.json").read_text()) == qc
