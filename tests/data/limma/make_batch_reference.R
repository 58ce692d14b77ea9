# Reference values for removeBatchEffect (tests/test_stats.py), made with R's limma.
# Made with: R 4.2.2, limma 3.54.1 (Debian 12 r-base-core, r-bioc-limma):  Rscript make_batch_reference.R
# Input: y.tsv (make_reference.R; log2 with missing values). Writes rbe_batch.tsv (batch only, group
# design kept) and rbe_batch2.tsv (batch and a second factor, group design kept).
suppressMessages(library(limma))
options(digits = 17)
y <- as.matrix(read.delim("y.tsv", check.names = FALSE))
grp <- factor(rep(c("TEN", "MPR"), each = 4), levels = c("MPR", "TEN"))
batch <- factor(c("b1", "b2", "b3", "b1", "b2", "b3", "b1", "b2"))
site <- factor(c("x", "x", "y", "y", "x", "y", "x", "y"))
design <- model.matrix(~0 + grp)
write.table(removeBatchEffect(y, batch = batch, design = design), "rbe_batch.tsv", sep = "\t", quote = FALSE, na = "NA")
write.table(removeBatchEffect(y, batch = batch, batch2 = site, design = design), "rbe_batch2.tsv", sep = "\t",
            quote = FALSE, na = "NA")
cat("limma", as.character(packageVersion("limma")), "\n")
