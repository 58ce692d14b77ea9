rule pathways:
    input:
        proteins=f"{RESULTS}/cohort/proteins.tsv",
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        tables=expand(f"{RESULTS}/cohort/pathways/{{cell_type}}/{{contrast}}.tsv", cell_type=CELL_TYPES, contrast=CONTRASTS),
        scores=f"{RESULTS}/cohort/pathway_scores.tsv",
    params:
        options=options("pathways"),
        differential=options("differential"),
        outdir=lambda wildcards, output: stage_folder(output),
    log:
        "logs/pathways.log",
    threads: 1
    resources:
        mem_mb=mem_mb(20, base=1000),
        runtime=30,
    shell:
        "dvp pathways {input.proteins:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--outdir {params.outdir:q} --scores {output.scores:q} --differential-options {params.differential:q} "
        "--options {params.options:q} 2> {log:q}"
