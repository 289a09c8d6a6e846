/* sparse.c -- inference through a layer whose input is a ReLU output: skip the zero inputs.

   After a ReLU a large share of a hidden layer's activations are exactly zero (about half at
   He initialisation).  The dense product multiplies every one of them; here each sample's
   non-zero inputs are listed first (AVX-512 compress where available, else a branch-free
   scalar loop), then its output row (n_out <= 64 floats, held in up to eight 256-bit
   registers) accumulates h_j * W[j, :] over the listed j only.  Per non-zero input this costs
   what the dense register-blocked kernel pays per input, so it pays once a tile has more
   than FM_SPARSE_MIN_ZEROS zeros; below that the caller uses the dense product.

   Used by mlp_forward (inference) in float32.  NaN and inf inputs are not zero, so they
   propagate exactly as in the dense product; only the order of the additions differs (the
   products are exact zeros that are left out), within the float32 conformance tolerance. */
#include "internal.h"

#define FM_SPARSE_MAX_IN 1024      /* the index list lives on the stack */
#define FM_SPARSE_MIN_ZEROS 0.2    /* share of zero inputs in a tile */

#if FM_AVX2

/* idx[0 .. cnt) = the j with h[j] != 0 (NaN included), ascending; idx has n + 16 room. */
static int64_t fm_nonzero_index(const float *h, int64_t n, int32_t *idx)
{
    int64_t j = 0, cnt = 0;
#if defined(__AVX512F__)
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    for (; j + 16 <= n; j += 16) {
        /* not-equal, unordered: NaN counts as non-zero */
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(h + j), _mm512_setzero_ps(),
                                               _CMP_NEQ_UQ);
        /* register-form compress then a full store: the memory form is microcoded on
           some cores */
        _mm512_storeu_si512((void *)(idx + cnt), _mm512_maskz_compress_epi32(m, iota));
        cnt += __builtin_popcount((unsigned)m);
        iota = _mm512_add_epi32(iota, sixteen);
    }
#endif
    for (; j < n; j++) {
        idx[cnt] = (int32_t)j;
        cnt += !(h[j] == 0.0f);
    }
    return cnt;
}

/* One sample: z = b + sum over listed j of h_j W[j, :]; a = relu(z) if a (NaN stays NaN). */
FM_INLINE void fm_sparse_row(const int nv, const float *h, const int32_t *idx, int64_t cnt,
                             const float *W, int64_t n_out, const float *b, float *z, float *a)
{
    __m256 c[8];
    int v;
    int64_t k;
    for (v = 0; v < nv; v++) c[v] = _mm256_loadu_ps(b + 8 * v);
    for (k = 0; k < cnt; k++) {
        const int64_t j = idx[k];
        const __m256 hv = _mm256_broadcast_ss(h + j);
        const float *w = W + j * n_out;
        for (v = 0; v < nv; v++) c[v] = _mm256_fmadd_ps(hv, _mm256_loadu_ps(w + 8 * v), c[v]);
    }
    for (v = 0; v < nv; v++) {
        _mm256_storeu_ps(z + 8 * v, c[v]);
        if (a)
            _mm256_storeu_ps(a + 8 * v, _mm256_andnot_ps(
                _mm256_cmp_ps(c[v], _mm256_setzero_ps(), _CMP_LT_OQ), c[v]));
    }
}

#endif

int fm_dense_sparse_input_f32(int64_t ns, int64_t n_in, int64_t n_out, const float *a_in,
                              const float *W, const float *b, float *z, float *a_out)
{
#if FM_AVX2
    int32_t idx[FM_SPARSE_MAX_IN + 16];
    int64_t s, i, zeros = 0;
    if (n_out % 8 != 0 || n_out > 64 || n_in < 8 || n_in > FM_SPARSE_MAX_IN) return 0;
    for (i = 0; i < ns * n_in; i++) zeros += a_in[i] == 0.0f;
    if ((double)zeros < FM_SPARSE_MIN_ZEROS * (double)(ns * n_in)) return 0;
    for (s = 0; s < ns; s++) {
        const float *h = a_in + s * n_in;
        const int64_t cnt = fm_nonzero_index(h, n_in, idx);
        float *zr = z + s * n_out, *ar = a_out ? a_out + s * n_out : NULL;
        switch (n_out / 8) { /* a constant register count for each width */
        case 1: fm_sparse_row(1, h, idx, cnt, W, n_out, b, zr, ar); break;
        case 2: fm_sparse_row(2, h, idx, cnt, W, n_out, b, zr, ar); break;
        case 3: fm_sparse_row(3, h, idx, cnt, W, n_out, b, zr, ar); break;
        case 4: fm_sparse_row(4, h, idx, cnt, W, n_out, b, zr, ar); break;
        case 5: fm_sparse_row(5, h, idx, cnt, W, n_out, b, zr, ar); break;
        case 6: fm_sparse_row(6, h, idx, cnt, W, n_out, b, zr, ar); break;
        case 7: fm_sparse_row(7, h, idx, cnt, W, n_out, b, zr, ar); break;
        default: fm_sparse_row(8, h, idx, cnt, W, n_out, b, zr, ar); break;
        }
    }
    return 1;
#else
    (void)ns; (void)n_in; (void)n_out; (void)a_in; (void)W; (void)b; (void)z; (void)a_out;
    return 0;
#endif
}
