"""``dvp report``: the HTML reports, one per sample and one for the cohort.

The last stage. Parses the arguments, calls :func:`dvp_pipeline.report.build_sample_report` or
:func:`dvp_pipeline.report.build_cohort_report` (which read the results, see the epilog) and writes
the page atomically. A missing input is an error that names the file and the stage that writes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from dvp_pipeline import io
from dvp_pipeline.cli._common import describe, load_options, parse_options
from dvp_pipeline.config import schema
from dvp_pipeline.layout import Results
from dvp_pipeline.options import PathwaysOptions, ReportOptions
from dvp_pipeline.report import build_cohort_report, build_sample_report
from dvp_pipeline.report.inputs import describe_inputs

__all__ = ["add_parser", "load_report_options", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = "Write a self-contained HTML report for one sample or for the cohort."

_KINDS = """\
kinds:
  dvp report sample --sample S ...   per-sample page: provenance, image with segmentation outlines,
                                     cell-type map and counts, example cells per type, marker
                                     histograms with thresholds, LMD selection, MS QC of the
                                     sample's runs, its pathway scores against the cohort
  dvp report cohort ...              cohort page: design, classifier accuracy and confusion matrix
                                     (supervised), identifications, missing values, PCA, volcano
                                     plots, pathway tables, pathway-score heatmap
"""


def _highlight_line() -> str:
    """``highlight`` as :func:`describe` lists keys, from the pathways section of the schema."""
    spec = schema("config.schema.yaml")["properties"]["pathways"]["properties"]["highlight"]
    return f"\n  highlight = {json.dumps(spec['default'])}\n      pathways.highlight: {spec['description']}\n"


def _epilog() -> str:
    return (
        _KINDS + "\ninputs (under --results, as the workflow writes them; a missing one is an error naming the stage\n"
        "that writes it; the cohort's differential and pathway tables are those of the tests in\n"
        "--differential-options):\n"
        + describe_inputs(Results("{results}"))
        + "\n\noptions (--options JSON or @file: the config's `report` section, plus `highlight`, the pathways\n"
        "section's list of gene sets to show and highlight):\n"
        + describe("report")
        + _highlight_line()
        + "\nThe report lists the input files and, with --config, the config sections it depends on; the\n"
        "config's cell-type rules order the cell-type colours and its nuclear channel is drawn blue.\n"
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp report sample`` and ``dvp report cohort``."""
    epilog = _epilog()
    common = {"description": DESCRIPTION, "epilog": epilog, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = subparsers.add_parser("report", help="write the HTML reports (per sample, cohort)", **common)
    kinds = parser.add_subparsers(dest="report_kind", metavar="{sample,cohort}", required=True)
    sample = kinds.add_parser("sample", help="one sample's report", **common)
    sample.add_argument("--sample", required=True, help="sample name (a row of the samples sheet)")
    cohort = kinds.add_parser("cohort", help="the cohort report", **common)
    cohort.add_argument(
        "--differential-options",
        default=None,
        metavar="JSON",
        help="the 'differential' section as JSON or @FILE: its tests name the tables shown "
        "(default: the section of --config)",
    )
    for sub in (sample, cohort):
        sub.add_argument("--results", default="results", help="results folder of the workflow (default: results)")
        sub.add_argument("--samples", default="config/samples.tsv", help="samples sheet (default: config/samples.tsv)")
        sub.add_argument("--runs", default="config/runs.tsv", help="runs sheet (default: config/runs.tsv)")
        sub.add_argument(
            "--config",
            default=None,
            metavar="CONFIG.yaml",
            help="config file: its sections are listed under provenance, its cell types order the colours",
        )
        sub.add_argument("--out", required=True, metavar="OUT.html", help="HTML file to write")
        sub.add_argument("--options", default=None, metavar="JSON", help="report options as JSON or @file (see below)")
        sub.set_defaults(func=run)
    parser.set_defaults(func=run)
    return parser


def load_report_options(text: str | None) -> tuple[ReportOptions, list[str]]:
    """The typed ``report`` options and the highlighted gene sets (the pathways section's ``highlight``)."""
    options, source = parse_options(text)
    highlight = options.pop("highlight", None)
    pathways = PathwaysOptions.from_mapping({} if highlight is None else {"highlight": highlight}, source=source)
    return ReportOptions.from_mapping(options, source=source), list(pathways.highlight)


def run(args) -> None:
    """Run ``dvp report sample`` or ``dvp report cohort`` with parsed arguments."""
    options, highlight = load_report_options(args.options)
    common = {
        "samples_path": args.samples,
        "runs_path": args.runs,
        "options": options,
        "highlight": highlight,
        "config": args.config,
    }
    if args.report_kind == "sample":
        html = build_sample_report(args.results, args.sample, **common)
    else:
        differential = None
        if getattr(args, "differential_options", None) is not None:
            differential = load_options(args, "differential", argument="differential_options")
        html = build_cohort_report(args.results, differential=differential, **common)
    io.write_text(html, args.out)
    log.info("wrote %s (%.1f MB)", args.out, os.path.getsize(args.out) / 1e6)
