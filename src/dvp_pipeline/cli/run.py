"""``dvp run``: validate a project's config, then run the Snakemake workflow for it."""

from __future__ import annotations

import logging
import subprocess
import sys
from importlib import resources
from pathlib import Path

from dvp_pipeline.config import load_project

__all__ = ["add_parser", "run"]

log = logging.getLogger("dvp.run")


def snakefile() -> Path:
    """The workflow shipped with the package."""
    return Path(str(resources.files("dvp_pipeline").joinpath("workflow", "Snakefile")))


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole workflow (Snakemake) for a config",
        description="Validate config/config.yaml and its sheets (every problem is reported before any job "
        "starts), then run the workflow with Snakemake. Outputs go to results/ (reports in "
        "results/reports/), logs to logs/, timings to benchmarks/. Re-running after a config "
        "change redoes only the stages whose options or inputs changed.",
        epilog="examples:\n"
        "  dvp run --cores 2                         laptop, all stages\n"
        "  dvp run --dry-run                         show what would run\n"
        "  dvp run --profile profiles/slurm          on a SLURM cluster (see profiles/slurm/config.yaml)\n"
        "  dvp run --cores 4 -- --until quantify     extra Snakemake arguments after --\n"
        "  dvp run --cores 2 -- --forceall           redo everything",
    )
    p.add_argument("--config", default="config/config.yaml", help="config file (default: %(default)s)")
    p.add_argument(
        "--directory",
        default=".",
        help="project directory: paths in the config are relative to "
        "it and results/ is written there (default: current)",
    )
    p.add_argument("--cores", default="all", help="CPU cores to use locally (default: all)")
    p.add_argument("--profile", help="Snakemake profile folder (cluster settings live there)")
    p.add_argument("-n", "--dry-run", action="store_true", help="only show the jobs that would run")
    p.add_argument(
        "snakemake_args", nargs="*", metavar="-- SNAKEMAKE_ARGS", help="further arguments passed to Snakemake unchanged"
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
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile()),
        "--directory",
        str(directory),
        "--configfile",
        str(config),
        "--cores",
        str(args.cores),
        "--printshellcmds",
    ]
    if args.profile:
        cmd += ["--profile", args.profile]
    if args.dry_run:
        cmd.append("--dry-run")
    cmd += args.snakemake_args
    log.info("running: %s", " ".join(cmd))
    return subprocess.call(cmd)
