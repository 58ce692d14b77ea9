rule segment:
    input:
        image=lambda wc: sample_field(wc.sample, "image"),
    output:
        labels=f"{RESULTS}/{{sample}}/labels.tif",
        cells=f"{RESULTS}/{{sample}}/cells.parquet",
    params:
        options=options("segment"),
        extra=segment_args,
    log:
        "logs/segment/{sample}.log",
    benchmark:
        "benchmarks/segment/{sample}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(30),
        runtime=30,
    shell:
        "dvp segment {input.image:q} --sample {wildcards.sample} --labels {output.labels:q} "
        "--cells {output.cells:q} {params.extra} --options {params.options:q} 2> {log:q}"
