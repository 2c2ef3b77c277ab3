// Only the parts of GSL mpq uses: random numbers, histograms, CDFs, statistics.
// gsl_randist.h is left out too: it pulls in gsl_cblas.h through gsl_matrix.
// gsl_blas.h is deliberately absent: CBLAS is exposed through COpenBLAS alone, and libgsl's
// cblas symbols resolve against OpenBLAS (linked after gsl).
#include <gsl/gsl_rng.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_histogram.h>
#include <gsl/gsl_statistics_double.h>
#include <gsl/gsl_sort.h>
