# Reference values for tests/test_stats.py and tests/test_pathways.py, made with R's limma.
# Made with: R 4.2.2, limma 3.54.1 (Debian 12 packages r-base-core, r-bioc-limma), by running
#   Rscript make_reference.R        (in this folder)
# Writes: y.tsv (log2 matrix with NAs), tt.tsv and tt_paired.tsv (topTable, sort.by="none"),
#         prior.tsv (s2.prior, df.prior), cam_y.tsv, cam_sets.gmt, cam_fixed.tsv, cam_est.tsv (camera).
suppressMessages(library(limma))
options(digits = 17)
wt <- function(x, f) write.table(x, f, sep = "\t", quote = FALSE, na = "NA")

set.seed(1)
G <- 500; n <- 8
y <- matrix(rnorm(G * n, 20, 1), G, n) + rnorm(G, 0, 2)
y[1:50, 1:4] <- y[1:50, 1:4] + 1.5
y[sample(G * n, 400)] <- NA
y[60, 1:4] <- NA                 # one group entirely missing: not estimable
y[61, c(1, 2, 3, 5, 6, 7)] <- NA # no residual df
colnames(y) <- paste0("s", 1:n); rownames(y) <- paste0("g", 1:G)
wt(y, "y.tsv")
grp <- factor(rep(c("TEN", "MPR"), each = 4), levels = c("MPR", "TEN"))
design <- model.matrix(~0 + grp); colnames(design) <- levels(grp)
fit <- eBayes(contrasts.fit(lmFit(y, design), makeContrasts(TEN - MPR, levels = design)))
wt(topTable(fit, number = Inf, sort.by = "none"), "tt.tsv")
pat <- factor(rep(c("p1", "p2", "p3", "p4"), 2))   # paired design: patient as a covariate
design2 <- model.matrix(~0 + grp + pat); colnames(design2) <- c("MPR", "TEN", "patp2", "patp3", "patp4")
fit2 <- eBayes(contrasts.fit(lmFit(y, design2), makeContrasts(TEN - MPR, levels = design2)))
wt(topTable(fit2, number = Inf, sort.by = "none"), "tt_paired.tsv")
wt(data.frame(design = c("unpaired", "paired"), s2.prior = c(fit$s2.prior, fit2$s2.prior),
              df.prior = c(fit$df.prior, fit2$df.prior)), "prior.tsv")

set.seed(2)
G <- 400
y <- matrix(rnorm(G * n, 20, 1), G, n) + rnorm(G, 0, 2)
y[1:30, 1:4] <- y[1:30, 1:4] + 1
y[31:60, ] <- y[31:60, ] + matrix(rnorm(n), 30, n, byrow = TRUE)   # a correlated set
rownames(y) <- paste0("g", 1:G); colnames(y) <- paste0("s", 1:n)
wt(y, "cam_y.tsv")
idx <- list(up = paste0("g", 1:30), correlated = paste0("g", 31:60), mixed = paste0("g", c(1:10, 100:140)),
            background = paste0("g", 200:260), single = "g5")
writeLines(sapply(names(idx), function(k) paste(c(k, "na", idx[[k]]), collapse = "\t")), "cam_sets.gmt")
con <- makeContrasts(TEN - MPR, levels = design)
wt(camera(y, idx, design, contrast = con, sort = FALSE), "cam_fixed.tsv")
wt(camera(y, idx, design, contrast = con, inter.gene.cor = NA, sort = FALSE), "cam_est.tsv")

# eBayes(trend=, robust=) (robust needs the statmod package: Debian r-cran-statmod 1.5.0).
# Writes: yt.tsv (intensity-dependent variances, hypervariable rows, missing values) and
#         tt_{trend,robust,trendrobust}{,_y}.tsv with topTable plus the per-feature s2.prior and df.prior.
set.seed(3)
G <- 600; n <- 8
a <- rnorm(G, 24, 3)
sdev <- 0.15 + 1.2 * exp(-(a - 18) / 3)
y <- matrix(rnorm(G * n, 0, 1), G, n) * sdev * sqrt(6 / rchisq(G, 6)) + a
y[1:40, 1:4] <- y[1:40, 1:4] + 1.2
y[41:55, ] <- y[41:55, ] + matrix(rnorm(15 * n, 0, 3), 15, n)   # hypervariable
pmiss <- plogis(-(a - 20))
for (i in 1:G) y[i, runif(n) < pmiss[i] * 0.6] <- NA
y[70, 1:4] <- NA
y[71, c(1, 2, 3, 5, 6, 7)] <- NA
colnames(y) <- paste0("s", 1:n); rownames(y) <- paste0("g", 1:G)
wt(y, "yt.tsv")
ebfit <- function(y, design, ...) eBayes(contrasts.fit(lmFit(y, design), makeContrasts(TEN - MPR, levels = design)), ...)
both <- function(fit) { tt <- topTable(fit, number = Inf, sort.by = "none")
  cbind(tt, s2.prior = rep_len(fit$s2.prior, nrow(tt)), df.prior = rep_len(fit$df.prior, nrow(tt))) }
for (data in c("y", "yt")) {
  yy <- as.matrix(read.delim(paste0(data, ".tsv"), check.names = FALSE))
  sfx <- if (data == "y") "_y" else ""
  wt(both(ebfit(yy, design, trend = TRUE)), paste0("tt_trend", sfx, ".tsv"))
  wt(both(ebfit(yy, design, robust = TRUE)), paste0("tt_robust", sfx, ".tsv"))
  wt(both(ebfit(yy, design, trend = TRUE, robust = TRUE)), paste0("tt_trendrobust", sfx, ".tsv"))
}

# normalizeQuantiles with missing values and ties: qn_in.tsv -> qn_out.tsv
set.seed(5)
x <- matrix(rnorm(60), 20, 3); x[c(1, 5, 9), 1] <- NA; x[2, 2] <- NA; x[3, 3] <- x[4, 3]
wt(x, "qn_in.tsv"); wt(normalizeQuantiles(x), "qn_out.tsv")

# Interaction contrast (cell type x condition), 4 groups of 3 with missing values: yi.tsv -> tt_interaction.tsv
set.seed(6)
G <- 300
y <- matrix(rnorm(G * 12, 22, 0.7), G, 12) + rnorm(G, 0, 2)
y[1:30, 1:3] <- y[1:30, 1:3] + 1.5
y[sample(G * 12, 300)] <- NA
colnames(y) <- paste0("r", 1:12); rownames(y) <- paste0("g", 1:G)
wt(y, "yi.tsv")
grp4 <- factor(rep(c("A.t", "A.c", "B.t", "B.c"), each = 3), levels = c("A.c", "A.t", "B.c", "B.t"))
d4 <- model.matrix(~0 + grp4); colnames(d4) <- levels(grp4)
fit4 <- eBayes(contrasts.fit(lmFit(y, d4), makeContrasts((A.t - A.c) - (B.t - B.c), levels = d4)))
wt(topTable(fit4, number = Inf, sort.by = "none"), "tt_interaction.tsv")

# R's lowess (used by eBayes(trend = TRUE, robust = TRUE)) with ties and an outlier: lowess.tsv
x <- round(((1:60)^1.3) %% 17, 1); y <- sin(x) + (1:60 %% 7) / 3; y[5] <- 10
o <- order(x)
wt(data.frame(x = x[o], y = y[o], fit = lowess(x, y, f = 0.4, iter = 3)$y), "lowess.tsv")
