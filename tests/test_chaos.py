"""Chaos: the demo run killed at random moments and resumed ends with the results of an uninterrupted run.

Each kill is a SIGKILL of the whole process tree at once (dvp, Snakemake and every job), as a power cut or a
node's out-of-memory killer would do it: nothing gets to clean up. Each is followed by a plain ``dvp run``,
which must clear what the killed run left (Snakemake's lock, incomplete outputs, temporary files) by itself.
The result tables must then equal, byte for byte, those of a run that was never interrupted (the HTML reports
are left out: they embed the time they were made).
"""

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).parent.parent
SEED = 14
KILLS = 3
KILL_WINDOW_S = (2, 40)  # seconds after the start of a run; the whole demo takes about 50 s on 2 cores


def demo_project(root: Path) -> Path:
    shutil.copytree(ROOT / "config", root / "config")
    (root / "data").mkdir()
    (root / "data" / "sample").symlink_to(ROOT / "data" / "sample")
    return root


def start_run(project: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dvp_pipeline", "run", "--cores", "2"],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_tree(pid: int) -> int:
    """SIGKILL a process and all its descendants at once; return how many there were.

    They are frozen first, until no new one appears, so that none starts another between the listing and the kill.
    """
    frozen: list[psutil.Process] = []
    while True:
        try:
            tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        new = [proc for proc in tree if proc not in frozen]
        if not new:
            break
        for proc in new:
            try:
                proc.suspend()
            except psutil.NoSuchProcess:
                pass
        frozen += new
    for proc in frozen:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return len(frozen)


def result_files(results: Path) -> dict[str, bytes]:
    """Every file under results/ but the HTML reports, by path."""
    return {
        str(path.relative_to(results)): path.read_bytes()
        for path in sorted(results.rglob("*"))
        if path.is_file() and not (path.parent.name == "reports" and path.suffix == ".html")
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The results of an uninterrupted run."""
    project = demo_project(tmp_path_factory.mktemp("reference"))
    done = subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", "run", "--cores", "2"], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return project / "results"


def test_runs_killed_at_random_moments_resume_to_the_uninterrupted_results(tmp_path, reference):
    rng = random.Random(SEED)
    project = demo_project(tmp_path / "project")
    kills = []
    for attempt in range(KILLS):
        at = rng.uniform(*KILL_WINDOW_S)
        run = start_run(project, tmp_path / f"run{attempt}.log")
        try:
            run.wait(timeout=at)
            assert run.returncode == 0, (tmp_path / f"run{attempt}.log").read_text()[-5000:]
            break  # the workflow finished before this kill
        except subprocess.TimeoutExpired:
            kills.append((round(at, 1), kill_tree(run.pid)))
            run.wait()
    print(f"kills (seconds into the run, processes killed): {kills}")
    assert kills, "no kill landed while the workflow ran"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", "run", "--cores", "2"], cwd=project, capture_output=True, text=True
    )
    print(f"final run: {time.monotonic() - start:.0f} s")
    assert done.returncode == 0, done.stderr[-5000:]
    logs = [(tmp_path / f"run{i}.log").read_text() for i in range(1, len(kills))] + [done.stderr]
    unlocked = sum("removed the lock" in log for log in logs)
    print(f"runs after a kill that removed its stale lock: {unlocked} of {len(kills)}")
    ours, theirs = result_files(project / "results"), result_files(reference)
    assert sorted(ours) == sorted(theirs), "the resumed run's files differ from the uninterrupted run's"
    differ = [name for name in ours if ours[name] != theirs[name]]
    assert differ == [], f"files differ from the uninterrupted run's: {differ}"
    print(f"{len(ours)} result files identical to the uninterrupted run's")
    assert (project / "results" / "reports" / "cohort.html").is_file()
