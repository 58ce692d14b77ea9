"""Tests for the HTML reports (the dvp_pipeline.report package and dvp report)."""

from __future__ import annotations

import argparse
import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from matplotlib.image import imsave

from dvp_pipeline import io, report
from dvp_pipeline.cli import report as cli
from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import ReportOptions
from dvp_pipeline.report import inputs, palettes
from dvp_pipeline.report.figures.imaging import _transform_for
from dvp_pipeline.seg_metrics import missed_blobs, segment_qc

CHANNELS = ["DAPI", "KRT14", "CD8", "CD163"]
CELL_TYPES = ["keratinocyte", "cd8_t_cell", "macrophage"]
SAMPLES = {"TEN01": "TEN", "TEN02": "TEN", "MPR01": "MPR", "MPR02": "MPR"}
DIFFERENTIAL = {"contrasts": [["TEN", "MPR"]]}
JAK = "HALLMARK_IL6_JAK_STAT3_SIGNALING"
IFNG = "HALLMARK_INTERFERON_GAMMA_RESPONSE"
EVIL = "<script>alert(1)</script>"


# --------------------------------------------------------------------------- fake results


def _write_tsv(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="NA")


def _sample_results(root: Path, sample: str, rng: np.random.Generator) -> pd.DataFrame:
    """Image, labels, cells, thresholds and LMD selection of one sample; returns the classified cells."""
    shape = (60, 90)
    labels = np.zeros(shape, dtype=np.uint32)
    image = rng.normal(100, 5, size=(4, *shape)).astype(np.float32)
    rows = []
    types = ["keratinocyte"] * 6 + ["cd8_t_cell"] * 3 + ["macrophage"] * 2 + ["unassigned"]
    for i, cell_type in enumerate(types):
        y, x = 8 + (i // 4) * 20, 10 + (i % 4) * 22
        labels[y - 4 : y + 5, x - 4 : x + 5] = i + 1
        channel = {"keratinocyte": 1, "cd8_t_cell": 2, "macrophage": 3}.get(cell_type)
        image[0, y - 4 : y + 5, x - 4 : x + 5] += 400
        if channel:
            image[channel, y - 4 : y + 5, x - 4 : x + 5] += 800
        rows.append(
            {
                "cell_id": i + 1,
                "sample": sample,
                "centroid_y": float(y),
                "centroid_x": float(x),
                "centroid_y_um": y * 0.5,
                "centroid_x_um": x * 0.5,
                "area": 81,
                "area_um2": 81 * 0.25,
                "perimeter_um": 16.0,
                "eccentricity": 0.1,
                "solidity": 1.0,
                **{f"mean_{c}": float(image[k, y - 4 : y + 5, x - 4 : x + 5].mean()) for k, c in enumerate(CHANNELS)},
                "cell_type": cell_type,
                "confidence": 0.9,
            }
        )
    image[0, 14:23, 17:26] += 400  # a nucleus the segmentation missed: between the cells, unlabelled
    folder = root / "results" / sample
    folder.mkdir(parents=True)
    missed = missed_blobs(image[0], labels, pixel_size_um=0.5, nucleus_diameter_um=4.5)
    io.write_json(segment_qc(pd.DataFrame(rows), missed, nucleus_diameter_um=4.5), folder / "segment_qc.json")
    tifffile.imwrite(root / "images" / f"{sample}.tif", image, photometric="minisblack", metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "labels.tif", labels, compression="zlib")
    cells = pd.DataFrame(rows)
    cells.drop(columns=["cell_type", "confidence"]).to_parquet(folder / "cells.parquet")
    cells.to_parquet(folder / "cells_classified.parquet")
    _write_tsv(
        pd.DataFrame(
            {
                "sample": sample,
                "marker": CHANNELS[1:],
                "threshold": [500.0, 500.0, 500.0],
                "method": "otsu",
                "transform": "arcsinh",
                "cofactor": 150.0,
                "positive_fraction": 0.3,
            }
        ),
        folder / "thresholds.tsv",
    )
    chosen = cells[cells["cell_type"] != "unassigned"]
    wells = {"keratinocyte": "A1", "cd8_t_cell": "B1", "macrophage": "C1"}
    _write_tsv(
        pd.DataFrame(
            {
                "cell_id": chosen["cell_id"],
                "cell_type": chosen["cell_type"],
                "well": chosen["cell_type"].map(wells),
                "area_um2": chosen["area_um2"],
                "n_points": 8,
                "centroid_x": chosen["centroid_x"],
                "centroid_y": chosen["centroid_y"],
            }
        ),
        folder / "lmd" / "selection.tsv",
    )
    imsave(folder / "lmd" / "preview.png", rng.random((30, 45, 3)))
    return cells


def make_project(root: Path) -> dict:
    """A tiny but complete results/ tree, following the contracts, plus the two sheets."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    cells = {s: _sample_results(root, s, rng) for s in SAMPLES}
    samples = pd.DataFrame(
        {
            "sample": list(SAMPLES),
            "condition": list(SAMPLES.values()),
            "image": [f"images/{s}.tif" for s in SAMPLES],
            "patient": [EVIL, "P2", "P3", "P4"],
            "batch": "1",
            "pixel_size_um": 0.5,
        }
    )
    runs = pd.DataFrame(
        [{"run": f"{s}_{t}", "sample": s, "cell_type": t, "well": "A1"} for s in SAMPLES for t in CELL_TYPES]
    )
    _write_tsv(samples, root / "config" / "samples.tsv")
    _write_tsv(runs, root / "config" / "runs.tsv")

    cohort = root / "results" / "cohort"
    n_proteins = 40
    genes = [f"GENE{i}" for i in range(n_proteins)]
    genes[0] = EVIL
    genes[1] = "STAT1"
    matrix = rng.normal(20, 1, size=(n_proteins, len(runs)))
    matrix[5:10, :3] = np.nan  # some missing values
    proteins = pd.DataFrame(matrix, columns=runs["run"])
    proteins.insert(0, "genes", genes)
    proteins.insert(0, "protein", [f"P{i:05d}" for i in range(n_proteins)])
    _write_tsv(proteins, cohort / "proteins.tsv")
    quant_qc = pd.DataFrame(
        {
            "run": runs["run"],
            "sample": runs["sample"],
            "cell_type": runs["cell_type"],
            "precursors": np.arange(len(runs)) * 10 + 200,
            "proteins": np.arange(len(runs)) + 30,
            "missing_fraction": proteins[runs["run"]].isna().mean().to_numpy(),
            "median_log2": 20.0,
        }
    )
    _write_tsv(quant_qc, cohort / "quant_qc.tsv")
    for cell_type in CELL_TYPES:
        pvalues = np.sort(rng.uniform(0, 1, n_proteins))
        pvalues[:3] = [1e-6, 1e-5, 1e-4]
        diff = pd.DataFrame(
            {
                "protein": proteins["protein"],
                "genes": genes,
                "logFC": rng.normal(0, 1, n_proteins),
                "AveExpr": 20.0,
                "t": 1.0,
                "P.Value": pvalues,
                "adj.P.Val": np.minimum(pvalues * n_proteins, 1),
                "B": 0.0,
                "n_valid_TEN": 6,
                "n_valid_MPR": 6,
            }
        )
        _write_tsv(diff, cohort / "differential" / cell_type / "TEN_vs_MPR.tsv")
        sets = [f"REACTOME_SET_{i}" for i in range(20)] + [EVIL, IFNG, JAK]
        pathways = pd.DataFrame(
            {
                "set": sets,
                "collection": "reactome",
                "set_size": 10,
                "NGenes": 8,
                "Correlation": 0.01,
                "Direction": "Up",
                "PValue": np.linspace(0.001, 0.9, len(sets)),
                "FDR": np.linspace(0.01, 0.95, len(sets)),
            }
        )
        _write_tsv(pathways, cohort / "pathways" / cell_type / "TEN_vs_MPR.tsv")
    scores = pd.DataFrame(rng.normal(0, 1, size=(3, len(runs))), columns=runs["run"])
    scores.insert(0, "collection", "hallmark")
    scores.insert(0, "set", [JAK, IFNG, "HALLMARK_INTERFERON_ALPHA_RESPONSE"])
    _write_tsv(scores, cohort / "pathway_scores.tsv")
    return {"root": root, "cells": cells, "samples": samples, "runs": runs, "quant_qc": quant_qc}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    return make_project(tmp_path_factory.mktemp("project"))


def _args(project: dict, kind: str, out: Path, options: dict | None = None, **extra) -> argparse.Namespace:
    root = project["root"]
    if kind == "cohort":
        extra.setdefault("differential_options", json.dumps(DIFFERENTIAL))
    return argparse.Namespace(
        report_kind=kind,
        results=str(root / "results"),
        samples=str(root / "config/samples.tsv"),
        runs=str(root / "config/runs.tsv"),
        out=str(out),
        config=None,
        options=json.dumps(options) if options is not None else None,
        **extra,
    )


@pytest.fixture(scope="module")
def sample_html(project, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("reports") / "TEN01.html"
    cli.run(_args(project, "sample", out, {"highlight": [JAK, IFNG]}, sample="TEN01"))
    return out.read_text()


@pytest.fixture(scope="module")
def cohort_html(project, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("reports") / "cohort.html"
    cli.run(_args(project, "cohort", out, {"title": "Skin cohort", "highlight": [JAK, IFNG]}))
    return out.read_text()


# --------------------------------------------------------------------------- HTML checks


class _Page(HTMLParser):
    """Collects the ids, image sources, links and tables (header + classed rows) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids, self.images, self.links, self.scripts = set(), [], [], []
        self.tables: list[dict] = []
        self._row: list[str] | None = None
        self._row_class = ""
        self._cell: list[str] | None = None

    @property
    def rows(self) -> list[tuple[str, list[str]]]:
        return [row for table in self.tables for row in table["rows"]]

    def table(self, *header: str) -> list[dict]:
        """Rows (column -> text) of every table whose header starts with ``header``."""
        return [
            dict(zip(t["header"], r, strict=True))
            for t in self.tables
            if tuple(t["header"][: len(header)]) == header
            for _, r in t["rows"]
        ]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("a", "link"):
            self.links.append(attrs.get("href", ""))
        if tag == "script":
            self.scripts.append(attrs.get("src"))
        if tag == "table":
            self.tables.append({"header": [], "rows": []})
        if tag == "tr":
            self._row, self._row_class = [], attrs.get("class") or ""
        if tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if tag == "th" and not self._row:
                self.tables[-1]["header"].append(text)
            else:
                self._row.append(text)
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row:
                self.tables[-1]["rows"].append((self._row_class, self._row))
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _check_images(page: _Page) -> None:
    assert page.images
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def _check_self_contained(html: str, page: _Page) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert all(src is None for src in page.scripts)
    assert all(link.startswith(("#", "data:")) for link in page.links)


def test_sample_report_sections(sample_html):
    page = parse(sample_html)
    assert {"overview", "image", "segmentation-quality", "cell-types", "markers", "selection", "ms-qc", "pathways"} <= (
        page.ids
    )
    assert "Deep Visual Proteomics report: TEN01" in sample_html
    assert 'class="missing"' not in sample_html  # every input was there
    _check_images(page)
    assert "gallery" in page.ids
    # thumbnail, nucleus shapes, QC window, map, example cells, histograms, preview, QC bars, two pathway sets
    assert len(page.images) == 10
    _check_self_contained(sample_html, page)


def test_sample_report_counts_match_input(project, sample_html):
    page = parse(sample_html)
    counts = {r["cell type"]: r for r in page.table("cell type", "cells", "percent")}
    cells = project["cells"]["TEN01"]
    assert set(counts) == set(cells["cell_type"]) | {"all"}
    for cell_type, n in cells["cell_type"].value_counts().items():
        assert counts[cell_type]["cells"] == str(n)
        assert counts[cell_type]["percent"] == f"{n / len(cells) * 100:.1f}"
    assert counts["all"]["cells"] == str(len(cells))
    # MS QC: exactly this sample's runs, numbers as in quant_qc.tsv
    qc = {r["run"]: r for r in page.table("run", "sample", "cell_type")}
    expected = project["quant_qc"].set_index("run")
    assert set(qc) == {f"TEN01_{t}" for t in CELL_TYPES}
    for run, row in qc.items():
        assert row["proteins"] == str(expected.loc[run, "proteins"])
        assert row["precursors"] == str(expected.loc[run, "precursors"])


def test_sample_report_selection_counts(sample_html):
    rows = parse(sample_html).table("cell type", "well", "cells")
    assert [(r["cell type"], r["well"], r["cells"]) for r in rows] == [
        ("keratinocyte", "A1", "6"),
        ("cd8_t_cell", "B1", "3"),
        ("macrophage", "C1", "2"),
    ]
    assert rows[0]["total area (µm²)"] == "121.5"


def test_sample_report_escapes_user_text(sample_html):
    assert EVIL not in sample_html  # patient column of the sheet
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in sample_html


def test_sample_report_pathway_table_highlights_jak_stat(sample_html):
    rows = parse(sample_html).rows
    jak = [(cls, r) for cls, r in rows if r and r[0] == JAK]
    assert len(jak) == 3  # one per run of the sample
    assert all("hl-jak" in cls for cls, _ in jak)
    assert all("hl-jak" not in cls for cls, r in rows if r and r[0] == IFNG)


def test_cohort_report_sections(cohort_html):
    page = parse(cohort_html)
    assert {
        "overview",
        "key-results",
        "design",
        "identifications",
        "missing-values",
        "pca",
        "differential",
        "pathways",
        "pathway-scores",
    } <= page.ids
    assert "Skin cohort: cohort" in cohort_html
    _check_images(page)
    # identifications, missing values, PCA, three volcanos, heatmap (7); three pathway dot plots and
    # the JAK/STAT member heatmap (4); abundance distributions and replicate CV (1, quantify QC)
    assert len(page.images) == 7 + 4 + 1
    assert "intensity-cv" in page.ids
    _check_self_contained(cohort_html, page)


def test_cohort_report_tables(project, cohort_html):
    page = parse(cohort_html)
    design = {r["condition"]: r for r in page.table("condition", "samples")}
    assert design["TEN"] == {
        "condition": "TEN",
        "samples": "2",
        "keratinocyte": "2",
        "cd8_t_cell": "2",
        "macrophage": "2",
    }
    assert {r["run"] for r in page.table("run", "sample", "cell_type", "precursors")} == set(project["runs"]["run"])
    summary = page.table("contrast", "cell type", "proteins tested")
    assert [r["proteins tested"] for r in summary] == ["40"] * 3
    assert all(r["higher in TEN"] + r["higher in MPR"] for r in summary)
    # the JAK/STAT rows of the pathway tables are highlighted even when not among the top sets
    pathway_rows = [(cls, r) for t in page.tables if t["header"][:2] == ["rank", "set"] for cls, r in t["rows"]]
    assert len(pathway_rows) == 3 * (15 + 2)  # top 15 per cell type, plus the two highlighted sets
    jak = [cls for cls, r in pathway_rows if r[1] == JAK]
    assert len(jak) == 3 and all("hl-jak" in cls.split() for cls in jak)
    assert all("hl" in cls.split() for cls, r in pathway_rows if r[1] == IFNG)
    assert not any(cls for cls, r in pathway_rows if r[1].startswith("REACTOME"))
    key = page.table("set", "contrast", "cell type")
    assert [r["set"] for r in key] == [JAK] * 3 + [IFNG] * 3  # JAK/STAT first
    assert "REACTOME_SET_19" not in cohort_html


def test_cohort_report_escapes_and_downloads(cohort_html):
    assert EVIL not in cohort_html  # gene name, set name, patient
    assert cohort_html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    page = parse(cohort_html)
    downloads = [link for link in page.links if link.startswith("data:text/tab-separated-values;base64,")]
    assert downloads
    text = base64.b64decode(downloads[0].split(",", 1)[1]).decode()
    assert text.startswith("sample\tcondition\timage")


def test_report_size(sample_html):
    assert len(sample_html.encode()) < 3_000_000


def test_missing_sample_input_is_an_error(project, tmp_path):
    out = tmp_path / "x.html"
    # a partial results folder: no report, and the error names the file and the stage that writes it
    args = _args(project, "sample", out, sample="MPR02")
    args.results = str(tmp_path / "empty")
    with pytest.raises(DVPError, match=r"empty/MPR02/cells_classified\.parquet not found.*dvp classify"):
        cli.run(args)
    assert not out.exists()


def test_missing_cohort_input_is_an_error(project, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(project["root"] / "results" / "cohort", results / "cohort")
    (results / "cohort" / "proteins.tsv").unlink()
    args = _args(project, "cohort", tmp_path / "cohort.html")
    args.results = str(results)
    with pytest.raises(DVPError, match=r"cohort/proteins\.tsv not found.*dvp quantify"):
        cli.run(args)
    assert not (tmp_path / "cohort.html").exists()


def test_cohort_report_shows_configured_tests_only(project, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(project["root"] / "results" / "cohort", results / "cohort")
    # a table of a contrast no longer configured stays out of the report
    stale = results / "cohort" / "differential" / "keratinocyte" / "OLD_vs_MPR.tsv"
    shutil.copy(results / "cohort" / "differential" / "keratinocyte" / "TEN_vs_MPR.tsv", stale)
    args = _args(project, "cohort", tmp_path / "cohort.html")
    args.results = str(results)
    cli.run(args)
    html = (tmp_path / "cohort.html").read_text()
    assert "TEN vs MPR" in html and "OLD vs MPR" not in html and "OLD_vs_MPR" not in html
    # a configured test without its table is an error
    args.differential_options = json.dumps({"contrasts": [["TEN", "MPR"], ["MPR", "TEN"]]})
    with pytest.raises(DVPError, match=r"differential/cd8_t_cell/MPR_vs_TEN\.tsv not found.*dvp differential"):
        cli.run(args)


def test_cli_errors(project, tmp_path):
    with pytest.raises(DVPError, match="NOPE"):
        cli.run(_args(project, "sample", tmp_path / "x.html", sample="NOPE"))
    with pytest.raises(DVPError, match="highlight"):
        cli.run(_args(project, "cohort", tmp_path / "x.html", {"highlight": "JAK"}))
    assert not (tmp_path / "x.html").exists()


def test_cli_parser_registers_both_kinds(project, tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "sample", "--sample", "TEN01", "--out", str(tmp_path / "a.html")])
    assert args.report_kind == "sample" and args.results == "results" and args.func is cli.run
    args = parser.parse_args(
        ["report", "cohort", "--out", "c.html", "--options", "{}", "--differential-options", json.dumps(DIFFERENTIAL)]
    )
    assert args.report_kind == "cohort" and json.loads(args.differential_options) == DIFFERENTIAL


def test_cli_options_are_typed_with_schema_defaults():
    options, highlight = cli.load_report_options(json.dumps({"dpi": 72, "highlight": [JAK]}))
    assert options.dpi == 72 and options.top_sets == 15 and highlight == [JAK]
    options, highlight = cli.load_report_options(None)
    assert options == ReportOptions.from_mapping({})
    assert highlight[0] == JAK and len(highlight) == 3  # the schema's pathways.highlight


def test_cohort_report_without_differential_options(project, tmp_path):
    args = _args(project, "cohort", tmp_path / "x.html", differential_options=None)
    with pytest.raises(DVPError, match="differential"):
        cli.run(args)


# --------------------------------------------------------------------------- API


def test_sample_report_escapes_sample_name(project):
    samples = pd.DataFrame({"sample": [EVIL], "condition": ["TEN"], "image": ["x.tif"]})
    cells = project["cells"]["TEN01"].assign(sample=EVIL)
    html = report.sample_report(EVIL, samples=samples, cells=cells)
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_palette_is_shared_and_stable():
    order = ["keratinocyte", "cd8_t_cell", "macrophage"]
    palette = report.cell_type_palette(["zeta", "unassigned", "macrophage", "keratinocyte", "alpha"], order=order)
    assert list(palette) == ["keratinocyte", "macrophage", "zeta", "alpha", "unassigned"]
    assert palette["unassigned"] == palettes.UNASSIGNED_COLOR
    # a type keeps its colour whichever others are present
    assert report.cell_type_palette(["macrophage"], order=order) == {"macrophage": palette["macrophage"]}
    # the demo's rule order gets the colours the reports always had
    assert [palette[t] for t in ("keratinocyte", "macrophage")] == ["#2ca02c", "#9467bd"]


def test_palette_follows_the_given_order_for_any_names():
    assert report.cell_type_palette(["stroma", "unassigned", "tumour"], order=["tumour", "stroma"]) == {
        "tumour": palettes.CELL_TYPE_CYCLE[0],
        "stroma": palettes.CELL_TYPE_CYCLE[1],
        "unassigned": palettes.UNASSIGNED_COLOR,
    }
    # without an order: first appearance
    assert list(report.cell_type_palette(["stroma", "tumour"])) == ["stroma", "tumour"]
    assert palettes.config_cell_types({"classify": {"cell_types": [{"name": "tumour"}, {"name": "stroma"}]}}) == [
        "tumour",
        "stroma",
    ]


def test_channel_palette_follows_image_order_and_nuclear_channel():
    demo = report.channel_palette(CHANNELS, nuclear="DAPI")
    assert demo == {
        "DAPI": (0.0, 0.35, 1.0),
        "KRT14": (0.0, 1.0, 0.0),
        "CD8": (1.0, 0.0, 0.0),
        "CD163": (1.0, 0.0, 1.0),
    }
    names = ["PanCK", "Hoechst", "CD3", "CD20", "CD68", "aSMA", "Ki67"]
    palette = report.channel_palette(names, nuclear="Hoechst")
    assert palette["Hoechst"] == palettes.NUCLEAR_COLOR and palette["PanCK"] == (0.0, 1.0, 0.0)
    assert "Ki67" not in palette and len(palette) == 6  # the nuclear channel and five colours
    assert report.channel_palette(["a", "b"])["a"] == palettes.NUCLEAR_COLOR  # no nuclear channel named: the first


def test_composite_colours_and_outlines():
    image = np.zeros((4, 40, 40))
    image[1, :, :20] = 10.0  # KRT14 on the left half
    image[1, 0, 0] = 0.0
    labels = np.zeros((40, 40), dtype=np.uint32)
    labels[10:30, 25:35] = 1
    rgb, factor = report.composite_rgb(image, labels, channels=CHANNELS, nuclear_channel="DAPI", max_size=20)
    assert factor == 2 and rgb.shape == (20, 20, 3)
    assert rgb[5, 5, 1] > 0.9 and rgb[5, 5, 0] == 0  # green, no red
    assert rgb[2, 15].max() == 0 and rgb[10, 15].max() == 0  # dark right half, inside the cell too ...
    assert rgb[5, 13:17].min() == pytest.approx(0.6)  # ... except the white cell outline


def test_marker_histogram_threshold_uses_recorded_transform():
    thresholds = pd.DataFrame(
        {
            "marker": ["CD8"],
            "threshold": [50.0],
            "method": ["otsu"],
            "transform": ["arcsinh"],
            "cofactor": [5.0],
        }
    )
    transform, label = _transform_for(thresholds, "CD8", np.array([1.0, 100.0]))
    assert transform(50.0) == pytest.approx(np.arcsinh(10.0))
    assert label == "arcsinh(mean intensity / 5)"
    fig = report.marker_histograms_figure(pd.DataFrame({"mean_CD8": [1.0, 60.0, 70.0]}), thresholds)
    assert "66.7% above" in [t.get_text() for t in fig.axes[0].texts][0]


def test_pca_explained_variance_and_none_when_too_few(project):
    proteins = pd.read_csv(project["root"] / "results/cohort/proteins.tsv", sep="\t")
    fig = report.pca_figure(proteins, project["runs"], project["samples"])
    assert re.fullmatch(r"PC1 \(\d+\.\d% variance\)", fig.axes[0].get_xlabel())
    # one panel for all runs, one per cell type (4 runs each) labelled with the samples
    assert [ax.get_title() for ax in fig.axes[1:]] == [f"{t} (35 proteins)" for t in CELL_TYPES]
    assert sorted(t.get_text() for t in fig.axes[1].texts) == sorted(SAMPLES)
    assert report.pca_figure(proteins.iloc[:2], project["runs"], project["samples"]) is None


def test_volcano_colours_significant_proteins():
    table = pd.DataFrame(
        {
            "protein": ["A", "B", "C"],
            "genes": ["GA;GX", None, "GC"],
            "logFC": [2.0, -1.5, 0.1],
            "P.Value": [1e-5, 1e-4, 0.5],
            "adj.P.Val": [0.001, 0.01, 0.6],
        }
    )
    fig = report.volcano_figure(table, contrast=("TEN", "MPR"), n_labels=2)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "GA" in labels and "B" in labels and "GC" not in labels
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "higher in TEN (1)" in legend and "higher in MPR (1)" in legend


def test_volcano_labels_do_not_overlap():
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame(
        {
            "protein": [f"P{i}" for i in range(n)],
            "genes": [f"G{i}" for i in range(n)],
            "logFC": rng.normal(2, 0.05, n),
            "P.Value": 10 ** -rng.uniform(5, 5.2, n),
        }
    )
    table["adj.P.Val"] = table["P.Value"] * n
    fig = report.volcano_figure(table, n_labels=12)
    ax = fig.axes[0]
    heights = sorted(t.xyann[1] for t in ax.texts if t.get_text().startswith("G"))
    assert len(heights) == 12
    assert np.min(np.diff(heights)) >= 0.05 * np.ptp(ax.get_ylim()) - 1e-9
    assert max(heights) <= ax.get_ylim()[1]


def test_thumbnail_reads_a_pyramid_level(tmp_path):
    image = np.random.default_rng(0).integers(0, 1000, (4, 128, 128), dtype=np.uint16)
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(image, subifds=2, photometric="minisblack", tile=(32, 32), metadata={"axes": "CYX"})
        tif.write(image[:, ::2, ::2], subfiletype=1, photometric="minisblack", tile=(32, 32))
        tif.write(image[:, ::4, ::4], subfiletype=1, photometric="minisblack", tile=(32, 32))
    level, _ = inputs.read_thumbnail_image(path, 40)
    assert level.shape == (4, 64, 64)  # the smallest level still >= 40 pixels, not the full image
    np.testing.assert_array_equal(level, image[:, ::2, ::2])
    full, _ = inputs.read_thumbnail_image(path, 1000)
    assert full.shape == (4, 128, 128)


# --------------------------------------------------------------------------- example cells, classifier


def test_gallery_picks_most_and_least_confident():
    cells = pd.DataFrame(
        {
            "cell_id": np.arange(1, 24),
            "cell_type": ["keratinocyte"] * 20 + ["macrophage"] * 3,
            "confidence": np.r_[np.linspace(0.99, 0.51, 20), [0.7, 0.9, 0.8]],
        }
    )
    chosen = report.gallery_cells(cells, per_type=8)
    kera = chosen[chosen["cell_type"] == "keratinocyte"]
    assert list(kera["cell_id"]) == [1, 2, 3, 4, 5, 6, 19, 20]  # six most, two least confident
    assert list(kera["gallery"]) == ["most confident"] * 6 + ["least confident"] * 2
    assert list(chosen.loc[chosen["cell_type"] == "macrophage", "cell_id"]) == [22, 23, 21]  # all, by confidence
    assert list(dict.fromkeys(chosen["cell_type"])) == ["keratinocyte", "macrophage"]  # palette order


def test_gallery_reads_only_crop_windows(project, monkeypatch):
    from dvp_pipeline.images import ImageSource

    windows = []
    read = ImageSource.read

    def spy(self, y=slice(None), x=slice(None)):
        out = read(self, y, x)
        windows.append(out.shape[1:])
        return out

    monkeypatch.setattr(ImageSource, "read", spy)
    root = project["root"]
    cells = project["cells"]["TEN01"]
    crops, names = inputs.gallery_crops(
        cells,
        root / "images" / "TEN01.tif",
        root / "results" / "TEN01" / "labels.tif",
        per_type=2,
        crop_px=16,
    )
    assert names == CHANNELS
    assert len(crops) == 2 * 3 + 1  # two per type; one unassigned cell
    assert windows and all(w == (16, 16) for w in windows)  # never the whole 60 x 90 image
    image = tifffile.imread(root / "images" / "TEN01.tif")
    for crop in crops:
        row = cells[cells["cell_id"] == crop["cell_id"]].iloc[0]
        assert crop["cell_type"] == row["cell_type"]
        assert (crop["labels"] == crop["cell_id"]).sum() == 81  # the whole 9 x 9 cell is inside its crop
        # the crop is the image around the cell: its stain is where its label is
        assert crop["pixels"][0][crop["labels"] == crop["cell_id"]].min() > 300
        assert crop["pixels"].shape == (4, 16, 16) and np.isin(crop["pixels"], image).all()
    fig = report.cell_gallery_figure(crops, channels=names)
    assert len([ax for ax in fig.axes if ax.images]) == len(crops)


def _write_classifier(folder: Path) -> None:
    folder.mkdir(parents=True)
    confusion = pd.DataFrame({"true": ["keratinocyte", "macrophage"], "keratinocyte": [18, 3], "macrophage": [2, 7]})
    confusion.to_csv(folder / "confusion.tsv", sep="\t", index=False)
    summary = {
        "accuracy": 25 / 30,
        "n_cells": 30,
        "folds": 5,
        "per_class": [
            {"cell_type": "keratinocyte", "precision": 18 / 21, "recall": 0.9, "support": 20},
            {"cell_type": "macrophage", "precision": 7 / 9, "recall": 0.7, "support": 10},
        ],
    }
    (folder / "summary.json").write_text(json.dumps(summary))


def test_cohort_report_shows_supervised_classifier(project, tmp_path, cohort_html):
    import shutil

    assert "classifier" not in parse(cohort_html).ids  # gating rules: no section
    results = tmp_path / "results"
    shutil.copytree(project["root"] / "results" / "cohort", results / "cohort")
    _write_classifier(results / "cohort" / "classifier")
    args = _args(project, "cohort", tmp_path / "cohort.html")
    args.results = str(results)
    cli.run(args)
    html = (tmp_path / "cohort.html").read_text()
    page = parse(html)
    assert "classifier" in page.ids
    assert "0.833" in html  # cross-validated accuracy
    rows = {r["annotated type"]: r for r in page.table("annotated type")}
    assert rows["keratinocyte"]["predicted keratinocyte"] == "18"
    assert rows["macrophage"]["predicted keratinocyte"] == "3"
    assert rows["macrophage"]["recall"] == "0.700" and rows["keratinocyte"]["precision"] == "0.857"
    assert rows["macrophage"]["cells"] == "10"


def test_classifier_table_without_summary():
    confusion = pd.DataFrame({"true": ["a", "b"], "a": [4, 1], "b": [0, 5]})
    table = report.classifier_table(confusion)
    assert list(table.columns) == ["annotated type", "predicted a", "predicted b", "recall", "precision", "cells"]
    assert table["recall"].tolist() == [1.0, 5 / 6] and table["precision"].tolist() == [0.8, 1.0]
    with pytest.raises(DVPError, match="true"):
        report.classifier_table(confusion.rename(columns={"true": "x"}))


def test_sample_report_segmentation_quality(sample_html):
    """The planted unlabelled nucleus is counted as missed, in words, and no cell as merged."""
    section = sample_html.split('id="segmentation-quality"', 1)[1].split("</section>", 1)[0]
    assert "0.0% of cells (0 of 12) look like merged nuclei" in section
    assert "1 nuclear-stain blobs (7.7% of all nuclei in the stain) have no nucleus" in section
    assert "segment.classical.min_snr" in section and "nucleus_diameter_um" in section
    assert "no action needed" in section and section.count("<img") == 2


def test_sample_report_without_segment_qc_says_so(project):
    samples, cells = project["samples"], project["cells"]["TEN01"]
    html = report.sample_report("TEN01", samples=samples, cells=cells)
    section = html.split('id="segmentation-quality"', 1)[1].split("</section>", 1)[0]
    assert 'class="missing"' in section and "segment_qc.json" in section
