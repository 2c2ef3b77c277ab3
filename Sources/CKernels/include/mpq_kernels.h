#ifndef MPQ_KERNELS_H
#define MPQ_KERNELS_H
// C kernels for mpq. Every SIMD kernel has a scalar reference beside it.
#include <stdint.h>
#include <stddef.h>

/// Version tag, so Swift can check it links the expected kernels.
int mpq_kernels_version(void);

#endif
