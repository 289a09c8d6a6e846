/* sparse.c -- inference through a layer whose input is a ReLU output: skip the zero inputs.

   After a ReLU a large share of a hidden layer's activations are exactly zero (about half at
   He initialisation).  The dense product multiplies every one of them; here each sample's
   non-zero inputs are listed first (AVX-512 compress where available, else AVX2 movemask
   and a table of positions), then its output row (n_out <= 64 floats, held in up to eight 256-bit
   registers) accumulates h_j * W[j, :] over the listed j only.  Per non-zero input this costs
   what the dense register-blocked kernel pays per input, so it pays once a tile has more
   than FM_SPARSE_MIN_ZEROS zeros (judged on its first 16 rows); below that the caller uses
   the dense product.

   When such a layer (with its ReLU) feeds a last layer of one linear output, the common
   classifier and regressor ending, fm_dense_sparse_input_dot_f32 also takes that output in
   the same pass: the hidden row stays in registers, and neither it nor the output layer's
   separate pass over the tile is needed (5-64-64-1 inference 13 % faster on one thread of a
   Zen 3 VM, 16 % on two: best of 25 calls on 2M rows, alternating builds).

   Used by mlp_forward (inference) in float32.  NaN and inf inputs are not zero, so they
   propagate exactly as in the dense product; only the order of the additions differs (the
   products are exact zeros that are left out), within the float32 conformance tolerance. */
#include "internal.h"

#define FM_SPARSE_MAX_IN 1024      /* the index list lives on the stack */
#define FM_SPARSE_MIN_ZEROS 0.2    /* share of zero inputs in a tile's first rows */

#if FM_AVX2

#if !defined(__AVX512F__)
/* AVX2 has no compress.  For each 8-bit mask of non-zero lanes, the positions of its set
   bits in ascending order, one byte each (unused bytes 0): byte k of fm_pack_lut[m] is the
   k-th set bit of m.  On an AMD EPYC Zen 3 VM (AVX2 only) the scalar loop below listed a
   64-wide row at about a cycle per input, a third of the cost of the product it saves. */
static const uint64_t fm_pack_lut[256] = {
    0x0000000000000000ULL, 0x0000000000000000ULL, 0x0000000000000001ULL,
    0x0000000000000100ULL, 0x0000000000000002ULL, 0x0000000000000200ULL,
    0x0000000000000201ULL, 0x0000000000020100ULL, 0x0000000000000003ULL,
    0x0000000000000300ULL, 0x0000000000000301ULL, 0x0000000000030100ULL,
    0x0000000000000302ULL, 0x0000000000030200ULL, 0x0000000000030201ULL,
    0x0000000003020100ULL, 0x0000000000000004ULL, 0x0000000000000400ULL,
    0x0000000000000401ULL, 0x0000000000040100ULL, 0x0000000000000402ULL,
    0x0000000000040200ULL, 0x0000000000040201ULL, 0x0000000004020100ULL,
    0x0000000000000403ULL, 0x0000000000040300ULL, 0x0000000000040301ULL,
    0x0000000004030100ULL, 0x0000000000040302ULL, 0x0000000004030200ULL,
    0x0000000004030201ULL, 0x0000000403020100ULL, 0x0000000000000005ULL,
    0x0000000000000500ULL, 0x0000000000000501ULL, 0x0000000000050100ULL,
    0x0000000000000502ULL, 0x0000000000050200ULL, 0x0000000000050201ULL,
    0x0000000005020100ULL, 0x0000000000000503ULL, 0x0000000000050300ULL,
    0x0000000000050301ULL, 0x0000000005030100ULL, 0x0000000000050302ULL,
    0x0000000005030200ULL, 0x0000000005030201ULL, 0x0000000503020100ULL,
    0x0000000000000504ULL, 0x0000000000050400ULL, 0x0000000000050401ULL,
    0x0000000005040100ULL, 0x0000000000050402ULL, 0x0000000005040200ULL,
    0x0000000005040201ULL, 0x0000000504020100ULL, 0x0000000000050403ULL,
    0x0000000005040300ULL, 0x0000000005040301ULL, 0x0000000504030100ULL,
    0x0000000005040302ULL, 0x0000000504030200ULL, 0x0000000504030201ULL,
    0x0000050403020100ULL, 0x0000000000000006ULL, 0x0000000000000600ULL,
    0x0000000000000601ULL, 0x0000000000060100ULL, 0x0000000000000602ULL,
    0x0000000000060200ULL, 0x0000000000060201ULL, 0x0000000006020100ULL,
    0x0000000000000603ULL, 0x0000000000060300ULL, 0x0000000000060301ULL,
    0x0000000006030100ULL, 0x0000000000060302ULL, 0x0000000006030200ULL,
    0x0000000006030201ULL, 0x0000000603020100ULL, 0x0000000000000604ULL,
    0x0000000000060400ULL, 0x0000000000060401ULL, 0x0000000006040100ULL,
    0x0000000000060402ULL, 0x0000000006040200ULL, 0x0000000006040201ULL,
    0x0000000604020100ULL, 0x0000000000060403ULL, 0x0000000006040300ULL,
    0x0000000006040301ULL, 0x0000000604030100ULL, 0x0000000006040302ULL,
    0x0000000604030200ULL, 0x0000000604030201ULL, 0x0000060403020100ULL,
    0x0000000000000605ULL, 0x0000000000060500ULL, 0x0000000000060501ULL,
    0x0000000006050100ULL, 0x0000000000060502ULL, 0x0000000006050200ULL,
    0x0000000006050201ULL, 0x0000000605020100ULL, 0x0000000000060503ULL,
    0x0000000006050300ULL, 0x0000000006050301ULL, 0x0000000605030100ULL,
    0x0000000006050302ULL, 0x0000000605030200ULL, 0x0000000605030201ULL,
    0x0000060503020100ULL, 0x0000000000060504ULL, 0x0000000006050400ULL,
    0x0000000006050401ULL, 0x0000000605040100ULL, 0x0000000006050402ULL,
    0x0000000605040200ULL, 0x0000000605040201ULL, 0x0000060504020100ULL,
    0x0000000006050403ULL, 0x0000000605040300ULL, 0x0000000605040301ULL,
    0x0000060504030100ULL, 0x0000000605040302ULL, 0x0000060504030200ULL,
    0x0000060504030201ULL, 0x0006050403020100ULL, 0x0000000000000007ULL,
    0x0000000000000700ULL, 0x0000000000000701ULL, 0x0000000000070100ULL,
    0x0000000000000702ULL, 0x0000000000070200ULL, 0x0000000000070201ULL,
    0x0000000007020100ULL, 0x0000000000000703ULL, 0x0000000000070300ULL,
    0x0000000000070301ULL, 0x0000000007030100ULL, 0x0000000000070302ULL,
    0x0000000007030200ULL, 0x0000000007030201ULL, 0x0000000703020100ULL,
    0x0000000000000704ULL, 0x0000000000070400ULL, 0x0000000000070401ULL,
    0x0000000007040100ULL, 0x0000000000070402ULL, 0x0000000007040200ULL,
    0x0000000007040201ULL, 0x0000000704020100ULL, 0x0000000000070403ULL,
    0x0000000007040300ULL, 0x0000000007040301ULL, 0x0000000704030100ULL,
    0x0000000007040302ULL, 0x0000000704030200ULL, 0x0000000704030201ULL,
    0x0000070403020100ULL, 0x0000000000000705ULL, 0x0000000000070500ULL,
    0x0000000000070501ULL, 0x0000000007050100ULL, 0x0000000000070502ULL,
    0x0000000007050200ULL, 0x0000000007050201ULL, 0x0000000705020100ULL,
    0x0000000000070503ULL, 0x0000000007050300ULL, 0x0000000007050301ULL,
    0x0000000705030100ULL, 0x0000000007050302ULL, 0x0000000705030200ULL,
    0x0000000705030201ULL, 0x0000070503020100ULL, 0x0000000000070504ULL,
    0x0000000007050400ULL, 0x0000000007050401ULL, 0x0000000705040100ULL,
    0x0000000007050402ULL, 0x0000000705040200ULL, 0x0000000705040201ULL,
    0x0000070504020100ULL, 0x0000000007050403ULL, 0x0000000705040300ULL,
    0x0000000705040301ULL, 0x0000070504030100ULL, 0x0000000705040302ULL,
    0x0000070504030200ULL, 0x0000070504030201ULL, 0x0007050403020100ULL,
    0x0000000000000706ULL, 0x0000000000070600ULL, 0x0000000000070601ULL,
    0x0000000007060100ULL, 0x0000000000070602ULL, 0x0000000007060200ULL,
    0x0000000007060201ULL, 0x0000000706020100ULL, 0x0000000000070603ULL,
    0x0000000007060300ULL, 0x0000000007060301ULL, 0x0000000706030100ULL,
    0x0000000007060302ULL, 0x0000000706030200ULL, 0x0000000706030201ULL,
    0x0000070603020100ULL, 0x0000000000070604ULL, 0x0000000007060400ULL,
    0x0000000007060401ULL, 0x0000000706040100ULL, 0x0000000007060402ULL,
    0x0000000706040200ULL, 0x0000000706040201ULL, 0x0000070604020100ULL,
    0x0000000007060403ULL, 0x0000000706040300ULL, 0x0000000706040301ULL,
    0x0000070604030100ULL, 0x0000000706040302ULL, 0x0000070604030200ULL,
    0x0000070604030201ULL, 0x0007060403020100ULL, 0x0000000000070605ULL,
    0x0000000007060500ULL, 0x0000000007060501ULL, 0x0000000706050100ULL,
    0x0000000007060502ULL, 0x0000000706050200ULL, 0x0000000706050201ULL,
    0x0000070605020100ULL, 0x0000000007060503ULL, 0x0000000706050300ULL,
    0x0000000706050301ULL, 0x0000070605030100ULL, 0x0000000706050302ULL,
    0x0000070605030200ULL, 0x0000070605030201ULL, 0x0007060503020100ULL,
    0x0000000007060504ULL, 0x0000000706050400ULL, 0x0000000706050401ULL,
    0x0000070605040100ULL, 0x0000000706050402ULL, 0x0000070605040200ULL,
    0x0000070605040201ULL, 0x0007060504020100ULL, 0x0000000706050403ULL,
    0x0000070605040300ULL, 0x0000070605040301ULL, 0x0007060504030100ULL,
    0x0000070605040302ULL, 0x0007060504030200ULL, 0x0007060504030201ULL,
    0x0706050403020100ULL
};
#endif

/* idx[0 .. cnt) = the j with h[j] != 0 (NaN included), ascending; idx has n + 16 room. */
static int64_t fm_nonzero_index(const float *h, int64_t n, int32_t *idx)
{
    int64_t j = 0, cnt = 0;
#if !defined(__AVX512F__)
    {
        __m256i base = _mm256_setzero_si256();
        const __m256i eight = _mm256_set1_epi32(8);
        for (; j + 8 <= n; j += 8) {
            /* not-equal, unordered: NaN counts as non-zero */
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(h + j),
                                                           _mm256_setzero_ps(), _CMP_NEQ_UQ));
            const __m128i pos = _mm_cvtsi64_si128((long long)fm_pack_lut[m]);
            _mm256_storeu_si256((__m256i *)(idx + cnt),
                                _mm256_add_epi32(base, _mm256_cvtepu8_epi32(pos)));
            cnt += __builtin_popcount((unsigned)m);
            base = _mm256_add_epi32(base, eight);
        }
    }
#else
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

/* One sample's accumulators: c[v] = b + sum over listed j of h_j W[j, 8v .. 8v + 8), in the
   listed order.  (Two listed inputs per iteration ran 5 % slower on a Zen 3 VM.) */
#define FM_SPARSE_ACCUMULATE(c, nv, h, idx, cnt, W, n_out, b)                                 \
    do {                                                                                   \
        int v_;                                                                            \
        int64_t k_;                                                                        \
        for (v_ = 0; v_ < (nv); v_++) (c)[v_] = _mm256_loadu_ps((b) + 8 * v_);             \
        for (k_ = 0; k_ < (cnt); k_++) {                                                   \
            const int64_t j_ = (idx)[k_];                                                  \
            const __m256 hv_ = _mm256_broadcast_ss((h) + j_);                              \
            const float *w_ = (W) + j_ * (n_out);                                          \
            for (v_ = 0; v_ < (nv); v_++)                                                  \
                (c)[v_] = _mm256_fmadd_ps(hv_, _mm256_loadu_ps(w_ + 8 * v_), (c)[v_]);     \
        }                                                                                  \
    } while (0)

/* relu as np.maximum(x, 0): NaN stays NaN (x <= 0 is false for it), -0 gives +0 */
FM_INLINE __m256 fm_relu8(__m256 x)
{
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OQ), x);
}

/* One sample: z = b + sum over listed j of h_j W[j, :]; a = relu(z) if a (NaN stays NaN).
   z == a (ReLU in place): only relu(z) is stored. */
FM_INLINE void fm_sparse_row(const int nv, const float *h, const int32_t *idx, int64_t cnt,
                             const float *W, int64_t n_out, const float *b, float *z, float *a)
{
    __m256 c[8];
    int v;
    FM_SPARSE_ACCUMULATE(c, nv, h, idx, cnt, W, n_out, b);
    for (v = 0; v < nv; v++) {
        if (a != z) _mm256_storeu_ps(z + 8 * v, c[v]);
        if (a) _mm256_storeu_ps(a + 8 * v, fm_relu8(c[v]));
    }
}

/* One sample through this layer, its ReLU and a single-output layer:
   returns bo + sum_k relu(z_k) wo_k, z as in fm_sparse_row.  The hidden row never leaves
   the registers. */
FM_INLINE float fm_sparse_row_dot(const int nv, const float *h, const int32_t *idx,
                                  int64_t cnt, const float *W, int64_t n_out, const float *b,
                                  const float *wo, float bo)
{
    __m256 c[8], p0, p1;
    __m128 q;
    int v;
    FM_SPARSE_ACCUMULATE(c, nv, h, idx, cnt, W, n_out, b);
    /* two chains of products (even and odd vectors), added at the end */
    p0 = _mm256_mul_ps(fm_relu8(c[0]), _mm256_loadu_ps(wo));
    p1 = _mm256_setzero_ps();
    for (v = 1; v < nv; v++) {
        if (v & 1)
            p1 = _mm256_fmadd_ps(fm_relu8(c[v]), _mm256_loadu_ps(wo + 8 * v), p1);
        else
            p0 = _mm256_fmadd_ps(fm_relu8(c[v]), _mm256_loadu_ps(wo + 8 * v), p0);
    }
    p0 = _mm256_add_ps(p0, p1);
    q = _mm_add_ps(_mm256_castps256_ps128(p0), _mm256_extractf128_ps(p0, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return bo + _mm_cvtss_f32(q);
}

/* Whether the sparse path pays on this tile: the share of zeros among the first rows' inputs
   (a sample: counting every input cost a twentieth of the product on 5-64-64-1). */
static int fm_sparse_pays(int64_t ns, int64_t n_in, const float *a_in)
{
    const int64_t n = (ns < 16 ? ns : 16) * n_in;
    int64_t i, zeros = 0;
    for (i = 0; i < n; i++) zeros += a_in[i] == 0.0f;
    return (double)zeros >= FM_SPARSE_MIN_ZEROS * (double)n;
}

#define FM_SPARSE_SHAPE_OK(n_in, n_out)                                                    \
    ((n_out) % 8 == 0 && (n_out) <= 64 && (n_in) >= 8 && (n_in) <= FM_SPARSE_MAX_IN)

/* a constant register count for each width */
#define FM_SPARSE_BY_WIDTH(n_out, CALL)                                                     \
    switch ((n_out) / 8) {                                                                 \
    case 1: CALL(1); break;                                                                \
    case 2: CALL(2); break;                                                                \
    case 3: CALL(3); break;                                                                \
    case 4: CALL(4); break;                                                                \
    case 5: CALL(5); break;                                                                \
    case 6: CALL(6); break;                                                                \
    case 7: CALL(7); break;                                                                \
    default: CALL(8); break;                                                               \
    }

#endif

/* Both entry points: rows into z / a_out (fm_sparse_row), or, with wo, one output per row
   into out (fm_sparse_row_dot). */
static int fm_sparse_rows(int64_t ns, int64_t n_in, int64_t n_out, const float *a_in,
                          const float *W, const float *b, float *z, float *a_out,
                          const float *wo, const float *bo, float *out)
{
#if FM_AVX2
    int32_t idx[FM_SPARSE_MAX_IN + 16];
    int64_t s;
    if (!FM_SPARSE_SHAPE_OK(n_in, n_out) || !fm_sparse_pays(ns, n_in, a_in)) return 0;
    for (s = 0; s < ns; s++) {
        const float *h = a_in + s * n_in;
        const int64_t cnt = fm_nonzero_index(h, n_in, idx);
        if (wo) {
#define FM_ROW(nv) out[s] = fm_sparse_row_dot(nv, h, idx, cnt, W, n_out, b, wo, bo[0])
            FM_SPARSE_BY_WIDTH(n_out, FM_ROW)
#undef FM_ROW
        } else {
            float *zr = z + s * n_out, *ar = a_out ? a_out + s * n_out : NULL;
#define FM_ROW(nv) fm_sparse_row(nv, h, idx, cnt, W, n_out, b, zr, ar)
            FM_SPARSE_BY_WIDTH(n_out, FM_ROW)
#undef FM_ROW
        }
    }
    return 1;
#else
    (void)ns; (void)n_in; (void)n_out; (void)a_in; (void)W; (void)b; (void)z; (void)a_out;
    (void)wo; (void)bo; (void)out;
    return 0;
#endif
}

int fm_dense_sparse_input_f32(int64_t ns, int64_t n_in, int64_t n_out, const float *a_in,
                              const float *W, const float *b, float *z, float *a_out)
{
    return fm_sparse_rows(ns, n_in, n_out, a_in, W, b, z, a_out, NULL, NULL, NULL);
}

int fm_dense_sparse_input_dot_f32(int64_t ns, int64_t n_in, int64_t n_hid, const float *a_in,
                                  const float *W, const float *b, const float *wo,
                                  const float *bo, float *out)
{
    return fm_sparse_rows(ns, n_in, n_hid, a_in, W, b, NULL, NULL, wo, bo, out);
}
