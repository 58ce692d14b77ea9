"""The whole Snakemake workflow on the demo cohort, checked against the generator's planted truth.

One run (about a minute on 2 cores) is shared by the tests of this module.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from dvp_pipeline.pathways import camera
from dvp_pipeline.segmentation import match_labels

ROOT = Path(__file__).parent.parent

DEMO = ROOT / "data" / "sample"
SAMPLES = ["TEN01", "TEN02", "TEN03", "MPR01", "MPR02", "MPR03"]
JAK_STAT_IFN = [
    "HALLMARK_IL6_JAK_STAT3_SIGNALING",
    "HALLMARK_INTERFERON_GAMMA_RESPONSE",
    "HALLMARK_INTERFERON_ALPHA_RESPONSE",
]


def dvp(*args, cwd):
    return subprocess.run([sys.executable, "-m", "dvp_pipeline", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "config", root / "config")
    (root / "data").mkdir()
    (root / "data" / "sample").symlink_to(DEMO)
    return root


@pytest.fixture(scope="module")
def results(project):
    done = dvp("run", "--cores", "2", cwd=project)
    assert done.returncode == 0, done.stderr[-5000:]
    return project / "results"


def test_all_reports_written(results):
    for sample in SAMPLES:
        html = (results / "reports" / f"{sample}.html").read_text()
        assert sample in html and "<img" in html
    assert "TEN_vs_MPR" in (results / "reports" / "cohort.html").read_text()
    assert not list(results.rglob(".*.tmp*")), "temporary files left behind"


def test_segmentation_against_truth(results):
    f1 = {}
    for sample in SAMPLES:
        ours = tifffile.imread(results / sample / "labels.tif")
        truth = tifffile.imread(DEMO / "truth" / f"{sample}_labels.tif")
        f1[sample] = match_labels(ours, truth, iou_threshold=0.5)["f1"]
    print("segmentation F1 at IoU 0.5:", json.dumps(f1))
    assert min(f1.values()) >= 0.8


def test_cell_types_against_truth(results):
    accuracy = {}
    for sample in SAMPLES:
        ours = tifffile.imread(results / sample / "labels.tif")
        truth_labels = tifffile.imread(DEMO / "truth" / f"{sample}_labels.tif")
        truth = pd.read_csv(DEMO / "truth" / f"{sample}_cells.tsv", sep="\t").set_index("cell_id")["cell_type"]
        cells = pd.read_parquet(results / sample / "cells_classified.parquet").set_index("cell_id")["cell_type"]
        matches = match_labels(ours, truth_labels, iou_threshold=0.5)["matches"]
        called = cells.loc[matches["predicted"]].to_numpy()
        expected = truth.loc[matches["truth"]].to_numpy()
        accuracy[sample] = float((called == expected).mean())
    print("cell-type accuracy on matched cells:", json.dumps(accuracy))
    assert min(accuracy.values()) >= 0.85


def test_lmd_exports(results):
    for sample in SAMPLES:
        selection = pd.read_csv(results / sample / "lmd" / "selection.tsv", sep="\t")
        assert set(selection["cell_type"]) == {"keratinocyte", "cd8_t_cell", "macrophage"}
        shapes = pd.read_parquet(results / sample / "lmd" / "shapes.parquet")
        assert set(shapes["pool_id"]) == set(selection["pool_id"])
        xml = (results / sample / "lmd" / f"{sample}.xml").read_text()
        assert f"<ShapeCount>{len(shapes)}</ShapeCount>" in xml and "X_CalibrationPoint_3" in xml
        geojson = json.loads((results / sample / "lmd" / "shapes.geojson").read_text())
        assert len(geojson["features"]) == len(shapes) + 3  # and the three calibration points
    plate_map = pd.read_csv(results / "cohort" / "lmd" / "plate_map.csv")
    assert (plate_map["kind"] == "pool").sum() == len(SAMPLES) * 3
    assert not plate_map["well"].str.match(r"^(A|P)|\D(1|24)$").any()  # the 384 plate's unreachable rim


def test_label_and_cell_type_pyramids(results):
    """Every sample's labels and cell-type map as OME-Zarr pyramids: level k is labels[::2**k, ::2**k]."""
    import zarr

    for sample in SAMPLES:
        labels = tifffile.imread(results / sample / "labels.tif")
        cells = pd.read_parquet(results / sample / "cells_classified.parquet")
        pyramid = zarr.open_group(results / sample / "labels.ome.zarr", mode="r")
        types = zarr.open_group(results / sample / "cell_types.ome.zarr", mode="r")
        for k in range(4):
            np.testing.assert_array_equal(pyramid[str(k)][:], labels[:: 2**k, :: 2**k])
        names = {p["label-value"]: p["class"] for p in types.attrs["image-label"]["properties"]}
        assert list(names.values())[:3] == ["keratinocyte", "cd8_t_cell", "macrophage"]
        code_of = {name: value for value, name in names.items()}
        lookup = np.zeros(labels.max() + 1, dtype=int)
        lookup[cells["cell_id"]] = cells["cell_type"].map(code_of)
        np.testing.assert_array_equal(types["1"][:], lookup[labels[::2, ::2]])
        scale = pyramid.attrs["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"]
        assert scale == [1.0, 1.0]  # 2 x the 0.5 µm pixel


def test_quantification_matches_runs(results):
    proteins = pd.read_csv(results / "cohort" / "proteins.tsv", sep="\t", index_col="protein")
    runs = pd.read_csv(ROOT / "config" / "runs.tsv", sep="\t")
    assert list(proteins.columns[1:]) == list(runs["run"])
    assert len(proteins) > 1000


def test_planted_pathways_found_and_null_sets_not(results):
    table = pd.read_csv(results / "cohort" / "pathways" / "keratinocyte" / "TEN_vs_MPR.tsv", sep="\t").set_index("set")
    found = table.loc[JAK_STAT_IFN]
    print("keratinocyte TEN vs MPR camera:\n", found[["NGenes", "Direction", "PValue", "FDR"]].to_string())
    assert (found["FDR"] < 0.05).all() and (found["Direction"] == "Up").all()
    for cell_type in ["cd8_t_cell", "macrophage"]:
        other = pd.read_csv(results / "cohort" / "pathways" / cell_type / "TEN_vs_MPR.tsv", sep="\t").set_index("set")
        assert other.loc["HALLMARK_INTERFERON_GAMMA_RESPONSE", "FDR"] < 0.05


def test_sets_of_null_proteins_are_not_significant(results):
    truth = pd.read_csv(DEMO / "truth" / "proteins.tsv", sep="\t")
    null = truth.loc[~truth["planted"], "protein"].to_numpy()
    diff = pd.read_csv(results / "cohort" / "differential" / "keratinocyte" / "TEN_vs_MPR.tsv", sep="\t")
    proteins = pd.read_csv(results / "cohort" / "proteins.tsv", sep="\t", index_col="protein")
    runs = pd.read_csv(ROOT / "config" / "runs.tsv", sep="\t")
    kc = runs[runs["cell_type"] == "keratinocyte"]
    matrix = proteins[list(kc["run"])].dropna()
    groups = pd.Series(kc["sample"].str[:3].to_numpy(), index=kc["run"].to_numpy())
    rng = np.random.default_rng(1)
    measured_null = np.intersect1d(null, matrix.index)
    sets = {f"null{i}": list(rng.choice(measured_null, size=50, replace=False)) for i in range(40)}
    result = camera(matrix, groups, sets, contrast=("TEN", "MPR"))
    print("null sets: min FDR", result["FDR"].min(), "min P", result["PValue"].min())
    assert (result["FDR"] >= 0.05).all()
    # and null proteins are rarely called individually
    called = diff[diff["adj.P.Val"] < 0.05]["protein"]
    assert np.isin(called, null).mean() < 0.2


def test_rerun_after_config_change_redoes_only_affected_stages(project, results):
    config = (project / "config" / "config.yaml").read_text()
    (project / "config" / "config.yaml").write_text(config.replace("min_set_size: 5", "min_set_size: 6"))
    try:
        plan = dvp("run", "--cores", "1", "--dry-run", cwd=project)
        assert plan.returncode == 0, plan.stderr
        out = plan.stdout + plan.stderr
        assert "rule pathways" in out and "rule segment" not in out and "rule quantify" not in out
    finally:
        (project / "config" / "config.yaml").write_text(config)


def test_bad_config_fails_before_any_job(project, tmp_path):
    shutil.copytree(project / "config", tmp_path / "config")
    (tmp_path / "data").symlink_to(project / "data")
    path = tmp_path / "config" / "config.yaml"
    path.write_text(path.read_text().replace("threshold_method:", "treshold_method:"))
    done = dvp("run", "--cores", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown key 'treshold_method' (did you mean 'threshold_method'?)" in done.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / ".snakemake").exists()


def test_snakemake_lint_is_clean(project):
    """Clean but for one lint: every rule runs this package's own CLI in the environment it is installed
    in, so a per-rule conda env or container would name software that does not exist."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--lint",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(project),
        ],
        capture_output=True,
        text=True,
    )
    lints = re.findall(r"^\s+\* (.+):$", done.stdout + done.stderr, flags=re.M)
    assert lints, "snakemake --lint printed nothing to check"
    assert [t for t in lints if "conda environment or container" not in t] == [], lints


def test_a_failing_rerun_keeps_the_earlier_outputs(results, tmp_path):
    """Outputs are update()-flagged: Snakemake restores them when the job that would replace them fails."""
    project = tmp_path / "project"
    shutil.copytree(results.parent, project, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    tables = sorted((project / "results" / "cohort" / "differential").rglob("*.tsv"))
    before = {p: p.read_bytes() for p in tables}
    (project / "results" / "cohort" / "proteins.tsv").write_text("not a protein matrix\n")  # newer: reruns
    done = dvp("run", "--cores", "1", "--", "results/cohort/differential/methods.json", cwd=project)
    assert done.returncode != 0 and "Restored previous version" in done.stderr + done.stdout
    assert {p: p.read_bytes() for p in tables} == before
