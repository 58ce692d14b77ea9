"""The ``dvp`` command line: one subcommand per pipeline stage, plus ``run``, ``init`` and ``demo``.

Each stage's subcommand reads and writes files and calls the stage's Python API; the Snakemake
rules call these subcommands, so a stage runs the same by hand, on a laptop and on a cluster.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from dvp_pipeline import __version__
from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import file_system_error

# Order shown in --help: the pipeline's order, then the helpers.
COMMANDS = [
    "segment",
    "classify",
    "train_classifier",
    "annotate",
    "select",
    "plate",
    "lmd",
    "quantify",
    "differential",
    "pathways",
    "report",
    "run",
    "init",
    "demo",
    "qupath",
    "pyramid",
    "export",
]

DESCRIPTION = """\
Deep Visual Proteomics analysis: images -> cells -> cell types -> laser microdissection ->
MS quantification -> limma statistics -> pathways -> HTML reports.

Most users need two commands:
  dvp init myproject        write a starter config/ to edit for your own data
  dvp run --cores 4         run the whole workflow for config/config.yaml (Snakemake)

Each stage can also be run by hand; `dvp STAGE --help` lists its inputs, outputs and options.
Stage options are the keys of that stage's section in config.yaml, passed as --options JSON."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``dvp`` parser; ``only`` (a module of :data:`COMMANDS`) imports that subcommand alone."""
    parser = argparse.ArgumentParser(
        prog="dvp", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dvp-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else [only]:
        importlib.import_module(f"dvp_pipeline.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # A stage run imports its own subcommand only (the reports' plotting stack takes a second or two
    # to import, paid by every Snakemake job otherwise); anything else builds the whole parser.
    first = next((a for a in argv if not a.startswith("-")), "").replace("-", "_")
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        result = args.func(args)
    except DVPError as err:
        print(f"dvp {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # Disk full, quota, file-size limit, read-only or forbidden: the user's to fix, told in one line.
        # Any other OSError is a bug and keeps its traceback.
        message = file_system_error(err)
        if message is None:
            raise
        print(f"dvp {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)
