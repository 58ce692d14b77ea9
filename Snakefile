# The workflow ships inside the package (so `dvp run` works from any folder); this file lets
# `snakemake --cores 2` or `snakemake --profile profiles/slurm` run it from a clone of the repository.
include: "src/dvp_pipeline/workflow/Snakefile"
