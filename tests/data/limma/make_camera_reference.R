# Reference values for camera with covariates and cameraPR (tests/test_pathways.py), made with R's limma.
# Made with: R 4.2.2, limma 3.54.1 (Debian 12 r-base-core, r-bioc-limma):  Rscript make_camera_reference.R
# Inputs: cam_y.tsv and cam_sets.gmt (written by make_reference.R). Writes:
#   cam_batch_y.tsv    cam_y.tsv with a batch effect added to the b2 samples
#   cam_batch.tsv      camera(y, index, design = ~0 + group + batch, contrast TEN - MPR), inter.gene.cor 0.01 and NA
#   campr_t.tsv        the moderated t of that design (NA where a value is missing) and
#   campr.tsv          cameraPR(t without NA, index), inter.gene.cor 0.01 (the default) and 0.05
suppressMessages(library(limma))
options(digits = 17)
wt <- function(x, f, ...) write.table(x, f, sep = "\t", quote = FALSE, na = "NA", ...)

y <- as.matrix(read.delim("cam_y.tsv", check.names = FALSE))
lines <- strsplit(readLines("cam_sets.gmt"), "\t")
idx <- setNames(lapply(lines, function(l) l[-(1:2)]), sapply(lines, `[`, 1))
grp <- factor(rep(c("TEN", "MPR"), each = 4), levels = c("MPR", "TEN"))
batch <- factor(c("b1", "b2", "b1", "b2", "b2", "b1", "b2", "b1"))
set.seed(7)
y[, batch == "b2"] <- y[, batch == "b2"] + rnorm(nrow(y), 0, 1.5)  # a batch effect per gene
wt(y, "cam_batch_y.tsv")
design <- model.matrix(~0 + grp + batch); colnames(design) <- c("MPR", "TEN", "batchb2")
con <- makeContrasts(TEN - MPR, levels = design)
fixed <- camera(y, idx, design, contrast = con, sort = FALSE)
est <- camera(y, idx, design, contrast = con, inter.gene.cor = NA, sort = FALSE)
wt(rbind(cbind(cor = "0.01", set = rownames(fixed), fixed[, c("NGenes", "Direction", "PValue", "FDR")]),
         cbind(cor = "NA", set = rownames(est), est[, c("NGenes", "Direction", "PValue", "FDR")])),
   "cam_batch.tsv", row.names = FALSE)

ym <- y
set.seed(8)
ym[sample(length(ym), 300)] <- NA      # missing values: the moderated t is NA-aware, camera is not
fit <- eBayes(contrasts.fit(lmFit(ym, design), con))
t <- fit$t[, 1]
wt(data.frame(t = t, row.names = rownames(ym)), "campr_t.tsv")
t <- t[!is.na(t)]
pr <- lapply(c(0.01, 0.05), function(r) { x <- cameraPR(t, idx, inter.gene.cor = r, sort = FALSE)
  cbind(cor = r, set = rownames(x), x[, c("NGenes", "Direction", "PValue", "FDR")]) })
wt(do.call(rbind, pr), "campr.tsv", row.names = FALSE)
cat("limma", as.character(packageVersion("limma")), "\n")
