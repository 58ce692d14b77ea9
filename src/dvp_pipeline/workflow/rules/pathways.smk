PATHWAY_METHODS = PROJECT.config["pathways"]["methods"]
PATHWAY_TABLE_NAMES = [f"{c}/{k}" for c in CELL_TYPES for k in CONTRASTS] + INTERACTION_TABLES


rule pathways:
    input:
        proteins=f"{RESULTS}/cohort/proteins.tsv",
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        tables=expand(f"{RESULTS}/cohort/pathways/{{cell_type}}/{{contrast}}.tsv", cell_type=CELL_TYPES, contrast=CONTRASTS)
        + [f"{RESULTS}/cohort/pathways/{t}.tsv" for t in INTERACTION_TABLES],
        scores=f"{RESULTS}/cohort/pathway_scores.tsv",
        extra=[f"{RESULTS}/cohort/pathways_{m}/{t}.tsv" for m in ("ora", "gsea") if m in PATHWAY_METHODS for t in PATHWAY_TABLE_NAMES],
    params:
        options=options("pathways"),
        differential=options("differential"),
        outdir=lambda wildcards, output: stage_folder(output),
        extra=" ".join(f"--{m}-outdir {RESULTS}/cohort/pathways_{m}" for m in ("ora", "gsea") if m in PATHWAY_METHODS),
    log:
        "logs/pathways.log",
    threads: 1
    resources:
        mem_mb=mem_mb(20, base=1000),
        runtime=30,
    shell:
        "dvp pathways {input.proteins:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--outdir {params.outdir:q} --scores {output.scores:q} --differential-options {params.differential:q} "
        "--options {params.options:q} {params.extra} 2> {log:q}"
