"""Gene-set collections (GMT files) and their mapping onto measured protein groups.

The Hallmark (MSigDB v7.0) and Reactome (2021) collections ship in ``data/genesets/`` with their
provenance and licences, so pathway scoring never needs the network. Users add GMT files of their own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError

__all__ = ["BUILTIN", "collection_label", "gene_to_features", "load_collection", "parse_gmt", "sets_to_features"]

BUILTIN = {"hallmark": "h.all.v7.0.symbols.gmt", "reactome": "reactome_pathways_2021.gmt"}


def parse_gmt(text: str, *, source: str = "GMT", keep_case: bool = False) -> dict[str, list[str]]:
    """Parse GMT text: one set per line, name, description, then member symbols (tab-separated).

    Members are upper-cased (symbol matching is case-insensitive) unless ``keep_case``, blanks
    dropped and duplicates removed keeping the first occurrence.
    """
    sets: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            raise DVPError(
                f"{source}, line {lineno}: expected name, description and at least one member "
                f"separated by tabs, found {len(fields)} field(s)"
            )
        name = fields[0].strip()
        if name in sets:
            raise DVPError(f"{source}, line {lineno}: set '{name}' is defined twice")
        members = (g.strip() for g in fields[2:] if g.strip())
        sets[name] = list(dict.fromkeys(members if keep_case else (g.upper() for g in members)))
    if not sets:
        raise DVPError(f"{source}: no gene sets found")
    return sets


def load_collection(name_or_path: str, *, base: str | Path = ".") -> dict[str, list[str]]:
    """A built-in collection (``hallmark``, ``reactome``) or a GMT file path (relative to ``base``)."""
    if name_or_path in BUILTIN:
        if (Path(base) / name_or_path).exists():
            raise DVPError(
                f"gene sets '{name_or_path}': both a built-in collection and a file in this folder; "
                f"write ./{name_or_path} for the file, or rename it"
            )
        text = resources.files("dvp_pipeline").joinpath("data", "genesets", BUILTIN[name_or_path]).read_text()
        return parse_gmt(text, source=BUILTIN[name_or_path])
    path = Path(base) / name_or_path
    if not path.is_file():
        raise DVPError(
            f"gene sets '{name_or_path}': neither a built-in collection ({', '.join(BUILTIN)}) nor an existing GMT file"
        )
    return parse_gmt(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def collection_label(name_or_path: str) -> str:
    """Short label for a collection in result tables: the built-in name or the file's stem."""
    return name_or_path if name_or_path in BUILTIN else Path(name_or_path).stem


def gene_to_features(
    genes: pd.Series,
    *,
    group_genes: str = "each",
    duplicates: str = "all",
    values: pd.DataFrame | None = None,
) -> dict[str, list[str]]:
    """Which features (protein groups) stand for each gene symbol.

    Parameters
    ----------
    genes
        Feature id (index) to its gene symbols, ``;``-separated as search engines write protein
        groups. Matching ignores case and surrounding blanks.
    group_genes
        ``"each"``: a group such as ``STAT1;STAT3`` counts for both genes; ``"first"``: only for its
        first (leading) gene.
    duplicates
        When several features map to one gene: ``"all"`` keeps them all; ``"most_observed"`` keeps
        one, the feature with the most observed values in ``values``, then the higher median, then
        the first by name, so the choice does not depend on row order.
    values
        Features x runs, needed for ``"most_observed"``.
    """
    if group_genes not in ("each", "first"):
        raise DVPError(f"gene mapping: group_genes must be 'each' or 'first', not '{group_genes}'")
    if duplicates not in ("all", "most_observed"):
        raise DVPError(f"gene mapping: duplicates must be 'all' or 'most_observed', not '{duplicates}'")
    by_gene: dict[str, list[str]] = {}
    for feature, symbols in genes.items():
        if symbols is None or (isinstance(symbols, float) and symbols != symbols):
            continue
        parts = [p.strip() for p in str(symbols).upper().split(";") if p.strip()]
        for symbol in parts[:1] if group_genes == "first" else parts:
            by_gene.setdefault(symbol, []).append(feature)
    by_gene = {g: sorted(dict.fromkeys(fs), key=str) for g, fs in by_gene.items()}
    if duplicates == "most_observed":
        if values is None:
            raise DVPError("gene mapping: duplicates='most_observed' needs the protein values")
        observed = values.notna().sum(axis=1)
        median = values.median(axis=1)

        def rank(feature):
            if feature not in observed.index:
                return (1, 0, 0.0, str(feature))
            med = median[feature]
            return (0, -int(observed[feature]), -(med if med == med else -np.inf), str(feature))

        by_gene = {g: [min(fs, key=rank)] for g, fs in by_gene.items()}
    return by_gene


def sets_to_features(
    gene_sets: dict[str, list[str]],
    genes: pd.Series,
    *,
    group_genes: str = "each",
    duplicates: str = "all",
    values: pd.DataFrame | None = None,
) -> dict[str, list[str]]:
    """Translate sets of gene symbols into sets of feature ids (protein groups).

    See :func:`gene_to_features` for the options. Symbols that match nothing (outdated or
    placeholder names) are simply not measured; a feature appears at most once per set.
    """
    by_gene = gene_to_features(genes, group_genes=group_genes, duplicates=duplicates, values=values)
    return {
        name: list(dict.fromkeys(f for g in members for f in by_gene.get(g.upper(), ())))
        for name, members in gene_sets.items()
    }
