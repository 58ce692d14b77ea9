# The differential tests: each contrast within each cell type, then the interactions (one job).

TESTS = differential_tests(PROJECT.samples, PROJECT.runs, PROJECT.options.differential)


rule differential:
    input:
        proteins=RESULTS.proteins(),
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        [update(RESULTS.differential(t.folder, t.name)) for t in TESTS],
        methods=update(RESULTS.differential_methods()),
    params:
        options=options("differential"),
        results=results_root,
    log:
        "logs/differential.log",
    threads: 1
    resources:
        mem_mb=on_retry(mem_mb(20, base=1000)),
        runtime=on_retry(30),
    shell:
        "dvp differential {input.proteins:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--results {params.results:q} --options {params.options:q} 2> {log:q}"
