"""Benchmark of the quantify stage against directLFQ and iq's fast_MaxLFQ (not a test).

Generates a DIA-NN 2.x-style report (default 5,000 proteins x 48 runs, about 1.5 million precursor
rows), then times, each in its own process on the same machine: our quantify stage (reader +
MaxLFQ), directlfq (its normalisation + protein estimation, on the same ion table), and iq's
fast_MaxLFQ through Rscript when R and iq are installed. Wall time, peak resident memory
(ru_maxrss of the child) and agreement with our values go to bench/results/quant.json and .md.
``--scaling`` also times MaxLFQ alone from 12 to 400 runs and from 1,000 to 20,000 proteins.

    python bench/bench_quant.py [--proteins 5000 --runs 48] [--scaling] [--cores 2]

iq is found with ``Rscript -e 'library(iq)'`` (set R_LIBS for a private library).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def simulate_ions(n_proteins: int, n_runs: int, *, seed: int = 0) -> pd.DataFrame:
    """A DIA-like ion table: 1-40 precursors per protein (mean ~7.5), intensity-dependent missingness."""
    rng = np.random.default_rng(seed)
    n_prec = np.minimum(rng.geometric(0.13, n_proteins), 40)
    protein = np.repeat(np.arange(n_proteins), n_prec)
    level = rng.normal(22, 2, n_proteins)[protein] + rng.normal(0, 1.5, len(protein))
    runs = rng.normal(0, 0.3, n_runs)
    log2 = level[:, None] + runs[None, :] + rng.normal(0, 0.3, (len(protein), n_runs))
    # Low-intensity precursors are missed more often, as in DIA.
    p_miss = 1 / (1 + np.exp((log2 - 19.5) * 1.5))
    seen = rng.random(log2.shape) > p_miss
    ion_idx, run_idx = np.nonzero(seen)
    return pd.DataFrame(
        {
            "protein": protein[ion_idx],
            "ion": ion_idx,
            "run": run_idx,
            "intensity": np.exp2(log2[ion_idx, run_idx]).astype(np.float32),
        }
    )


def write_diann_report(ions: pd.DataFrame, path: Path) -> None:
    """The ion table as a DIA-NN 2.x report.parquet with its usual columns (strings dictionary-coded)."""
    n = len(ions)
    rng = np.random.default_rng(1)
    prot = pd.Categorical.from_codes(ions["protein"], [f"P{i:05d}" for i in range(ions["protein"].max() + 1)])
    genes = pd.Categorical.from_codes(ions["protein"], [f"G{i:05d}" for i in range(ions["protein"].max() + 1)])
    prec = pd.Categorical.from_codes(ions["ion"], [f"PEPTIDE{i}K2" for i in range(ions["ion"].max() + 1)])
    run = pd.Categorical.from_codes(ions["run"], [f"run{i:03d}" for i in range(ions["run"].max() + 1)])
    q = np.where(rng.random(n) < 0.02, 0.02, 0.001).astype(np.float32)
    table = pd.DataFrame(
        {
            "Run.Index": ions["run"].astype(np.int32),
            "Run": run,
            "Channel": "",
            "Precursor.Id": prec,
            "Modified.Sequence": prec,
            "Stripped.Sequence": prec,
            "Precursor.Charge": np.int32(2),
            "Decoy": np.int32(0),
            "Protein.Ids": prot,
            "Protein.Group": prot,
            "Protein.Names": genes,
            "Genes": genes,
            "RT": rng.uniform(5, 60, n).astype(np.float32),
            "Precursor.Quantity": ions["intensity"] * np.float32(1.05),
            "Precursor.Normalised": ions["intensity"],
            "Ms1.Area": ions["intensity"] * np.float32(0.5),
            "Q.Value": q,
            "PG.Q.Value": np.float32(0.001),
            "Global.Q.Value": np.float32(0.001),
            "Lib.Q.Value": q,
            "Global.PG.Q.Value": np.float32(0.001),
            "Lib.PG.Q.Value": np.float32(0.001),
            "PEP": np.float32(0.01),
        }
    )
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path, compression="zstd")


# --- workers, each run in its own process so that peak memory is its own ---------------------


def worker_ours(report: str, out: str) -> dict:
    from dvp_pipeline.quant import quantify
    from dvp_pipeline.readers import read_ions

    t0 = time.perf_counter()
    ions = read_ions(report)
    t1 = time.perf_counter()
    matrix = quantify(ions, method="maxlfq")
    t2 = time.perf_counter()
    matrix.columns = matrix.columns.astype(str)
    matrix.index = matrix.index.astype(str)
    matrix.to_parquet(out)
    return {"read_s": t1 - t0, "quantify_s": t2 - t1, "total_s": t2 - t0, "rows": len(ions)}


def worker_directlfq(report: str, out: str, cores: int) -> dict:
    from dvp_pipeline.quant import directlfq
    from dvp_pipeline.readers import read_ions

    t0 = time.perf_counter()
    ions = read_ions(report)
    t1 = time.perf_counter()
    matrix = directlfq(ions, protein="protein", ion="precursor", sample="run", normalize=True, num_cores=cores)
    t2 = time.perf_counter()
    matrix.columns = matrix.columns.astype(str)
    matrix.index = matrix.index.astype(str)
    matrix.to_parquet(out)
    return {"read_s": t1 - t0, "quantify_s": t2 - t1, "total_s": t2 - t0}


IQ_SCRIPT = r"""
suppressMessages(library(iq))
args <- commandArgs(trailingOnly = TRUE)
t0 <- proc.time()[["elapsed"]]
d <- fast_read(args[1], primary_id = "protein", secondary_id = "ion", sample_id = "run",
               intensity_col = "intensity", annotation_col = NULL, filter_string_equal = NULL,
               filter_double_less = NULL)
t1 <- proc.time()[["elapsed"]]
norm <- fast_preprocess(d$quant_table, median_normalization = FALSE, log2_intensity_cutoff = NULL, pdf_out = NULL)
res <- fast_MaxLFQ(norm, row_names = d$protein[, 1], col_names = d$sample)
t2 <- proc.time()[["elapsed"]]
write.table(res$estimate, args[2], sep = "\t", quote = FALSE, na = "NA")
cat(sprintf('{"read_s": %f, "quantify_s": %f, "total_s": %f}\n', t1 - t0, t2 - t1, t2 - t0))
"""


def child(argv: list[str], env=None) -> tuple[dict, float, float]:
    """Run a worker process; its JSON line (plus cpu_s, user + system CPU seconds), wall seconds and
    peak RSS in MiB (Linux ru_maxrss is KiB; the largest of the process and its waited-for children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if status != 0:
        raise RuntimeError(f"{argv[:3]} failed:\n{stderr[-3000:]}")
    line = [s for s in stdout.splitlines() if s.startswith("{")][-1]
    return {**json.loads(line), "cpu_s": usage.ru_utime + usage.ru_stime}, wall, usage.ru_maxrss / 1024


def iq_available() -> bool:
    try:
        return subprocess.run(["Rscript", "-e", "library(iq)"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def agreement(ours: pd.DataFrame, other: pd.DataFrame) -> dict:
    """Max |difference| (log2) and missing-pattern agreement; for directLFQ, per-protein centred."""
    common = ours.index.intersection(other.index)
    a = ours.loc[common, other.columns.intersection(ours.columns)]
    b = other.loc[common, a.columns]
    same_missing = bool((a.isna() == b.isna()).all().all())
    diff = (a - b).abs().to_numpy()
    centred = (a.sub(a.mean(axis=1), axis=0) - b.sub(b.mean(axis=1), axis=0)).abs().to_numpy()
    return {
        "proteins_compared": len(common),
        "max_abs_diff_log2": float(np.nanmax(diff)),
        "same_missing": same_missing,
        "median_abs_diff_centred_log2": float(np.nanmedian(centred)),
    }


def compare(proteins: int, runs: int, cores: int, workdir: Path) -> dict:
    ions = simulate_ions(proteins, runs)
    report = workdir / "report.parquet"
    write_diann_report(ions, report)
    env = {**os.environ, "OMP_NUM_THREADS": str(cores), "OPENBLAS_NUM_THREADS": str(cores)}
    me = [sys.executable, __file__, "--worker"]
    result = {"proteins": proteins, "runs": runs, "report_rows": len(ions), "report_mb": report.stat().st_size / 2**20}
    info, wall, rss = child(me + ["ours", str(report), str(workdir / "ours.parquet")], env)
    result["ours"] = {**info, "wall_s": wall, "peak_rss_mib": rss}
    ours = pd.read_parquet(workdir / "ours.parquet")
    try:
        info, wall, rss = child(me + ["directlfq", str(report), str(workdir / "dl.parquet"), str(cores)], env)
        result["directlfq"] = {**info, "wall_s": wall, "peak_rss_mib": rss}
        result["directlfq"]["agreement"] = agreement(ours, pd.read_parquet(workdir / "dl.parquet"))
    except (RuntimeError, ImportError) as err:
        result["directlfq"] = {"error": str(err)[-500:]}
    if iq_available():
        tsv = workdir / "ions.tsv"
        pd.DataFrame(
            {
                "protein": "P" + ions["protein"].astype(str).str.zfill(5),
                "ion": ions["ion"],
                "run": "run" + ions["run"].astype(str).str.zfill(3),
                "intensity": ions["intensity"].astype(float),
            }
        )[pd.read_parquet(report, columns=["Q.Value"])["Q.Value"].to_numpy() <= 0.01].to_csv(tsv, sep="\t", index=False)
        script = workdir / "iq.R"
        script.write_text(IQ_SCRIPT)
        info, wall, rss = child(["Rscript", str(script), str(tsv), str(workdir / "iq.tsv")], env)
        result["iq_fast_MaxLFQ"] = {**info, "wall_s": wall, "peak_rss_mib": rss}
        iq = pd.read_csv(workdir / "iq.tsv", sep="\t", index_col=0)
        result["iq_fast_MaxLFQ"]["agreement"] = agreement(ours, iq)
    else:
        result["iq_fast_MaxLFQ"] = {"error": "R or the iq package not found (Rscript -e 'library(iq)')"}
    return result


IQ_ONLY = r"""
suppressMessages(library(iq))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1])
t0 <- proc.time()[["elapsed"]]
res <- fast_MaxLFQ(list(protein_list = d$protein, sample_list = d$run, id = d$ion, quant = log2(d$intensity)))
cat(sprintf('{"quantify_s": %f}\n', proc.time()[["elapsed"]] - t0))
"""


def scaling(cores: int, workdir: Path, with_iq: bool) -> list[dict]:
    """MaxLFQ alone (ion table in memory) over runs and over proteins; iq's fast_MaxLFQ alongside."""
    from dvp_pipeline.quant import maxlfq

    rows = []
    script = workdir / "iq_only.R"
    script.write_text(IQ_ONLY)
    points = [(2000, r) for r in (12, 24, 48, 96, 200, 400)] + [(p, 48) for p in (1000, 5000, 10000, 20000)]
    for proteins, runs in points:
        ions = simulate_ions(proteins, runs, seed=3)
        t0 = time.perf_counter()
        maxlfq(ions, protein="protein", ion="ion", sample="run", intensity="intensity")
        row = {"proteins": proteins, "runs": runs, "rows": len(ions), "maxlfq_s": time.perf_counter() - t0}
        if with_iq:
            tsv = workdir / "scaling.tsv"
            ions.assign(intensity=ions["intensity"].astype(float)).to_csv(tsv, sep="\t", index=False)
            info, _, _ = child(["Rscript", str(script), str(tsv)])
            row["iq_fast_maxlfq_s"] = info["quantify_s"]
        rows.append(row)
        print(rows[-1], flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Quantify benchmark ({result['machine']})", ""]
    load = result.get("load_average_at_start"), result.get("load_average_at_end")
    lines += [f"Load average (1, 5, 15 min) at start {load[0]}, at end {load[1]}.", ""]
    c = result["comparison"]
    lines.append(f"Report: {c['proteins']} proteins x {c['runs']} runs, {c['report_rows']:,} precursor rows.")
    lines += [
        "",
        "| tool | wall s | read s | quantify s | CPU s | peak RSS MiB | agreement with ours |",
        "|---|---|---|---|---|---|---|",
    ]
    for tool in ("ours", "directlfq", "iq_fast_MaxLFQ"):
        t = c.get(tool, {})
        if "error" in t:
            lines.append(f"| {tool} | - | - | - | - | - | {t['error'][:80]} |")
            continue
        agree = t.get("agreement", {})
        text = (
            f"max abs {agree['max_abs_diff_log2']:.2e} log2, same missing: {agree['same_missing']}, "
            f"median centred {agree['median_abs_diff_centred_log2']:.3f}"
            if agree
            else "-"
        )
        times = f"{t['wall_s']:.2f} | {t['read_s']:.2f} | {t['quantify_s']:.2f} | {t['cpu_s']:.2f}"
        lines.append(f"| {tool} | {times} | {t['peak_rss_mib']:.0f} | {text} |")
    if result.get("scaling"):
        lines += ["", "MaxLFQ alone (ion table in memory; iq: fast_MaxLFQ alone, in R):", ""]
        lines += ["| proteins | runs | rows | ours s | iq s |", "|---|---|---|---|---|"]
        for r in result["scaling"]:
            iq = r.get("iq_fast_maxlfq_s", float("nan"))
            lines.append(f"| {r['proteins']} | {r['runs']} | {r['rows']:,} | {r['maxlfq_s']:.2f} | {iq:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, args = sys.argv[2], sys.argv[3:]
        info = worker_ours(*args) if kind == "ours" else worker_directlfq(args[0], args[1], int(args[2]))
        print(json.dumps(info))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=48)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "quant"))
    args = parser.parse_args()
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "machine": machine,
            "load_average_at_start": os.getloadavg(),
            "cores": args.cores,
            "comparison": compare(args.proteins, args.runs, args.cores, Path(tmp)),
        }
        print(json.dumps(result["comparison"], indent=1), flush=True)
        if args.scaling:
            result["scaling"] = scaling(args.cores, Path(tmp), iq_available())
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    Path(args.out + ".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
