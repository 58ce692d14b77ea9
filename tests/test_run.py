"""``dvp run``: how a run stops and resumes, which config it runs, its help, and the cluster path's promises.

The interrupt tests start ``dvp run`` on a copy of the demo project, signal it while jobs run, and check that
it stops within a bound, that no process of the project outlives it, and that the next ``dvp run`` completes
without ``--unlock``.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "data" / "sample"
STOP_BOUND_S = 30  # Snakemake stops its jobs and cleans up in a few seconds; this is the promise, with room


def dvp(*args, cwd, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", *args], cwd=cwd, capture_output=True, text=True, **kwargs
    )


def demo_project(root: Path) -> Path:
    """The repository's config with the demo cohort (linked, not copied)."""
    shutil.copytree(ROOT / "config", root / "config")
    (root / "data").mkdir()
    (root / "data" / "sample").symlink_to(DEMO)
    return root.resolve()


def project_processes(project: Path) -> list[str]:
    """Live processes of a project: those naming its folder (Snakemake, dvp) or working in it (jobs)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(project) in cmdline or proc.info["cwd"] == str(project):
            found.append(f"{proc.pid}: {cmdline[:200]}")
    return found


def jobs_running(project: Path, rule: str) -> list[str]:
    """The samples of the ``dvp RULE`` jobs running in a project."""
    samples = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = proc.info["cmdline"] or []
        calls = any(Path(arg).name == "dvp" and then == rule for arg, then in zip(cmdline, cmdline[1:], strict=False))
        if calls and proc.info["cwd"] == str(project):
            samples += [cmdline[i + 1] for i, arg in enumerate(cmdline[:-1]) if arg == "--sample"]
    return sorted(set(samples))


def start_run(project: Path, log: Path) -> subprocess.Popen:
    """``dvp run`` as a terminal would start it: in a process group of its own, which Ctrl-C signals."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dvp_pipeline", "run", "--cores", "2"],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_jobs(project: Path, run: subprocess.Popen, rule: str = "segment", timeout: float = 120) -> list[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end and run.poll() is None:
        samples = jobs_running(project, rule)
        if samples:
            time.sleep(1)  # well inside the job
            return samples
        time.sleep(0.1)
    raise AssertionError(f"no {rule} job started within {timeout} s")


def wait_gone(project: Path, timeout: float) -> list[str]:
    end = time.monotonic() + timeout
    while (left := project_processes(project)) and time.monotonic() < end:
        time.sleep(0.2)
    return left


def locks(project: Path) -> list[str]:
    folder = project / ".snakemake" / "locks"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_resumes(project: Path, samples: list[str]) -> None:
    """The next ``dvp run`` completes the interrupted jobs, with no flag."""
    targets = [f"results/{s}/cells.parquet" for s in samples]
    done = dvp("run", "--cores", "2", "--", *targets, cwd=project, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for target in targets:
        assert (project / target).is_file()


@pytest.mark.parametrize(
    ("signum", "to_group", "status"),
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stop_signal_stops_snakemake_cleanly_and_the_next_run_resumes(tmp_path, signum, to_group, status):
    """Ctrl-C reaches the terminal's foreground group (dvp); SIGTERM, from ``kill`` or ``timeout``, dvp alone."""
    project = demo_project(tmp_path / "project")
    run = start_run(project, tmp_path / "run.log")
    try:
        samples = wait_for_jobs(project, run)
        start = time.monotonic()
        (os.killpg if to_group else os.kill)(run.pid, signum)
        returncode = run.wait(timeout=STOP_BOUND_S)
        stopped = time.monotonic() - start
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    log = (tmp_path / "run.log").read_text()
    print(f"{signal.Signals(signum).name}: dvp and Snakemake stopped in {stopped:.1f} s")
    assert returncode == status, log[-3000:]
    assert project_processes(project) == [], "processes outlived dvp run"
    assert locks(project) == [], "Snakemake's lock was left behind"
    assert not list((project / "results").rglob(".*.tmp*")), "temporary files left behind"
    assert_resumes(project, samples)


def test_sigkill_of_dvp_leaves_no_snakemake_behind(tmp_path):
    project = demo_project(tmp_path / "project")
    run = start_run(project, tmp_path / "run.log")
    try:
        samples = wait_for_jobs(project, run)
        start = time.monotonic()
        run.kill()
        run.wait()
        left = wait_gone(project, STOP_BOUND_S)
        stopped = time.monotonic() - start
    finally:
        for proc in psutil.process_iter(["cmdline", "cwd"]):  # the old behaviour's orphans
            if str(project) in " ".join(proc.info["cmdline"] or []) or proc.info["cwd"] == str(project):
                proc.kill()
    print(f"SIGKILL of dvp: Snakemake and its jobs stopped {stopped:.1f} s later")
    assert left == [], f"Snakemake outlived dvp: {left}"
    assert locks(project) == [], "Snakemake's lock was left behind"
    assert_resumes(project, samples)


# --- which config runs --------------------------------------------------------------------------------


def test_another_config_is_the_whole_config(tmp_path):
    """``--config other.yaml`` runs other.yaml alone, not merged over config/config.yaml."""
    project = demo_project(tmp_path)
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["report"].update(title="Title of config.yaml", fdr=0.01)
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    del config["report"]["fdr"]  # so the schema default (0.05) holds in other.yaml
    config["report"]["title"] = "Title of other.yaml"
    (project / "other.yaml").write_text(yaml.safe_dump(config))
    done = dvp("run", "--config", "other.yaml", "--dry-run", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = re.findall(r"^Shell command: (dvp report .*)$", done.stdout + done.stderr, flags=re.M)
    assert len(reports) == 7, "expected the report jobs of 6 samples and the cohort"
    for command in reports:
        assert '"title": "Title of other.yaml"' in command and '"fdr": 0.05' in command, command
        assert (project / re.search(r"--config (\S+)", command).group(1)).resolve() == project / "other.yaml"


def test_help_answers_resume_unlock_flags_config_and_slurm():
    text = dvp("run", "--help", cwd=ROOT).stdout
    assert "dvp run -- --unlock" in text  # how to unlock
    assert "To resume, run the same" in text and "reruns incomplete jobs" in text  # how to resume
    assert "go after --" in text and "-- --until quantify" in text  # Snakemake flags
    assert "--config other.yaml" in text and "that file alone is the config" in text
    assert "--profile profiles/slurm" in text and "slurm_account" in text


# --- the cluster path -----------------------------------------------------------------------------------


def cohort(root: Path, n_samples: int) -> Path:
    """A project of ``n_samples`` samples, all one demo image (linked), with a small report covering their runs."""
    (root / "config").mkdir(parents=True)
    (root / "data" / "images").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "config.yaml", root / "config" / "config.yaml")
    names = [f"S{i:03d}" for i in range(1, n_samples + 1)]
    for name in names:
        (root / "data" / "images" / f"{name}.ome.tif").symlink_to(DEMO / "images" / "TEN01.ome.tif")
    samples = pd.DataFrame(
        {
            "sample": names,
            "condition": ["TEN" if i % 2 else "MPR" for i in range(n_samples)],
            "image": [f"data/images/{name}.ome.tif" for name in names],
            "patient": [f"P{name}" for name in names],
            "batch": 1,
            "pixel_size_um": 0.5,
            "calibration": "32,32;608,32;32,608",
        }
    )
    samples.to_csv(root / "config" / "samples.tsv", sep="\t", index=False)
    demo_runs = pd.read_csv(ROOT / "config" / "runs.tsv", sep="\t").head(3)  # one sample's three cell types
    runs = pd.DataFrame(
        [
            {"run": f"{name}_{r.cell_type}", "sample": name, "cell_type": r.cell_type}
            for name in names
            for r in demo_runs.itertuples()
        ]
    )
    runs.to_csv(root / "config" / "runs.tsv", sep="\t", index=False)
    report = pd.read_parquet(DEMO / "diann_report.parquet")
    first = {run: report[report["Run"] == run].head(20) for run in demo_runs["run"]}
    pieces = [
        first[demo].assign(Run=run) for run, demo in zip(runs["run"], list(demo_runs["run"]) * n_samples, strict=True)
    ]
    path = root / "data" / "diann_report.parquet"
    pd.concat(pieces, ignore_index=True).to_parquet(path)
    text = (root / "config" / "config.yaml").read_text()
    (root / "config" / "config.yaml").write_text(text.replace("data/sample/diann_report.parquet", str(path)))
    return root


def test_200_samples_build_their_job_graph_in_under_30_s(tmp_path):
    project = cohort(tmp_path, 200)
    start = time.monotonic()
    done = dvp("run", "--dry-run", "--cores", "2", cwd=project, timeout=300)
    seconds = time.monotonic() - start
    print(f"dvp run --dry-run of 200 samples: {seconds:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout + done.stderr, flags=re.M))
    assert stats["segment"] == stats["sample_report"] == "200" and stats["cohort_report"] == "1", stats
    assert seconds < 30


def failing_dvp(tmp_path: Path) -> dict:
    """An environment whose ``dvp`` fails every job (the rules call ``dvp`` from PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dvp").write_text("#!/bin/sh\necho 'job failed on purpose' >&2\nexit 1\n")
    (bin_dir / "dvp").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def job_resources(log: str, rule: str) -> list[dict]:
    """The resources Snakemake printed for each attempt of a rule's job."""
    blocks = re.findall(rf"rule {rule}:\n(?:    .*\n)*?    resources: (.*)", log)
    return [dict(item.split("=", 1) for item in block.split(", ")) for block in blocks]


def test_a_retried_job_gets_twice_the_memory_and_time_and_its_failure_names_its_log(tmp_path):
    """The profile retries a failed job (retries: 1); each attempt doubles mem_mb and runtime. Run locally
    with the same retry here, the error message names the rule's log."""
    assert yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["retries"] >= 1
    project = demo_project(tmp_path / "project")
    target = "results/cohort/proteins.tsv"
    done = dvp("run", "--cores", "1", "--", "--retries", "1", target, cwd=project, env=failing_dvp(tmp_path))
    log = done.stdout + done.stderr
    assert done.returncode == 1, log[-3000:]
    first, second = job_resources(log, "quantify")
    print("quantify resources on attempts 1 and 2:", first, second)
    for name in ("mem_mb", "runtime"):
        assert int(second[name]) == 2 * int(first[name]), (name, first, second)
    assert re.search(r"Error in rule quantify:\n(?:    .*\n)*?    log: logs/quantify\S*\.log", log), log[-3000:]


SLURM_UP = shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.mark.slurm
def test_on_slurm_a_failed_job_is_resubmitted_with_twice_the_memory_and_time_and_names_its_logs(tmp_path):
    if not SLURM_UP:
        if os.environ.get("CI"):
            pytest.fail("CI must run the SLURM tests: start the cluster with .ci/slurm-up")
        pytest.skip("no SLURM cluster here (start one with .ci/slurm-up)")
    project = demo_project(tmp_path / "project")
    shutil.copytree(ROOT / "profiles", project / "profiles")
    done = dvp(
        "run", "--profile", "profiles/slurm", "--", "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
        "results/cohort/proteins.tsv",
        cwd=project, env=failing_dvp(tmp_path), timeout=600,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 1, log[-3000:]
    jobs = re.findall(r"submitted with SLURM jobid (\d+) \(log: .*/rule_quantify/", log)
    assert len(jobs) == 2, log[-3000:]
    asked = []
    for job in jobs:
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        asked.append(re.search(r"TimeLimit=(\S+)", shown).group(1) + " " + re.search(r"MinMemoryNode=(\d+)M", shown)[1])
    print("quantify on SLURM, attempts 1 and 2 (time limit, MB):", asked)
    (time_1, mem_1), (time_2, mem_2) = (a.split() for a in asked)
    assert int(mem_2) == 2 * int(mem_1) and time_1 == "01:00:00" and time_2 == "02:00:00", asked
    # the rule's log and SLURM's, in the error message of each attempt
    named = re.findall(
        r"Error in rule quantify:\n(?:    .*\n)*?    log: logs/quantify\.log, (\S+/rule_quantify/\d+\.log)", log
    )
    assert len(named) == 2 and all(Path(path).is_file() for path in named), log[-3000:]


def test_dvp_init_writes_the_slurm_profile_of_the_repository(tmp_path):
    done = dvp("init", str(tmp_path / "myproject"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    profile = (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    assert (tmp_path / "myproject" / "profiles" / "slurm" / "config.yaml").read_text() == profile
    shipped = resources.files("dvp_pipeline").joinpath("data", "profiles", "slurm", "config.yaml")
    assert shipped.read_text() == profile, "the shipped profile and profiles/slurm/config.yaml differ: copy one"


def test_the_slurm_profile_plans_the_demo(tmp_path):
    """Snakemake reads the profile (its resource expressions included) and plans every job with it."""
    project = demo_project(tmp_path / "project")
    shutil.copytree(ROOT / "profiles", project / "profiles")
    done = dvp("run", "--profile", "profiles/slurm", "--dry-run", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^total\s+\d+$", done.stdout + done.stderr, flags=re.M)
