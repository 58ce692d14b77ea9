"""Config and sheet validation: every mistake is caught before a job runs, with file, row or key."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dvp_pipeline.config import load_config, load_project, section_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.schema_docs import config_reference, starter_config

ROOT = Path(__file__).parent.parent


@pytest.fixture
def project(tmp_path):
    """A copy of the starter config with tiny stand-in images and report."""
    (tmp_path / "config").mkdir()
    for name in ["config.yaml", "samples.tsv", "runs.tsv"]:
        shutil.copy(ROOT / "config" / name, tmp_path / "config" / name)
    samples = pd.read_csv(tmp_path / "config" / "samples.tsv", sep="\t")
    for image in samples["image"]:
        (tmp_path / image).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / image).write_bytes(b"II*\0")
    runs = pd.read_csv(tmp_path / "config" / "runs.tsv", sep="\t")
    pd.DataFrame({"Run": runs["run"], "Protein.Group": "P1", "Precursor.Id": "AK2"}).to_parquet(
        tmp_path / "data" / "sample" / "diann_report.parquet"
    )
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
    path.write_text(path.read_text() + "TEN01_fibroblast_typo\tTEN01\tkeratinocyte\tD1\n")
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
