# MaxLFQ references for the real search-engine files in dia/ and dda/, made with the R package iq
# (Pham et al. 2020) from the files themselves: iq's own C++ reader (fast_read) reads and filters each
# report, iq's fast_MaxLFQ quantifies it. tests/test_real_files.py compares dvp_pipeline's reader +
# MaxLFQ with these values, so a reader that keeps or drops the wrong rows shows here.
#
# Made with iq 2.0.0 (source from github.com/tvpham/iq, commit 03bab81908858d2d6f21c158ae6adb454d450952,
# installed with R CMD INSTALL into a private library) on R 4.2.2 with Debian's r-cran-rcpp and
# r-cran-rcppeigen:
#   R_LIBS=/path/to/lib Rscript make_iq_references.R      (in this folder)
#
# What iq is told, per file, is what dvp_pipeline's defaults mean for that format:
#   - q-value filters at 0.01 (iq keeps q < 0.01; dvp keeps q <= 0.01: no row of these files sits at 0.01),
#   - the engine's own flags (MaxQuant Reverse / Potential contaminant "+"),
#   - the default decoy and contaminant patterns, applied to the protein group with grepl(perl = TRUE)
#     (fast_read has no pattern filter),
#   - an ion reported twice in one run: the larger value (quantify.duplicate_ions: max; iq alone
#     would keep the last row read),
#   - log2 of the intensities, no median normalisation and no intensity cut-off (fast_preprocess's
#     defaults would apply both).
# DIA-NN 1.7 has no Run column: the run is File.Name's file name without its last extension, as dvp
# names it. Not compared here: DIA-NN 2.x Parquet (no Parquet reader in this R), Spectronaut (one run),
# alphaDIA (protein-level intensities) and the wide tables (nothing to quantify).
library(iq)

decoy <- "(?:^|[;|])(?i:DECOY_|REV_|REVERSED_)"
contaminant <- "(?:^|[;|])(?i:CON_|CONT_|CONTAM_|CONTAMINANT_)"

quantify <- function(file, out, rename = identity, ...) {
    r <- fast_read(file, annotation_col = NULL, ...)
    q <- r$quant_table  # integer codes into r$protein, r$sample, r$ion
    d <- data.frame(protein = r$protein[q$protein_list], sample = rename(r$sample[q$sample_list]),
                    ion = r$ion[q$id], intensity = as.vector(q$quant), stringsAsFactors = FALSE)
    d <- d[is.finite(d$intensity) & d$intensity > 0 & d$protein != "", ]
    d <- d[!grepl(decoy, d$protein, perl = TRUE) & !grepl(contaminant, d$protein, perl = TRUE), ]
    d <- aggregate(intensity ~ protein + ion + sample, data = d, FUN = max)
    est <- fast_MaxLFQ(list(protein_list = d$protein, sample_list = d$sample, id = d$ion,
                            quant = log2(d$intensity)))$estimate
    long <- expand.grid(protein = rownames(est), sample = colnames(est), stringsAsFactors = FALSE)
    long$maxlfq <- est[cbind(long$protein, long$sample)]
    long <- long[!is.na(long$maxlfq), ]
    long <- long[order(long$protein, long$sample), ]
    write.table(format(long, digits = 15), out, sep = "\t", quote = FALSE, row.names = FALSE)
    cat(out, ":", length(unique(long$protein)), "proteins,", length(unique(long$sample)), "runs\n")
}

diann <- function(file, out, sample_id = "Run", ...) {
    quantify(file, out, sample_id = sample_id, primary_id = "Protein.Group", secondary_id = "Precursor.Id",
             intensity_col = "Precursor.Normalised", filter_string_equal = NULL,
             filter_double_less = c("Q.Value" = "0.01", "PG.Q.Value" = "0.01"), ...)
}
maxquant <- function(file, out) {
    quantify(file, out, sample_id = "Raw file", primary_id = "Leading razor protein",
             secondary_id = c("Modified sequence", "Charge"), intensity_col = "Intensity",
             filter_string_equal = NULL, filter_double_less = NULL,
             filter_string_not_equal = c("Reverse" = "+", "Potential contaminant" = "+"), na_string = "NaN")
}

dir.create("iq", showWarnings = FALSE)
unpacked <- tempfile(fileext = ".tsv")
con <- gzfile("dia/diann17_report.tsv.gz")
writeLines(readLines(con), unpacked)
close(con)
diann(unpacked, "iq/diann17_report.tsv", sample_id = "File.Name",
      rename = function(f) sub("\\.[^.]*$", "", basename(gsub("\\\\", "/", f))))
diann("dia/diann19beta_report.tsv", "iq/diann19beta_report.tsv")
diann("dia/fragpipe_diann_report.tsv", "iq/fragpipe_diann_report.tsv")
maxquant("dda/maxquant_2_5_1_evidence.txt", "iq/maxquant_2_5_1_evidence.tsv")
# iq's reader cannot read rows shorter than the header (older MaxQuant drops trailing empty fields):
# read.delim(fill = TRUE) pads them, and iq reads the padded copy.
padded <- tempfile(fileext = ".txt")
ragged <- read.delim("dda/maxquant_ragged_evidence.txt", check.names = FALSE, colClasses = "character",
                     fill = TRUE, quote = "", na.strings = NULL)
write.table(ragged, padded, sep = "\t", quote = FALSE, row.names = FALSE, na = "")
maxquant(padded, "iq/maxquant_ragged_evidence.tsv")
cat("iq", as.character(packageVersion("iq")), "\n")
