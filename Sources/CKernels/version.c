#include "mpq_kernels.h"
int mpq_kernels_version(void) { return 1; }
