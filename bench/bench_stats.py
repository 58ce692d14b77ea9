"""Run time of the differential statistics on 10,000 proteins x 100 runs, next to R limma.

    python bench/bench_stats.py [--proteins 10000] [--runs 100] [--runs-per-sample 5] [--sets 500] [--repeats 3]

Times (best of ``--repeats``) moderated_ttest (plain, and trend + robust) on a log2 matrix
where 40% of the proteins miss 5-50% of their values, camera on the complete rows with
``--sets`` random sets of 10-200 proteins, and the block design of replicate pools: the runs
come in samples of ``--runs-per-sample`` that share a sample effect, and moderated_ttest(block=)
estimates their correlation (duplicate_correlation) before the generalised least-squares fit.
When ``Rscript`` with limma is on the PATH, the same data go through lmFit -> contrasts.fit ->
eBayes -> topTable, camera, and duplicateCorrelation -> lmFit(block=, correlation=) in R, timed
inside R, and the largest relative differences of the P values (and of the consensus correlation)
are reported. Writes bench/results/stats.json and bench/results/stats.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.pathways import camera
from dvp_pipeline.stats import design_matrix, duplicate_correlation, moderated_ttest

RESULTS = Path(__file__).parent / "results"

R_SCRIPT = r"""
suppressMessages(library(limma))
args <- commandArgs(TRUE)
y <- as.matrix(read.delim(args[1], check.names = FALSE, row.names = 1))
sets <- strsplit(readLines(args[2]), "\t"); names(sets) <- sapply(sets, `[`, 1)
sets <- lapply(sets, function(s) s[-(1:2)])
grp <- factor(rep(c("A", "B"), each = ncol(y) / 2), levels = c("B", "A"))
design <- model.matrix(~0 + grp); colnames(design) <- levels(grp)
con <- makeContrasts(A - B, levels = design)
best <- function(f, n) min(replicate(n, system.time(f())[["elapsed"]]))
n <- as.integer(args[4])
t_plain <- best(function() topTable(eBayes(contrasts.fit(lmFit(y, design), con)), number = Inf, sort.by = "none"), n)
t_tr <- best(function() topTable(eBayes(contrasts.fit(lmFit(y, design), con),
                                        trend = TRUE, robust = TRUE), number = Inf, sort.by = "none"), n)
yc <- y[complete.cases(y), ]
t_cam <- best(function() camera(yc, sets, design, contrast = con, sort = FALSE), n)
yb <- as.matrix(read.delim(args[5], check.names = FALSE, row.names = 1))
blk <- readLines(args[6])
t_dc <- best(function() duplicateCorrelation(yb, design, block = blk), n)
dc <- duplicateCorrelation(yb, design, block = blk)
block_tt <- function() topTable(eBayes(contrasts.fit(lmFit(yb, design, block = blk, correlation = dc$consensus), con)),
                                number = Inf, sort.by = "none")
t_block <- best(block_tt, n)
wt <- function(x, f) write.table(x, paste0(args[3], f), sep = "\t", quote = FALSE)
wt(data.frame(P = block_tt()$P.Value, row.names = rownames(yb)), "_block.tsv")
tt <- topTable(eBayes(contrasts.fit(lmFit(y, design), con)), number = Inf, sort.by = "none")
cam <- camera(yc, sets, design, contrast = con, sort = FALSE)
wt(data.frame(P = tt$P.Value, row.names = rownames(tt)), "_tt.tsv")
wt(data.frame(P = cam$PValue, row.names = rownames(cam)), "_cam.tsv")
cat(t_plain, t_tr, t_cam, as.character(packageVersion("limma")), R.version$version.string, t_dc, t_block,
    sprintf("%.17g", dc$consensus.correlation), sep = "\n")
"""


def _data(n_proteins: int, n_runs: int, n_sets: int, runs_per_sample: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sd = np.sqrt(0.1 * 4 / rng.chisquare(4, n_proteins))
    y = rng.normal(size=(n_proteins, n_runs)) * sd[:, None] + rng.normal(22, 2, n_proteins)[:, None]
    y[: n_proteins // 20, : n_runs // 2] += 1.0
    # missing values concentrate in some proteins (low abundance): 60% complete, the rest 5-50% missing
    p_missing = np.where(rng.random(n_proteins) < 0.6, 0.0, rng.uniform(0.05, 0.5, n_proteins))
    y[rng.random(y.shape) < p_missing[:, None]] = np.nan
    index = [f"p{i}" for i in range(n_proteins)]
    matrix = pd.DataFrame(y, index=index, columns=[f"r{j}" for j in range(n_runs)])
    groups = pd.Series(["A"] * (n_runs // 2) + ["B"] * (n_runs - n_runs // 2), index=matrix.columns)
    complete = matrix.dropna()
    sets = {
        f"set{k}": list(rng.choice(complete.index, size=int(rng.integers(10, 201)), replace=False))
        for k in range(n_sets)
    }
    # replicate pools: consecutive runs are one sample (samples nested in the groups) and share its effect
    sample = np.arange(n_runs) // runs_per_sample
    block = pd.Series([f"s{k}" for k in sample], index=matrix.columns)
    blocked = matrix + sd[:, None] * 0.6 * rng.normal(size=(n_proteins, sample.max() + 1))[:, sample]
    return matrix, groups, sets, blocked, block


def _best(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proteins", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--runs-per-sample", type=int, default=5)
    parser.add_argument("--sets", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    matrix, groups, sets, blocked, block = _data(args.proteins, args.runs, args.sets, args.runs_per_sample)
    design = design_matrix(groups)
    complete = matrix.dropna()
    contrast = ("A", "B")
    result = {
        "proteins": args.proteins,
        "runs": args.runs,
        "missing_fraction": float(matrix.isna().to_numpy().mean()),
        "complete_proteins": len(complete),
        "sets": args.sets,
        "runs_per_sample": args.runs_per_sample,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
        "python_s": {
            "moderated_ttest": _best(lambda: moderated_ttest(matrix, groups, contrast=contrast), args.repeats),
            "moderated_ttest_trend_robust": _best(
                lambda: moderated_ttest(matrix, groups, contrast=contrast, trend=True, robust=True), args.repeats
            ),
            "camera": _best(lambda: camera(complete, groups, sets, contrast=contrast), args.repeats),
            "duplicate_correlation": _best(lambda: duplicate_correlation(blocked, design, block), args.repeats),
            "moderated_ttest_block": _best(
                lambda: moderated_ttest(blocked, groups, contrast=contrast, block=block), args.repeats
            ),
        },
    }
    consensus = duplicate_correlation(blocked, design, block)[0]
    result["python_s"]["block_fit"] = _best(
        lambda: moderated_ttest(blocked, groups, contrast=contrast, block=block, correlation=consensus), args.repeats
    )
    result["consensus_correlation"] = consensus
    if shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            matrix.rename_axis("protein").to_csv(tmp / "y.tsv", sep="\t", na_rep="NA", float_format="%.17g")
            (tmp / "sets.gmt").write_text("".join(f"{k}\tna\t" + "\t".join(v) + "\n" for k, v in sets.items()))
            blocked.rename_axis("protein").to_csv(tmp / "yb.tsv", sep="\t", na_rep="NA", float_format="%.17g")
            (tmp / "block.txt").write_text("\n".join(block) + "\n")
            (tmp / "bench.R").write_text(R_SCRIPT)
            done = subprocess.run(
                [
                    "Rscript",
                    str(tmp / "bench.R"),
                    str(tmp / "y.tsv"),
                    str(tmp / "sets.gmt"),
                    str(tmp / "out"),
                    str(args.repeats),
                    str(tmp / "yb.tsv"),
                    str(tmp / "block.txt"),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                lines = done.stdout.strip().splitlines()
                r_tt = pd.read_csv(tmp / "out_tt.tsv", sep="\t")["P"]
                r_cam = pd.read_csv(tmp / "out_cam.tsv", sep="\t")["P"]
                r_block = pd.read_csv(tmp / "out_block.tsv", sep="\t")["P"]
                ours_block = moderated_ttest(blocked, groups, contrast=contrast, block=block)["P.Value"]
                r_consensus = float(lines[7])
                ours_tt = moderated_ttest(matrix, groups, contrast=contrast)["P.Value"].loc[r_tt.index]
                ours_cam = camera(complete, groups, sets, contrast=contrast)["PValue"].loc[r_cam.index]
                result["r"] = {
                    "version": f"{lines[4]}, limma {lines[3]}",
                    "seconds": {
                        "lmFit_eBayes_topTable": float(lines[0]),
                        "eBayes_trend_robust": float(lines[1]),
                        "camera": float(lines[2]),
                        "duplicateCorrelation": float(lines[5]),
                        "lmFit_block_eBayes_topTable": float(lines[6]),
                    },
                    "consensus_correlation": r_consensus,
                    "rel_diff_consensus_correlation": abs(consensus - r_consensus) / abs(r_consensus),
                    "max_rel_diff_block_P.Value": float(np.nanmax(np.abs(ours_block - r_block) / r_block)),
                    "max_rel_diff_P.Value": float(np.nanmax(np.abs(ours_tt - r_tt) / r_tt)),
                    "max_rel_diff_camera_PValue": float(np.max(np.abs(ours_cam - r_cam) / r_cam)),
                }
            else:
                result["r"] = {"error": done.stderr[-2000:]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stats.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Differential statistics: {args.proteins} proteins x {args.runs} runs",
        "",
        f"{result['missing_fraction']:.0%} missing values; camera on {result['complete_proteins']} complete "
        f"proteins and {args.sets} random sets of 10-200; block design: samples of {args.runs_per_sample} "
        f"runs, consensus correlation {consensus:.3f}. Best of {args.repeats}; {result['machine']}.",
        "Made with `python bench/bench_stats.py`.",
        "",
        "| step | dvp_pipeline (s) | R limma (s) |",
        "|---|---|---|",
    ]
    r_seconds = dict(result.get("r", {}).get("seconds", {}))
    if r_seconds:
        r_seconds["block_total"] = r_seconds["duplicateCorrelation"] + r_seconds["lmFit_block_eBayes_topTable"]
    for ours, theirs, label in [
        ("moderated_ttest", "lmFit_eBayes_topTable", "moderated t (lmFit, contrasts.fit, eBayes, topTable)"),
        ("moderated_ttest_trend_robust", "eBayes_trend_robust", "moderated t, trend + robust"),
        ("camera", "camera", "camera"),
        ("duplicate_correlation", "duplicateCorrelation", "block: duplicateCorrelation"),
        ("block_fit", "lmFit_block_eBayes_topTable", "block: moderated t at a given correlation (lmFit block)"),
        ("moderated_ttest_block", "block_total", "block: both (moderated_ttest(block=))"),
    ]:
        r_value = f"{r_seconds[theirs]:.2f}" if theirs in r_seconds else "n/a"
        lines.append(f"| {label} | {result['python_s'][ours]:.2f} | {r_value} |")
    if "max_rel_diff_P.Value" in result.get("r", {}):
        lines += [
            "",
            f"Agreement with {result['r']['version']}: largest relative difference of P.Value "
            f"{result['r']['max_rel_diff_P.Value']:.1e}, "
            f"of camera PValue {result['r']['max_rel_diff_camera_PValue']:.1e}; block design: "
            f"of the consensus correlation {result['r']['rel_diff_consensus_correlation']:.1e}, "
            f"of P.Value {result['r']['max_rel_diff_block_P.Value']:.1e}.",
        ]
    (RESULTS / "stats.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
