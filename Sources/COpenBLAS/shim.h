// CBLAS comes from OpenBLAS only; GSL's gsl_cblas.h is never imported into Swift
// (the two declare the same symbols with different types).
#include <cblas.h>
