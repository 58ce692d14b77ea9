# Cell typing per sample: gating rules from the config, or a supervised classifier trained once for
# the cohort on annotated cells (classify.method: supervised).

from dvp_pipeline.errors import DVPError

SUPERVISED = PROJECT.config["classify"]["method"] == "supervised"
if SUPERVISED and not (
    PROJECT.config["classify"]["supervised"]["model"] or PROJECT.config["classify"]["supervised"]["annotations"]
):
    raise DVPError(
        "config: classify.method is supervised; set classify.supervised.annotations (annotated cells to "
        "train on) or classify.supervised.model (a trained model)"
    )
TRAINED_MODEL = PROJECT.config["classify"]["supervised"]["model"]


if SUPERVISED and not TRAINED_MODEL:

    rule train_classifier:
        input:
            cells=[RESULTS.cells(s) for s in SAMPLES],
            annotations=PROJECT.config["classify"]["supervised"]["annotations"] or [],
        output:
            model=update(RESULTS.classifier_model()),
            confusion=update(RESULTS.classifier_confusion()),
            summary=update(RESULTS.classifier_summary()),
        params:
            options=options("classify"),
        log:
            "logs/classify/train_classifier.log",
        threads: 1
        resources:
            mem_mb=on_retry(lambda wildcards, input: int(1000 + 5 * input.size_mb)),
            runtime=on_retry(60),
        shell:
            "dvp train-classifier {input.cells:q} --annotations {input.annotations:q} "
            "--model {output.model:q} --confusion {output.confusion:q} --summary {output.summary:q} "
            "--options {params.options:q} 2> {log:q}"


rule classify:
    input:
        cells=RESULTS.cells("{sample}"),
        model=classifier_model,
    output:
        cells=update(RESULTS.cells_classified("{sample}")),
        thresholds=update(RESULTS.thresholds("{sample}")),
        anndata=update(RESULTS.anndata("{sample}")),
    params:
        options=options("classify"),
        model=lambda wildcards, input: ["--model", input.model] if input.model else [],
    log:
        "logs/classify/{sample}.log",
    threads: 1
    resources:
        mem_mb=on_retry(lambda wildcards, input: int(500 + 10 * input.size_mb)),
        runtime=on_retry(10),
    shell:
        "dvp classify {input.cells:q} --out {output.cells:q} --thresholds {output.thresholds:q} "
        "--anndata {output.anndata:q} {params.model:q} --options {params.options:q} 2> {log:q}"


rule pyramid:
    input:
        labels=RESULTS.labels("{sample}"),
        cells=RESULTS.cells_classified("{sample}"),
    output:
        labels=directory(RESULTS.labels_pyramid("{sample}")),
        types=directory(RESULTS.cell_types_pyramid("{sample}")),
    params:
        options=options("classify"),
        extra=pixel_size_args,
    log:
        "logs/pyramid/{sample}.log",
    threads: 1
    resources:
        mem_mb=on_retry(2000),
        runtime=on_retry(30),
    shell:
        "dvp pyramid {input.labels:q} {input.cells:q} --labels-out {output.labels:q} --types-out {output.types:q} "
        "{params.extra:q} --options {params.options:q} 2> {log:q}"
