# The search-engine report, or with format mzml the spectra and identification files.
QUANT_MZML = PROJECT.config["quantify"]["format"] == "mzml"
QUANT_INPUT = (
    {k: PROJECT.config["quantify"][k] for k in ("spectra", "identifications")}
    if QUANT_MZML
    else {"report": PROJECT.config["quantify"]["report"]}
)


rule quantify:
    input:
        **QUANT_INPUT,
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        precursors=update(RESULTS.precursors()),
        proteins=update(RESULTS.proteins()),
        qc=update(RESULTS.quant_qc()),
    params:
        options=options("quantify"),
        report=lambda wildcards, input: "" if QUANT_MZML else input.report,
    log:
        "logs/quantify.log",
    benchmark:
        "benchmarks/quantify.tsv"
    threads: 2
    resources:
        # The ion table is categorical and MaxLFQ works in bounded batches: memory grows slowly with input.
        mem_mb=on_retry(mem_mb(4, base=1000)),
        runtime=on_retry(60),
    shell:
        "dvp quantify {params.report:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--precursors {output.precursors:q} --proteins {output.proteins:q} --qc {output.qc:q} "
        "--threads {threads} --options {params.options:q} 2> {log:q}"
