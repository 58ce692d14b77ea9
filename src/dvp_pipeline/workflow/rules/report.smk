# The reports read what the other stages wrote, through the same results layout.

COHORT_TABLES = [
    RESULTS.proteins(),
    RESULTS.quant_qc(),
    RESULTS.pathway_scores(),
    *rules.differential.output,
    *rules.pathways.output.tables,
]


rule sample_report:
    input:
        RESULTS.labels("{sample}"),
        RESULTS.segment_qc("{sample}"),
        RESULTS.cells_classified("{sample}"),
        RESULTS.thresholds("{sample}"),
        RESULTS.selection("{sample}"),
        RESULTS.preview("{sample}"),
        RESULTS.sample_key(),
        RESULTS.plate_figure(),
        COHORT_TABLES,
        image=lambda wc: sample_field(wc.sample, "image"),
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        update(RESULTS.sample_report("{sample}")),
    params:
        options=report_options(),
        results=results_root,
        config=CONFIG_FILE,
    log:
        "logs/report/{sample}.log",
    threads: 1
    resources:
        mem_mb=on_retry(2000),
        runtime=on_retry(10),
    shell:
        "dvp report sample --sample {wildcards.sample:q} --results {params.results:q} --samples {input.samples:q} "
        "--runs {input.runs:q} --out {output:q} --config {params.config:q} --options {params.options:q} 2> {log:q}"


rule cohort_report:
    input:
        RESULTS.sample_key(),
        COHORT_TABLES,
        # a supervised classifier trained here: its cross-validated accuracy goes into the report
        classifier=rules.train_classifier.output if SUPERVISED and not TRAINED_MODEL else [],
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        update(RESULTS.cohort_report()),
    params:
        options=report_options(),
        differential=options("differential"),
        results=results_root,
        config=CONFIG_FILE,
    log:
        "logs/report/cohort.log",
    threads: 1
    resources:
        mem_mb=on_retry(2000),
        runtime=on_retry(10),
    shell:
        "dvp report cohort --results {params.results:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--out {output:q} --config {params.config:q} --differential-options {params.differential:q} "
        "--options {params.options:q} 2> {log:q}"
