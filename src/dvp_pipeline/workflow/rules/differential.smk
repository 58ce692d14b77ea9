INTERACTION_TABLES = [
    f"{a}_x_{b}/{num}_vs_{den}" for num, den, a, b in PROJECT.config["differential"].get("interactions", [])
]


rule differential:
    input:
        proteins=f"{RESULTS}/cohort/proteins.tsv",
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        expand(f"{RESULTS}/cohort/differential/{{cell_type}}/{{contrast}}.tsv", cell_type=CELL_TYPES, contrast=CONTRASTS),
        [f"{RESULTS}/cohort/differential/{t}.tsv" for t in INTERACTION_TABLES],
        methods=f"{RESULTS}/cohort/differential/methods.json",
    params:
        options=options("differential"),
        outdir=lambda wildcards, output: stage_folder(output),
    log:
        "logs/differential.log",
    threads: 1
    resources:
        mem_mb=mem_mb(20, base=1000),
        runtime=30,
    shell:
        "dvp differential {input.proteins:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--outdir {params.outdir:q} --options {params.options:q} 2> {log:q}"
