"""Write synthetic_long.tsv: a seeded MaxLFQ stress set for the iq reference values.

Proteins with 1 to 40 ions, 0 to 70 % missing values, and some whose samples fall into two or
more disconnected groups (including single-sample groups and samples with nothing seen), so that
every branch of iq's MaxLFQ is exercised. Run: python make_synthetic.py (numpy only).
"""

import numpy as np

rng = np.random.default_rng(20200611)
n_samples = 16
rows = []
for p in range(150):
    n_ions = int(rng.choice([1, 2, 3, 5, 8, 13, 40], p=[0.15, 0.15, 0.15, 0.2, 0.15, 0.12, 0.08]))
    abundance = rng.normal(22, 2, n_samples)
    log2 = rng.normal(0, 1.5, n_ions)[:, None] + abundance[None, :] + rng.normal(0, 0.3, (n_ions, n_samples))
    log2[rng.random(log2.shape) < rng.uniform(0, 0.7)] = np.nan
    if p % 7 == 3 and n_ions >= 3:  # split samples into disconnected groups
        cut = rng.integers(2, n_samples - 2)
        half = n_ions // 2
        log2[:half, cut:] = np.nan
        log2[half:, :cut] = np.nan
        log2[:, rng.integers(0, n_samples)] = np.nan
    for i in range(n_ions):
        for s in range(n_samples):
            if not np.isnan(log2[i, s]):
                rows.append(f"P{p:03d}\tP{p:03d}_ion{i:02d}\tS{s + 1:02d}\t{2 ** log2[i, s]:.6f}")
with open("synthetic_long.tsv", "w") as fh:
    fh.write("protein\tion\tsample\tintensity\n" + "\n".join(rows) + "\n")
