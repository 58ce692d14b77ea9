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

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import ClassifyOptions

__all__ = [
    "annotated_cells",
    "classify_cells",
    "classify_sample",
    "default_features",
    "load_model",
    "predict_cell_types",
    "save_model",
    "train_classifier",
]

log = logging.getLogger(__name__)

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
    >>> sorted(typed["cell_type"].unique())
    ['cd8_t_cell', 'keratinocyte', 'unassigned']
    >>> table[["marker", "method"]].values.tolist()
    [['KRT14', 'gmm'], ['CD8', 'gmm']]
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


def classify_sample(
    cells: pd.DataFrame, options: ClassifyOptions, *, model: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type one sample's cells as the ``classify`` section says: the library function behind ``dvp classify``.

    The gating thresholds are always found (the report draws them); with a trained ``model`` (from
    :func:`train_classifier` / :func:`load_model`) cell types and confidence come from the model.
    Returns the classified cells table and the thresholds table.
    """
    classified, thresholds = classify_cells(
        cells,
        cell_types=options.cell_types,
        transform=options.transform,
        cofactor=options.cofactor,
        threshold_method=options.threshold_method,
        thresholds=options.thresholds,
    )
    if model is not None:
        classified = predict_cell_types(cells, model)
    counts = classified["cell_type"].value_counts()
    for name in options.type_names:
        if not counts.get(name, 0):
            # a run of this type would measure an empty well: say so now, not after the MS
            log.warning("no cell is typed %s (of %d cells); check its rule and thresholds", name, len(classified))
    return classified, thresholds


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


# --- Supervised classification -------------------------------------------------------------------
#
# A random forest trained on cells a person has labelled (an annotation table of sample, cell_id and
# cell_type, e.g. exported from QuPath). Models are saved as plain JSON (the trees' arrays): loading
# one runs no code, unlike a pickle, so a model file from someone else is safe to open.

MODEL_FORMAT = "dvp-pipeline random forest"
_DEFAULT_SHAPE_FEATURES = ("area_um2", "eccentricity", "solidity")


def default_features(cells: pd.DataFrame) -> list[str]:
    """Intensity (``mean_``, ``nucleus_mean_``, ``cytoplasm_mean_``) and shape columns of a cells table."""
    prefixes = ("mean_", "nucleus_mean_", "cytoplasm_mean_")
    columns = [c for c in cells.columns if str(c).startswith(prefixes)]
    return columns + [c for c in _DEFAULT_SHAPE_FEATURES if c in cells.columns]


def _feature_matrix(cells: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    missing = [f for f in features if f not in cells.columns]
    if missing:
        raise DVPError(f"cells table lacks feature column(s) {', '.join(missing)} the classifier needs")
    x = cells[list(features)].to_numpy(dtype=float)
    # Intensities span decades: a log scale puts the forest's splits where populations separate,
    # and NaN (a cell without nucleus) becomes a value no real measurement takes.
    x = np.where(np.isfinite(x), np.log1p(np.clip(x, 0, None)), -1.0)
    return x


def annotated_cells(cells: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """The cells that have an annotation, with its ``cell_type`` (``sample`` is matched when both have it)."""
    for column in ("cell_id", "cell_type"):
        if column not in annotations.columns:
            raise DVPError(f"annotations: expected columns cell_id, cell_type (and sample); missing {column}")
    keys = ["sample", "cell_id"] if "sample" in annotations and "sample" in cells else ["cell_id"]
    labels = annotations[keys + ["cell_type"]].copy()
    labels["cell_id"] = pd.to_numeric(labels["cell_id"], errors="coerce")
    if labels["cell_id"].isna().any():
        row = int(np.flatnonzero(labels["cell_id"].isna())[0]) + 2
        raise DVPError(f"annotations row {row}: cell_id is not a number")
    labels["cell_id"] = labels["cell_id"].astype(np.int64)
    if "sample" in keys:
        labels["sample"] = labels["sample"].astype(str)
    if labels.duplicated(keys).any():
        row = labels[labels.duplicated(keys)].iloc[0]
        raise DVPError(f"annotations: cell {dict(row[keys])} is annotated more than once")
    table = cells.drop(columns=["cell_type", "confidence"], errors="ignore").copy()
    if "sample" in keys:
        table["sample"] = table["sample"].astype(str)
    merged = table.merge(labels, on=keys, how="right", indicator=True)
    unknown = merged[merged["_merge"] == "right_only"]
    if len(unknown):
        example = ", ".join(str(dict(r)) for _, r in unknown[keys].head(3).iterrows())
        raise DVPError(f"annotations: {len(unknown)} annotated cell(s) not in the cells table, e.g. {example}")
    return merged.drop(columns="_merge")


def train_classifier(
    cells: pd.DataFrame,
    annotations: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    n_estimators: int = 100,
    cv_folds: int = 5,
    seed: int = 0,
) -> tuple[dict, dict]:
    """Train a random forest on annotated cells and cross-validate it.

    Parameters
    ----------
    cells
        Cells table(s) of one or more samples (``sample``, ``cell_id`` and feature columns).
    annotations
        ``cell_id``, ``cell_type`` and (to tell samples apart) ``sample``: the cells a person labelled.
    features
        Feature columns; default :func:`default_features`.
    n_estimators, seed
        Trees in the forest and its random seed.
    cv_folds
        Stratified cross-validation folds (at most the smallest class's size).

    Returns
    -------
    model
        JSON-ready dict (see :func:`save_model`): features, classes, trees.
    evaluation
        ``accuracy`` (cross-validated), ``n_cells``, ``folds``, ``confusion`` (DataFrame: true type
        rows x predicted type columns, cell counts) and ``per_class`` (DataFrame: precision, recall,
        support).

    Examples
    --------
    Annotations usually come from QuPath; here the gating calls stand in for them:

    >>> typed, _ = classify_cells(cells, cell_types=[{"name": "keratinocyte", "positive": ["KRT14"]}])
    >>> model, evaluation = train_classifier(cells, typed[["sample", "cell_id", "cell_type"]], cv_folds=3)
    >>> evaluation["accuracy"] > 0.9
    True
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    table = annotated_cells(cells, annotations)
    features = list(features) if features is not None else default_features(cells)
    if not features:
        raise DVPError("cells table: no feature columns (mean_<channel>, shape) to train on")
    x = _feature_matrix(table, features)
    y = table["cell_type"].astype(str).to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise DVPError(f"annotations: need at least two cell types to train, got {', '.join(classes) or 'none'}")
    if counts.min() < 2:
        raise DVPError(
            f"annotations: cell type {classes[np.argmin(counts)]!r} has only {counts.min()} cell; need 2 or more"
        )
    forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1, min_samples_leaf=1)
    folds = int(min(cv_folds, counts.min()))
    predicted = cross_val_predict(forest, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    forest.fit(x, y)
    confusion = pd.DataFrame(
        confusion_matrix(y, predicted, labels=classes),
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )
    precision, recall, _, support = precision_recall_fscore_support(y, predicted, labels=classes, zero_division=0)
    per_class = pd.DataFrame({"precision": precision, "recall": recall, "support": support}, index=classes)
    model = {
        "format": MODEL_FORMAT,
        "version": 1,
        "features": features,
        "classes": [str(c) for c in forest.classes_],
        "trees": [_tree_arrays(estimator.tree_) for estimator in forest.estimators_],
        "cv_accuracy": float(np.mean(predicted == y)),
    }
    evaluation = {
        "accuracy": float(np.mean(predicted == y)),
        "n_cells": len(y),
        "folds": folds,
        "confusion": confusion,
        "per_class": per_class,
    }
    return model, evaluation


def _tree_arrays(tree) -> dict:
    value = tree.value[:, 0, :]
    value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
    return {
        "left": tree.children_left.tolist(),
        "right": tree.children_right.tolist(),
        "feature": tree.feature.tolist(),
        "threshold": tree.threshold.tolist(),
        "value": np.round(value, 6).tolist(),
    }


def save_model(model: dict) -> str:
    """A model from :func:`train_classifier` as JSON text (no code is stored or run on loading)."""
    import json

    return json.dumps(model, separators=(",", ":"))


def load_model(text: str, *, source: str = "model") -> dict:
    """Parse and check a model saved by :func:`save_model`."""
    import json

    try:
        model = json.loads(text)
    except ValueError as err:
        raise DVPError(f"{source}: not a JSON classifier model ({err})") from err
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        raise DVPError(f"{source}: not a dvp-pipeline classifier model (expected format {MODEL_FORMAT!r})")
    for key in ("features", "classes", "trees"):
        if not isinstance(model.get(key), list) or not model[key]:
            raise DVPError(f"{source}: model has no {key}")
    n_classes, n_features = len(model["classes"]), len(model["features"])
    for i, tree in enumerate(model["trees"]):
        if not isinstance(tree, dict) or not _tree_is_sound(tree, n_classes, n_features):
            raise DVPError(f"{source}: tree {i} is malformed")
    return model


def _tree_is_sound(tree: dict, n_classes: int, n_features: int) -> bool:
    """Arrays of one length, leaves where both children are -1, and every child after its parent (as
    scikit-learn stores trees): a damaged file can then neither index out of range nor loop forever."""
    try:
        left, right, feature = (np.asarray(tree.get(k, []), dtype=np.int64) for k in ("left", "right", "feature"))
        threshold = np.asarray(tree.get("threshold", []), dtype=float)
        value = np.asarray(tree.get("value", []), dtype=float)
    except (TypeError, ValueError):
        return False
    n = len(left)
    if n == 0 or {len(right), len(feature), len(threshold), len(value)} != {n} or left.ndim != 1:
        return False
    if value.ndim != 2 or value.shape[1] != n_classes:
        return False
    inner = left >= 0
    nodes = np.arange(n)
    return bool(
        np.array_equal(inner, right >= 0)
        and (left[inner] > nodes[inner]).all()
        and (right[inner] > nodes[inner]).all()
        and (left < n).all()
        and (right < n).all()
        and ((feature[inner] >= 0) & (feature[inner] < n_features)).all()
    )


def predict_cell_types(cells: pd.DataFrame, model: dict) -> pd.DataFrame:
    """Apply a trained model: every cell gets the most probable type and that probability.

    Parameters
    ----------
    cells
        Cells table with the model's feature columns.
    model
        From :func:`train_classifier` or :func:`load_model`.

    Returns
    -------
    A copy of ``cells`` with ``cell_type`` and ``confidence`` (the forest's probability of the
    chosen type, the mean over trees of the leaf's class fraction) and ``p_<type>`` per type.
    """
    x = _feature_matrix(cells, model["features"])
    probability = np.zeros((len(x), len(model["classes"])))
    for tree in model["trees"]:
        left = np.asarray(tree["left"], dtype=np.int64)
        right = np.asarray(tree["right"], dtype=np.int64)
        feature = np.asarray(tree["feature"], dtype=np.int64)
        threshold = np.asarray(tree["threshold"], dtype=float)
        node = np.zeros(len(x), dtype=np.int64)
        active = left[node] >= 0
        while active.any():
            rows = np.flatnonzero(active)
            n = node[rows]
            go_left = x[rows, feature[n]] <= threshold[n]
            node[rows] = np.where(go_left, left[n], right[n])
            active[rows] = left[node[rows]] >= 0
        probability += np.asarray(tree["value"], dtype=float)[node]
    probability /= len(model["trees"])
    result = cells.copy()
    best = np.argmax(probability, axis=1) if len(x) else np.zeros(0, dtype=int)
    result["cell_type"] = np.asarray(model["classes"], dtype=object)[best]
    result["confidence"] = probability[np.arange(len(x)), best]
    for i, name in enumerate(model["classes"]):
        result[f"p_{name}"] = probability[:, i]
    return result
