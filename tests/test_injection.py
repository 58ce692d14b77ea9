"""No user string reaches a shell unquoted: every rule is scanned, and a hostile channel name runs for real.

Channel names come from OME metadata and the config, so they are user strings: ``DAPI; touch pwned #``
once created the file ``pwned`` through the segment rule, and a real name with a space ("Pan CK")
could not be used at all.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import yaml

from dvp_pipeline import simulate

ROOT = Path(__file__).parent.parent
RULES = ROOT / "src" / "dvp_pipeline" / "workflow" / "rules"
# Placeholders that are never user strings: Snakemake's own integers.
SAFE = {"threads"}


def _shell_commands(text: str) -> list[str]:
    """The shell strings of every rule of a .smk file (the quoted lines after each ``shell:``)."""
    commands, current = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "shell:":
            current = []
            commands.append(current)
        elif current is not None and stripped[:1] in "\"'f":
            current.append(stripped)
        else:
            current = None
    return [" ".join(c) for c in commands]


def test_every_rule_quotes_every_placeholder():
    files = sorted(RULES.glob("*.smk"))
    commands = [(f.name, c) for f in files for c in _shell_commands(f.read_text())]
    assert len(commands) >= 11, commands  # every rule, including the tiles-as-jobs and training variants
    unquoted = [
        (name, field)
        for name, command in commands
        for field in re.findall(r"{([^{}]+)}", command)
        if field not in SAFE and not field.endswith(":q")
    ]
    assert unquoted == [], f"shell placeholders without :q: {unquoted}"


def test_hostile_channel_names_stay_one_argument(tmp_path):
    names = ["DAPI; touch pwned #", "Pan CK", "CD8", "CD163"]
    tissue = simulate.simulate_tissue("TEN", seed=2, size=160)
    (tmp_path / "data").mkdir()
    simulate.write_ome_tiff(tissue.image, tmp_path / "data" / "S1.ome.tif", channels=names, pixel_size_um=0.5)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    demo_runs = pd.read_csv(ROOT / "config" / "runs.tsv", sep="\t")
    runs = demo_runs[demo_runs["run"] == "TEN01_keratinocyte"].assign(sample="S1")
    runs.to_csv(tmp_path / "config" / "runs.tsv", sep="\t", index=False)
    pd.DataFrame({"sample": ["S1"], "condition": ["TEN"], "image": ["data/S1.ome.tif"]}).to_csv(
        tmp_path / "config" / "samples.tsv", sep="\t", index=False
    )
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["channels"] = names
    config["nuclear_channel"] = names[0]
    config["quantify"]["report"] = str(ROOT / "data" / "sample" / "diann_report.parquet")
    config["classify"]["cell_types"] = [{"name": "keratinocyte", "positive": ["Pan CK"]}]
    config["differential"]["contrasts"] = [["TEN", "TEN2"]]
    config["select"]["calibration"] = {"image_corners": True}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    # one condition: only the imaging branch is asked for, so the contrast is never tested
    samples = pd.read_csv(tmp_path / "config" / "samples.tsv", sep="\t")
    pd.concat([samples, samples.assign(sample="S2", condition="TEN2")]).to_csv(
        tmp_path / "config" / "samples.tsv", sep="\t", index=False
    )
    done = subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", "run", "--cores", "1", "--", "results/S1/cells_classified.parquet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "pwned").exists()
    cells = pd.read_parquet(tmp_path / "results" / "S1" / "cells_classified.parquet")
    assert {"mean_DAPI; touch pwned #", "mean_Pan CK"} <= set(cells.columns)
    assert (cells["cell_type"] == "keratinocyte").any()
    labels = tifffile.imread(tmp_path / "results" / "S1" / "labels.tif")
    assert labels.max() == len(cells) and np.unique(labels).size > 20
