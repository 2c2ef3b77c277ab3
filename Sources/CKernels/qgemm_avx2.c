// AVX2 INT8 GEMM. vpmaddubsw (u8 x s8 -> s16 pairs) saturates, so it would not
// match the reference; instead both operands are widened to s16 and multiplied
// with vpmaddwd, whose s16 x s16 pair sums fit int32 exactly.
//
// Reads the same packed B as the VNNI path: a 64-byte group (16 columns x 4 k) is
// widened in 16-byte quarters (4 columns x 4 k -> 16 s16). A's 4 bytes are widened and
// broadcast as one 64-bit pattern, so each int32 lane holds half of a column's 4-k dot
// product; the halves are added (hadd) once, at the end. Micro-tile: MR = 2 rows x 16
// columns = 8 ymm accumulators + 4 B + 1 A (of 16).
//
// On Zen 3 the hot loop is bound by vpmaddwd alone (one per cycle: 16 MACs, ~60 GMAC/s a
// core at 1024^3): its other 14 vector ops per 8 vpmaddwd (the B and A widening, the adds)
// fit beside it. Widening B once per panel into a buffer, and A once per row block with
// 64-bit broadcast loads, took them out of the loop but did not speed up the 1024^3 GEMM
// and lost 5-15% on ResNet-18's K 2304-4608 convs (the widened panel is written, and read
// back from L2, per region), so B and A are widened in the loop.
//
// Where the time went outside the loop: rows are run in blocks whose A stays in L2 while
// every panel passes over it (A had streamed from L3 once per 16-column panel on large M),
// and the epilogue is vectorised: the per-column vectors (zero-point correction, bias_i32,
// a_scale * b_scale, bias) are built once per panel; row-major outputs store 8 columns
// per vector; channel-major outputs (the im2col Conv: out[col * ldo + row]) run 16-row
// blocks whose int32 results go to a small stack tile, transposed 8 x 8 in registers so
// each column's pixels are stored as one vector (they were stored element by element,
// strided by ldo). Every output is the same exact int32 sum and the same float operations
// in the same order as the reference (mpq_epilogue_scalar), so the bytes do not depend on
// the tiling.
//
// 7-bit weights: when every pair of consecutive k of B has |b0| + |b1| <= 128 (checked when B
// is packed: mpq_packed_b_header.pairs_fit_i16, true for weights in [-64, 64], what ONNX
// Runtime's reduce_range and mpq's --weight-bits 7 produce), a u8 x s8 pair sum is at most
// 255 * 128 = 32640 and `vpmaddubsw` cannot saturate: the tiles then multiply the packed
// bytes as they are (MLAS's AVX2 U8S8 loop: vpmaddubsw, vpmaddwd by ones, vpaddd), with A's
// 4 bytes broadcast by a load and no widening shuffles, 4 rows per tile. The sums are the
// same exact int32s, so the bytes are the reference's either way.
//
// Indirect jobs (j->ind, qgemm_conv_indirect.c): a Conv's A row is not built by an im2col; each
// tap's C bytes are read where they lie in a channels-last copy of the input. The tiles then run
// the same groups tap by tap, with each row's pointer moved to the tap, and B's groups in the
// same (kh, kw, c) order: the same int32 sums.
#include "mpq_internal.h"
#include <immintrin.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline)) AVX2_TARGET
#define MR 2
#define MR_UBS 4  // rows of a vpmaddubsw tile (8 accumulators + 2 B + A + ones of 16 ymm)
#define MR_MAX 4
#define A_BLOCK_BYTES (128 * 1024)  // A rows per L2 block (Zen 3: 512 KB L2)
#define BLOCK 16  // rows of one channel-major block (two 8 x 8 transposes per column half)

static inline AVX2_TARGET __m256i bcast_a4(const uint8_t *p, int avail) {
    int32_t v = 0;
    if (avail >= 4) memcpy(&v, p, 4);  // constant size: one load
    else memcpy(&v, p, (size_t)avail);
    // Broadcast-load the 4 bytes, then interleave with zero: per 128-bit lane
    // [a0 a1 a2 a3 a0 a1 a2 a3] as u16 in one shuffle (cheaper than pmovzx + broadcastq).
    return _mm256_unpacklo_epi8(_mm256_set1_epi32(v), _mm256_setzero_si256());
}

// Sums the two halves of each column: [c0 c0' c1 c1' c2 c2' c3 c3'] x2 -> c0..c7.
static inline AVX2_TARGET __m256i fold(__m256i lo4, __m256i hi4) {
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo4, hi4), _MM_SHUFFLE(3, 1, 2, 0));
}

// One group of 4 k for `mr` rows x 16 columns of the panel at `bp`.
INLINE void group(__m256i acc[MR][4], const int8_t *bp, const uint8_t *const *ar, int mr, int g, int avail) {
    __m256i b[4];
    _Pragma("unroll") for (int q = 0; q < 4; q++)
        b[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(bp + (size_t)g * 64 + q * 16)));
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        __m256i av = bcast_a4(ar[i] + (size_t)g * 4, avail);
        _Pragma("unroll") for (int q = 0; q < 4; q++)
            acc[i][q] = _mm256_add_epi32(acc[i][q], _mm256_madd_epi16(av, b[q]));
    }
}

// Where row m's A starts: its im2col row, or for an indirect job the window origin of its
// output pixel in the channels-last copy (tap 0's channels).
INLINE const uint8_t *a_row(const mpq_gemm_job *j, int m) {
    if (!j->ind) return j->a + (size_t)m * (size_t)j->lda;
    const mpq_gemm_indirect *d = j->ind;
    const int p = j->ind_p0 + m;
    return d->xh + (size_t)(p / d->ow) * d->row_step + (size_t)(p % d->ow) * d->col_step;
}

// Every k group of a tile, `GROUP(acc, b, rows, mr, g, avail)` each (group or group_ubs; ROWS
// their row capacity): for an im2col A the full groups in the hot loop, then one zero-filled tail
// group (B is zero there too), kept apart so the hot loop has no branch or memcpy call; for an
// indirect job tap by tap, C / 4 whole groups each (C % 4 == 0) with every row's pointer moved to
// the tap, B's groups in the same (kh, kw, c) order.
#define K_GROUPS(GROUP, ROWS, acc, j, bp, ar, mr)                                                  \
    do {                                                                                           \
        if ((j)->ind) {                                                                            \
            const mpq_gemm_indirect *d_ = (j)->ind;                                                \
            const int groups_ = d_->c / 4;                                                         \
            for (int t_ = 0; t_ < d_->taps; t_++) {                                                \
                const uint8_t *at_[ROWS];                                                          \
                _Pragma("unroll") for (int i_ = 0; i_ < (mr); i_++) at_[i_] = (ar)[i_] + d_->toff[t_]; \
                const int8_t *bt_ = (bp) + (size_t)t_ * (size_t)groups_ * 64;                      \
                for (int g_ = 0; g_ < groups_; g_++) GROUP(acc, bt_, at_, (mr), g_, 4);            \
            }                                                                                      \
        } else {                                                                                   \
            const int full_ = (j)->k / 4;                                                          \
            for (int g_ = 0; g_ < full_; g_++) GROUP(acc, (bp), (ar), (mr), g_, 4);                \
            if ((j)->k % 4) GROUP(acc, (bp), (ar), (mr), full_, (j)->k % 4);                       \
        }                                                                                          \
    } while (0)

// What the epilogue needs of one panel's 16 columns, built once per panel. Lanes past N
// hold zeros and are never stored.
typedef struct {
    int col, cols;         // first column, valid columns (1..16)
    __m256i add[2];        // bias_i32 - za * colsum: added to the raw sums
    __m256 scale[2], bias[2];
    float sc[16], bs[16];  // the same per column, for the channel-major (column-vector) form
} panel_ctx;

static AVX2_TARGET void panel_setup(const mpq_gemm_job *j, int p, panel_ctx *c) {
    const mpq_epilogue *ep = j->c ? NULL : j->ep;
    c->col = p * 16;
    c->cols = j->n - c->col < 16 ? j->n - c->col : 16;
    int32_t bi[16] = {0};
    memset(c->sc, 0, sizeof c->sc);
    memset(c->bs, 0, sizeof c->bs);
    for (int l = 0; l < c->cols; l++) {
        if (ep && ep->bias_i32) bi[l] = ep->bias_i32[c->col + l];
        // The product of the two floats, as mpq_epilogue_scalar rounds it.
        if (ep) c->sc[l] = ep->a_scale * ep->b_scale[c->col + l];
        if (ep && ep->bias) c->bs[l] = ep->bias[c->col + l];
    }
    const __m256i za = _mm256_set1_epi32(j->za);
    for (int h = 0; h < 2; h++) {
        // colsum holds n_padded entries: whole vectors are readable. Integer adds wrap,
        // so adding bias_i32 here is the reference's (acc - za * colsum) + bias_i32.
        __m256i corr = _mm256_mullo_epi32(za, _mm256_loadu_si256((const __m256i *)(j->colsum + c->col + 8 * h)));
        c->add[h] = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(bi + 8 * h)), corr);
        c->scale[h] = _mm256_loadu_ps(c->sc + 8 * h);
        c->bias[h] = _mm256_loadu_ps(c->bs + 8 * h);
    }
}

// The int32 results of `mr` rows from m0, 16 columns: r[i][0] columns 0-7, r[i][1] 8-15.
INLINE void tile(const mpq_gemm_job *j, const int8_t *bp, const panel_ctx *c, int m0, int mr, __m256i r[MR_MAX][2]) {
    __m256i acc[MR][4];
    const uint8_t *ar[MR];
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        ar[i] = a_row(j, m0 + i);
        _Pragma("unroll") for (int q = 0; q < 4; q++) acc[i][q] = _mm256_setzero_si256();
    }
    K_GROUPS(group, MR, acc, j, bp, ar, mr);
    _Pragma("unroll") for (int i = 0; i < mr; i++)
        _Pragma("unroll") for (int h = 0; h < 2; h++)
            r[i][h] = _mm256_add_epi32(fold(acc[i][2 * h], acc[i][2 * h + 1]), c->add[h]);
}

// The int32 results of `mr` (<= MR_UBS) rows from m0 through vpmaddubsw, for a B whose
// pairs fit int16 (b_pairs_fit_i16): r[i][0] columns 0-7, r[i][1] 8-15, as tile().
// One group of 4 k for `mr` rows x 16 columns through vpmaddubsw (B's pairs fit int16).
INLINE void group_ubs(__m256i acc[MR_UBS][2], const int8_t *bp, const uint8_t *const *ar, int mr, int g, int avail) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i b0 = _mm256_loadu_si256((const __m256i *)(bp + (size_t)g * 64));
    const __m256i b1 = _mm256_loadu_si256((const __m256i *)(bp + (size_t)g * 64 + 32));
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        int32_t v = 0;
        if (avail >= 4) memcpy(&v, ar[i] + (size_t)g * 4, 4);  // constant size: one broadcast load
        else memcpy(&v, ar[i] + (size_t)g * 4, (size_t)avail);  // B is zero past k
        const __m256i av = _mm256_set1_epi32(v);
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
    }
}

// The int32 results of `mr` (<= MR_UBS) rows from m0 through vpmaddubsw, for a B whose
// pairs fit int16 (b_pairs_fit_i16): r[i][0] columns 0-7, r[i][1] 8-15, as tile().
INLINE void tile_ubs(const mpq_gemm_job *j, const int8_t *bp, const panel_ctx *c, int m0, int mr, __m256i r[MR_MAX][2]) {
    __m256i acc[MR_UBS][2];
    const uint8_t *ar[MR_UBS];
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        ar[i] = a_row(j, m0 + i);
        acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    }
    K_GROUPS(group_ubs, MR_UBS, acc, j, bp, ar, mr);
    _Pragma("unroll") for (int i = 0; i < mr; i++)
        _Pragma("unroll") for (int h = 0; h < 2; h++) r[i][h] = _mm256_add_epi32(acc[i][h], c->add[h]);
}

// The rows one tile computes for this job, and the tile.
INLINE int tile_rows(const mpq_gemm_job *j) { return j->b_pairs_fit_i16 ? MR_UBS : MR; }
INLINE void any_tile(const mpq_gemm_job *j, const int8_t *bp, const panel_ctx *c, int m0, int mr, __m256i r[MR_MAX][2]) {
    if (j->b_pairs_fit_i16) {
        switch (mr) {  // constant row counts, so each tile_ubs unrolls fully
        case 4: tile_ubs(j, bp, c, m0, 4, r); break;
        case 3: tile_ubs(j, bp, c, m0, 3, r); break;
        case 2: tile_ubs(j, bp, c, m0, 2, r); break;
        default: tile_ubs(j, bp, c, m0, 1, r); break;
        }
    } else if (mr == MR) {
        tile(j, bp, c, m0, MR, r);
    } else {
        tile(j, bp, c, m0, 1, r);
    }
}

// What the stores read of a job, copied into a local once per panel: the codes stores are
// uint8_t, which may alias anything reached through a pointer, so clang reloaded the job's
// and the epilogue's fields (clamp bounds, flags, zero point, output pointers) after every
// store of 8 codes (and of int32 sums, which may alias the job's int fields). One thread,
// 7-bit weights, s32: u8 output 5-12% faster, int32 output 4-18% (benchmarks/README.md, s32).
typedef struct {
    int32_t *c;
    float *out;
    uint8_t *out_u8;
    size_t ldc, ldo;
    __m256 lo, hi, out_scale;
    __m256i zp;
    int bias, rounds;
} out_ctx;

INLINE void out_setup(const mpq_gemm_job *j, out_ctx *o) {
    const mpq_epilogue *ep = j->ep;
    o->c = j->c, o->out = j->out, o->out_u8 = j->out_u8;
    o->ldc = (size_t)j->ldc, o->ldo = (size_t)j->ldo;
    o->bias = ep && ep->bias;
    o->rounds = ep && ep->out_scale > 0;
    o->lo = _mm256_set1_ps(ep ? ep->clamp_lo : 0.0f);
    o->hi = _mm256_set1_ps(ep ? ep->clamp_hi : 0.0f);
    o->out_scale = _mm256_set1_ps(ep ? ep->out_scale : 0.0f);
    o->zp = _mm256_set1_epi32(j->out_zp);
}

// mpq_epilogue_scalar on 8 lanes, `s` = a_scale * b_scale and `b` = bias per lane.
INLINE __m256 epilogue(const out_ctx *o, __m256i v, __m256 s, __m256 b) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), s);
    if (o->bias) f = _mm256_add_ps(f, b);
    // max/min return the second operand unless the comparison holds: the reference's
    // (v > lo) ? v : lo and (v < hi) ? v : hi, NaN included.
    f = _mm256_min_ps(_mm256_max_ps(f, o->lo), o->hi);
    if (o->rounds)
        f = _mm256_add_ps(_mm256_mul_ps(_mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), o->out_scale),
                          _mm256_setzero_ps());
    return f;
}

// mpq_code_u8 on 8 lanes: (uint8_t)((int32_t)v + zp), the low byte (no saturation), in the
// low 8 bytes. cvttps gives 0x80000000 where the scalar cvttss2si does.
INLINE __m128i codes8(__m256 f, __m256i zp) {
    __m256i v = _mm256_and_si256(_mm256_add_epi32(_mm256_cvttps_epi32(f), zp), _mm256_set1_epi32(0xff));
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));  // exact: < 256
    return _mm_packus_epi16(w, w);
}

// Row-major outputs of the rows of one tile.
INLINE void store_rows(const out_ctx *o, const panel_ctx *c, int m0, int mr, __m256i r[MR_MAX][2]) {
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        const size_t row = (size_t)(m0 + i);
        for (int h = 0; h < 2; h++) {
            const int col = c->col + 8 * h, nc = c->cols - 8 * h >= 8 ? 8 : c->cols - 8 * h;
            if (nc <= 0) break;
            if (o->c) {
                int32_t *dst = o->c + row * o->ldc + col;
                if (nc == 8) {
                    _mm256_storeu_si256((__m256i *)dst, r[i][h]);
                } else {
                    int32_t tmp[8];
                    _mm256_storeu_si256((__m256i *)tmp, r[i][h]);
                    memcpy(dst, tmp, (size_t)nc * sizeof(int32_t));
                }
                continue;
            }
            __m256 f = epilogue(o, r[i][h], c->scale[h], c->bias[h]);
            if (o->out_u8) {
                uint8_t *dst = o->out_u8 + row * o->ldo + col;
                __m128i q = codes8(f, o->zp);
                if (nc == 8) {
                    _mm_storel_epi64((__m128i *)dst, q);
                } else {
                    uint8_t tmp[16];
                    _mm_storeu_si128((__m128i *)tmp, q);
                    memcpy(dst, tmp, (size_t)nc);
                }
                continue;
            }
            float *dst = o->out + row * o->ldo + col;
            if (nc == 8) {
                _mm256_storeu_ps(dst, f);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, f);
                memcpy(dst, tmp, (size_t)nc * sizeof(float));
            }
        }
    }
}

// 8 x 8 int32 transpose: t[c] lane r = x[r] lane c.
INLINE void transpose8(const __m256i x[8], __m256i t[8]) {
    __m256i a[8], b[8];
    for (int i = 0; i < 4; i++) {
        a[2 * i] = _mm256_unpacklo_epi32(x[2 * i], x[2 * i + 1]);
        a[2 * i + 1] = _mm256_unpackhi_epi32(x[2 * i], x[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        b[4 * i + 0] = _mm256_unpacklo_epi64(a[4 * i + 0], a[4 * i + 2]);
        b[4 * i + 1] = _mm256_unpackhi_epi64(a[4 * i + 0], a[4 * i + 2]);
        b[4 * i + 2] = _mm256_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm256_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm256_permute2x128_si256(b[i], b[4 + i], 0x20);
        t[4 + i] = _mm256_permute2x128_si256(b[i], b[4 + i], 0x31);
    }
}

// Channel-major outputs of a block of `rows` (<= BLOCK) rows from m0, whose int32 results
// are buf[row][col]: 8 x 8 transposes, then each column's pixels as one vector.
static AVX2_TARGET void store_block_cm(const out_ctx *o_in, const panel_ctx *c, int m0, int rows,
                                       const int32_t buf[BLOCK][16]) {
    const out_ctx ol = *o_in;  // locals, as out_ctx says
    const out_ctx *o = &ol;
    for (int h = 0; h < 2 && 8 * h < c->cols; h++) {
        const int nc = c->cols - 8 * h >= 8 ? 8 : c->cols - 8 * h;
        for (int r0 = 0; r0 < rows; r0 += 8) {
            const int nr = rows - r0 >= 8 ? 8 : rows - r0;
            __m256i x[8], t[8];
            for (int r = 0; r < 8; r++) x[r] = _mm256_load_si256((const __m256i *)&buf[r0 + r][8 * h]);
            transpose8(x, t);
            for (int l = 0; l < nc; l++) {
                const int col = c->col + 8 * h + l;
                __m256 f = epilogue(o, t[l], _mm256_set1_ps(c->sc[8 * h + l]), _mm256_set1_ps(c->bs[8 * h + l]));
                const size_t at = (size_t)col * o->ldo + (size_t)(m0 + r0);
                if (o->out_u8) {
                    __m128i q = codes8(f, o->zp);
                    if (nr == 8) {
                        _mm_storel_epi64((__m128i *)(o->out_u8 + at), q);
                    } else {
                        uint8_t tmp[16];
                        _mm_storeu_si128((__m128i *)tmp, q);
                        memcpy(o->out_u8 + at, tmp, (size_t)nr);
                    }
                } else if (nr == 8) {
                    _mm256_storeu_ps(o->out + at, f);
                } else {
                    float tmp[8];
                    _mm256_storeu_ps(tmp, f);
                    memcpy(o->out + at, tmp, (size_t)nr * sizeof(float));
                }
            }
        }
    }
}

static AVX2_TARGET void rows_rm(const mpq_gemm_job *j, const int8_t *bp, const panel_ctx *c, int m0, int m1) {
    out_ctx o;
    out_setup(j, &o);
    __m256i r[MR_MAX][2];
    const int step = tile_rows(j);
    int m = m0;
    for (; m + step <= m1; m += step) {
        any_tile(j, bp, c, m, step, r);
        store_rows(&o, c, m, step, r);
    }
    for (; m < m1; m++) {
        any_tile(j, bp, c, m, 1, r);
        store_rows(&o, c, m, 1, r);
    }
}

static AVX2_TARGET void rows_cm(const mpq_gemm_job *j, const int8_t *bp, const panel_ctx *c, int m0, int m1) {
    out_ctx o;
    out_setup(j, &o);
    _Alignas(32) int32_t buf[BLOCK][16];
    __m256i r[MR_MAX][2];
    const int step = tile_rows(j);
    for (int mb = m0; mb < m1; mb += BLOCK) {
        const int rows = m1 - mb < BLOCK ? m1 - mb : BLOCK;
        int i = 0;
        for (; i + step <= rows; i += step) {
            any_tile(j, bp, c, mb + i, step, r);
            for (int ii = 0; ii < step; ii++)
                for (int h = 0; h < 2; h++) _mm256_store_si256((__m256i *)&buf[i + ii][8 * h], r[ii][h]);
        }
        for (; i < rows; i++) {
            any_tile(j, bp, c, mb + i, 1, r);
            for (int h = 0; h < 2; h++) _mm256_store_si256((__m256i *)&buf[i][8 * h], r[0][h]);
        }
        // Rows past `rows` feed only lanes that are not stored; zero them so nothing
        // indeterminate is read.
        for (; i < (rows > 8 ? BLOCK : 8); i++) memset(buf[i], 0, sizeof buf[i]);
        store_block_cm(&o, c, mb, rows, (const int32_t(*)[16])buf);
    }
}

AVX2_TARGET void mpq_gemm_region_avx2(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    const int cm = j->out_channel_major && !j->c;
    // Row blocks of about A_BLOCK_BYTES of A, whole BLOCKs for the channel-major tiles.
    int rows = (int)(A_BLOCK_BYTES / ((size_t)j->lda > 0 ? (size_t)j->lda : 1)) / BLOCK * BLOCK;
    if (rows < BLOCK) rows = BLOCK;
    for (int mb = m0; mb < m1; mb += rows) {
        const int me = m1 - mb < rows ? m1 : mb + rows;
        for (int p = p0; p < p1; p++) {
            const int8_t *bp = j->bdata + (size_t)p * (size_t)j->kp * 16;
            panel_ctx c;
            panel_setup(j, p, &c);
            if (cm) rows_cm(j, bp, &c, mb, me);
            else rows_rm(j, bp, &c, mb, me);
        }
    }
}
