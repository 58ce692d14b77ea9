# Reference values for tests/test_stats.py: limma's duplicateCorrelation and lmFit(block=, correlation=).
# Made with: R 4.2.2, limma 3.54.1, statmod 1.5.0 (Debian 12 packages r-base-core, r-bioc-limma,
# r-cran-statmod), by running
#   Rscript make_block_reference.R        (in this folder)
# The DVP layout: 2 groups x 4 samples x 3 replicate runs (replicate pools of one sample and cell type),
# block = sample; the plate of each run is a covariate that varies within samples.
# Writes: block_y.tsv (log2, with NAs and edge-case rows), block_runs.tsv (run, group, sample, plate),
#   block_dc.tsv (atanh.correlations per feature for each design), block_consensus.tsv,
#   tt_block{,_plate,_trendrobust,_fixed,_complete}.tsv (topTable, sort.by = "none").
suppressMessages(library(limma))
options(digits = 17)
wt <- function(x, f) write.table(x, f, sep = "\t", quote = FALSE, na = "NA")

set.seed(7)
G <- 600; nsamp <- 8; nrep <- 3; n <- nsamp * nrep
runs <- data.frame(run = paste0("r", 1:n), group = rep(c("TEN", "MPR"), each = n / 2),
                   sample = rep(paste0("s", 1:nsamp), each = nrep), plate = rep(c("P1", "P2"), length.out = n))
sample_sd <- runif(G, 0, 0.8)                              # between-sample sd differs per protein
run_sd <- 0.3 * sqrt(4 / rchisq(G, 4))
effect <- matrix(rnorm(G * nsamp), G, nsamp) * sample_sd
y <- rnorm(G, 22, 2) + effect[, rep(1:nsamp, each = nrep)] + matrix(rnorm(G * n), G, n) * run_sd
y[1:40, 1:12] <- y[1:40, 1:12] + 1.2
y[41:45, ] <- y[41:45, ] + matrix(rnorm(5 * n, 0, 2), 5, n)                 # hypervariable
y[sample(G * n, round(0.06 * G * n))] <- NA
y[70, 1:12] <- NA                                          # one group entirely missing: not estimable
y[71, -c(1, 13, 16)] <- NA                                 # 3 values: no correlation estimate, 1 residual df
y[72, -seq(1, n, by = nrep)] <- NA                         # one run per sample: no correlation estimate
y[73, ] <- NA                                              # nothing observed
y[74, 4:6] <- NA                                           # one sample entirely missing
y[75, -c(1:3, 13:15)] <- NA                                # two samples only
y[76, ] <- 22 + effect[76, rep(1:nsamp, each = nrep)] * 20 + rnorm(n, 0, 0.01)  # correlation near 1
colnames(y) <- runs$run; rownames(y) <- paste0("g", 1:G)
wt(y, "block_y.tsv")
wt(runs, "block_runs.tsv")

grp <- factor(runs$group, levels = c("MPR", "TEN"))
design <- model.matrix(~0 + grp); colnames(design) <- levels(grp)
plate <- factor(runs$plate)
design_plate <- model.matrix(~0 + grp + plate); colnames(design_plate) <- c(levels(grp), "plateP2")
blk <- runs$sample
top <- function(y, design, cor, ...) {
  fit <- lmFit(y, design, block = blk, correlation = cor)
  topTable(eBayes(contrasts.fit(fit, makeContrasts(TEN - MPR, levels = design)), ...), number = Inf, sort.by = "none")
}
dc <- duplicateCorrelation(y, design, block = blk)
dc_plate <- duplicateCorrelation(y, design_plate, block = blk)
yc <- y[complete.cases(y), ]                               # no NAs: lmFit's one-fit-for-all path
dc_complete <- duplicateCorrelation(yc, design, block = blk)
wt(data.frame(atanh = dc$atanh.correlations, atanh_plate = dc_plate$atanh.correlations, row.names = rownames(y)),
   "block_dc.tsv")
wt(data.frame(design = c("block", "block_plate", "block_complete"),
              consensus = c(dc$consensus.correlation, dc_plate$consensus.correlation,
                            dc_complete$consensus.correlation)), "block_consensus.tsv")
wt(top(y, design, dc$consensus.correlation), "tt_block.tsv")
wt(top(y, design_plate, dc_plate$consensus.correlation), "tt_block_plate.tsv")
# limma stops when the trend covariate (AveExpr) is missing, so the row with nothing observed is left out here
wt(top(y[-73, ], design, dc$consensus.correlation, trend = TRUE, robust = TRUE), "tt_block_trendrobust.tsv")
wt(top(y, design, -0.2), "tt_block_fixed.tsv")             # a given (negative) correlation
wt(top(yc, design, dc_complete$consensus.correlation), "tt_block_complete.tsv")
