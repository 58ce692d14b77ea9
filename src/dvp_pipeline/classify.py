"""Cell typing by marker gating.

Runs after segmentation (``dvp classify``): it reads the cells table (``mean_<marker>`` columns),
decides per sample and marker an intensity threshold, calls each cell positive or negative for each
marker, and assigns the first cell type whose rule the cell satisfies. The cell types then decide
which cells :mod:`dvp_pipeline.selection` sends to laser microdissection, so the thresholds are
written out (``thresholds.tsv``) for the report and for review.

Rules come from the config, in order, e.g.::

    - {name: keratinocyte, positive: [KRT14]}
    - {name: cd8_t_cell, positive: [CD8], negative: [KRT14]}
    - {name: macrophage, positive: [CD163], negative: [KRT14, CD8]}

A cell matching no rule is ``unassigned``.

Thresholds
----------
Intensities are first transformed (``arcsinh(x / cofactor)`` by default, which makes the bright tail
of a marker roughly log-scaled and the background roughly linear). The threshold is then found on
the transformed values of each sample separately (staining differs between sections): Otsu's method,
or the decision boundary of a two-component Gaussian mixture. A fixed threshold (raw intensity
units) given for a marker overrides the automatic one. With ``cofactor=None`` the cofactor of a
marker is the 5th percentile of its intensities in the sample (the background level), or the
smallest positive intensity if that percentile is 0.

Confidence
----------
For each marker, a cell's margin is ``d = (t(x) - t(threshold)) / s``, the distance from the threshold
in transformed units divided by the spread ``s`` of the cell's side of the threshold (1.4826 x the
median absolute deviation of the sample's transformed values above, or at and below, the threshold;
so ``d`` counts population standard deviations). A positive marker of a rule contributes ``d``, a negative
marker ``-d``; a rule's score is the minimum over its markers, so a cell satisfies the rule when the
score is > 0 (a negative marker exactly at threshold also satisfies it). The confidence of a call is
``logistic(score)`` of the chosen rule combined, by taking the minimum, with ``logistic(-score)`` of
every earlier rule (which the cell had to fail for this rule to be reached). For ``unassigned`` cells
it is the minimum of ``logistic(-score)`` over all rules. It is 0.5 for a cell right at a threshold
and approaches 1 for cells several spreads away from every threshold that decided the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError

UNASSIGNED = "unassigned"
TRANSFORMS = ("arcsinh", "log", "none")
THRESHOLD_METHODS = ("otsu", "gmm")


def classify_cells(
    cells: pd.DataFrame,
    *,
    cell_types: Sequence[Mapping],
    markers: Sequence[str] | None = None,
    transform: str = "arcsinh",
    cofactor: float | Mapping[str, float] | None = None,
    threshold_method: str = "otsu",
    thresholds: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign a cell type to every cell by marker gating.

    Parameters
    ----------
    cells
        Cells table with ``mean_<marker>`` columns and, usually, ``sample`` (thresholds are found per
        sample; without the column all cells are one sample).
    cell_types
        Rules in priority order: mappings with ``name`` and optional ``positive`` and ``negative``
        lists of markers. The first rule a cell satisfies gives its type.
    markers
        Extra markers to threshold and report besides those the rules name.
    transform
        ``"arcsinh"`` (``arcsinh(x / cofactor)``), ``"log"`` (``log1p(x / cofactor)``) or ``"none"``.
    cofactor
        One cofactor for all markers, a mapping marker -> cofactor, or ``None`` for the per-sample
        background level (see the module notes).
    threshold_method
        ``"otsu"`` or ``"gmm"`` (two-component Gaussian mixture, boundary where both are equally
        likely).
    thresholds
        Fixed thresholds in raw intensity units, marker -> value; they override the automatic ones.

    Returns
    -------
    cells
        A copy of ``cells`` with ``cell_type`` (rule name or ``"unassigned"``) and ``confidence``
        (0.5..1, see the module notes).
    thresholds
        One row per sample and marker: ``sample``, ``marker``, ``threshold`` (raw units),
        ``method`` (``otsu``, ``gmm`` or ``fixed``), ``transform``, ``cofactor``,
        ``positive_fraction``.

    Examples
    --------
    >>> rules = [{"name": "keratinocyte", "positive": ["KRT14"]},
    ...          {"name": "cd8_t_cell", "positive": ["CD8"], "negative": ["KRT14"]}]
    >>> typed, table = classify_cells(cells, cell_types=rules, threshold_method="gmm")
    """
    rules = _check_rules(cell_types)
    if transform not in TRANSFORMS:
        raise DVPError(f"transform {transform!r} unknown; expected one of {', '.join(TRANSFORMS)}")
    if threshold_method not in THRESHOLD_METHODS:
        raise DVPError(f"threshold_method {threshold_method!r} unknown; expected one of {', '.join(THRESHOLD_METHODS)}")
    thresholds = dict(thresholds or {})
    names: list[str] = []
    for marker in [m for r in rules for m in r["positive"] + r["negative"]] + list(markers or []) + list(thresholds):
        if marker not in names:
            names.append(marker)
    available = [c[len("mean_") :] for c in cells.columns if str(c).startswith("mean_")]
    missing = [m for m in names if m not in available]
    if missing:
        raise DVPError(
            f"marker(s) {', '.join(missing)} not in the cells table (no mean_<marker> column); "
            f"available: {', '.join(available) or 'none'}"
        )
    for marker, value in thresholds.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
            raise DVPError(f"thresholds.{marker}: expected a number (raw intensity), got {value!r}")

    result = cells.copy()
    result["cell_type"] = pd.Series(UNASSIGNED, index=result.index, dtype=object)
    result["confidence"] = np.nan
    rows = []
    groups = result.groupby("sample", sort=False, dropna=False) if "sample" in result else [(None, result)]
    for sample, group in groups:
        margins = {}
        for marker in names:
            values = group[f"mean_{marker}"].to_numpy(dtype=float)
            c = _cofactor(values, cofactor, marker)
            scaled = _forward(values, transform, c)
            if marker in thresholds:
                raw, method = float(thresholds[marker]), "fixed"
                cut = _forward(np.array([raw]), transform, c)[0]
            else:
                cut, method = _auto_threshold(scaled, threshold_method), threshold_method
                raw = float(_inverse(cut, transform, c))
            above = scaled > cut
            spread = np.where(above, _spread(scaled[above], scaled), _spread(scaled[~above], scaled))
            margins[marker] = (scaled - cut) / spread
            rows.append(
                {
                    "sample": sample,
                    "marker": marker,
                    "threshold": raw,
                    "method": method,
                    "transform": transform,
                    "cofactor": c if transform != "none" else np.nan,
                    "positive_fraction": float(np.mean(scaled > cut)) if len(scaled) else np.nan,
                }
            )
        cell_type, confidence = _apply_rules(rules, margins, len(group))
        result.loc[group.index, "cell_type"] = cell_type
        result.loc[group.index, "confidence"] = confidence
    table = pd.DataFrame(
        rows,
        columns=["sample", "marker", "threshold", "method", "transform", "cofactor", "positive_fraction"],
    )
    return result, table


def _check_rules(cell_types: Sequence[Mapping]) -> list[dict]:
    if isinstance(cell_types, Mapping | str) or not len(cell_types):
        raise DVPError("cell_types: expected a non-empty list of rules {name, positive, negative}")
    rules, seen = [], set()
    for i, rule in enumerate(cell_types):
        where = f"cell_types[{i}]"
        if not isinstance(rule, Mapping):
            raise DVPError(f"{where}: expected a mapping with name, positive, negative; got {rule!r}")
        unknown = set(rule) - {"name", "positive", "negative"}
        if unknown:
            raise DVPError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected name, positive, negative")
        name = rule.get("name")
        if not isinstance(name, str) or not name or name == UNASSIGNED:
            raise DVPError(f"{where}: name must be a non-empty string other than {UNASSIGNED!r}, got {name!r}")
        if name in seen:
            raise DVPError(f"{where}: cell type {name!r} defined twice")
        seen.add(name)
        lists = {}
        for key in ("positive", "negative"):
            value = rule.get(key) or []
            if isinstance(value, str) or not all(isinstance(m, str) and m for m in value):
                raise DVPError(f"{where}.{key}: expected a list of marker names, got {value!r}")
            lists[key] = list(value)
        both = set(lists["positive"]) & set(lists["negative"])
        if both:
            raise DVPError(f"{where}: marker(s) {', '.join(sorted(both))} both positive and negative")
        rules.append({"name": name, **lists})
    return rules


def _cofactor(values: np.ndarray, cofactor, marker: str) -> float:
    if isinstance(cofactor, Mapping):
        cofactor = cofactor.get(marker)
    if cofactor is not None:
        if not isinstance(cofactor, int | float) or not cofactor > 0:
            raise DVPError(f"cofactor for {marker}: expected a positive number, got {cofactor!r}")
        return float(cofactor)
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    if not len(positive):
        return 1.0
    background = float(np.percentile(values, 5))
    return background if background > 0 else float(positive.min())


def _forward(values: np.ndarray, transform: str, cofactor: float) -> np.ndarray:
    if transform == "arcsinh":
        return np.arcsinh(values / cofactor)
    if transform == "log":
        return np.log1p(np.clip(values / cofactor, 0, None))
    return values.astype(float)


def _inverse(value: float, transform: str, cofactor: float) -> float:
    if transform == "arcsinh":
        return cofactor * np.sinh(value)
    if transform == "log":
        return cofactor * np.expm1(value)
    return value


def _auto_threshold(values: np.ndarray, method: str) -> float:
    values = values[np.isfinite(values)]
    if len(np.unique(values)) < 2:
        # Nothing to separate: put the threshold at the value, so no cell is positive.
        return float(values[0]) if len(values) else np.nan
    if method == "gmm":
        boundary = _gmm_boundary(values)
        if boundary is not None:
            return boundary
    return _otsu(values)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold computed exactly on the sorted values.

    Histogram-based Otsu puts the threshold at the first bin of an empty gap between two clear
    populations (every cut in the gap scores the same); cutting between consecutive values and
    taking the midpoint places it in the middle of the gap instead.
    """
    v = np.sort(values)
    n = len(v)
    below = np.arange(1, n)
    total = np.cumsum(v)
    mean_below = total[:-1] / below
    mean_above = (total[-1] - total[:-1]) / (n - below)
    between = below * (n - below) * (mean_below - mean_above) ** 2
    between[v[1:] == v[:-1]] = -1.0  # a cut must fall between distinct values
    i = int(np.argmax(between))
    return float((v[i] + v[i + 1]) / 2)


def _gmm_boundary(values: np.ndarray) -> float | None:
    """Point between the two component means where both components are equally likely."""
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n_components=2, random_state=0).fit(values.reshape(-1, 1))
    low, high = np.sort(gmm.means_.ravel())
    if not high > low:
        return None
    grid = np.linspace(low, high, 2001)
    upper = int(np.argmax(gmm.means_.ravel()))
    p_high = gmm.predict_proba(grid.reshape(-1, 1))[:, upper]
    above = np.flatnonzero(p_high >= 0.5)
    return float(grid[above[0]]) if len(above) else None


def _spread(values: np.ndarray, everything: np.ndarray) -> float:
    """Robust standard deviation of ``values``; of ``everything`` if that side has too few cells."""
    for data in (values, everything):
        data = data[np.isfinite(data)]
        if len(data) >= 3:
            spread = 1.4826 * float(np.median(np.abs(data - np.median(data))))
            if spread > 0:
                return spread
            if np.std(data) > 0:
                return float(np.std(data))
    return 1.0


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + exp(-x))


def _apply_rules(rules: list[dict], margins: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    cell_type = np.full(n, UNASSIGNED, dtype=object)
    confidence = np.ones(n)
    undecided = np.ones(n, dtype=bool)
    for rule in rules:
        terms = [margins[m] for m in rule["positive"]] + [-margins[m] for m in rule["negative"]]
        score = np.min(terms, axis=0) if terms else np.full(n, np.inf)
        # Positive means strictly above threshold; a negative marker at exactly the threshold passes.
        match = np.ones(n, dtype=bool)
        for m in rule["positive"]:
            match &= margins[m] > 0
        for m in rule["negative"]:
            match &= margins[m] <= 0
        chosen = undecided & match
        cell_type[chosen] = rule["name"]
        confidence[chosen] = np.minimum(confidence[chosen], _logistic(score[chosen]))
        # Cells still undecided got here by failing this rule; its margin bounds their confidence.
        failed = undecided & ~match
        confidence[failed] = np.minimum(confidence[failed], _logistic(-score[failed]))
        undecided &= ~match
    return cell_type, confidence
