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
