"""Segmentation quality benchmark: the yardstick for improving the segmentation methods.

Scores segmentation settings (the classical method with its defaults, plus any variants given on
the command line) on three kinds of annotated images:

- ``demo``: the six sections of the demo cohort (``data/sample/images``) against their whole-cell
  truth (``data/sample/truth/*_labels.tif``);
- ``hard``: N sections of :func:`dvp_pipeline.simulate.simulate_hard_tissue` (touching nuclei in
  clusters and a dense epidermis, uneven illumination, noise, 10% dim nuclei), scored as whole
  cells and as nuclei;
- ``real:<dataset>``: public fluorescence nuclei images with instance annotations, under
  ``tests/data/real/nuclei/<dataset>/`` (see the SOURCES.md there), scored as nuclei (the methods
  run with ``cell_expansion_um=0``) at the dataset's nominal pixel size (``meta.json``).

Per dataset and setting it reports F1 at IoU 0.5 and 0.75, precision and recall (IoU 0.5), recall of
the dim cells and of the cells whose nucleus touches another (hard only), merges (predicted objects
holding the majority of >= 2 true objects), the true objects lost in them and splits (true objects
cut into >= 2 predicted objects mostly inside them); definitions in :mod:`dvp_pipeline.seg_metrics`.
Counts are summed and rates pooled over the images of a dataset (F1 = 2 TP / (n_true + n_pred)).

Usage::

    python bench/bench_segment_quality.py [--hard 3] [--size 512] \
        [--variant li threshold=li] [--variant wga membrane_channel=4 ...] \
        [--out bench/results/segment_quality]

Each ``--variant NAME KEY=VALUE ...`` adds a setting of the classical method (values are parsed as
JSON where they can be, else kept as strings; ``method=cellpose model=PATH`` scores a Cellpose
model); ``--no-default-variants`` drops the built-in earlier-method variants (``EARLIER_VARIANTS``).
Writes ``<out>.md`` (one table, settings side by side) and ``<out>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import tifffile

from dvp_pipeline.seg_metrics import score_labels
from dvp_pipeline.segmentation import match_labels, segment_cells_and_nuclei
from dvp_pipeline.simulate import simulate_hard_tissue

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "sample"
REAL = ROOT / "tests" / "data" / "real" / "nuclei"
COLUMNS = [
    ("f1_0.5", "F1@0.5"),
    ("f1_0.75", "F1@0.75"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("recall_dim", "dim recall"),
    ("recall_touching", "touching recall"),
    ("merges", "merges"),
    ("merged", "cells in merges"),
    ("splits", "splits"),
    ("n_true", "true"),
    ("n_predicted", "predicted"),
    ("seconds", "s"),
]


# The classical method before threshold "auto" (Otsu, its earlier default, and its options), kept
# side by side with the default.
EARLIER_VARIANTS = {
    "otsu (earlier default)": {"threshold": "otsu"},
    "li": {"threshold": "li"},
    "local+seeds": {"threshold": "local", "seeds": "intensity"},
    "bg+seeds": {"threshold": "otsu", "background_radius_um": 15, "seeds": "intensity"},
}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def demo_images():
    """(name, image, truth cells) for each demo section."""
    for truth_path in sorted((DEMO / "truth").glob("*_labels.tif")):
        sample = truth_path.name.removesuffix("_labels.tif")
        image = tifffile.imread(DEMO / "images" / f"{sample}.ome.tif")
        yield sample, image, tifffile.imread(truth_path)


def real_datasets() -> dict[str, list[tuple[str, np.ndarray, np.ndarray, float]]]:
    """Per dataset folder: (name, image, truth nuclei, pixel size) for each ``*_image.tif``."""
    found = {}
    for folder in sorted(p for p in REAL.glob("*") if p.is_dir()):
        meta = json.loads((folder / "meta.json").read_text())
        items = []
        for image_path in sorted(folder.glob("*_image.tif")):
            name = image_path.name.removesuffix("_image.tif")
            labels = tifffile.imread(folder / f"{name}_labels.tif")
            pixel_size = meta["pixel_size_um"]  # one number, or one per image name
            pixel_size = float(pixel_size[name] if isinstance(pixel_size, dict) else pixel_size)
            items.append((name, tifffile.imread(image_path), labels, pixel_size))
        if items:
            found[folder.name] = items
    return found


def pooled(scores: list[dict]) -> dict:
    """Counts summed and rates pooled over the images of one dataset."""
    total = {}
    for key in ("n_true", "n_predicted", "merges", "merged", "splits", "seconds"):
        total[key] = sum(s[key] for s in scores)
    for key in ("tp_0.5", "tp_0.75"):
        total[key] = sum(s[key] for s in scores)
    n = total["n_true"] + total["n_predicted"]
    total["precision"] = total["tp_0.5"] / total["n_predicted"] if total["n_predicted"] else 1.0
    total["recall"] = total["tp_0.5"] / total["n_true"] if total["n_true"] else 1.0
    total["f1_0.5"] = 2 * total["tp_0.5"] / n if n else 1.0
    total["f1_0.75"] = 2 * total["tp_0.75"] / n if n else 1.0
    for key in ("dim", "touching"):
        hits = sum(s.get(f"found_{key}", 0) for s in scores)
        size = sum(s.get(f"size_{key}", 0) for s in scores)
        total[f"recall_{key}"] = hits / size if size else None
    total["seconds"] = round(total["seconds"], 2)
    total["images"] = len(scores)
    return total


def score_one(predicted: np.ndarray, truth: np.ndarray, subsets: dict | None = None) -> dict:
    s = score_labels(predicted, truth, subsets=subsets)
    s["tp_0.5"] = round(s["recall"] * s["n_true"])
    s["tp_0.75"] = match_labels(predicted, truth, iou_threshold=0.75)["true_positives"]
    for name, ids in (subsets or {}).items():
        s[f"size_{name}"] = len(ids)
        s[f"found_{name}"] = round(s[f"recall_{name}"] * len(ids)) if len(ids) else 0
    return s


def run(variants: dict[str, dict], n_hard: int, size: int, first_seed: int = 0) -> dict:
    results: dict[str, dict[str, list[dict]]] = {}

    def add(dataset: str, variant: str, score: dict) -> None:
        results.setdefault(dataset, {}).setdefault(variant, []).append(score)

    for sample, image, truth in demo_images():
        for name, options in variants.items():
            started = time.perf_counter()
            cells, _ = segment_cells_and_nuclei(image, pixel_size_um=0.5, **options)
            score = score_one(cells, truth)
            score["seconds"] = time.perf_counter() - started
            add("demo (cells)", name, score)
        print(f"demo {sample} done", flush=True)

    for seed in range(first_seed, first_seed + n_hard):
        tissue = simulate_hard_tissue(seed, size=size)
        table = tissue.cells
        subsets = {
            "dim": table.loc[table["dim"], "cell_id"].to_numpy(),
            "touching": table.loc[table["touching"], "cell_id"].to_numpy(),
        }
        for name, options in variants.items():
            started = time.perf_counter()
            cells, nuclei = segment_cells_and_nuclei(tissue.image, pixel_size_um=0.5, **options)
            seconds = time.perf_counter() - started
            score = score_one(cells, tissue.labels, subsets)
            score["seconds"] = seconds
            add("hard (cells)", name, score)
            score = score_one(nuclei, tissue.nuclei, subsets)
            score["seconds"] = 0.0  # the same run as the cells
            add("hard (nuclei)", name, score)
        print(f"hard seed {seed} done ({len(table)} cells)", flush=True)

    for dataset, items in real_datasets().items():
        for _, image, truth, pixel_size in items:
            for name, options in variants.items():
                if options.get("method", "classical") == "classical":
                    options = {**options, "cell_expansion_um": 0.0}
                options.pop("membrane_channel", None)
                options.pop("cytoplasm_channel", None)
                started = time.perf_counter()
                _, nuclei = segment_cells_and_nuclei(image, pixel_size_um=pixel_size, **options)
                score = score_one(nuclei, truth)
                score["seconds"] = time.perf_counter() - started
                add(f"real: {dataset} (nuclei)", name, score)
        print(f"real {dataset} done", flush=True)

    return {
        dataset: {variant: {"pooled": pooled(scores), "images": scores} for variant, scores in per.items()}
        for dataset, per in results.items()
    }


def markdown(results: dict, variants: dict[str, dict], args: argparse.Namespace) -> str:
    lines = [
        "# Segmentation quality",
        "",
        "Written by `bench/bench_segment_quality.py` "
        f"(`--hard {args.hard} --size {args.size} --first-seed {args.first_seed}`); "
        "definitions in `src/dvp_pipeline/seg_metrics.py`.",
        "Settings (options of the classical method on top of its defaults):",
        "",
    ]
    lines += [f"- `{name}`: `{json.dumps(options)}`" for name, options in variants.items()]
    lines += [
        "",
        "Counts summed, rates pooled over the images of a dataset. F1, precision and recall by "
        "one-to-one IoU matching (precision and recall at IoU 0.5); dim / touching recall: share "
        "of the true dim cells / cells whose nucleus touches another that are matched at IoU 0.5 "
        "(hard sections only); merges: predicted objects holding the majority of >= 2 true "
        "objects (cells in merges: those true objects); splits: true objects cut into >= 2 "
        "predicted objects that lie mostly inside them. Real nuclei are segmented with "
        "`cell_expansion_um=0` at the nominal pixel size of their `meta.json`.",
        "",
        "| dataset | images | setting | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|---:|---|" + "---:|" * len(COLUMNS),
    ]
    for dataset, per in results.items():
        for variant, entry in per.items():
            p = entry["pooled"]
            cells = []
            for key, _ in COLUMNS:
                value = p.get(key)
                if value is None:
                    cells.append("–")
                elif isinstance(value, float) and key != "seconds":
                    cells.append(f"{value:.3f}")
                else:
                    cells.append(str(value))
            lines.append(f"| {dataset} | {p['images']} | {variant} | " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {platform.platform()}; {os.cpu_count()} cores; python {platform.python_version()}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hard", type=int, default=3, help="number of hard synthetic sections (seeds 0..N-1)")
    parser.add_argument("--size", type=int, default=512, help="side of the hard sections in pixels")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seed of the first hard section (sections not tuned on)"
    )
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE ...]",
                        help="a setting of the classical method, e.g. --variant li threshold=li")  # fmt: skip
    parser.add_argument("--no-default-variants", action="store_true", help="score only default and --variant")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "segment_quality")
    args = parser.parse_args()

    variants: dict[str, dict] = {"default": {}}
    if not args.no_default_variants:
        variants.update(EARLIER_VARIANTS)
    for name, *pairs in args.variant:
        options = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                parser.error(f"variant {name}: expected KEY=VALUE, got {pair!r}")
            options[key] = parse_value(value)
        variants[name] = options

    started = time.perf_counter()
    results = run(variants, args.hard, args.size, args.first_seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "settings": variants,
        "hard_sections": args.hard,
        "hard_size": args.size,
        "hard_first_seed": args.first_seed,
        "wall_s": round(time.perf_counter() - started, 1),
        "results": results,
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    text = markdown(results, variants, args)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
