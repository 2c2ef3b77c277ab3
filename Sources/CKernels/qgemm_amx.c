// AMX INT8 GEMM (docs/int8-amx.md): TDPBUSD on 16 x 64-byte tiles, beside the VNNI kernel.
//
// TDPBUSD is vpdpbusd on a whole tile: C[16][16] int32 += A[16][64] u8 x B[16 groups][16][4]
// s8, exact (no intermediate saturation), so its int32 sums equal the VNNI kernel's and the
// reference's. B needs no packing of its own: a 16-column panel of the VNNI layout
// (mpq_kernels.h) is [K/4][16][4] bytes, which is exactly the B-tile layout, so K chunk c
// of panel p is the 1 KB tile at panel + c * 1024 (row stride 64); one packed buffer serves
// both kernels.
//
// Block: 32 rows x 32 columns = 4 accumulator tiles (tmm0-3) fed by 2 A tiles (tmm4-5) and
// 2 B tiles (tmm6-7). Each 32-row block of A is first copied into tile order
// ([chunk][32 rows][64 bytes], zero past K): one sequential stream the prefetchers follow,
// where 32 rows lda apart were 32 streams (1.3 TOPS instead of 0.75 at 1024^3). The sums are
// stored to a 4 KB buffer that the VNNI file's epilogue (mpq_gemm_store_sums_vnni) turns into
// int32, floats or codes: the same arithmetic and stores, so the bytes match the VNNI path's.
// Loops: groups of B panels of about GROUP_BYTES (they stay in the core's L2 while the
// region's rows of A stream past), 32-row blocks, K ranges of KC_CHUNKS chunks when K is long
// (the block of A's range then stays in L1 across the group's panels; the sums go through the
// buffer between ranges), 2-panel blocks.
// Tails: the K % 64 bytes run as one more chunk against zero-padded copies of the panels'
// last groups (a tile load past K could leave the buffer); the last M % 16 rows of a region,
// and regions too small to repay the tile setup, run on the VNNI tiles.
//
// The OS must grant the tile data state (Linux: arch_prctl ARCH_REQ_XCOMP_PERM, once per
// process); the tile configuration is per thread, so every region call loads it and
// releases the tiles at the end (a pool worker keeps no tile state between calls).
#include "mpq_internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw")))
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define GROUP_BYTES (768 * 1024)
#define KC_CHUNKS 8
#define MIN_MACS (1 << 18)

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int amx_granted;
static pthread_key_t scratch_key;  // frees a thread's scratch when the thread exits

// CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8; the VNNI path (epilogue and the
// M tail) must be there too. Then the kernel must let this process use the tile data.
static void probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    if (!(d & (1u << 24)) || !(d & (1u << 25))) return;
    if (!mpq_kernel_path_available(MPQ_PATH_VNNI)) return;
    if (pthread_key_create(&scratch_key, free)) return;
    amx_granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int mpq_qgemm_amx_available(void) {
    pthread_once(&probe_once, probe);
    return amx_granted;
}

// Palette 1, all 8 tiles 16 rows x 64 bytes.
typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) tile_config;

static AMX_TARGET void load_config(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

// One block: mt (1-2) x 16 rows of packed A (`ap`: [chunk][16 * mt rows][64 bytes]) times nt
// (1-2) panels `b0`, `b1`, K chunks [c0, c1): chunk `chunks` (if below c1) is the K tail, run
// against the zero-padded tail copies `btail0`, `btail1`. The sums start at zero (`first`) or
// at what an earlier K range stored at sums[r][q * 16] (32 int32 a row), and are stored there.
static inline __attribute__((always_inline)) AMX_TARGET void
block(int mt, int nt, const uint8_t *ap, const int8_t *b0, const int8_t *b1, int c0, int c1, int chunks,
      const int8_t *btail0, const int8_t *btail1, int first, int32_t *sums) {
    const size_t astep = (size_t)mt * 1024;
    if (first) {
        _tile_zero(0);
        if (nt > 1) _tile_zero(1);
        if (mt > 1) _tile_zero(2);
        if (mt > 1 && nt > 1) _tile_zero(3);
    } else {
        _tile_loadd(0, sums, 128);
        if (nt > 1) _tile_loadd(1, sums + 16, 128);
        if (mt > 1) _tile_loadd(2, sums + 16 * 32, 128);
        if (mt > 1 && nt > 1) _tile_loadd(3, sums + 16 * 32 + 16, 128);
    }
    for (int c = c0; c < c1; c++) {
        const int8_t *p0 = b0 + (size_t)c * 1024, *p1 = b1 + (size_t)c * 1024;
        if (c == chunks) {
            p0 = btail0;
            p1 = btail1;
        }
        const uint8_t *a = ap + (size_t)c * astep;
        _tile_loadd(4, a, 64);
        _tile_loadd(6, p0, 64);
        _tile_dpbusd(0, 4, 6);
        if (nt > 1) {
            _tile_loadd(7, p1, 64);
            _tile_dpbusd(1, 4, 7);
        }
        if (mt > 1) {
            _tile_loadd(5, a + 1024, 64);
            _tile_dpbusd(2, 5, 6);
            if (nt > 1) _tile_dpbusd(3, 5, 7);
        }
    }
    _tile_stored(0, sums, 128);
    if (nt > 1) _tile_stored(1, sums + 16, 128);
    if (mt > 1) _tile_stored(2, sums + 16 * 32, 128);
    if (mt > 1 && nt > 1) _tile_stored(3, sums + 16 * 32 + 16, 128);
}

#define BLOCK_FN(M, N)                                                                                         \
    static AMX_TARGET void block_##M##x##N(const uint8_t *ap, const int8_t *b0, const int8_t *b1, int c0, int c1, \
                                           int chunks, const int8_t *bt0, const int8_t *bt1, int first,         \
                                           int32_t *sums) {                                                    \
        block(M, N, ap, b0, b1, c0, c1, chunks, bt0, bt1, first, sums);                                         \
    }
BLOCK_FN(1, 1) BLOCK_FN(1, 2) BLOCK_FN(2, 1) BLOCK_FN(2, 2)
typedef void (*block_fn)(const uint8_t *, const int8_t *, const int8_t *, int, int, int, const int8_t *,
                         const int8_t *, int, int32_t *);
static const block_fn blocks[2][2] = {{block_1x1, block_1x2}, {block_2x1, block_2x2}};

// Rows of A copied into tile order, [chunk][rows][64 bytes], zero past K (masked loads read
// no byte past a row's K): one sequential stream per block instead of 32 strided rows, which
// the hardware prefetchers follow, and whole tiles for the K tail.
static AMX_TARGET void pack_a(const uint8_t *a, size_t lda, int rows, int k, uint8_t *ap) {
    const int chunks = (k + 63) / 64;
    for (int r = 0; r < rows; r++) {
        const uint8_t *src = a + (size_t)r * lda;
        uint8_t *dst = ap + (size_t)r * 64;
        for (int c = 0; c < chunks; c++) {
            const int left = k - c * 64;
            const __mmask64 mask = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
            _mm512_store_si512((void *)(dst + (size_t)c * (size_t)rows * 64), _mm512_maskz_loadu_epi8(mask, src + (size_t)c * 64));
        }
    }
}

// Per-thread scratch: the packed A block (32 rows x K rounded up to 64), the tail copies of a
// group's panels (1 KB each) and the 32 x 32 sums of each block of the group (4 KB each).
static _Thread_local uint8_t *scratch;
static _Thread_local size_t scratch_cap;

static AMX_TARGET void region(const mpq_gemm_job *j, int m0, int m1, int p0, int p1, double min_macs) {
    const int full_m = (double)(m1 - m0) * (double)(p1 - p0) * 16.0 * (double)j->k < min_macs
                           ? m0 : m0 + (m1 - m0) / 16 * 16;
    const int chunks = j->k / 64, tail = j->k - chunks * 64, total = chunks + (tail > 0);
    // Panels of a group: B bytes within GROUP_BYTES, even (the 2-panel blocks), at least 2.
    int group = GROUP_BYTES / (j->kp * 16);
    group = group < 2 ? 2 : group / 2 * 2;
    // K ranges of KC_CHUNKS chunks: the block of A's range stays in L1 across the group's
    // panels (a whole 2048-byte row block, 64 KB, would not); a short K is one range.
    const int kc = total > 2 * KC_CHUNKS ? KC_CHUNKS : total;
    const int sum_blocks = kc < total ? group / 2 : 1;
    const size_t a_bytes = (size_t)32 * (size_t)total * 64, bt_bytes = (size_t)group * 1024;
    const size_t need = a_bytes + bt_bytes + (size_t)sum_blocks * 4096;
    if (full_m > m0 && scratch_cap < need) {
        uint8_t *nb = (uint8_t *)aligned_alloc(64, (need + 63) / 64 * 64);
        if (!nb || pthread_setspecific(scratch_key, nb)) {  // no scratch: the VNNI tiles give the same bytes
            free(nb);
            mpq_gemm_region_vnni(j, m0, m1, p0, p1);
            return;
        }
        free(scratch);
        scratch = nb;
        scratch_cap = need;
    }
    if (full_m > m0) {
        uint8_t *ap = scratch;
        int8_t *btail = (int8_t *)(scratch + a_bytes);
        int32_t *sums = (int32_t *)(scratch + a_bytes + bt_bytes);
        load_config();
        for (int g0 = p0; g0 < p1; g0 += group) {
            const int g1 = g0 + group < p1 ? g0 + group : p1;
            if (tail) {
                // The panels' groups from K chunk `chunks` on (tail bytes rounded up to 4; the
                // packing zeroed K..kp), zero after: a tile load there could leave the buffer.
                const size_t bytes = (size_t)(j->kp - chunks * 64) * 16;
                for (int p = g0; p < g1; p++) {
                    int8_t *dst = btail + (size_t)(p - g0) * 1024;
                    memcpy(dst, j->bdata + (size_t)p * (size_t)j->kp * 16 + (size_t)chunks * 1024, bytes);
                    memset(dst + bytes, 0, 1024 - bytes);
                }
            }
            for (int m = m0; m < full_m; m += 32) {
                const int mt = full_m - m >= 32 ? 2 : 1;
                pack_a(j->a + (size_t)m * (size_t)j->lda, (size_t)j->lda, 16 * mt, j->k, ap);
                for (int c0 = 0; c0 < total; c0 += kc) {
                    const int c1 = c0 + kc < total ? c0 + kc : total;
                    for (int p = g0; p < g1; p += 2) {
                        const int nt = g1 - p >= 2 ? 2 : 1;
                        const int8_t *b0 = j->bdata + (size_t)p * (size_t)j->kp * 16;
                        const int8_t *bt0 = btail + (size_t)(p - g0) * 1024;
                        int32_t *s = sums + (sum_blocks > 1 ? (size_t)(p - g0) / 2 * 1024 : 0);
                        blocks[mt - 1][nt - 1](ap, b0, b0 + (size_t)j->kp * 16, c0, c1, chunks, bt0, bt0 + 1024,
                                               c0 == 0, s);
                        if (c1 == total) mpq_gemm_store_sums_vnni(j, m, 16 * mt, p, nt, s, 32);
                    }
                }
            }
        }
        _tile_release();
    }
    if (full_m < m1) mpq_gemm_region_vnni(j, full_m, m1, p0, p1);
}

// A small region does not repay the tile configuration, the packing of A and the release
// (a 16^3 product ran 3x slower than on the VNNI tiles, 64^3 about even): VNNI tiles there.
void mpq_gemm_region_amx(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    region(j, m0, m1, p0, p1, (double)MIN_MACS);
}

void mpq_gemm_region_amx_always(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    region(j, m0, m1, p0, p1, 0.0);
}

#else

int mpq_qgemm_amx_available(void) { return 0; }

void mpq_gemm_region_amx(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    mpq_gemm_region_vnni(j, m0, m1, p0, p1);
}

void mpq_gemm_region_amx_always(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    mpq_gemm_region_vnni(j, m0, m1, p0, p1);
}

#endif
