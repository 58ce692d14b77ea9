"""``dvp init``: write a starter project to edit: config/, the SLURM profile and, with --demo, the demo cohort."""

from __future__ import annotations

import logging
import shutil
from importlib import resources
from pathlib import Path

from dvp_pipeline.errors import DVPError
from dvp_pipeline.schema_docs import starter_config

__all__ = ["add_parser", "run"]

log = logging.getLogger("dvp.init")
SHEETS = ["samples.tsv", "runs.tsv"]
#: The SLURM profile a new project gets (profiles/slurm/config.yaml of the repository is a copy of it).
PROFILE = Path("profiles", "slurm", "config.yaml")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "init",
        help="write a starter config/ for a new project",
        description="Create DIR/config/ with config.yaml (every option, commented), samples.tsv and runs.tsv, "
        "and DIR/profiles/slurm/config.yaml for `dvp run --profile profiles/slurm` on a SLURM cluster. "
        "Edit them for your data: one row per tissue section in samples.tsv, one row per MS run "
        "(cell type x sample) in runs.tsv, the search-engine report path under quantify.report. "
        "With --demo the synthetic demo cohort is generated into DIR/data/sample so that "
        "`dvp run --directory DIR` works at once.",
    )
    p.add_argument("directory", help="project folder (created if needed)")
    p.add_argument("--demo", action="store_true", help="also generate the demo cohort into DIR/data/sample")
    p.add_argument("--force", action="store_true", help="overwrite an existing config/ and SLURM profile")
    p.set_defaults(func=run)


def run(args) -> None:
    project = Path(args.directory)
    target = project / "config"
    for existing in (target, project / PROFILE):
        if existing.exists() and not args.force:
            raise DVPError(f"{existing} already exists; use --force to overwrite it")
    target.mkdir(parents=True, exist_ok=True)
    # config.yaml is rendered from the schema, so its defaults are the schema's; the sheets are the demo's
    (target / "config.yaml").write_text(starter_config(), encoding="utf-8")
    data = resources.files("dvp_pipeline").joinpath("data")
    for name in SHEETS:
        with resources.as_file(data.joinpath("starter", name)) as src:
            shutil.copyfile(src, target / name)
    (project / PROFILE).parent.mkdir(parents=True, exist_ok=True)
    with resources.as_file(data.joinpath(*PROFILE.parts)) as src:
        shutil.copyfile(src, project / PROFILE)
    written = [*(target / name for name in ["config.yaml", *SHEETS]), project / PROFILE]
    log.info("wrote %s", ", ".join(map(str, written)))
    if args.demo:
        from dvp_pipeline.simulate import write_demo

        write_demo(project / "data" / "sample")
        log.info("wrote the demo cohort to %s", project / "data" / "sample")
