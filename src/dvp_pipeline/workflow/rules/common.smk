import json
import re
import os

SAMPLES = list(PROJECT.samples["sample"])
CELL_TYPES = PROJECT.cell_types
CONTRASTS = PROJECT.contrast_names()
RESULTS = "results"


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
    """Channel names and pixel size: the sheet first, then the config; the image metadata otherwise."""
    args = []
    if PROJECT.config.get("channels"):
        args += ["--channels", ",".join(PROJECT.config["channels"])]
    args += ["--nuclear-channel", PROJECT.config["nuclear_channel"]]
    pixel = sample_field(wildcards.sample, "pixel_size_um") or PROJECT.config["pixel_size_um"]
    if pixel:
        args += ["--pixel-size", str(pixel)]
    return " ".join(args)


def mem_mb(factor, base=500):
    """Memory scaling with the input size: base + factor x input MB."""
    return lambda wildcards, input: int(base + factor * input.size_mb)


def all_outputs():
    outs = [f"{RESULTS}/reports/{s}.html" for s in SAMPLES]
    outs.append(f"{RESULTS}/reports/cohort.html")
    return outs


def report_options():
    """The report section plus the highlighted sets of the pathways section."""
    return json.dumps({**PROJECT.config["report"], "highlight": PROJECT.config["pathways"]["highlight"]}, sort_keys=True)


def stage_folder(output, depth=2):
    """The folder a multi-file stage writes into, derived from its first output file."""
    path = output[0]
    for _ in range(depth):
        path = os.path.dirname(path)
    return path
