"""Pathway figures of the reports: per-run set scores, score heatmaps, dot plots and member heatmaps.

Part of the report stage. These figures show what ``dvp pathways`` wrote: the per-run scores of
``pathway_scores.tsv`` (one set in every run, or the highlighted sets as a heatmap), the camera
table of one test as a dot plot, and the measured members of the JAK/STAT sets across runs.
JAK/STAT sets are emphasised everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from dvp_pipeline.errors import DVPError
from dvp_pipeline.report.figures._util import default_options, is_jak_stat, run_meta
from dvp_pipeline.report.palettes import (
    DOWN_COLOR,
    EMPHASIS_COLOR,
    NS_COLOR,
    UP_COLOR,
    cell_type_palette,
    condition_palette,
)

__all__ = [
    "pathway_dotplot_figure",
    "pathway_heatmap_figure",
    "pathway_score_figure",
    "pathway_scores_long",
    "set_member_heatmap_figure",
]

_JAK_LABEL_COLOR = "#8a5a00"
_EMPHASIS_BACKGROUND = "#fff8e1"
_UNKNOWN_CONDITION = ("#7f7f7f", "o")


def pathway_scores_long(
    pathway_scores: pd.DataFrame, runs: pd.DataFrame, samples: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``pathway_scores.tsv`` (sets x runs) as a long table: set, run, score, sample, cell_type, condition."""
    if "set" not in pathway_scores.columns:
        raise DVPError("pathway scores: expected a 'set' column")
    columns = [c for c in pathway_scores.columns if c not in ("set", "collection")]
    long = pathway_scores.melt(id_vars=["set"], value_vars=columns, var_name="run", value_name="score")
    long["score"] = pd.to_numeric(long["score"], errors="coerce")
    long = long.merge(run_meta(runs, samples), on="run", how="left")
    return long.fillna({"sample": "NA", "cell_type": "NA", "condition": "NA"})


def _draw_score_group(ax, group: pd.DataFrame, position: float, width: float, style, sample, rng) -> bool:
    """One cell type and condition of a score figure: a box, jittered points, stars for ``sample``'s runs.

    Returns whether a star was drawn.
    """
    color, marker = style
    values = group["score"].to_numpy(dtype=float)
    ax.boxplot(
        values,
        positions=[position],
        widths=width * 0.75,
        patch_artist=True,
        showfliers=False,
        boxprops={"facecolor": color, "alpha": 0.25, "edgecolor": color},
        medianprops={"color": color, "linewidth": 2},
        whiskerprops={"color": color},
        capprops={"color": color},
    )
    jitter = rng.uniform(-width * 0.18, width * 0.18, len(values))
    mine = (group["sample"] == sample).to_numpy() if sample is not None else np.zeros(len(values), bool)
    ax.scatter(
        position + jitter[~mine],
        values[~mine],
        s=28,
        color=color,
        marker=marker,
        edgecolors="white",
        linewidths=0.5,
        zorder=3,
    )
    if not mine.any():
        return False
    ax.scatter(
        position + jitter[mine],
        values[mine],
        s=260,
        color=color,
        marker="*",
        edgecolors="black",
        linewidths=1.2,
        zorder=4,
    )
    return True


def pathway_score_figure(
    scores: pd.DataFrame,
    *,
    set_name: str,
    sample: str | None = None,
    palette: Mapping[str, str] | None = None,
    conditions: Mapping[str, tuple[str, str]] | None = None,
    emphasize: bool = False,
    score_label: str = "mean protein z-score",
) -> Figure:
    """One gene set's score in every run: a box and points per cell type and condition.

    Parameters
    ----------
    scores
        Long table from :func:`pathway_scores_long`.
    set_name
        The gene set to draw.
    sample
        Sample whose runs are drawn as large stars.
    palette, conditions
        Cell-type colours and ``(colour, marker)`` per condition.
    emphasize
        Frame the figure in the emphasis colour (used for JAK/STAT sets).
    """
    data = scores[(scores["set"] == set_name)].dropna(subset=["score"])
    palette = dict(palette) if palette is not None else cell_type_palette(data["cell_type"])
    conditions = dict(conditions) if conditions is not None else condition_palette(data["condition"])
    cell_types = [c for c in palette if c in set(data["cell_type"])] + sorted(set(data["cell_type"]) - set(palette))
    present = [c for c in conditions if c in set(data["condition"])]
    fig = Figure(figsize=(min(max(5.6, 1.3 * len(cell_types) + 2.4), 12.0), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(len(present), 1)
    rng = np.random.default_rng(0)  # fixed jitter: reruns give identical figures
    starred = False
    for i, cell_type in enumerate(cell_types):
        for j, condition in enumerate(present):
            group = data[(data["cell_type"] == cell_type) & (data["condition"] == condition)]
            if not group.empty:
                position = i - 0.4 + width * (j + 0.5)
                starred |= _draw_score_group(ax, group, position, width, conditions[condition], sample, rng)
    ax.axhline(0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(cell_types)), cell_types)
    for tick, cell_type in zip(ax.get_xticklabels(), cell_types, strict=True):
        tick.set_color(palette.get(cell_type, "black"))
        tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(cell_types) - 0.4)
    ax.set_xlabel("cell type")
    ax.set_ylabel(f"pathway score ({score_label})")
    ax.set_title(
        ("JAK/STAT: " if emphasize else "") + set_name,
        fontweight="bold" if emphasize else "normal",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    handles = [
        Line2D([], [], marker=conditions[c][1], color=conditions[c][0], linestyle="", markersize=8, label=c)
        for c in present
    ]
    if starred:
        handles.append(
            Line2D(
                [],
                [],
                marker="*",
                color="#999999",
                markeredgecolor="black",
                linestyle="",
                markersize=14,
                label=f"{sample} (this sample)",
            )
        )
    ax.legend(handles=handles, title="condition", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if emphasize:
        fig.patch.set_facecolor(_EMPHASIS_BACKGROUND)
        for spine in ax.spines.values():
            spine.set_edgecolor(EMPHASIS_COLOR)
            spine.set_linewidth(2.5)
    return fig


def _bold_jak_stat(ax, names: Sequence[str]) -> None:
    """JAK/STAT set names on the y axis in bold and in the emphasis colour."""
    for tick, name in zip(ax.get_yticklabels(), names, strict=True):
        if is_jak_stat(name):
            tick.set_fontweight("bold")
            tick.set_color(_JAK_LABEL_COLOR)


def pathway_heatmap_figure(
    scores: pd.DataFrame,
    *,
    sets: Sequence[str],
    palette: Mapping[str, str] | None = None,
    conditions: Mapping[str, tuple[str, str]] | None = None,
    score_label: str = "mean z-score",
) -> Figure | None:
    """Heatmap of pathway scores (rows: sets, columns: runs grouped by cell type and condition).

    ``scores`` is the long table of :func:`pathway_scores_long`. JAK/STAT rows are labelled in bold.
    Returns ``None`` when none of ``sets`` has scores.
    """
    from matplotlib.colors import to_rgb

    data = scores[scores["set"].isin(list(sets))]
    if data.empty:
        return None
    palette = dict(palette) if palette is not None else cell_type_palette(data["cell_type"])
    conditions = dict(conditions) if conditions is not None else condition_palette(data["condition"])
    meta = data.drop_duplicates("run")[["run", "sample", "cell_type", "condition"]]
    type_rank = {c: i for i, c in enumerate(palette)}
    cond_rank = {c: i for i, c in enumerate(conditions)}
    meta = meta.assign(
        _t=meta["cell_type"].map(lambda c: type_rank.get(c, len(type_rank))),
        _c=meta["condition"].map(lambda c: cond_rank.get(c, len(cond_rank))),
    )
    meta = meta.sort_values(["_t", "_c", "sample", "run"], kind="stable").drop(columns=["_t", "_c"])
    rows = [s for s in sets if s in set(data["set"])]
    matrix = data.pivot_table(index="set", columns="run", values="score", aggfunc="mean").reindex(
        index=rows, columns=meta["run"]
    )
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) if np.isfinite(matrix.to_numpy()).any() else 1.0
    n_runs = matrix.shape[1]
    fig = Figure(figsize=(min(max(8.0, 0.32 * n_runs + 5.5), 22.0), 1.6 + 0.45 * len(rows) + 1.4), layout="constrained")
    ax_type, ax_cond, ax_heat = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [0.35, 0.35, max(len(rows), 1) * 0.6]}
    )
    ax_type.imshow([[to_rgb(palette.get(c, NS_COLOR)) for c in meta["cell_type"]]], aspect="auto")
    ax_cond.imshow([[to_rgb(conditions.get(c, _UNKNOWN_CONDITION)[0]) for c in meta["condition"]]], aspect="auto")
    for ax, label in ((ax_type, "cell type"), (ax_cond, "condition")):
        ax.set_yticks([0], [label])
        ax.tick_params(axis="x", bottom=False)
    image = ax_heat.imshow(
        matrix.to_numpy(dtype=float),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
    )
    ax_heat.set_yticks(range(len(rows)), rows)
    _bold_jak_stat(ax_heat, rows)
    ax_heat.set_xticks(range(n_runs), meta["run"], rotation=90, fontsize=8)
    ax_heat.set_xlabel("run")
    fig.colorbar(image, ax=[ax_type, ax_cond, ax_heat], label=f"pathway score\n({score_label})", aspect=12)
    handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(meta["cell_type"])]
    handles += [Patch(color=c, label=name) for name, (c, _) in conditions.items() if name in set(meta["condition"])]
    ax_type.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.05),
        ncol=min(len(handles), 6),
        frameon=False,
        fontsize=8,
    )
    ax_type.set_title("Pathway scores of the highlighted gene sets per run", pad=28)
    return fig


def pathway_dotplot_figure(
    table: pd.DataFrame,
    *,
    title: str = "",
    highlight: Sequence[str] = (),
    n_sets: int | None = None,
    fdr: float | None = None,
) -> Figure | None:
    """Dot plot of one pathway table: the top sets by P value plus the highlighted ones.

    x is -log10 P, signed by direction (camera's Direction, or the sign of GSEA's NES); dot size is
    the number of measured members; filled dots have FDR below ``fdr``. JAK/STAT sets in bold.
    ``n_sets`` and ``fdr`` default to the schema's ``report.top_sets`` and ``report.fdr``.
    """
    if table is None or table.empty or "PValue" not in table.columns:
        return None
    n_sets = default_options().top_sets if n_sets is None else n_sets
    fdr = default_options().fdr if fdr is None else fdr
    ordered = table.sort_values("PValue", kind="stable")
    shown = pd.concat([ordered.head(n_sets), ordered[ordered["set"].isin(list(highlight))]]).drop_duplicates("set")
    shown = shown.iloc[::-1]  # best at the top
    p = np.clip(shown["PValue"].to_numpy(dtype=float), 1e-300, 1.0)
    if "Direction" in shown.columns:
        sign = np.where(shown["Direction"].astype(str) == "Down", -1.0, 1.0)
    elif "NES" in shown.columns:
        sign = np.sign(shown["NES"].to_numpy(dtype=float))
    else:
        sign = np.ones(len(shown))
    x = sign * -np.log10(p)
    sizes = shown["NGenes"].to_numpy(dtype=float) if "NGenes" in shown.columns else np.full(len(shown), 20.0)
    significant = shown["FDR"].to_numpy(dtype=float) < fdr if "FDR" in shown.columns else np.zeros(len(shown), bool)
    colors = np.where(x > 0, UP_COLOR, DOWN_COLOR)
    fig = Figure(figsize=(7.2, 1.2 + 0.28 * len(shown)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    area = 15 + 120 * sizes / max(sizes.max(), 1)
    ax.scatter(x[significant], y[significant], s=area[significant], c=colors[significant], linewidths=0)
    ax.scatter(
        x[~significant], y[~significant], s=area[~significant], facecolors="none", edgecolors=colors[~significant]
    )
    ax.axvline(0, color="grey", linewidth=0.6)
    ax.set_yticks(y, [f"{n} ({int(k)})" for n, k in zip(shown["set"], sizes, strict=True)], fontsize=7)
    _bold_jak_stat(ax, list(shown["set"]))
    limit = max(float(np.abs(x).max()) * 1.1, 1.0)
    ax.set_xlim(-limit, limit)
    ax.set_xlabel(f"-log10 P, signed by direction (filled: FDR < {fdr:g}; size: measured members)", fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def set_member_heatmap_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None,
    members: Sequence[str],
    *,
    title: str = "",
    palette: Mapping[str, str] | None = None,
    conditions: Mapping[str, tuple[str, str]] | None = None,
    max_rows: int = 60,
) -> Figure | None:
    """Heatmap of a gene set's measured proteins across runs (z-score within each cell type).

    ``proteins`` is ``proteins.tsv`` (protein, genes, one column per run); a protein counts as a
    member when any of its genes is in ``members`` (case-insensitive). Rows are the proteins with
    the most values, at most ``max_rows``.
    """
    if "genes" not in proteins.columns:
        return None
    wanted = {m.upper() for m in members}
    genes = proteins["genes"].astype(str)
    hit = genes.map(lambda g: any(x.strip().upper() in wanted for x in g.split(";")))
    run_columns = [r for r in runs["run"].astype(str) if r in proteins.columns]
    block = proteins.loc[hit.to_numpy(), run_columns].apply(pd.to_numeric, errors="coerce")
    if block.empty:
        return None
    label = genes[hit].map(lambda g: g.split(";")[0])
    block.index = [f"{lab} " if lab in set(label.iloc[:i]) else lab for i, lab in enumerate(label)]
    block = block.loc[block.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index[:max_rows]]
    block = block.loc[sorted(block.index)]
    cell_type = runs.set_index(runs["run"].astype(str))["cell_type"]
    z = block.copy()
    for _, cols in cell_type.reindex(run_columns).groupby(cell_type.reindex(run_columns)).groups.items():
        part = block[list(cols)]
        sd = part.std(axis=1, ddof=1)
        z[list(cols)] = part.sub(part.mean(axis=1), axis=0).div(sd.where(sd > 0), axis=0)
    long = z.rename_axis("set").reset_index().melt(id_vars="set", var_name="run", value_name="score")
    long = long.merge(runs[["run", "sample", "cell_type"]].astype(str), on="run")
    if samples is not None and "condition" in samples.columns:
        long = long.merge(samples[["sample", "condition"]].astype(str), on="sample", how="left")
    else:
        long["condition"] = ""
    fig = pathway_heatmap_figure(long, sets=list(z.index), palette=palette, conditions=conditions)
    if fig is not None:
        fig.axes[-1].set_ylabel("protein z-score\n(within cell type)")
        fig.suptitle(title, fontsize=10)
    return fig
