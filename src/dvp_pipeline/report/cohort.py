"""The cohort report: one HTML page with the design, MS QC, differential tests and pathways.

Part of the report stage (``dvp report cohort``). :func:`cohort_report` is pure: it takes the cohort
tables and returns the page, assembled from one small builder per section: provenance, design,
classifier (supervised only), identifications, quantification QC, PCA, volcanos, pathway tables,
pathway-score heatmaps. :func:`build_cohort_report` reads those tables from a results folder
(:mod:`dvp_pipeline.report.inputs`) for the tests the ``differential`` options configure, and calls
it; it is what the CLI and a notebook call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline import __version__
from dvp_pipeline.config import load_config
from dvp_pipeline.differential import remove_covariates
from dvp_pipeline.errors import DVPError
from dvp_pipeline.layout import Results
from dvp_pipeline.options import DifferentialOptions, ReportOptions
from dvp_pipeline.report import html
from dvp_pipeline.report.figures import (
    identifications_figure,
    intensity_cv_figure,
    missing_values_figure,
    pathway_dotplot_figure,
    pathway_heatmap_figure,
    pathway_scores_long,
    pca_figure,
    set_member_heatmap_figure,
    volcano_figure,
)
from dvp_pipeline.report.figures._util import (
    default_highlight,
    default_options,
    is_jak_stat,
    order_runs,
    run_columns,
    run_meta,
)
from dvp_pipeline.report.inputs import read_cohort_inputs
from dvp_pipeline.report.palettes import (
    NS_COLOR,
    cell_type_palette,
    condition_palette,
    config_cell_types,
    config_score_method,
)

__all__ = ["build_cohort_report", "classifier_table", "cohort_report"]

#: Config sections the cohort page depends on, listed under provenance.
CONFIG_SECTIONS = ("quantify", "differential", "pathways", "report")
#: Columns of the pathway tables shown, where present.
_PATHWAY_COLUMNS = ("rank", "set", "collection", "set_size", "NGenes", "Correlation", "Direction", "PValue", "FDR")
_QC_FORMATS = {"missing_fraction": "{:.3f}", "median_log2": "{:.2f}"}

Key = tuple[str, str]  # (folder, name) of a test, e.g. ("keratinocyte", "TEN_vs_MPR")


@dataclass(frozen=True)
class _Page:
    """What every section of the cohort page shares: figure settings, colours, highlighted sets."""

    options: ReportOptions
    palette: dict[str, str]
    conditions: dict[str, tuple[str, str]]
    highlight: list[str]
    scores: tuple[str, str]  # label and sentence of the per-run pathway scores

    @property
    def dpi(self) -> int:
        return self.options.dpi


def classifier_table(confusion: pd.DataFrame, summary: Mapping | None = None) -> pd.DataFrame:
    """The cross-validated confusion matrix with each type's recall, precision and cell count.

    Parameters
    ----------
    confusion
        ``cohort/classifier/confusion.tsv`` as read: a ``true`` column (annotated type) and one
        column of cell counts per predicted type.
    summary
        ``cohort/classifier/summary.json``; its ``per_class`` precision and recall are used when
        present, else they are computed from the matrix.

    Returns
    -------
    One row per annotated type: ``annotated type``, ``predicted <type>`` counts, ``recall``,
    ``precision``, ``cells``.
    """
    if "true" not in confusion.columns:
        raise DVPError("classifier confusion.tsv: expected a 'true' column (annotated type) and predicted-type columns")
    matrix = confusion.set_index(confusion["true"].astype(str)).drop(columns="true")
    matrix.columns = [str(c) for c in matrix.columns]
    counts = matrix.to_numpy(dtype=float)
    diagonal = np.array([matrix.at[t, t] if t in matrix.columns else 0 for t in matrix.index], dtype=float)
    recall = diagonal / np.maximum(counts.sum(axis=1), 1)
    predicted = matrix.sum(axis=0)
    precision = diagonal / np.maximum([predicted.get(t, 0) for t in matrix.index], 1)
    per_class = {str(r.get("cell_type")): r for r in (summary or {}).get("per_class", [])}
    table = matrix.astype(int).rename(columns=lambda c: f"predicted {c}")
    table.insert(0, "annotated type", matrix.index)
    table["recall"] = [float(per_class.get(t, {}).get("recall", r)) for t, r in zip(matrix.index, recall, strict=True)]
    table["precision"] = [
        float(per_class.get(t, {}).get("precision", p)) for t, p in zip(matrix.index, precision, strict=True)
    ]
    table["cells"] = counts.sum(axis=1).astype(int)
    return table.reset_index(drop=True)


def _provenance_section(
    page: _Page, samples: pd.DataFrame, runs: pd.DataFrame, config: Mapping | None, inputs: pd.DataFrame | None
) -> dict:
    """Overview: cohort size, conditions, cell types, the config sections and the input files."""
    provenance = [
        ("samples", len(samples)),
        ("runs", len(runs)),
        ("conditions", ", ".join(page.conditions)),
        ("cell types", ", ".join(page.palette)),
        ("dvp-pipeline version", __version__),
        ("report generated", html.now()),
    ]
    return {
        "provenance": [(k, html.format_value(v)) for k, v in provenance],
        "config": html.config_table(config, CONFIG_SECTIONS),
        "inputs": html.table(inputs) if inputs is not None and len(inputs) else None,
    }


def _design_section(
    page: _Page, samples: pd.DataFrame, runs: pd.DataFrame, meta: pd.DataFrame, run_wells: pd.DataFrame | None = None
) -> dict:
    """Runs per condition and cell type (with the samples per condition), and the two sheets; each run
    with its plate, well, pool and cells when the plate map is known."""
    design = meta.groupby(["condition", "cell_type"]).size().unstack(fill_value=0)
    design = design.reindex(columns=[c for c in page.palette if c in design.columns])
    design = design.reindex(
        [c for c in page.conditions if c in design.index] + [c for c in design.index if c not in page.conditions]
    )
    design.insert(
        0,
        "samples",
        samples.groupby("condition")["sample"].nunique().reindex(design.index).fillna(0).astype(int)
        if "condition" in samples.columns
        else 0,
    )
    return {
        "samples": html.table(samples, download="samples.tsv"),
        "runs": html.table(run_wells if run_wells is not None else runs, download="runs.tsv"),
        "design": html.table(design.reset_index()),
    }


def _classifier_section(confusion: pd.DataFrame | None, summary: Mapping | None) -> dict:
    """A supervised classifier's cross-validated accuracy and confusion matrix (none with gating rules)."""
    if confusion is None:
        return {"classifier": None}
    summary = dict(summary or {})
    cards = []
    if summary.get("accuracy") is not None:
        cards.append(("cross-validated accuracy", f"{float(summary['accuracy']):.3f}"))
    if summary.get("n_cells") is not None:
        cards.append(("annotated cells", f"{int(summary['n_cells']):,}"))
    if summary.get("folds") is not None:
        cards.append(("folds", str(int(summary["folds"]))))
    table = classifier_table(confusion, summary)
    return {
        "classifier": {
            "cards": cards,
            "table": html.table(table, formats={"recall": "{:.3f}", "precision": "{:.3f}"}),
        }
    }


def _identifications_section(page: _Page, quant_qc: pd.DataFrame | None, meta: pd.DataFrame) -> dict:
    """Proteins and precursors per run, and the quantification QC table."""
    if quant_qc is None:
        return {"identifications": None, "qc": None}
    with_condition = quant_qc.merge(meta[["run", "condition"]], on="run", how="left")
    fig = identifications_figure(with_condition, palette=page.palette, conditions=list(page.conditions))
    return {
        "identifications": html.figure(fig, alt="proteins and precursors per run", dpi=page.dpi, wide=True),
        "qc": html.table(
            order_runs(with_condition, page.palette, list(page.conditions)),
            download="quant_qc.tsv",
            full=quant_qc,
            formats=_QC_FORMATS,
        ),
    }


def _quantification_section(
    page: _Page, proteins: pd.DataFrame | None, runs: pd.DataFrame, samples: pd.DataFrame
) -> dict:
    """Abundance distributions and replicate CV, missing values per run and their summary."""
    if proteins is None:
        return {"intensity_cv": None, "missing": None, "missing_summary": None}
    columns = run_columns(proteins, runs)
    matrix = proteins[columns].apply(pd.to_numeric, errors="coerce")
    return {
        "intensity_cv": html.figure(
            intensity_cv_figure(proteins, runs, samples, palette=page.palette),
            alt="abundance distribution per run and CV between replicate runs",
            dpi=page.dpi,
            wide=True,
        ),
        "missing": html.figure(
            missing_values_figure(proteins, runs, samples, palette=page.palette),
            alt="missing values per run",
            dpi=page.dpi,
            wide=True,
        ),
        "missing_summary": [
            ("proteins", f"{len(matrix):,}"),
            ("runs", str(len(columns))),
            ("values missing", f"{float(matrix.isna().to_numpy().mean() * 100) if matrix.size else 0:.1f}%"),
            ("proteins quantified in every run", f"{int(matrix.notna().all(axis=1).sum()):,}"),
        ],
    }


def _pca_section(
    page: _Page,
    proteins: pd.DataFrame | None,
    runs: pd.DataFrame,
    samples: pd.DataFrame,
    covariates: Sequence[str] = (),
) -> dict:
    """PCA of all runs and of each cell type's runs; with covariates, again after removing their effects."""
    if proteins is None:
        return {"pca": None, "pca_adjusted_by": None}

    def figure(matrix: pd.DataFrame, alt: str):
        return html.figure(pca_figure(matrix, runs, samples, palette=page.palette), alt=alt, dpi=page.dpi)

    out = {"pca": figure(proteins, "PCA of runs"), "pca_adjusted_by": None, "pca_adjusted": None}
    if covariates:
        columns = run_columns(proteins, runs)
        adjusted = proteins.copy()
        adjusted[columns] = remove_covariates(proteins[columns], samples, runs, covariates)
        out["pca_adjusted_by"] = " and ".join(covariates)
        out["pca_adjusted"] = figure(adjusted, f"PCA of runs after removing {out['pca_adjusted_by']}")
    return out


def _split_contrast(contrast: str) -> tuple[str, str]:
    num, sep, den = str(contrast).partition("_vs_")
    return (num, den) if sep else (str(contrast), "")


def _contrast_name(contrast: str) -> str:
    num, den = _split_contrast(contrast)
    return f"{num} vs {den}" if den else contrast


def _imputed_warning(table: pd.DataFrame) -> str | None:
    """A warning when imputed values enter the test (``n_imputed_*`` columns of the table)."""
    imputed_columns = [c for c in table.columns if str(c).startswith("n_imputed_")]
    if not imputed_columns:
        return None
    n_imputed = pd.to_numeric(table[imputed_columns].stack(), errors="coerce").fillna(0)
    if n_imputed.sum() <= 0:
        return None
    proteins_with = int((table[imputed_columns].fillna(0).to_numpy() > 0).any(axis=1).sum())
    return (
        f"Warning: {int(n_imputed.sum())} imputed values enter this test ({proteins_with} proteins); "
        "their P values rest partly on invented numbers."
    )


def _volcano_section(
    page: _Page, differential: Mapping[Key, pd.DataFrame], keys: Sequence[Key]
) -> tuple[dict[Key, dict], dict | None]:
    """Per test: volcano, top proteins and an imputation warning; and the significant-protein counts."""
    options = page.options
    entries, summary_rows = {}, []
    for key in keys:
        table = differential.get(key)
        if table is None:
            continue
        cell_type, contrast = key
        num, den = _split_contrast(contrast)
        adj = pd.to_numeric(table["adj.P.Val"], errors="coerce")
        logfc = pd.to_numeric(table["logFC"], errors="coerce")
        summary_rows.append(
            {
                "contrast": _contrast_name(contrast),
                "cell type": cell_type,
                "proteins tested": len(table),
                f"higher in {num}": int(((adj < options.fdr) & (logfc > 0)).sum()),
                f"higher in {den}": int(((adj < options.fdr) & (logfc < 0)).sum()),
            }
        )
        fig = volcano_figure(
            table,
            title=f"{cell_type}: {num} vs {den}",
            contrast=(num, den),
            fdr=options.fdr,
            n_labels=options.top_proteins,
        )
        top = table.sort_values("P.Value", kind="stable").head(options.top_proteins)
        top = top[[c for c in ("genes", "protein", "logFC", "AveExpr", "P.Value", "adj.P.Val") if c in top.columns]]
        entries[key] = {
            "volcano": html.figure(fig, alt=f"volcano plot {cell_type} {contrast}", dpi=page.dpi),
            "imputed": _imputed_warning(table),
            "top": html.table(
                top, download=f"differential_{cell_type}_{contrast}.tsv", full=table, formats=html.STAT_FORMATS
            ),
        }
    summary = html.table(pd.DataFrame(summary_rows).fillna(0)) if summary_rows else None
    return entries, summary


def _rank(ordered: pd.DataFrame, name: str) -> int:
    """Rank (1 = best P value) of a gene set in a pathway table sorted by P value."""
    return int(np.flatnonzero(ordered["set"].to_numpy() == name)[0]) + 1


def _pathway_tables_section(
    page: _Page, pathways: Mapping[Key, pd.DataFrame], keys: Sequence[Key]
) -> tuple[dict[Key, dict], dict | None]:
    """Per test: the pathway dot plot and table (top sets plus the highlighted ones); and the key results."""
    options, highlight = page.options, page.highlight
    entries, key_rows = {}, []
    for key in keys:
        table = pathways.get(key)
        if table is None:
            continue
        cell_type, contrast = key
        ordered = table.sort_values("PValue", kind="stable") if "PValue" in table.columns else table
        chosen = ordered.head(options.top_sets)
        extra = ordered[ordered["set"].isin(highlight) & ~ordered["set"].isin(chosen["set"])]
        shown = pd.concat([chosen, extra])
        shown.insert(0, "rank", [_rank(ordered, s) for s in shown["set"]])
        fig = pathway_dotplot_figure(
            table,
            title=f"{cell_type}: {_contrast_name(contrast)}",
            highlight=highlight,
            n_sets=options.top_sets,
            fdr=options.fdr,
        )
        entries[key] = {
            "dotplot": html.figure(fig, alt=f"pathway dot plot {cell_type} {contrast}", dpi=page.dpi),
            "pathways": html.table(
                shown[[c for c in _PATHWAY_COLUMNS if c in shown.columns]],
                row_classes=[html.set_class(s, highlight) for s in shown["set"]],
                download=f"pathways_{cell_type}_{contrast}.tsv",
                full=table,
                formats=html.STAT_FORMATS,
            ),
        }
        for name in highlight:
            hit = ordered[ordered["set"] == name]
            if len(hit):
                hit = hit.iloc[0]
                key_rows.append(
                    {
                        "set": name,
                        "contrast": _contrast_name(contrast),
                        "cell type": cell_type,
                        "rank": _rank(ordered, name),
                        "Direction": hit.get("Direction"),
                        "PValue": hit.get("PValue"),
                        "FDR": hit.get("FDR"),
                    }
                )
    if not key_rows:
        return entries, None
    key_table = pd.DataFrame(key_rows).sort_values(
        "set", key=lambda s: s.map(lambda n: (not is_jak_stat(n), highlight.index(n))), kind="stable"
    )
    key_results = html.table(
        key_table, row_classes=[html.set_class(s, highlight) for s in key_table["set"]], formats=html.STAT_FORMATS
    )
    return entries, key_results


def _contrast_blocks(
    page: _Page, keys: Sequence[Key], volcanos: Mapping[Key, dict], tables: Mapping[Key, dict]
) -> list[dict]:
    """One block per contrast, with an entry per cell type holding its volcano and pathway table."""
    blocks: dict[str, dict] = {}
    for cell_type, contrast in keys:
        block = blocks.setdefault(
            contrast, {"name": _contrast_name(contrast), "id": html.slug(contrast), "cell_types": []}
        )
        entry = {
            "cell_type": cell_type,
            "id": html.slug(f"{contrast}-{cell_type}"),
            "volcano": None,
            "top": None,
            "pathways": None,
            "dotplot": None,
            "imputed": None,
            "color": page.palette.get(cell_type, NS_COLOR),
        }
        entry.update(volcanos.get((cell_type, contrast), {}))
        entry.update(tables.get((cell_type, contrast), {}))
        block["cell_types"].append(entry)
    return list(blocks.values())


def _tests_section(page: _Page, differential: Mapping[Key, pd.DataFrame], pathways: Mapping[Key, pd.DataFrame]) -> dict:
    """The differential and pathway results of every test, by contrast then cell type (palette order)."""
    palette = list(page.palette)
    keys = sorted(
        set(differential) | set(pathways),
        key=lambda k: (k[1], palette.index(k[0]) if k[0] in palette else len(palette), k[0]),
    )
    volcanos, diff_summary = _volcano_section(page, differential, keys)
    tables, key_results = _pathway_tables_section(page, pathways, keys)
    return {
        "contrasts": _contrast_blocks(page, keys, volcanos, tables),
        "diff_summary": diff_summary,
        "key_results": key_results,
    }


def _heatmap_section(
    page: _Page, pathway_scores: pd.DataFrame | None, runs: pd.DataFrame, samples: pd.DataFrame
) -> dict:
    """Scores of the highlighted sets in every run, and the sets without scores."""
    if pathway_scores is None:
        return {"heatmap": None, "missing_sets": []}
    long = pathway_scores_long(pathway_scores, runs, samples)
    present = set(long["set"])
    fig = pathway_heatmap_figure(
        long, sets=page.highlight, palette=page.palette, conditions=page.conditions, score_label=page.scores[0]
    )
    return {
        "heatmap": html.figure(fig, alt="heatmap of pathway scores per run", dpi=page.dpi, wide=True),
        "missing_sets": [s for s in page.highlight if s not in present],
    }


def _member_heatmap_section(
    page: _Page, proteins: pd.DataFrame | None, runs: pd.DataFrame, samples: pd.DataFrame
) -> dict:
    """The measured members of the highlighted JAK/STAT sets (Hallmark) across runs."""
    jak_sets = [s for s in page.highlight if is_jak_stat(s)]
    if proteins is None or not jak_sets:
        return {"member_heatmap": None}
    from dvp_pipeline.genesets import load_collection

    hallmark = load_collection("hallmark")
    members = sorted({g for name in jak_sets for g in hallmark.get(name, [])})
    if not members:
        return {"member_heatmap": None}
    fig = set_member_heatmap_figure(
        proteins,
        runs,
        samples,
        members,
        title=", ".join(jak_sets),
        palette=page.palette,
        conditions=page.conditions,
    )
    return {
        "member_heatmap": html.figure(
            fig, alt="heatmap of JAK/STAT member proteins across runs", dpi=page.dpi, wide=True
        )
    }


def cohort_report(
    *,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    quant_qc: pd.DataFrame | None = None,
    proteins: pd.DataFrame | None = None,
    differential: Mapping[Key, pd.DataFrame] | None = None,
    pathways: Mapping[Key, pd.DataFrame] | None = None,
    pathway_scores: pd.DataFrame | None = None,
    classifier_confusion: pd.DataFrame | None = None,
    classifier_summary: Mapping | None = None,
    highlight: Sequence[str] | None = None,
    options: ReportOptions | None = None,
    config: Mapping | None = None,
    inputs: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
    covariates: Sequence[str] = (),
    run_wells: pd.DataFrame | None = None,
) -> str:
    """The cohort report as one self-contained HTML page.

    A section whose table is ``None`` says so on the page.

    Parameters
    ----------
    samples, runs
        The samples and runs sheets.
    quant_qc
        ``cohort/quant_qc.tsv``.
    proteins
        ``cohort/proteins.tsv`` (protein, genes, one log2 column per run).
    differential
        ``(folder, name) -> table`` of each test's ``cohort/differential/{folder}/{name}.tsv``; the
        folder is the cell type (``{a}_x_{b}`` for an interaction) and the name ``{num}_vs_{den}``.
    pathways
        ``(folder, name) -> table`` of ``cohort/pathways/{folder}/{name}.tsv`` (camera).
    pathway_scores
        ``cohort/pathway_scores.tsv``.
    classifier_confusion, classifier_summary
        ``cohort/classifier/confusion.tsv`` and ``summary.json`` of a supervised cell-type classifier
        (:func:`dvp_pipeline.classify.train_classifier`): its cross-validated accuracy and confusion
        matrix get a section (left out when classification used gating rules).
    highlight
        Gene sets always listed in the pathway tables and drawn in the heatmap (default: the schema's
        ``pathways.highlight``); JAK/STAT sets are emphasised.
    options
        The report options (title, dpi, fdr, top_proteins, top_sets); default: the schema's.
    config
        The config: its sections are listed under provenance (quantify, differential, pathways,
        report) and the order of its cell-type rules colours the cell types.
    inputs
        Table of the input files read (file, bytes, modified).
    notes
        Messages shown at the top.
    covariates
        ``differential.covariates``: the PCA is shown again with their effects removed.
    run_wells
        The runs sheet with each run's plate, well, pool and cells (:func:`dvp_pipeline.plates.link_runs`),
        shown instead of the plain runs sheet.

    Returns
    -------
    The HTML page.
    """
    options = options if options is not None else default_options()
    differential = dict(differential or {})
    pathways = dict(pathways or {})
    seen = list(runs["cell_type"].astype(str)) + [k[0] for k in (*differential, *pathways)]
    page = _Page(
        options=options,
        palette=cell_type_palette(seen, order=config_cell_types(config)),
        conditions=condition_palette(samples["condition"]) if "condition" in samples.columns else {},
        highlight=list(highlight) if highlight is not None else list(default_highlight()),
        scores=config_score_method(config),
    )
    meta = run_meta(runs, samples)
    context = {
        "title": f"{options.title}: cohort",
        "version": __version__,
        "generated": html.now(),
        "notes": list(notes),
        "fdr": options.fdr,
        "score_sentence": page.scores[1],
        **_provenance_section(page, samples, runs, config, inputs),
        **_design_section(page, samples, runs, meta, run_wells),
        **_classifier_section(classifier_confusion, classifier_summary),
        **_identifications_section(page, quant_qc, meta),
        **_quantification_section(page, proteins, runs, samples),
        **_pca_section(page, proteins, runs, samples, covariates=covariates),
        **_tests_section(page, differential, pathways),
        **_heatmap_section(page, pathway_scores, runs, samples),
        **_member_heatmap_section(page, proteins, runs, samples),
    }
    return html.render("cohort.html.j2", **context)


def build_cohort_report(
    results: Results | str | os.PathLike,
    *,
    samples_path: str | os.PathLike,
    runs_path: str | os.PathLike,
    options: ReportOptions | None = None,
    differential: DifferentialOptions | None = None,
    highlight: Sequence[str] | None = None,
    config: Mapping | str | os.PathLike | None = None,
) -> str:
    """Read the cohort's results and return the cohort report page.

    Parameters
    ----------
    results
        The results layout, or its folder.
    samples_path, runs_path
        The samples and runs sheets.
    options
        The report options; default: the schema's.
    differential
        The ``differential`` options, whose tests name the differential and pathway tables shown
        (default: the config's ``differential`` section; one of the two is needed).
    highlight
        Gene sets listed and drawn (default: the schema's ``pathways.highlight``).
    config
        The config (a mapping, or ``config.yaml`` to read): listed under provenance, and the order of
        its cell-type rules colours the cell types.

    Raises
    ------
    DVPError
        When an input is missing (the message names the file and the stage that writes it), or when
        neither ``differential`` nor a config with a ``differential`` section is given.

    Examples
    --------
    In a project folder after ``dvp run``::

        html = build_cohort_report("results", samples_path="config/samples.tsv", runs_path="config/runs.tsv",
                                   config="config/config.yaml")
    """
    results = results if isinstance(results, Results) else Results(str(Path(results)))
    options = options if options is not None else default_options()
    config = load_config(config) if isinstance(config, str | os.PathLike) else config
    if differential is None:
        if not config or "differential" not in config:
            raise DVPError(
                "the cohort report needs the differential options (their tests name the tables it shows): "
                "pass them, or a config with a 'differential' section"
            )
        differential = DifferentialOptions.from_mapping(config["differential"], source="config: differential")
    data = read_cohort_inputs(results, samples_path=samples_path, runs_path=runs_path, differential=differential)
    return cohort_report(
        samples=data.samples,
        runs=data.runs,
        quant_qc=data.quant_qc,
        proteins=data.proteins,
        differential=data.differential,
        pathways=data.pathways,
        pathway_scores=data.pathway_scores,
        classifier_confusion=data.classifier_confusion,
        classifier_summary=data.classifier_summary,
        highlight=highlight,
        options=options,
        config=config,
        inputs=data.inputs,
        notes=data.notes,
        covariates=differential.covariates,
        run_wells=data.run_wells,
    )
