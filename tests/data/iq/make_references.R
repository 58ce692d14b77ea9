# Reference MaxLFQ values from the R package iq (Pham et al. 2020), for tests/test_quant.py.
#
# Made with iq 2.0.0 (source from github.com/tvpham/iq at v2.0.0, installed with R CMD INSTALL into a
# private library; CRAN's build is the same version) on R 4.2.2 with Rcpp and RcppEigen from Debian:
#   R_LIBS=/path/to/lib Rscript make_references.R
# Inputs: ../bruderer2015_spikeins_long.tsv (iq's own example data, Spectronaut fragment level) and
# synthetic_long.tsv (make_synthetic.py). Intensities are log2-transformed and passed to MaxLFQ with
# NO median normalisation and no intensity cut-off (iq's fast_preprocess would do both by default),
# so the values compare directly with dvp_pipeline.quant.maxlfq on linear intensities.
# Rows of the same protein, ion and sample are summed first (as dvp_pipeline.quant.maxlfq does).
# Both iq implementations are written: fast_MaxLFQ (C++) and maxLFQ (the reference R code).
library(iq)

run <- function(d, out) {
    d <- d[is.finite(d$intensity) & d$intensity > 0, ]
    d <- aggregate(intensity ~ protein + ion + sample, data = d, FUN = sum)
    fast <- fast_MaxLFQ(list(protein_list = d$protein, sample_list = d$sample,
                             id = d$ion, quant = log2(d$intensity)))$estimate
    samples <- sort(unique(d$sample))
    slow <- t(sapply(rownames(fast), function(p) {
        dp <- d[d$protein == p, ]
        X <- matrix(NA_real_, nrow = length(unique(dp$ion)), ncol = length(samples),
                    dimnames = list(unique(dp$ion), samples))
        X[cbind(dp$ion, dp$sample)] <- log2(dp$intensity)
        maxLFQ(X)$estimate
    }))
    colnames(slow) <- samples
    long <- expand.grid(protein = rownames(fast), sample = samples, stringsAsFactors = FALSE)
    long$fast_maxlfq <- fast[cbind(long$protein, long$sample)]
    long$maxlfq <- slow[cbind(long$protein, long$sample)]
    long <- long[order(long$protein, long$sample), ]
    write.table(format(long, digits = 15), out, sep = "\t", quote = FALSE, row.names = FALSE, na = "NA")
    cat(out, ": max |fast - R| =", max(abs(long$fast_maxlfq - long$maxlfq), na.rm = TRUE), "\n")
}

b <- read.delim("../bruderer2015_spikeins_long.tsv", stringsAsFactors = FALSE)
run(data.frame(protein = b$PG.ProteinGroups,
               ion = paste0(b$EG.ModifiedSequence, b$FG.Charge, b$F.FrgIon, b$F.Charge),
               sample = b$R.Condition, intensity = b$F.PeakArea),
    "bruderer2015_iq_maxlfq.tsv")
run(read.delim("synthetic_long.tsv", stringsAsFactors = FALSE), "synthetic_iq_maxlfq.tsv")
cat("iq", as.character(packageVersion("iq")), "\n")
