# Laser microdissection: pools and shapes per sample, plates for the cohort, then each sample's Leica file.


rule select:
    input:
        cells=RESULTS.cells_classified("{sample}"),
        labels=RESULTS.labels("{sample}"),
        image=lambda wc: sample_field(wc.sample, "image"),
        regions=sample_regions,
    output:
        pools=update(RESULTS.pools("{sample}")),
        selection=update(RESULTS.selection("{sample}")),
        shapes=update(RESULTS.shapes_table("{sample}")),
        geojson=update(RESULTS.shapes("{sample}")),
        summary=update(RESULTS.lmd_summary("{sample}")),
        preview=update(RESULTS.preview("{sample}")),
    params:
        options=options("select"),
        extra=select_args,
    log:
        "logs/select/{sample}.log",
    threads: 1
    resources:
        mem_mb=on_retry(mem_mb(20)),
        runtime=on_retry(10),
    shell:
        "dvp select {input.cells:q} {input.labels:q} --sample {wildcards.sample:q} --image {input.image:q} "
        "--pools {output.pools:q} --selection {output.selection:q} --shapes {output.shapes:q} "
        "--geojson {output.geojson:q} --summary {output.summary:q} --preview {output.preview:q} "
        "{params.extra:q} --options {params.options:q} 2> {log:q}"


rule plate:
    input:
        pools=expand(RESULTS.pools("{sample}"), sample=SAMPLES),
        selection=expand(RESULTS.selection("{sample}"), sample=SAMPLES),
        runs=PROJECT.config["runs"],
    output:
        plate_map=update(RESULTS.plate_map()),
        sample_key=update(RESULTS.sample_key()),
        queue=update(RESULTS.ms_queue()),
        runs=update(RESULTS.generated_runs()),
        figure=update(RESULTS.plate_figure()),
    params:
        options=options("select"),
    log:
        "logs/plate/plate.log",
    threads: 1
    resources:
        mem_mb=on_retry(1000),
        runtime=on_retry(10),
    shell:
        "dvp plate --pools {input.pools:q} --selection {input.selection:q} --runs {input.runs:q} "
        "--plate-map {output.plate_map:q} --sample-key {output.sample_key:q} --queue {output.queue:q} "
        "--runs-out {output.runs:q} --figure {output.figure:q} --options {params.options:q} 2> {log:q}"


rule lmd:
    input:
        shapes=RESULTS.shapes_table("{sample}"),
        summary=RESULTS.lmd_summary("{sample}"),
        plate_map=RESULTS.plate_map(),
    output:
        xml=update(RESULTS.lmd_xml("{sample}")),
    params:
        options=options("select"),
    log:
        "logs/lmd/{sample}.log",
    threads: 1
    resources:
        mem_mb=on_retry(mem_mb(5)),
        runtime=on_retry(10),
    shell:
        "dvp lmd --sample {wildcards.sample:q} --shapes {input.shapes:q} --summary {input.summary:q} "
        "--plate-map {input.plate_map:q} --xml {output.xml:q} --options {params.options:q} 2> {log:q}"
