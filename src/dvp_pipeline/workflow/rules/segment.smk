# Segmentation and per-cell measurement of each sample's image. A slide is always processed tile by
# tile inside `dvp segment` (memory bounded by segment.tile_size); with segment.tiles_as_jobs the
# tiles become jobs of their own: a plan (checkpoint), one job per tile, and a gather job.


include: "imaging_functions.smk"


if not PROJECT.config["segment"]["tiles_as_jobs"]:

    rule segment:
        input:
            image=lambda wc: sample_field(wc.sample, "image"),
        output:
            labels=update(RESULTS.labels("{sample}")),
            nuclei=update(RESULTS.nuclei("{sample}")),
            cells=update(RESULTS.cells("{sample}")),
            qc=update(RESULTS.segment_qc("{sample}")),
        params:
            options=options("segment"),
            extra=segment_args,
        log:
            "logs/segment/{sample}.log",
        benchmark:
            "benchmarks/segment/{sample}.tsv"
        threads: SEGMENT_THREADS
        resources:
            mem_mb=on_retry(segment_workers_mem_mb),
            runtime=on_retry(120),
        shell:
            "dvp segment {input.image:q} --sample {wildcards.sample:q} --labels {output.labels:q} "
            "--nuclei {output.nuclei:q} --cells {output.cells:q} --qc {output.qc:q} {params.extra:q} "
            "--workers {threads} --options {params.options:q} 2> {log:q}"

else:

    checkpoint segment_plan:
        input:
            image=lambda wc: sample_field(wc.sample, "image"),
        output:
            plan=update(RESULTS.tile_plan("{sample}")),
        params:
            options=options("segment"),
            extra=segment_args,
        log:
            "logs/segment/{sample}.plan.log",
        threads: 1
        resources:
            mem_mb=on_retry(segment_mem_mb),
            runtime=on_retry(60),
        shell:
            "dvp segment {input.image:q} --write-plan {output.plan:q} {params.extra:q} "
            "--options {params.options:q} 2> {log:q}"

    rule segment_tile:
        input:
            image=lambda wc: sample_field(wc.sample, "image"),
            plan=RESULTS.tile_plan("{sample}"),
        output:
            tile=temp(RESULTS.tile("{sample}", "{tile}")),
        wildcard_constraints:
            tile=r"\d+",
        params:
            options=options("segment"),
            extra=segment_args,
        log:
            "logs/segment/{sample}.tile{tile}.log",
        benchmark:
            "benchmarks/segment/{sample}.tile{tile}.tsv"
        threads: 1
        resources:
            mem_mb=on_retry(segment_mem_mb),
            runtime=on_retry(60),
        shell:
            "dvp segment {input.image:q} --plan {input.plan:q} --tile {wildcards.tile:q} "
            "--tile-out {output.tile:q} {params.extra:q} --options {params.options:q} 2> {log:q}"

    rule segment_gather:
        input:
            image=lambda wc: sample_field(wc.sample, "image"),
            plan=RESULTS.tile_plan("{sample}"),
            tiles=segment_tiles,
        output:
            labels=update(RESULTS.labels("{sample}")),
            nuclei=update(RESULTS.nuclei("{sample}")),
            cells=update(RESULTS.cells("{sample}")),
            qc=update(RESULTS.segment_qc("{sample}")),
        params:
            options=options("segment"),
            extra=segment_args,
        log:
            "logs/segment/{sample}.log",
        benchmark:
            "benchmarks/segment/{sample}.tsv"
        threads: SEGMENT_THREADS
        resources:
            mem_mb=on_retry(segment_workers_mem_mb),
            runtime=on_retry(120),
        shell:
            "dvp segment {input.image:q} --sample {wildcards.sample:q} --plan {input.plan:q} "
            "--gather {input.tiles:q} --labels {output.labels:q} --nuclei {output.nuclei:q} "
            "--cells {output.cells:q} --qc {output.qc:q} {params.extra:q} --workers {threads} "
            "--options {params.options:q} 2> {log:q}"
