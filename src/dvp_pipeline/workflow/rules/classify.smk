rule classify:
    input:
        cells=f"{RESULTS}/{{sample}}/cells.parquet",
    output:
        cells=f"{RESULTS}/{{sample}}/cells_classified.parquet",
        thresholds=f"{RESULTS}/{{sample}}/thresholds.tsv",
    params:
        options=options("classify"),
    log:
        "logs/classify/{sample}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(10),
        runtime=10,
    shell:
        "dvp classify {input.cells:q} --out {output.cells:q} --thresholds {output.thresholds:q} "
        "--options {params.options:q} 2> {log:q}"
