rule quantify:
    input:
        report=PROJECT.config["quantify"]["report"],
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        precursors=f"{RESULTS}/cohort/precursors.parquet",
        proteins=f"{RESULTS}/cohort/proteins.tsv",
        qc=f"{RESULTS}/cohort/quant_qc.tsv",
    params:
        options=options("quantify"),
    log:
        "logs/quantify.log",
    benchmark:
        "benchmarks/quantify.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(15, base=1000),
        runtime=60,
    shell:
        "dvp quantify {input.report:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--precursors {output.precursors:q} --proteins {output.proteins:q} --qc {output.qc:q} "
        "--options {params.options:q} 2> {log:q}"
