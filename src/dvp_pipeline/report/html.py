"""HTML building blocks of the reports: value formatting, tables, figures, the config table, templates.

Part of the report stage. The page modules (:mod:`~dvp_pipeline.report.sample`,
:mod:`~dvp_pipeline.report.cohort`) turn tables into the plain data the Jinja2 templates
(``report/templates/``) expect with :func:`table`, embed figures with :func:`figure` and render a
page with :func:`render`. Pages are self-contained: figures are base64 PNG, tables offer their TSV
as ``data:`` links, CSS and the little JavaScript for sortable tables are inline, and every
user-provided string (sample names, conditions, gene and set names, config values) is escaped by
Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import re
from collections.abc import Mapping, Sequence

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dvp_pipeline.report.figures._util import figure_to_base64, is_interferon, is_jak_stat, isna

__all__ = [
    "STAT_FORMATS",
    "config_table",
    "figure",
    "format_value",
    "now",
    "render",
    "set_class",
    "slug",
    "table",
]

#: Fixed decimals for the statistics columns, so a column reads at a glance.
STAT_FORMATS = {
    "logFC": "{:.2f}",
    "AveExpr": "{:.1f}",
    "P.Value": "{:.2e}",
    "adj.P.Val": "{:.2e}",
    "PValue": "{:.2e}",
    "FDR": "{:.2e}",
    "Correlation": "{:.3f}",
}


def format_value(value) -> str:
    """A cell value as text: ``NA`` for missing, integers without decimals, three significant digits."""
    if value is None or isna(value):
        return "NA"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _sort_key(value) -> str:
    if value is None or isna(value):
        return ""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def _tsv_data_uri(frame: pd.DataFrame) -> str:
    text = frame.to_csv(sep="\t", index=False, na_rep="NA", float_format="%.6g")
    return "data:text/tab-separated-values;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")


def table(
    frame: pd.DataFrame,
    *,
    row_classes: Sequence[str] | None = None,
    download: str | None = None,
    full: pd.DataFrame | None = None,
    formats: Mapping[str, str] | None = None,
) -> dict:
    """A table as plain data for the ``table`` macro: formatted cells, sort keys, row classes.

    ``download`` names a TSV offered as a ``data:`` link, holding ``full`` (default: ``frame``);
    ``formats`` maps column names to format strings (e.g. ``"{:.1f}"``) for numbers.
    """
    formats = dict(formats or {})
    columns = [str(c) for c in frame.columns]

    def text(column: str, value) -> str:
        if column in formats and isinstance(value, int | float | np.integer | np.floating) and not isna(value):
            return formats[column].format(value)
        return format_value(value)

    rows = [
        [{"text": text(c, v), "sort": _sort_key(v)} for c, v in zip(columns, record, strict=True)]
        for record in frame.itertuples(index=False, name=None)
    ]
    return {
        "columns": columns,
        "rows": rows,
        "classes": list(row_classes) if row_classes is not None else [""] * len(rows),
        "download": _tsv_data_uri(full if full is not None else frame) if download else None,
        "download_name": download,
    }


def _flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def config_table(config: Mapping | None, sections: Sequence[str]) -> dict | None:
    """The config sections a report depends on, one row per (flattened) key."""
    if not config:
        return None
    rows = []
    for section in sections:
        if section in config and isinstance(config[section], Mapping):
            rows.extend((section, key, format_value(value)) for key, value in _flatten(config[section]))
    if not rows:
        return None
    return table(pd.DataFrame(rows, columns=["section", "key", "value"]))


def set_class(name: str, highlight: Sequence[str]) -> str:
    """The row class of a gene set: JAK/STAT sets stand out most, other highlighted and IFN sets less."""
    if is_jak_stat(name):
        return "hl hl-jak"
    if name in highlight or is_interferon(name):
        return "hl"
    return ""


def figure(
    fig: Figure | None,
    *,
    alt: str,
    dpi: int,
    caption: str = "",
    emphasize: bool = False,
    wide: bool = False,
) -> dict | None:
    """A figure as plain data for the ``figure`` macro (``None`` stays ``None``: nothing to draw)."""
    if fig is None:
        return None
    return {
        "png": figure_to_base64(fig, dpi=dpi),
        "alt": alt,
        "caption": caption,
        "emphasize": emphasize,
        "wide": wide,
    }


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dvp_pipeline.report", "templates"),
        autoescape=True,  # every sample, condition, gene and set name comes from users or their data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context) -> str:
    """Render one of the page templates (``sample.html.j2``, ``cohort.html.j2``) with its context."""
    return _environment().get_template(template).render(**context)


def now() -> str:
    """The local time with its offset, to the second (the pages' generation time)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def slug(text: str) -> str:
    """An HTML id from any text (ids only need to be unique and safe, not readable)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"
