import json
import re

from dvp_pipeline.differential import differential_tests
from dvp_pipeline.genesets import BUILTIN as BUILTIN_GENE_SETS
from dvp_pipeline.layout import EXTRA_PATHWAY_METHODS, Results

SAMPLES = list(PROJECT.samples["sample"])
# Every path under results/ comes from the one layout that the CLI and the reports use too.
RESULTS = Results("results")


wildcard_constraints:
    sample="|".join(re.escape(s) for s in SAMPLES),


def options(section):
    """A stage's validated config section as JSON: passed to the CLI, and a rerun trigger when it changes."""
    return json.dumps(PROJECT.config[section], sort_keys=True)


def sample_field(sample, column):
    row = PROJECT.samples.set_index("sample").loc[sample]
    value = row.get(column)
    return None if value is None or value != value or value == "" else value


def segment_args(wildcards):
    """Channel names and pixel size: the sheet first, then the config; the image metadata otherwise.

    A list, so that the rules quote each item (`{params.extra:q}`): channel names are user strings.
    """
    args = []
    if PROJECT.config.get("channels"):
        args += ["--channels", ",".join(PROJECT.config["channels"])]
    args += ["--nuclear-channel", PROJECT.config["nuclear_channel"]]
    return args + pixel_size_args(wildcards)


def mem_mb(factor, base=500):
    """Memory scaling with the input size: base + factor x input MB."""
    return lambda wildcards, input: int(base + factor * input.size_mb)


def results_root(wildcards):
    """The results folder, for the stages that write several files (a function: Snakemake's linter
    wants paths in params derived, not hard-coded)."""
    return RESULTS.root


def all_outputs():
    return [
        *(RESULTS.sample_report(s) for s in SAMPLES),
        *(RESULTS.lmd_xml(s) for s in SAMPLES),
        *(RESULTS.cell_types_pyramid(s) for s in SAMPLES),
        RESULTS.cohort_report(),
    ]


def report_options():
    """The report section plus the highlighted sets of the pathways section."""
    return json.dumps({**PROJECT.config["report"], "highlight": PROJECT.config["pathways"]["highlight"]}, sort_keys=True)


def on_retry(resource):
    """A rule's mem_mb or runtime (a number, or a function of wildcards and input), doubled on each retry:
    a job killed for lack of memory or time gets more on its next attempt (the SLURM profile retries once)."""

    def scaled(wildcards, input, attempt):
        value = resource(wildcards, input) if callable(resource) else resource
        return int(value * 2 ** (attempt - 1))

    return scaled


def pixel_size_args(wildcards):
    """The pixel size from the samples sheet or the config, when given (else the stage finds it)."""
    pixel = sample_field(wildcards.sample, "pixel_size_um") or PROJECT.config["pixel_size_um"]
    return ["--pixel-size", str(pixel)] if pixel else []


def select_args(wildcards):
    """The sample's pixel size, calibration and regions from the samples sheet (a list: each item is quoted)."""
    args = pixel_size_args(wildcards)
    for column in ("calibration", "regions"):
        value = sample_field(wildcards.sample, column)
        if value is not None:
            args += [f"--{column}", str(value)]
    return args


def sample_regions(wildcards):
    """The sample's regions-of-interest file, an input when it is a file (calibration may be text)."""
    return [sample_field(wildcards.sample, c) for c in ("regions",) if sample_field(wildcards.sample, c)]
