# Gene-set tests for every differential test, and per-run set scores (one job).

PATHWAY_METHODS = ["camera", *(m for m in EXTRA_PATHWAY_METHODS if m in PROJECT.config["pathways"]["methods"])]


rule pathways:
    input:
        proteins=RESULTS.proteins(),
        # the user's own GMT files: editing one reruns the pathway tests (built-in collections ship inside the package)
        gene_sets=[g for g in PROJECT.config["pathways"]["gene_sets"] if g not in BUILTIN_GENE_SETS],
        samples=PROJECT.config["samples"],
        runs=PROJECT.config["runs"],
    output:
        tables=[update(RESULTS.pathways(t.folder, t.name, m)) for m in PATHWAY_METHODS for t in TESTS],
        scores=update(RESULTS.pathway_scores()),
    params:
        options=options("pathways"),
        differential=options("differential"),
        results=results_root,
    log:
        "logs/pathways.log",
    threads: 1
    resources:
        mem_mb=on_retry(mem_mb(20, base=1000)),
        runtime=on_retry(30),
    shell:
        "dvp pathways {input.proteins:q} --samples {input.samples:q} --runs {input.runs:q} "
        "--results {params.results:q} --differential-options {params.differential:q} "
        "--options {params.options:q} 2> {log:q}"
