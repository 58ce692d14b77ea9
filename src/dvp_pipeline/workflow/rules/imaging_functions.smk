# Helper functions of the imaging rules (segment.smk, classify.smk); Snakemake's linter wants
# functions and rules in separate files.


# Worker processes of dvp segment (--workers {threads}): segment.workers, else the machine's cores up
# to 8, which Snakemake lowers to --cores when it has fewer. The cap matters on a cluster, where these
# threads become the job's CPU request and the submitting host may have many more cores than a node.
SEGMENT_THREADS = PROJECT.config["segment"]["workers"] or min(os.cpu_count() or 1, 8)


def segment_mem_mb(wildcards, input):
    """Bounded by the tile, not the slide: small images need little, whole slides about 2 GB."""
    return int(min(500 + 30 * input.size_mb, 2500))


def segment_workers_mem_mb(wildcards, input):
    """segment_mem_mb plus what each further worker process holds (a tile and its results: about
    0.55 GB for 2048-pixel tiles, bench/results/segment.md)."""
    return segment_mem_mb(wildcards, input) + int((SEGMENT_THREADS - 1) * min(30 * input.size_mb, 600))


def segment_tiles(wildcards):
    """The tile results of a sample, in plan order, once its plan exists."""
    plan = checkpoints.segment_plan.get(sample=wildcards.sample).output.plan
    with open(plan, encoding="utf-8") as handle:
        n = len(json.load(handle)["tiles"])
    return [RESULTS.tile(wildcards.sample, k) for k in range(n)]


def classifier_model(wildcards):
    if not SUPERVISED:
        return []
    return TRAINED_MODEL or RESULTS.classifier_model()
