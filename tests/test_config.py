"""Config and sheet validation: every mistake is caught before a job runs, with file, row or key."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dvp_pipeline.config import load_config, load_project, section_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.schema_docs import config_reference, starter_config
from dvp_pipeline.simulate import write_ome_tiff

ROOT = Path(__file__).parent.parent


@pytest.fixture
def project(tmp_path):
    """A copy of the starter config with tiny stand-in images and report."""
    (tmp_path / "config").mkdir()
    for name in ["config.yaml", "samples.tsv", "runs.tsv"]:
        shutil.copy(ROOT / "config" / name, tmp_path / "config" / name)
    samples = pd.read_csv(tmp_path / "config" / "samples.tsv", sep="\t")
    tiny = np.zeros((4, 32, 32), np.uint16)
    for image in samples["image"]:
        (tmp_path / image).parent.mkdir(parents=True, exist_ok=True)
        write_ome_tiff(tiny, tmp_path / image, channels=["DAPI", "KRT14", "CD8", "CD163"], pixel_size_um=0.5)
    runs = pd.read_csv(tmp_path / "config" / "runs.tsv", sep="\t")
    columns = ["Q.Value", "PG.Q.Value", "Precursor.Normalised"]
    pd.DataFrame(
        {"Run": runs["run"], "Protein.Group": "P1", "Precursor.Id": "AK2", **dict.fromkeys(columns, 0.0)}
    ).to_parquet(tmp_path / "data" / "sample" / "diann_report.parquet")
    return tmp_path


def _edit_config(root, change):
    path = root / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))


def test_starter_config_is_valid_and_defaults_filled(project):
    p = load_project(project / "config" / "config.yaml", base=project)
    assert p.cell_types == ["keratinocyte", "cd8_t_cell", "macrophage"]
    assert p.options.differential.contrasts == [["TEN", "MPR"]]
    assert p.config["select"]["cell_types"] == p.cell_types
    assert p.config["segment"]["classical"]["cell_expansion_um"] == 3.0


def test_repository_config_is_the_starter_config():
    """The committed config is what the schema renders (defaults live in the schema alone)."""
    regenerate = "python -c \"from dvp_pipeline.schema_docs import starter_config; print(starter_config(), end='')\""
    assert (ROOT / "config" / "config.yaml").read_text() == starter_config(), f"regenerate it: {regenerate}"
    starter = ROOT / "src" / "dvp_pipeline" / "data" / "starter"
    for name in ["samples.tsv", "runs.tsv"]:
        assert (ROOT / "config" / name).read_text() == (starter / name).read_text(), name


def test_config_readme_lists_every_key_with_the_schema_default():
    text = (ROOT / "config" / "README.md").read_text()
    assert config_reference() in text, (
        "regenerate the key tables of config/README.md from schema_docs.config_reference()"
    )


def test_misspelled_key_is_named_with_a_suggestion(project):
    _edit_config(project, lambda c: c["classify"].update({"treshold_method": "otsu"}))
    with pytest.raises(
        DVPError, match=r"config.yaml: classify: unknown key 'treshold_method' \(did you mean 'threshold_method'\?\)"
    ):
        load_project(project / "config" / "config.yaml", base=project)


def test_wrong_value_is_named(project):
    _edit_config(project, lambda c: c["segment"].update({"method": "stardist"}))
    with pytest.raises(DVPError, match=r"segment.method: 'stardist' is not one of"):
        load_config(project / "config" / "config.yaml")


def test_duplicate_sample(project):
    path = project / "config" / "samples.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(DVPError, match=r"samples.tsv: sample 'TEN01' appears more than once \(rows 2, 8\)"):
        load_project(project / "config" / "config.yaml", base=project)


def test_missing_sample_id_and_missing_sample_in_runs(project):
    path = project / "config" / "samples.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["\t" + lines[2].split("\t", 1)[1]] + lines[3:]) + "\n")
    with pytest.raises(DVPError, match=r"samples.tsv, row 3: top level: 'sample' is a required property"):
        load_project(project / "config" / "config.yaml", base=project)
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # TEN02 gone, its runs remain
    with pytest.raises(
        DVPError, match=r"runs.tsv, row 5 \(run TEN02_keratinocyte\): sample 'TEN02' is not in the samples sheet"
    ):
        load_project(project / "config" / "config.yaml", base=project)


def test_run_absent_from_report(project):
    path = project / "config" / "runs.tsv"
    path.write_text(path.read_text() + "TEN01_fibroblast_typo\tTEN01\tkeratinocyte\n")
    with pytest.raises(DVPError, match=r"run\(s\) TEN01_fibroblast_typo not found in the report"):
        load_project(project / "config" / "config.yaml", base=project)


def test_cross_references(project):
    _edit_config(project, lambda c: c["differential"].update({"contrasts": [["TEN", "healthy"]]}))
    with pytest.raises(DVPError, match=r"differential.contrasts\[0\]: condition 'healthy' is not in the samples sheet"):
        load_project(project / "config" / "config.yaml", base=project)
    _edit_config(project, lambda c: c["differential"].update({"contrasts": [["TEN", "MPR"]]}))
    (project / "data" / "sample" / "images" / "MPR02.ome.tif").unlink()
    with pytest.raises(DVPError, match=r"row 6 \(sample MPR02\): image 'data/sample/images/MPR02.ome.tif' not found"):
        load_project(project / "config" / "config.yaml", base=project)


def test_unsafe_names_are_refused(project):
    path = project / "config" / "samples.tsv"
    path.write_text(path.read_text().replace("TEN01\t", "../TEN01\t", 1))
    with pytest.raises(DVPError, match=r"row 2: sample: '../TEN01' may contain only letters"):
        load_project(project / "config" / "config.yaml", base=project)


def test_section_options_fill_defaults_and_reject_typos():
    assert section_options({}, "classify", source="x")["threshold_method"] == "otsu"
    with pytest.raises(DVPError, match="x: select: unknown key 'max_cells'"):
        section_options({"max_cells": 3}, "select", source="x")


def _load(project):
    return load_project(project / "config" / "config.yaml", base=project)


def _rename_condition(project, old, new):
    path = project / "config" / "samples.tsv"
    path.write_text(path.read_text().replace(f"\t{old}\t", f"\t{new}\t"))


# Each of these once passed the dry run and failed (or went silently wrong) inside a job.
LATE_MISTAKES = {
    "nuclear channel not in the image": (
        lambda c: c.update({"nuclear_channel": "DAPl"}),
        r"nuclear_channel: channel 'DAPl' is not a channel of .*\(did you mean 'DAPI'\?\)",
    ),
    "configured channel absent from the OME names": (
        lambda c: c.update({"channels": ["DAPI", "KRT14", "CD8", "CD68"]}),
        r"row 2 \(sample TEN01\): .*channel\(s\) CD68 not in the image",
    ),
    "gating marker not a channel": (
        lambda c: c["classify"]["cell_types"].append({"name": "b_cell", "positive": ["CD20"]}),
        r"classify.cell_types\[3\] \(b_cell\).positive: channel 'CD20' is not a channel",
    ),
    "membrane channel not a channel": (
        lambda c: c["segment"]["classical"].update({"membrane_channel": "WGA"}),
        r"segment.classical.membrane_channel: channel 'WGA'",
    ),
    "seeds with threshold auto": (
        lambda c: c["segment"]["classical"].update({"seeds": "intensity"}),
        r"segment.classical.seeds: seeds 'intensity' applies to the single-level thresholds",
    ),
    "cell type named unassigned": (
        lambda c: c["classify"]["cell_types"].append({"name": "unassigned", "positive": ["CD8"]}),
        r"'unassigned' is the label of cells that match no rule",
    ),
    "excluded well off the plate": (
        lambda c: c["select"]["plate"].update({"excluded_wells": ["Q30"]}),
        r"select.plate.excluded_wells: .*'Q30'",
    ),
    "calibration points on one line": (
        lambda c: c["select"].update({"calibration": {"points": [[0, 0], [10, 10], [20, 20]]}}),
        None,  # the samples sheet's calibration column wins: no error
    ),
    "duplicate contrast": (
        lambda c: c["differential"].update({"contrasts": [["TEN", "MPR"], ["TEN", "MPR"]]}),
        r"differential.contrasts\[1\]: \['TEN', 'MPR'\] is listed twice",
    ),
    "confounded covariate": (
        lambda c: c["differential"].update({"covariates": ["patient"]}),
        r"'patient' is confounded with the groups in TEN - MPR in keratinocyte: 6 of 6 patient value\(s\)",
    ),
    "no test asked for": (
        lambda c: c["differential"].update({"contrasts": [], "interactions": []}),
        r"differential: no test asked for; give contrasts, interactions or both",
    ),
    "camerapr without a preset correlation": (
        lambda c: c["pathways"].update({"methods": ["camera", "camerapr"], "inter_gene_cor": None}),
        r"pathways.methods: camerapr needs a preset pathways.inter_gene_cor",
    ),
    "min_set_size above max_set_size": (
        lambda c: c["pathways"].update({"min_set_size": 600}),
        r"pathways.min_set_size \(600\) is larger than pathways.max_set_size \(500\)",
    ),
    "unknown gene-set collection": (
        lambda c: c["pathways"].update({"gene_sets": ["hallmarks"]}),
        r"gene sets 'hallmarks': neither a built-in collection",
    ),
    "unknown highlighted set": (
        lambda c: c["pathways"].update({"highlight": ["HALLMARK_IL6_JAK_STAT3_SIGNALLING"]}),
        r"pathways.highlight: gene set 'HALLMARK_IL6_JAK_STAT3_SIGNALLING' is in none .*did you mean "
        r"'HALLMARK_IL6_JAK_STAT3_SIGNALING'",
    ),
    "report lacks the quantity column": (
        lambda c: c["quantify"].update({"quantity": "Precursor.Quantity"}),
        r"diann_report.parquet: missing column\(s\) Precursor.Quantity expected in DIA-NN",
    ),
    "report lacks the match-between-runs columns": (
        lambda c: c["quantify"].update({"match_between_runs": True}),
        r"missing column\(s\) Lib.Q.Value, Lib.PG.Q.Value",
    ),
}


@pytest.mark.parametrize("mistake", sorted(LATE_MISTAKES))
def test_mistakes_that_used_to_fail_inside_a_job_are_caught_before(project, mistake):
    change, message = LATE_MISTAKES[mistake]
    _edit_config(project, change)
    if message is None:
        _load(project)
        return
    with pytest.raises(DVPError, match=message):
        _load(project)


def test_interactions_alone_pass_and_one_sample_per_group_is_warned(project, caplog):
    """contrasts: [] with an interaction is a valid design; a group of one sample gets a warning."""
    _edit_config(
        project,
        lambda c: c["differential"].update(
            {"contrasts": [], "interactions": [["TEN", "MPR", "keratinocyte", "macrophage"]]}
        ),
    )
    _load(project)
    runs = project / "config" / "runs.tsv"
    lines = runs.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    kept = [r for r in rows if r.split("\t")[1] in ("TEN01", "MPR01")]
    runs.write_text("\n".join([header, *kept]) + "\n")
    with caplog.at_level("WARNING"):
        _load(project)
    assert "have fewer than two samples" in caplog.text


def test_calibration_is_required_and_checked_before_any_job(project):
    """Without the samples sheet's calibration, select.calibration decides; nothing silently uses corners."""
    samples = project / "config" / "samples.tsv"
    sheet = pd.read_csv(samples, sep="\t", dtype=str)
    sheet.drop(columns="calibration").to_csv(samples, sep="\t", index=False)
    with pytest.raises(DVPError, match=r"samples.tsv, row 2: sample TEN01: calibration: no calibration points"):
        _load(project)
    _edit_config(project, lambda c: c["select"].update({"calibration": {"points": [[0, 0], [10, 10], [20, 20]]}}))
    with pytest.raises(DVPError, match="lie on one line"):
        _load(project)
    _edit_config(project, lambda c: c["select"].update({"calibration": {"image_corners": True}}))
    _load(project)
    sheet.assign(calibration=["0,0;1,1"] + list(sheet["calibration"][1:])).to_csv(samples, sep="\t", index=False)
    with pytest.raises(DVPError, match=r"row 2: .*expected exactly 3 finite"):
        _load(project)


def test_reserved_sample_names(project):
    path = project / "config" / "samples.tsv"
    for name in ("cohort", "reports"):
        original = path.read_text()
        path.write_text(original.replace("TEN01\t", f"{name}\t", 1))
        runs = project / "config" / "runs.tsv"
        runs_text = runs.read_text()
        runs.write_text(runs_text.replace("\tTEN01\t", f"\t{name}\t"))
        with pytest.raises(DVPError, match=rf"row 2: sample name '{name}' is reserved"):
            _load(project)
        path.write_text(original)
        runs.write_text(runs_text)


def test_contrasts_whose_output_names_collide(project):
    _rename_condition(project, "TEN", "P")
    path = project / "config" / "samples.tsv"
    lines = path.read_text().splitlines()
    # conditions P, Q_vs_P (rows of MPR) and P_vs_Q: P vs Q_vs_P and P_vs_Q vs P are both P_vs_Q_vs_P
    lines[4] = lines[4].replace("\tMPR\t", "\tQ_vs_P\t")
    lines[5] = lines[5].replace("\tMPR\t", "\tP_vs_Q\t")
    path.write_text("\n".join(lines) + "\n")
    _edit_config(project, lambda c: c["differential"].update({"contrasts": [["P", "Q_vs_P"], ["P_vs_Q", "P"]]}))
    with pytest.raises(DVPError, match=r"would both be written to keratinocyte/P_vs_Q_vs_P.tsv"):
        _load(project)


def test_duplicate_yaml_keys_are_an_error(project):
    path = project / "config" / "config.yaml"
    path.write_text(path.read_text() + "\nnuclear_channel: KRT14\n")
    with pytest.raises(DVPError, match=r"key 'nuclear_channel' appears twice \(line \d+ and line \d+\)"):
        _load(project)


def test_gene_set_files_with_one_stem_and_a_file_shadowing_a_builtin(project, monkeypatch):
    for folder in ("a", "b"):
        (project / folder).mkdir()
        (project / folder / "sets.gmt").write_text("SET1\tdesc\tSTAT1\tSTAT3\n")
    _edit_config(project, lambda c: c["pathways"].update({"gene_sets": ["hallmark", "a/sets.gmt", "b/sets.gmt"]}))
    with pytest.raises(DVPError, match=r"'b/sets.gmt' and 'a/sets.gmt' would both be reported as collection 'sets'"):
        _load(project)
    (project / "hallmark").write_text("SET1\tdesc\tSTAT1\n")
    _edit_config(project, lambda c: c["pathways"].update({"gene_sets": ["hallmark"]}))
    monkeypatch.chdir(project)
    with pytest.raises(DVPError, match=r"'hallmark': both a built-in collection and a file in this folder"):
        _load(project)


def test_the_dry_run_refuses_before_any_job_and_writes_nothing(project):
    import subprocess
    import sys

    _edit_config(project, lambda c: c["differential"].update({"covariates": ["patient"]}))
    done = subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", "run", "--dry-run"], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 2 and "'patient' is confounded" in done.stderr, done.stderr
    assert not (project / "results").exists() and not (project / ".snakemake").exists()


def test_a_users_gene_set_file_is_an_input_of_the_pathway_job(project):
    """Editing one's own GMT file reruns the pathway tests (it used to rerun nothing)."""
    import subprocess
    import sys

    (project / "my_sets.gmt").write_text("MY_SET\tdesc\tSTAT1\tSTAT3\tJAK1\tJAK2\tIRF1\n")
    _edit_config(project, lambda c: c["pathways"].update({"gene_sets": ["hallmark", "my_sets.gmt"]}))
    done = subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", "run", "--dry-run", "--", "results/cohort/pathway_scores.tsv"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    job = done.stdout[done.stdout.index("rule pathways:") :].split("\n\n")[0]
    assert "my_sets.gmt" in job.split("input:")[1].splitlines()[0]


def test_images_without_a_pixel_size_or_smaller_than_a_nucleus_are_refused_before_any_job(project):
    """Both once passed the dry run: the first failed in the segment job, the second in select."""
    import tifffile

    path = project / "data" / "sample" / "images" / "TEN02.ome.tif"
    tifffile.imwrite(path, np.zeros((4, 32, 32), np.uint16), photometric="minisblack")  # no OME, no pixel size
    sheet = project / "config" / "samples.tsv"
    sheet.write_text(sheet.read_text().replace("\t0.5\t", "\t\t"))
    with pytest.raises(DVPError, match=r"row 3 \(sample TEN02\): .*no pixel size in the image metadata"):
        _load(project)
    write_ome_tiff(np.zeros((4, 6, 6), np.uint16), path, channels=["DAPI", "KRT14", "CD8", "CD163"], pixel_size_um=0.5)
    with pytest.raises(DVPError, match=r"row 3 \(sample TEN02\): .*6 x 6 pixels .*smaller than one nucleus"):
        _load(project)
