"""Gene-set collections (GMT files) and their mapping onto measured protein groups.

The Hallmark (MSigDB v7.0) and Reactome (2021) collections ship in ``data/genesets/`` with their
provenance and licences, so pathway scoring never needs the network. Users add GMT files of their own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from dvp_pipeline.errors import DVPError

BUILTIN = {"hallmark": "h.all.v7.0.symbols.gmt", "reactome": "reactome_pathways_2021.gmt"}


def parse_gmt(text: str, *, source: str = "GMT") -> dict[str, list[str]]:
    """Parse GMT text: one set per line, name, description, then member symbols (tab-separated).

    Members are upper-cased (symbol matching is case-insensitive), blanks dropped and duplicates
    removed keeping the first occurrence.
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
        sets[name] = list(dict.fromkeys(g.strip().upper() for g in fields[2:] if g.strip()))
    if not sets:
        raise DVPError(f"{source}: no gene sets found")
    return sets


def load_collection(name_or_path: str) -> dict[str, list[str]]:
    """A built-in collection (``hallmark``, ``reactome``) or a GMT file path."""
    if name_or_path in BUILTIN:
        text = resources.files("dvp_pipeline").joinpath("data", "genesets", BUILTIN[name_or_path]).read_text()
        return parse_gmt(text, source=BUILTIN[name_or_path])
    path = Path(name_or_path)
    if not path.is_file():
        raise DVPError(
            f"gene sets '{name_or_path}': neither a built-in collection ({', '.join(BUILTIN)}) nor an existing GMT file"
        )
    return parse_gmt(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def collection_label(name_or_path: str) -> str:
    """Short label for a collection in result tables: the built-in name or the file's stem."""
    return name_or_path if name_or_path in BUILTIN else Path(name_or_path).stem


def sets_to_features(gene_sets: dict[str, list[str]], genes: pd.Series) -> dict[str, list[str]]:
    """Translate sets of gene symbols into sets of feature ids (protein groups).

    ``genes`` maps feature id (index) to its gene symbols, ``;``-separated as search engines write
    protein groups; a group counts for each of its genes. Matching ignores case; symbols that match
    nothing (outdated or placeholder names) are simply not measured.
    """
    by_gene: dict[str, list[str]] = {}
    for feature, symbols in genes.items():
        for symbol in str(symbols).upper().split(";"):
            if symbol.strip():
                by_gene.setdefault(symbol.strip(), []).append(feature)
    return {
        name: list(dict.fromkeys(f for g in members for f in by_gene.get(g, ()))) for name, members in gene_sets.items()
    }
