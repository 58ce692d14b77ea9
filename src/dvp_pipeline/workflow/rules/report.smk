COHORT_TABLES = [
    f"{RESULTS}/cohort/proteins.tsv",
    f"{RESULTS}/cohort/quant_qc.tsv",
    f"{RESULTS}/cohort/pathway_scores.tsv",
    *rules.differential.output,
    *rules.pathways.output.tables,
]


rule sample_report:
    input:
        f"{RESULTS}/{{sample}}/labels.tif",
        f"{RESULTS}/{{sample}}/cells_classified.parquet",
        f"{RESULTS}/{{sample}}/thresholds.tsv",
        f"{RESULTS}/{{sample}}/lmd/selection.tsv",
        f"{RESULTS}/{{sample}}/lmd/preview.png",
        COHORT_TABLES,
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        f"{RESULTS}/reports/{{sample}}.html",
    params:
        options=report_options(),
        results=lambda wildcards, output: stage_folder(output),
        config=workflow.configfiles[-1],
    log:
        "logs/report/{sample}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "dvp report sample --sample {wildcards.sample} --results {params.results} --samples {input.samples:q} "
        "--runs {input.runs:q} --out {output:q} --config {params.config:q} --options {params.options:q} 2> {log:q}"


rule cohort_report:
    input:
        COHORT_TABLES,
        # a supervised classifier trained here: its cross-validated accuracy goes into the report
        classifier=rules.train_classifier.output if SUPERVISED and not TRAINED_MODEL else [],
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        f"{RESULTS}/reports/cohort.html",
    params:
        options=report_options(),
        results=lambda wildcards, output: stage_folder(output),
        config=workflow.configfiles[-1],
    log:
        "logs/report/cohort.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "dvp report cohort --results {params.results} --samples {input.samples:q} --runs {input.runs:q} "
        "--out {output:q} --config {params.config:q} --options {params.options:q} 2> {log:q}"
