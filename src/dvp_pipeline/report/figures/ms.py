"""Mass-spectrometry figures of the reports: identifications, abundance and CV, missing values, PCA, volcanos.

Part of the report stage. These figures show the quantification (``dvp quantify``: ``quant_qc.tsv``,
``proteins.tsv``) and the differential tests (``dvp differential``) of the cohort; the sample report
draws the identifications with one sample's runs highlighted. Runs are grouped by cell type in the
palette's order, then by condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from dvp_pipeline.errors import DVPError
from dvp_pipeline.report.figures._util import (
    default_options,
    first_gene,
    label_points,
    order_runs,
    run_columns,
    run_meta,
)
from dvp_pipeline.report.palettes import DOWN_COLOR, NS_COLOR, UP_COLOR, cell_type_palette, condition_palette

__all__ = [
    "identifications_figure",
    "intensity_cv_figure",
    "missing_values_figure",
    "pca_figure",
    "volcano_figure",
]

_UNKNOWN_CONDITION = ("#7f7f7f", "o")  # conditions of runs that the samples sheet does not list


def identifications_figure(
    quant_qc: pd.DataFrame,
    *,
    palette: Mapping[str, str] | None = None,
    conditions: Sequence[str] | None = None,
    highlight_runs: Iterable[str] | None = None,
) -> Figure:
    """Proteins and precursors identified per run, bars coloured by cell type.

    Runs are grouped by cell type, then by ``conditions`` (in that order) when ``quant_qc`` has a
    ``condition`` column. ``highlight_runs`` (e.g. one sample's runs) are drawn with a black edge and
    the others faded.
    """
    from matplotlib.colors import to_rgba

    missing = {"run", "cell_type", "proteins", "precursors"} - set(quant_qc.columns)
    if missing:
        raise DVPError(f"quant_qc table: missing columns {sorted(missing)}")
    palette = dict(palette) if palette is not None else cell_type_palette(quant_qc["cell_type"])
    table = order_runs(quant_qc, palette, conditions)
    highlight = set(highlight_runs) if highlight_runs is not None else None
    x = np.arange(len(table))
    colors = [
        to_rgba(palette.get(c, NS_COLOR), 1.0 if highlight is None or r in highlight else 0.3)
        for c, r in zip(table["cell_type"], table["run"], strict=True)
    ]
    edges = ["black" if highlight is not None and r in highlight else "none" for r in table["run"]]
    fig = Figure(figsize=(min(max(6.0, 0.32 * len(table) + 2.5), 20.0), 6.2), layout="constrained")
    ax_prot, ax_prec = fig.subplots(2, 1, sharex=True)
    for ax, column, label in (
        (ax_prot, "proteins", "proteins (protein groups)"),
        (ax_prec, "precursors", "precursors"),
    ):
        ax.bar(x, table[column].to_numpy(dtype=float), color=colors, edgecolor=edges, linewidth=1.2)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    ax_prec.set_xticks(x, table["run"].astype(str), rotation=90, fontsize=8)
    ax_prec.set_xlabel("run")
    ax_prot.set_title("Identifications per run")
    handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(table["cell_type"])]
    ax_prot.legend(handles=handles, title="cell type", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def intensity_cv_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    *,
    palette: Mapping[str, str] | None = None,
) -> Figure:
    """Protein log2 abundance distribution per run, and CV between the runs of each cell type and condition.

    The CV of a protein is sd/mean of its linear abundances over the runs of one cell type and
    condition where it was quantified (two runs at least); the lower panel shows its distribution.
    """
    columns = run_columns(proteins, runs)
    matrix = proteins[columns].apply(pd.to_numeric, errors="coerce")
    meta = run_meta(runs, samples).set_index("run").reindex(columns)
    palette = dict(palette) if palette is not None else cell_type_palette(meta["cell_type"])
    order = order_runs(meta.reset_index(names="run"), palette, None)["run"].tolist()
    fig = Figure(figsize=(min(max(6.0, 0.32 * len(order) + 2.5), 20.0), 6.2), layout="constrained")
    ax_int, ax_cv = fig.subplots(2, 1)
    data = [matrix[r].dropna().to_numpy() for r in order]
    parts = ax_int.boxplot(data, showfliers=False, patch_artist=True, widths=0.7)
    for box, run in zip(parts["boxes"], order, strict=True):
        box.set_facecolor(palette.get(meta.loc[run, "cell_type"], NS_COLOR))
    ax_int.set_xticks(np.arange(1, len(order) + 1), order, rotation=90, fontsize=8)
    ax_int.set_ylabel("protein log2 abundance")
    ax_int.set_title("Abundance distribution per run")
    groups, cvs, colors = [], [], []
    for (cell_type, condition), members in meta.groupby(["cell_type", "condition"], sort=True):
        linear = np.exp2(matrix[members.index])
        ok = linear.notna().sum(axis=1) >= 2
        if ok.any():
            cv = (linear[ok].std(axis=1, ddof=1) / linear[ok].mean(axis=1)).to_numpy()
            groups.append(f"{cell_type}\n{condition}")
            cvs.append(cv)
            colors.append(palette.get(cell_type, NS_COLOR))
    if cvs:
        parts = ax_cv.boxplot(cvs, showfliers=False, patch_artist=True, widths=0.6)
        for box, color in zip(parts["boxes"], colors, strict=True):
            box.set_facecolor(color)
        ax_cv.set_xticks(np.arange(1, len(groups) + 1), groups, fontsize=8)
    ax_cv.set_ylabel("CV between replicate runs")
    ax_cv.set_title("Coefficient of variation per cell type and condition")
    return fig


def missing_values_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    *,
    palette: Mapping[str, str] | None = None,
) -> Figure:
    """Missing values: fraction of proteins missing per run, and in how many runs each protein is seen."""
    columns = run_columns(proteins, runs)
    matrix = proteins[columns].apply(pd.to_numeric, errors="coerce")
    meta = run_meta(runs, samples).set_index("run").reindex(columns)
    meta = meta.fillna({"cell_type": "NA", "condition": "NA", "sample": ""})
    palette = dict(palette) if palette is not None else cell_type_palette(meta["cell_type"])
    table = pd.DataFrame(
        {
            "run": columns,
            "cell_type": meta["cell_type"].to_numpy(),
            "condition": meta["condition"].to_numpy(),
            "sample": meta["sample"].to_numpy(),
            "missing": matrix.isna().mean(axis=0).to_numpy() * 100,
        }
    )
    order = list(condition_palette(samples["condition"])) if samples is not None and "condition" in samples else None
    table = order_runs(table, palette, order)
    fig = Figure(figsize=(min(max(9.0, 0.3 * len(columns) + 5), 20.0), 4.6), layout="constrained")
    ax_run, ax_count = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(columns), 4), 6]})
    ax_run.bar(np.arange(len(table)), table["missing"], color=[palette.get(c, NS_COLOR) for c in table["cell_type"]])
    ax_run.set_xticks(np.arange(len(table)), table["run"], rotation=90, fontsize=8)
    ax_run.set_ylabel("proteins missing (%)")
    ax_run.set_xlabel("run")
    ax_run.set_title("Missing values per run")
    ax_run.grid(axis="y", alpha=0.3)
    counts = matrix.notna().sum(axis=1).value_counts().reindex(range(len(columns) + 1), fill_value=0)
    ax_count.bar(counts.index, counts.to_numpy(), color="#607d8b")
    ax_count.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_count.set_xlabel("runs in which the\nprotein is quantified")
    ax_count.set_ylabel("proteins")
    ax_count.set_title("Data completeness")
    ax_count.grid(axis="y", alpha=0.3)
    handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(table["cell_type"])]
    # proteins pile up at the right of the completeness panel, so its upper left is free for the legend
    ax_count.legend(handles=handles, title="cell type", fontsize=8, loc="upper left")
    return fig


def _pca(matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int] | None:
    """PC scores of the columns (runs) on the rows (proteins) without missing values, centred per row.

    Returns scores (runs x components), % variance per component and the number of rows used, or
    ``None`` when fewer than three runs or three complete rows leave nothing to project.
    """
    complete = matrix.apply(pd.to_numeric, errors="coerce").dropna()
    if complete.shape[0] < 3 or complete.shape[1] < 3:
        return None
    values = complete.to_numpy(dtype=float).T
    values = values - values.mean(axis=0)
    u, s, _ = np.linalg.svd(values, full_matrices=False)
    total = np.sum(s**2)
    explained = s**2 / total * 100 if total > 0 else np.zeros_like(s)
    return u * s, explained, complete.shape[0]


def _pca_overview(ax, overall, meta: pd.DataFrame, columns: list[str], palette, conditions) -> None:
    """The all-runs PCA panel: colour = cell type, marker = condition, two legends beside it."""
    scores, explained, n_proteins = overall
    for (cell_type, condition), group in meta.groupby(["cell_type", "condition"], sort=False):
        idx = [columns.index(r) for r in group.index]
        ax.scatter(
            scores[idx, 0],
            scores[idx, 1],
            s=70,
            color=palette.get(cell_type, NS_COLOR),
            marker=conditions[condition][1],
            edgecolors="black",
            linewidths=0.6,
        )
    ax.set_xlabel(f"PC1 ({explained[0]:.1f}% variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.1f}% variance)")
    ax.set_title(f"All {len(columns)} runs ({n_proteins} proteins quantified in every run)")
    ax.grid(alpha=0.3)
    type_handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(meta["cell_type"])]
    legend = ax.legend(
        handles=type_handles, title="cell type", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    ax.add_artist(legend)
    ax.legend(
        handles=[
            Line2D([], [], marker=m, color="#555555", linestyle="", markersize=8, label=n)
            for n, (_, m) in conditions.items()
            if n in set(meta["condition"])
        ],
        title="condition",
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        frameon=False,
    )


def _pca_cell_type(ax, result, cell_type: str, runs_here: list[str], meta: pd.DataFrame, palette, conditions) -> None:
    """One cell type's PCA panel: colour and marker = condition, points labelled with their sample."""
    scores, explained, n_proteins = result
    for i, run in enumerate(runs_here):
        color, marker = conditions[meta.loc[run, "condition"]]
        ax.scatter(scores[i, 0], scores[i, 1], s=60, color=color, marker=marker, edgecolors="black", linewidths=0.6)
        ax.annotate(
            str(meta.loc[run, "sample"]),
            (scores[i, 0], scores[i, 1]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set_xlabel(f"PC1 ({explained[0]:.1f}%)")
    ax.set_ylabel(f"PC2 ({explained[1]:.1f}%)")
    ax.set_title(
        f"{cell_type} ({n_proteins} proteins)",
        color=palette.get(cell_type, "black"),
        fontweight="bold",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.margins(0.15)


def pca_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    *,
    palette: Mapping[str, str] | None = None,
) -> Figure | None:
    """PCA of all runs, and of the runs of each cell type, on the proteins quantified in all of them.

    The first panel holds every run (colour = cell type, marker = condition); cell types usually
    dominate it, so one panel per cell type follows (colour and marker = condition, labels = sample)
    where differences between conditions show. Proteins are log2 and centred; axis labels give the
    variance explained. Returns ``None`` when fewer than three runs or three complete proteins leave
    nothing to project.
    """
    columns = run_columns(proteins, runs)
    overall = _pca(proteins[columns])
    if overall is None:
        return None
    meta = run_meta(runs, samples).set_index("run").reindex(columns)
    meta = meta.fillna({"cell_type": "NA", "condition": "NA", "sample": ""})
    palette = dict(palette) if palette is not None else cell_type_palette(meta["cell_type"])
    conditions = condition_palette(samples["condition"] if samples is not None else meta["condition"])
    conditions.update({c: _UNKNOWN_CONDITION for c in meta["condition"].unique() if c not in conditions})
    cell_types = [c for c in palette if c in set(meta["cell_type"])]
    panels = [(ct, _pca(proteins[[r for r in columns if meta.loc[r, "cell_type"] == ct]])) for ct in cell_types]
    panels = [(ct, result) for ct, result in panels if result is not None]

    ncols = min(len(panels), 3) if panels else 1
    nrows = 1 + int(np.ceil(len(panels) / ncols)) if panels else 1
    fig = Figure(figsize=(max(4.2 * ncols, 8.0), 5.2 + 3.9 * (nrows - 1)), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols, height_ratios=[1.35] + [1.0] * (nrows - 1))
    _pca_overview(fig.add_subplot(grid[0, :]), overall, meta, columns, palette, conditions)
    for k, (cell_type, result) in enumerate(panels):
        ax = fig.add_subplot(grid[1 + k // ncols, k % ncols])
        runs_here = [r for r in columns if meta.loc[r, "cell_type"] == cell_type]
        _pca_cell_type(ax, result, cell_type, runs_here, meta, palette, conditions)
        if k == 0:
            handles = [
                Line2D([], [], marker=m, color=c, markeredgecolor="black", linestyle="", markersize=8, label=n)
                for n, (c, m) in conditions.items()
                if n in set(meta["condition"])
            ]
            ax.legend(handles=handles, title="condition", fontsize=8, title_fontsize=8, loc="best")
    return fig


def volcano_figure(
    table: pd.DataFrame,
    *,
    title: str = "",
    contrast: tuple[str, str] | None = None,
    fdr: float | None = None,
    n_labels: int | None = None,
) -> Figure:
    """Volcano plot of one differential table: log2 fold change against -log10 P value.

    Proteins with ``adj.P.Val < fdr`` are coloured (up red, down blue); the ``n_labels`` proteins with
    the smallest P values are labelled with their first gene name. ``fdr`` and ``n_labels`` default to
    the schema's ``report.fdr`` and ``report.top_proteins``.
    """
    missing = {"logFC", "P.Value", "adj.P.Val"} - set(table.columns)
    if missing:
        raise DVPError(f"differential table: missing columns {sorted(missing)}")
    fdr = default_options().fdr if fdr is None else fdr
    n_labels = default_options().top_proteins if n_labels is None else n_labels
    data = table.dropna(subset=["logFC", "P.Value"])
    x = data["logFC"].to_numpy(dtype=float)
    y = -np.log10(np.clip(data["P.Value"].to_numpy(dtype=float), 1e-300, 1.0))
    adj = data["adj.P.Val"].to_numpy(dtype=float)
    significant = np.nan_to_num(adj, nan=1.0) < fdr
    up, down = significant & (x > 0), significant & (x < 0)
    num, den = contrast if contrast else ("numerator", "denominator")
    fig = Figure(figsize=(5.6, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(x[~significant], y[~significant], s=8, color=NS_COLOR, linewidths=0, label="not significant")
    ax.scatter(x[up], y[up], s=14, color=UP_COLOR, linewidths=0, label=f"higher in {num} ({int(up.sum())})")
    ax.scatter(x[down], y[down], s=14, color=DOWN_COLOR, linewidths=0, label=f"higher in {den} ({int(down.sum())})")
    top = float(np.nanmax(y)) * 1.08 if y.size and np.nanmax(y) > 0 else 1.0
    ax.set_ylim(0, top)
    limit = float(np.nanmax(np.abs(x))) if x.size else 0.0
    limit = limit * 1.35 if limit > 0 else 1.0  # room beside the points for the labels
    ax.set_xlim(-limit, limit)
    ax.axvline(0, color="grey", linewidth=0.6)
    if significant.any():
        line = -np.log10(np.max(data["P.Value"].to_numpy(dtype=float)[significant]))
        ax.axhline(line, color="grey", linestyle=":", linewidth=1)
        ax.text(-limit, line, f" adj.P = {fdr:g}", va="bottom", fontsize=7, color="grey")
    order = np.argsort(data["P.Value"].to_numpy(dtype=float), kind="stable")[:n_labels]
    genes = data["genes"].to_numpy() if "genes" in data.columns else np.full(len(data), None)
    proteins = data["protein"].to_numpy() if "protein" in data.columns else data.index.to_numpy()
    label_points(ax, x[order], y[order], [first_gene(genes[i], proteins[i]) for i in order])
    ax.set_xlabel(f"log2 fold change ({num} / {den})")
    ax.set_ylabel("-log10 P value")
    ax.set_title(title)
    fig.legend(fontsize=8, loc="outside lower center", ncol=3, frameon=False, markerscale=1.5)
    return fig
