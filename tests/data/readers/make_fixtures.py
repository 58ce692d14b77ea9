"""Write the small, real-shaped search-engine files tests/test_readers.py reads.

Every file holds the same planted content: 3 runs (A, B, C); proteins P1 (STAT1, 3 precursors),
P2 (JAK1, 2 precursors) and P3 (IRF1, 1 precursor); a contaminant and a decoy group; one row of
P1 failing the precursor q-value. Headers are the full column sets of the real exports (DIA-NN 1.8
report.tsv, DIA-NN 2.x report.parquet, AlphaDIA precursors.parquet, Spectronaut fragment report,
MaxQuant evidence.txt and proteinGroups.txt), so the readers are tested against what they meet.
Run: python make_fixtures.py (pandas, pyarrow).
"""

import numpy as np
import pandas as pd

RUNS = ["A", "B", "C"]
RATIO = {"A": 1.0, "B": 2.0, "C": 4.0}  # every protein doubles from run to run
PRECURSORS = [
    ("P1", "STAT1", "AAAPEPTIDEK", 2, 1e6),
    ("P1", "STAT1", "CCCPEPTIDER", 2, 4e5),
    ("P1", "STAT1", "DDDPEPTIDEK", 3, 2e5),
    ("P2", "JAK1", "EEEPEPTIDEK", 2, 8e5),
    ("P2", "JAK1", "FFFPEPTIDER", 2, 1e5),
    ("P3", "IRF1", "GGGPEPTIDEK", 2, 5e5),
    ("Cont_P02768", "ALB", "HHHPEPTIDEK", 2, 9e6),
    ("DECOY_P1", "STAT1", "KEDITPEPAAA", 2, 3e4),
]


def rows():
    out = []
    for run in RUNS:
        for k, (prot, gene, seq, z, base) in enumerate(PRECURSORS):
            q = 0.05 if (prot == "P1" and seq.startswith("DDD") and run == "B") else 0.001
            out.append(dict(run=run, protein=prot, gene=gene, seq=seq, z=z, value=base * RATIO[run], q=q,
                            decoy=int(prot.startswith("DECOY_")), k=k))  # fmt: skip
    return pd.DataFrame(out)


DIANN_18 = ("File.Name Run Protein.Group Protein.Ids Protein.Names Genes PG.Quantity PG.Normalised PG.MaxLFQ "
            "Genes.Quantity Genes.Normalised Genes.MaxLFQ Genes.MaxLFQ.Unique Modified.Sequence Stripped.Sequence "
            "Precursor.Id Precursor.Charge Q.Value Global.Q.Value Protein.Q.Value PG.Q.Value Global.PG.Q.Value "
            "GG.Q.Value Translated.Q.Value Proteotypic Precursor.Quantity Precursor.Normalised Precursor.Translated "
            "Quantity.Quality RT RT.Start RT.Stop iRT Predicted.RT Predicted.iRT Lib.Q.Value Lib.PG.Q.Value "
            "Ms1.Profile.Corr Ms1.Area Evidence Spectrum.Similarity Mass.Evidence CScore Decoy.Evidence "
            "Decoy.CScore Fragment.Quant.Raw Fragment.Quant.Corrected Fragment.Correlations MS2.Scan IM iIM "
            "Predicted.IM Predicted.iIM").split()  # fmt: skip
DIANN_2 = ("Run.Index Run Channel Precursor.Id Modified.Sequence Stripped.Sequence Precursor.Charge "
           "Precursor.Lib.Index Decoy Proteotypic Precursor.Mz Protein.Ids Protein.Group Protein.Names Genes RT iRT "
           "Predicted.RT Predicted.iRT IM iIM Predicted.IM Predicted.iIM Precursor.Quantity Precursor.Normalised "
           "Ms1.Area Ms1.Normalised Ms1.Apex.Area Ms1.Apex.Mz.Delta Normalisation.Factor Quantity.Quality "
           "Empirical.Quality Normalisation.Noise Ms1.Profile.Corr Evidence Mass.Evidence Channel.Evidence "
           "Ms1.Total.Signal.Before Ms1.Total.Signal.After RT.Start RT.Stop FWHM PG.TopN PG.MaxLFQ Genes.TopN "
           "Genes.MaxLFQ Genes.MaxLFQ.Unique PG.MaxLFQ.Quality Genes.MaxLFQ.Quality Genes.MaxLFQ.Unique.Quality "
           "Q.Value PG.Q.Value PG.PEP GG.Q.Value Translated.Q.Value Channel.Q.Value PEP Global.Q.Value Lib.Q.Value "
           "Global.PG.Q.Value Lib.PG.Q.Value").split()  # fmt: skip


def diann(columns, r):
    known = {
        "File.Name": "D:\\raw\\" + r.run + ".raw", "Run": r.run, "Protein.Group": r.protein, "Protein.Ids": r.protein,
        "Protein.Names": r.gene + "_HUMAN", "Genes": r.gene, "Modified.Sequence": r.seq, "Stripped.Sequence": r.seq,
        "Precursor.Id": f"{r.seq}{r.z}", "Precursor.Charge": r.z, "Q.Value": r.q, "PG.Q.Value": 0.001,
        "Lib.Q.Value": r.q, "Lib.PG.Q.Value": 0.001, "Global.Q.Value": 0.001, "Global.PG.Q.Value": 0.001,
        "Precursor.Quantity": r.value * 1.1, "Precursor.Normalised": r.value, "Decoy": r.decoy, "Channel": "",
        "Run.Index": RUNS.index(r.run), "Proteotypic": 1, "Fragment.Quant.Raw": "1;2;3;", "Genes.MaxLFQ.Unique": 1.0,
    }  # fmt: skip
    return {c: known.get(c, 0.5) for c in columns}


def main():
    d = rows()
    d18 = d[d.decoy == 0]  # DIA-NN 1.8 does not report decoys in the main report
    pd.DataFrame([diann(DIANN_18, r) for r in d18.itertuples()]).to_csv("diann18_report.tsv", sep="\t", index=False)
    pd.DataFrame([diann(DIANN_2, r) for r in d.itertuples()]).to_parquet("diann2_report.parquet", index=False)
    alpha = pd.DataFrame(
        {
            "base_width_mobility": 0.0, "base_width_rt": 5.2, "rt_observed": 20.0, "mobility_observed": 1e-6,
            "mono_ms1_intensity": d.value / 3, "top_ms1_intensity": d.value / 2, "sum_ms1_intensity": d.value,
            "weighted_ms1_intensity": d.value, "precursor_idx": d.k, "elution_group_idx": d.k, "decoy": d.decoy,
            "charge": d.z, "proteins": d.protein, "genes": d.gene, "sequence": d.seq, "mods": "", "mod_sites": "",
            "mod_seq_hash": d.k * 1000, "mod_seq_charge_hash": d.k * 1000 + d.z, "intensity": d.value,
            "score": 30.0, "qval": d.q, "proba": 0.001, "run": d.run, "pg": d.protein, "pg_master": d.protein,
            "pg_qval": 0.001,
        }
    )  # fmt: skip
    alpha.to_parquet("alphadia_precursors.parquet", index=False)
    frags = []
    for r in d.itertuples():
        for j, (ion, share) in enumerate([("y4", 0.5), ("y5", 0.3), ("b3", 0.2)]):
            frags.append({
                "R.Condition": "cond", "R.FileName": r.run, "R.Replicate": 1, "PG.ProteinGroups": r.protein,
                "PG.Genes": r.gene, "PG.Qvalue": 0.001, "PEP.StrippedSequence": r.seq,
                "EG.ModifiedSequence": f"_{r.seq}_", "EG.PrecursorId": f"_{r.seq}_.{r.z}", "EG.Qvalue": r.q,
                "FG.Charge": r.z, "FG.Quantity": r.value, "F.FrgIon": ion, "F.Charge": 1, "F.FrgLossType": "noloss",
                "F.ExcludedFromQuantification": "True" if j == 2 and r.protein == "P3" else "False",
                "F.PeakArea": r.value * share if not (j == 2 and r.protein == "P3") else 1.0,
            })  # fmt: skip
    pd.DataFrame(frags).to_csv("spectronaut_fragments.tsv", sep="\t", index=False)
    ev = pd.DataFrame(
        {
            "Sequence": d.seq, "Length": 11, "Modifications": "Unmodified", "Modified sequence": "_" + d.seq + "_",
            "Proteins": d.protein.str.replace("DECOY_", "REV__").str.replace("Cont_", "CON__"),
            "Leading proteins": d.protein, "Leading razor protein":
            d.protein.str.replace("DECOY_", "REV__").str.replace("Cont_", "CON__"), "Gene names": d.gene,
            "Type": "MULTI-MSMS", "Raw file": d.run, "Charge": d.z, "m/z": 600.3, "PEP": d.q, "Score": 100.0,
            "Intensity": d.value, "Reverse": np.where(d.decoy == 1, "+", ""),
            "Potential contaminant": np.where(d.protein.str.startswith("Cont_"), "+", ""), "id": range(len(d)),
            "Protein group IDs": d.k,
        }
    )  # fmt: skip
    ev.to_csv("maxquant_evidence.txt", sep="\t", index=False)
    pg = d.groupby(["protein", "gene", "run"])["value"].sum().unstack("run").reset_index()
    names = pg.protein.str.replace("DECOY_", "REV__").str.replace("Cont_", "CON__")
    table = {"Protein IDs": names, "Majority protein IDs": names, "Gene names": pg.gene, "Peptides": 3}
    for run in RUNS:
        table[f"Intensity {run}"] = pg[run] * 1.2
    for run in RUNS:
        table[f"LFQ intensity {run}"] = pg[run]
    table["Only identified by site"] = np.where(pg.protein == "P2", "+", "")
    table["Reverse"] = np.where(names.str.startswith("REV__"), "+", "")
    table["Potential contaminant"] = np.where(names.str.startswith("CON__"), "+", "")
    table["id"] = range(len(pg))
    pd.DataFrame(table).to_csv("maxquant_proteinGroups.txt", sep="\t", index=False)
    d.rename(columns={"seq": "ion", "value": "intensity", "gene": "genes"})[
        ["protein", "genes", "ion", "run", "intensity"]
    ].to_csv("generic_long.csv", index=False)


if __name__ == "__main__":
    main()
