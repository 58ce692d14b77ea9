"""Gene-symbol mapping of protein groups: each/first, duplicates, case, outdated symbols."""

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.genesets import gene_to_features, parse_gmt, sets_to_features

SETS = {"JAK": ["STAT1", "STAT3", "JAK1", "OLDNAME"], "OTHER": ["GAPDH"]}
GENES = pd.Series({"P1": "STAT1;STAT3", "P2": "stat3", "P3": " Jak1 ", "P4": "GAPDH", "P5": "GAPDH;GAPDHS"})


def test_group_counts_for_each_or_first_gene():
    each = sets_to_features(SETS, GENES, group_genes="each")
    first = sets_to_features(SETS, GENES, group_genes="first")
    assert each["JAK"] == ["P1", "P2", "P3"]  # outdated OLDNAME matches nothing and does not fail
    assert first["JAK"] == ["P1", "P2", "P3"]
    assert gene_to_features(GENES, group_genes="each")["STAT3"] == ["P1", "P2"]
    assert gene_to_features(GENES, group_genes="first")["STAT3"] == ["P2"]
    assert "GAPDHS" not in gene_to_features(GENES, group_genes="first")


def test_duplicates_keep_the_most_observed_protein_whatever_the_row_order():
    values = pd.DataFrame(
        {"r1": [1.0, 2.0, 3.0, 4.0, np.nan], "r2": [1.0, np.nan, 3.0, 4.0, 5.0], "r3": [np.nan, 2.0, 3.0, 4.0, 9.0]},
        index=["P1", "P2", "P3", "P4", "P5"],
    )
    # STAT3: P1 and P2 both have 2 values; P2's median (2) beats P1's (1). GAPDH: P4 (3 values) beats P5 (2).
    mapped = gene_to_features(GENES, duplicates="most_observed", values=values)
    assert mapped["STAT3"] == ["P2"] and mapped["GAPDH"] == ["P4"] and mapped["STAT1"] == ["P1"]
    shuffled = gene_to_features(GENES.iloc[::-1], duplicates="most_observed", values=values.iloc[::-1])
    assert shuffled == mapped
    assert sets_to_features(SETS, GENES, duplicates="most_observed", values=values)["JAK"] == ["P1", "P2", "P3"]
    with pytest.raises(DVPError, match="needs the protein values"):
        gene_to_features(GENES, duplicates="most_observed")
    with pytest.raises(DVPError, match="group_genes"):
        gene_to_features(GENES, group_genes="last")


def test_gmt_members_are_case_insensitive_and_missing_genes_skipped():
    sets = parse_gmt("A\tdesc\tstat1\tNOPE\n")
    genes = pd.Series({"P1": "Stat1", "P2": None, "P3": np.nan})
    assert sets_to_features(sets, genes) == {"A": ["P1"]}
