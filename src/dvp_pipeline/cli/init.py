"""``dvp init``: write a starter project (config/ and, with --demo, the demo cohort) to edit."""

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


def add_parser(sub) -> None:
    p = sub.add_parser(
        "init",
        help="write a starter config/ for a new project",
        description="Create DIR/config/ with config.yaml (every option, commented), samples.tsv and runs.tsv. "
        "Edit them for your data: one row per tissue section in samples.tsv, one row per MS run "
        "(cell type x sample) in runs.tsv, the search-engine report path under quantify.report. "
        "With --demo the synthetic demo cohort is generated into DIR/data/sample so that "
        "`dvp run --directory DIR` works at once.",
    )
    p.add_argument("directory", help="project folder (created if needed)")
    p.add_argument("--demo", action="store_true", help="also generate the demo cohort into DIR/data/sample")
    p.add_argument("--force", action="store_true", help="overwrite an existing config/")
    p.set_defaults(func=run)


def run(args) -> None:
    target = Path(args.directory) / "config"
    if target.exists() and not args.force:
        raise DVPError(f"{target} already exists; use --force to overwrite it")
    target.mkdir(parents=True, exist_ok=True)
    # config.yaml is rendered from the schema, so its defaults are the schema's; the sheets are the demo's
    (target / "config.yaml").write_text(starter_config(), encoding="utf-8")
    starter = resources.files("dvp_pipeline").joinpath("data", "starter")
    for name in SHEETS:
        with resources.as_file(starter.joinpath(name)) as src:
            shutil.copyfile(src, target / name)
    log.info("wrote %s", ", ".join(str(target / n) for n in ["config.yaml", *SHEETS]))
    if args.demo:
        from dvp_pipeline.simulate import write_demo

        write_demo(Path(args.directory) / "data" / "sample")
        log.info("wrote the demo cohort to %s", Path(args.directory) / "data" / "sample")
