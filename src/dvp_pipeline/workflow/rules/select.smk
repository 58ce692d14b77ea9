rule select:
    input:
        cells=f"{RESULTS}/{{sample}}/cells_classified.parquet",
        labels=f"{RESULTS}/{{sample}}/labels.tif",
        image=lambda wc: sample_field(wc.sample, "image"),
    output:
        xml=f"{RESULTS}/{{sample}}/lmd/{{sample}}.xml",
        geojson=f"{RESULTS}/{{sample}}/lmd/shapes.geojson",
        selection=f"{RESULTS}/{{sample}}/lmd/selection.tsv",
        preview=f"{RESULTS}/{{sample}}/lmd/preview.png",
    params:
        options=options("select"),
        extra=segment_args,
    log:
        "logs/select/{sample}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(20),
        runtime=10,
    shell:
        "dvp select {input.cells:q} {input.labels:q} --sample {wildcards.sample} --image {input.image:q} "
        "--xml {output.xml:q} --geojson {output.geojson:q} --selection {output.selection:q} "
        "--preview {output.preview:q} --options {params.options:q} 2> {log:q}"
