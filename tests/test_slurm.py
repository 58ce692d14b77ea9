"""The cluster path: the workflow's jobs submitted to a real SLURM cluster through Snakemake's executor.

CI starts a one-node cluster (.ci/slurm-up) and sets CI=true; there a missing cluster fails the test.
On a machine without SLURM the test is skipped, saying why.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parent.parent


SLURM_UP = shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.mark.slurm
def test_jobs_run_through_slurm(tmp_path):
    if not SLURM_UP:
        if os.environ.get("CI"):
            pytest.fail("CI must run the SLURM test: start the cluster with .ci/slurm-up")
        pytest.skip("no SLURM cluster here (start one with .ci/slurm-up)")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample").symlink_to(ROOT / "data" / "sample")
    targets = ["results/cohort/proteins.tsv", "results/TEN01/cells_classified.parquet"]
    done = subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", "run", "--profile", str(ROOT / "profiles" / "slurm"), "--",
         "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
         "--seconds-between-status-checks", "2", "--jobs", "4", *targets],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    submitted = re.findall(r"has been submitted with SLURM jobid \d+ \(log: .*/rule_(\w+)/", log)
    assert sorted(submitted) == ["classify", "quantify", "segment"], log[-3000:]
    proteins = pd.read_csv(tmp_path / targets[0], sep="\t", index_col="protein")
    assert proteins.shape[1] == 1 + 18 and len(proteins) > 1000
    assert len(pd.read_parquet(tmp_path / targets[1])) > 1000
