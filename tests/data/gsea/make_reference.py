"""Reference enrichment scores for tests/test_pathways.py, made with gseapy (not a dependency).

Made with: gseapy 1.3.1 from PyPI (pip install gseapy), Python 3.11, by running
    python make_reference.py        (in this folder)
Writes ranking.tsv (feature, stat), sets.gmt and es.tsv (set, ES from gseapy.prerank, weight 1).
"""

import gseapy
import numpy as np
import pandas as pd

rng = np.random.default_rng(1)
ranking = pd.Series(rng.normal(size=500), index=[f"G{i}" for i in range(500)])
ranking.iloc[:20] += 1.5
ranking.iloc[200:215] -= 1.2
sets = {
    "S_UP": [f"G{i}" for i in range(25)],
    "S_RAND": [f"G{i}" for i in range(300, 340)],
    "S_DOWN": [f"G{i}" for i in range(200, 215)],
    "S_MIX": [f"G{i}" for i in [*range(10), *range(205, 212), *range(400, 420)]],
}
ranking.rename_axis("feature").rename("stat").to_csv("ranking.tsv", sep="\t", float_format="%.17g")
with open("sets.gmt", "w") as gmt:
    gmt.writelines(f"{name}\tna\t" + "\t".join(members) + "\n" for name, members in sets.items())
res = gseapy.prerank(
    rnk=ranking, gene_sets=sets, permutation_num=100, seed=1, min_size=5, max_size=500, outdir=None, weight=1
)
res.res2d.set_index("Term")[["ES"]].astype(float).rename_axis("set").to_csv("es.tsv", sep="\t", float_format="%.17g")
