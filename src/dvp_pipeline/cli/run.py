"""``dvp run``: validate a project's config, then run the Snakemake workflow for it and stop it cleanly.

The entry point of every run of the pipeline: the config and sheets are checked
(:func:`dvp_pipeline.config.load_project`), and Snakemake runs the workflow shipped in
``dvp_pipeline/workflow`` under :mod:`dvp_pipeline.runner`, which forwards stop signals, never
leaves Snakemake running without dvp, and clears what an interrupted run left behind.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

from dvp_pipeline.config import load_project
from dvp_pipeline.errors import DVPError
from dvp_pipeline.runner import STOP_SIGNALS, clear_interrupted_run, run_snakemake

__all__ = ["add_parser", "run", "snakefile"]

log = logging.getLogger("dvp.run")


DESCRIPTION = """\
Validate the config and its sheets (every problem is reported before any job starts), then run the
workflow with Snakemake. Outputs go to results/ (reports in results/reports/), job logs to logs/,
timings to benchmarks/. Re-running after a config change redoes only the stages whose options or
inputs changed."""

EPILOG = """\
examples:
  dvp run --cores 2                          laptop, all stages
  dvp run --dry-run                          show what would run
  dvp run --config other.yaml --cores 2      another config: that file alone is the config
  dvp run --profile profiles/slurm           on a SLURM cluster (dvp init writes profiles/slurm/)
  dvp run --cores 4 -- --until quantify      Snakemake's own flags go after --
  dvp run --cores 2 -- --forceall            redo everything

stopping and resuming:
  Ctrl-C (or SIGTERM, e.g. from `timeout`) stops Snakemake cleanly: running jobs end, their
  incomplete outputs and Snakemake's lock are removed, and dvp exits with 130 (143 after SIGTERM).
  A second Ctrl-C forces the stop (SIGTERM, then SIGKILL after 10 s). To resume, run the same
  command again: it reruns incomplete jobs and removes a lock left by a killed run when no Snakemake
  process is working in the project. A lock held by a run on another host is left alone; if that
  run is gone, remove it with:  dvp run -- --unlock

Snakemake's messages name its own flags (--unlock, --keep-going, --rerun-triggers ...): give them
to dvp after --. Options of the workflow itself live in the config, not on this command line.

on a SLURM cluster:
  pip install 'dvp-pipeline[slurm]', then `dvp run --profile profiles/slurm` on a login node (in
  tmux or screen: stopping dvp cancels the cluster jobs). Partition and account go in
  profiles/slurm/config.yaml or after --, e.g. -- --default-resources slurm_account=my_lab. A failed
  job's message names its log file (logs/STAGE/...) and SLURM's (.snakemake/slurm_logs/...)."""


def snakefile() -> Path:
    """The workflow shipped with the package."""
    return Path(str(resources.files("dvp_pipeline").joinpath("workflow", "Snakefile")))


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole workflow (Snakemake) for a config",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        default="config/config.yaml",
        help="config file, relative to the project directory; it alone is the config (default: %(default)s)",
    )
    p.add_argument(
        "--directory",
        default=".",
        help="project directory: paths in the config are relative to "
        "it and results/ is written there (default: current)",
    )
    p.add_argument("--cores", default="all", help="CPU cores to use locally (default: all)")
    p.add_argument("--profile", help="Snakemake profile folder (cluster settings live there), e.g. profiles/slurm")
    p.add_argument("-n", "--dry-run", action="store_true", help="only show the jobs that would run")
    p.add_argument(
        "snakemake_args",
        nargs="*",
        metavar="-- SNAKEMAKE_ARGS",
        help="further arguments passed to Snakemake unchanged (after --, e.g. -- --unlock)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    directory = Path(args.directory).resolve()
    config = Path(args.config)
    config = config if config.is_absolute() else directory / config
    project = load_project(config, base=directory)
    log.info(
        "config OK: %d samples, %d runs, cell types %s",
        len(project.samples),
        len(project.runs),
        ", ".join(project.cell_types),
    )
    given = [a for a in args.snakemake_args if a.split("=")[0] in ("--configfile", "--configfiles")]
    if given:
        raise DVPError(f"{given[0]}: give the config as `dvp run --config FILE` (it is validated, then used alone)")
    workflow = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile()),
        "--directory",
        str(directory),
        "--configfile",
        str(config),
    ]
    if "--unlock" not in args.snakemake_args:
        clear_interrupted_run(directory, unlock=[*workflow, "--unlock"])
    cmd = [*workflow, "--cores", str(args.cores), "--printshellcmds", "--rerun-incomplete"]
    if args.profile:
        # a folder relative to where dvp was started (Snakemake runs in the project directory); else a profile name
        profile = Path(args.profile)
        cmd += ["--profile", str(profile.resolve()) if profile.is_dir() else args.profile]
    if args.dry_run:
        cmd.append("--dry-run")
    cmd += args.snakemake_args
    log.info("running: %s", " ".join(cmd))
    status = run_snakemake(cmd, directory=directory)
    if status in (128 + signum for signum in STOP_SIGNALS):
        log.warning("stopped; the same command again resumes (finished jobs are kept)")
    elif status != 0:
        log.error(
            "Snakemake stopped with status %d. Flags its messages name go after --, e.g. `dvp run -- --unlock`; "
            "each job's log is named in its error message (logs/STAGE/...).",
            status,
        )
    return status
