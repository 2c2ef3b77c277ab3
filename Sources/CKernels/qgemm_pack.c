// Packing of int8 weights into the layout documented in mpq_kernels.h.
#include "mpq_internal.h"
#include <string.h>

static int round_up(int v, int to) { return (v + to - 1) / to * to; }

size_t mpq_pack_b_s8_size(int n, int k) {
    if (n <= 0 || k <= 0) return 0;
    size_t np = (size_t)round_up(n, MPQ_PACK_N), kp = (size_t)round_up(k, MPQ_PACK_K);
    // colsum rounded to 64 bytes so the data starts on a cache line too.
    size_t colsum_bytes = (np * sizeof(int32_t) + 63) / 64 * 64;
    return sizeof(mpq_packed_b_header) + colsum_bytes + np * kp;
}

static size_t colsum_bytes(const mpq_packed_b_header *h) {
    return ((size_t)h->n_padded * sizeof(int32_t) + 63) / 64 * 64;
}

int8_t *mpq_packed_b_start(int n, int k, void *packed, int32_t **colsum) {
    mpq_packed_b_header *h = (mpq_packed_b_header *)packed;
    memset(h, 0, sizeof *h);
    h->magic = MPQ_PACKED_B_MAGIC;
    h->n = n;
    h->k = k;
    h->n_padded = round_up(n, MPQ_PACK_N);
    h->k_padded = round_up(k, MPQ_PACK_K);
    *colsum = (int32_t *)(h + 1);
    int8_t *data = (int8_t *)*colsum + colsum_bytes(h);
    memset(*colsum, 0, colsum_bytes(h));
    memset(data, 0, (size_t)h->n_padded * (size_t)h->k_padded);
    return data;
}

int mpq_pack_b_s8(const int8_t *b, int n, int k, int ldb, void *packed) {
    if (n <= 0 || k <= 0 || ldb < k || !b || !packed) return -1;
    int32_t *colsum;
    int8_t *data = mpq_packed_b_start(n, k, packed, &colsum);
    const int kp = ((const mpq_packed_b_header *)packed)->k_padded;
    for (int col = 0; col < n; col++) {
        const int8_t *row = b + (size_t)col * (size_t)ldb;
        int8_t *panel = data + (size_t)(col / MPQ_PACK_N) * (size_t)kp * MPQ_PACK_N;
        int32_t sum = 0;
        for (int kk = 0; kk < k; kk++) {
            panel[(size_t)(kk / 4) * 64 + (size_t)(col % 16) * 4 + (size_t)(kk % 4)] = row[kk];
            sum += row[kk];
        }
        colsum[col] = sum;
    }
    mpq_packed_b_note_pairs(packed);
    return 0;
}

void mpq_packed_b_note_pairs(void *packed) {
    mpq_packed_b_header *h = (mpq_packed_b_header *)packed;
    // Each column's 4 bytes of a group are adjacent, so byte pairs (2i, 2i + 1) of the data
    // are exactly the (k even, k + 1) pairs; padding is zero.
    const int8_t *d = (const int8_t *)(h + 1) + colsum_bytes(h);
    const size_t bytes = (size_t)h->n_padded * (size_t)h->k_padded;
    h->pairs_fit_i16 = 1;
    for (size_t i = 0; i < bytes; i += 2) {
        const int w0 = d[i], w1 = d[i + 1];
        if ((w0 < 0 ? -w0 : w0) + (w1 < 0 ? -w1 : w1) > 128) { h->pairs_fit_i16 = 0; return; }
    }
}

const int32_t *mpq_packed_b_colsum(const void *packed) {
    return (const int32_t *)((const mpq_packed_b_header *)packed + 1);
}

/// Resolves a packed buffer into the job fields it provides; -1 if it is not one.
int mpq_packed_b_view(const void *packed, int n, int k, const int8_t **data,
                      const int32_t **colsum, int *kp, int *pairs_fit_i16) {
    const mpq_packed_b_header *h = (const mpq_packed_b_header *)packed;
    if (!h || h->magic != MPQ_PACKED_B_MAGIC || h->n != n || h->k != k) return -1;
    *colsum = (const int32_t *)(h + 1);
    *data = (const int8_t *)*colsum + colsum_bytes(h);
    *kp = h->k_padded;
    *pairs_fit_i16 = h->pairs_fit_i16;
    return 0;
}
