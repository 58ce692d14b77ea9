rule select:
    input:
        cells=RESULTS.cells_classified("{sample}"),
        labels=RESULTS.labels("{sample}"),
        image=lambda wc: sample_field(wc.sample, "image"),
    output:
        xml=update(RESULTS.lmd_xml("{sample}")),
        geojson=update(RESULTS.shapes("{sample}")),
        selection=update(RESULTS.selection("{sample}")),
        preview=update(RESULTS.preview("{sample}")),
    params:
        options=options("select"),
        extra=segment_args,
    log:
        "logs/select/{sample}.log",
    threads: 1
    resources:
        mem_mb=on_retry(mem_mb(20)),
        runtime=on_retry(10),
    shell:
        "dvp select {input.cells:q} {input.labels:q} --sample {wildcards.sample:q} --image {input.image:q} "
        "--xml {output.xml:q} --geojson {output.geojson:q} --selection {output.selection:q} "
        "--preview {output.preview:q} --options {params.options:q} 2> {log:q}"
