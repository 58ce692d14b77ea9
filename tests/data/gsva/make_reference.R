# Reference values for tests/test_gsva.py, made with R's GSVA.
# Made with: R 4.2.2, GSVA 1.46.0 (Bioconductor 3.16), by running
#   Rscript make_reference.R        (in this folder)
# Writes: expr.tsv, counts.tsv, wide.tsv, small.tsv (inputs), sets.tsv (set, gene; long, in set order) and
# one scores table (sets x samples) per case, named after the case: see README.md.
suppressPackageStartupMessages(library(GSVA))
stopifnot(packageVersion("GSVA") == "1.46.0")
options(digits = 17)
wt <- function(x, f) write.table(x, f, sep = "\t", quote = FALSE, na = "NA", col.names = NA)
# Inputs are written, then read back, and GSVA runs on what was read: Python parses the same text,
# so both sides start from the same doubles.
roundtrip <- function(x, f) {
  wt(x, f)
  as.matrix(read.delim(f, row.names = 1, check.names = FALSE))
}

# 300 genes x 12 samples: gene-specific level and spread, with planted up/down blocks so that
# the sets' scores spread over the whole range.
set.seed(46)
G <- 300; n <- 12
genes <- sprintf("g%03d", 1:G)
expr <- matrix(rnorm(G * n, 0, 1), G, n) * runif(G, 0.3, 2) + rnorm(G, 20, 2)
expr[1:25, 1:6] <- expr[1:25, 1:6] + 1.5          # set "up_small" and part of "mixed" up in s1-s6
expr[26:60, 7:12] <- expr[26:60, 7:12] - 1        # "down" lower in s7-s12
expr[61:63, ] <- expr[61:63, ] + rep(c(0, 3), each = 3 * n / 2)  # a tiny set up in s7-s12
expr[300, ] <- 21                                 # constant gene: GSVA drops it before mapping
expr <- round(expr, 6)
dimnames(expr) <- list(genes, sprintf("s%02d", 1:n))

sets <- list(
  up_small  = genes[1:10],
  mixed     = c(genes[11:25], genes[26:40], "absent1", "absent2"),   # members not in the data are ignored
  down      = genes[26:60],
  tiny      = genes[61:63],
  single    = genes[64],                                             # size 1: kept only with min.sz = 1
  random40  = genes[sample(70:299, 40)],
  big       = genes[c(1:30, 100:219)],                               # 150 members
  with_const = c(genes[120:125], genes[300]),                        # the constant gene does not count
  duplicated = c(genes[5:12], genes[5]),                             # a member listed twice counts twice
  nowhere   = c("absent3", "absent4")                                # no member in the data: dropped
)
expr <- roundtrip(expr, "expr.tsv")
long <- data.frame(set = rep(names(sets), lengths(sets)), gene = unlist(sets, use.names = FALSE))
write.table(long, "sets.tsv", sep = "\t", quote = FALSE, row.names = FALSE)

run <- function(x, ..., file) {
  es <- suppressWarnings(gsva(x, sets, method = "gsva", verbose = FALSE, ...))
  wt(es, file)
}
run(expr, kcdf = "Gaussian", mx.diff = TRUE, file = "gaussian_mxdiff.tsv")
run(expr, kcdf = "Gaussian", mx.diff = FALSE, file = "gaussian_maxdev.tsv")
run(expr, kcdf = "Gaussian", mx.diff = TRUE, min.sz = 5, max.sz = 100, file = "gaussian_size5to100.tsv")
run(expr, kcdf = "Gaussian", mx.diff = TRUE, abs.ranking = TRUE, tau = 0.5, file = "gaussian_absrank_tau05.tsv")
run(expr, kcdf = "Gaussian", mx.diff = FALSE, tau = 2, min.sz = 2, file = "gaussian_maxdev_tau2.tsv")

# Counts for kcdf = "Poisson" (GSVA's rnaseq = TRUE), same sets.
set.seed(47)
counts <- matrix(rpois(G * n, rep(rgamma(G, 2, 0.05), n)), G, n)
counts[1:25, 1:6] <- counts[1:25, 1:6] * 2
counts[26:60, 7:12] <- counts[26:60, 7:12] %/% 2
counts[300, ] <- 5
dimnames(counts) <- dimnames(expr)
counts <- roundtrip(counts, "counts.tsv")
run(counts, kcdf = "Poisson", mx.diff = TRUE, file = "poisson_mxdiff.tsv")
run(counts, kcdf = "Poisson", mx.diff = FALSE, file = "poisson_maxdev.tsv")

# Many samples: GSVA 1.46 has no sample-count threshold for its tabulated normal CDF (the C code
# always uses it for kcdf = "Gaussian"), so this only checks that nothing changes with n.
set.seed(48)
nw <- 120
wide <- matrix(rnorm(G * nw, 0, 1), G, nw) * runif(G, 0.3, 2) + rnorm(G, 20, 2)
wide[1:25, 1:60] <- wide[1:25, 1:60] + 1
wide[300, ] <- 21
wide <- round(wide, 4)
dimnames(wide) <- list(genes, sprintf("w%03d", 1:nw))
wide <- roundtrip(wide, "wide.tsv")
run(wide, kcdf = "Gaussian", mx.diff = TRUE, file = "wide_gaussian_mxdiff.tsv")

# Edge cases of the walk: an even number of genes gives the middle rank weight 0, so a one-member
# set that lands there has a 0/0 step in ks_test.c; and a set of all genes never steps down.
set.seed(49)
small <- matrix(rnorm(20 * 8), 20, 8, dimnames = list(sprintf("h%02d", 1:20), sprintf("s%d", 1:8)))
small <- roundtrip(round(small, 6), "small.tsv")
sets <- c(setNames(as.list(rownames(small)), rownames(small)), list(all = rownames(small)))
run(small, kcdf = "Gaussian", mx.diff = TRUE, file = "small_singles_mxdiff.tsv")
run(small, kcdf = "Gaussian", mx.diff = FALSE, file = "small_singles_maxdev.tsv")
