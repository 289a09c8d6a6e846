/* sparse.c -- inference through a layer whose input is a ReLU output: skip the zero inputs.

   After a ReLU a large share of a hidden layer's activations are exactly zero (about half at
   He initialisation).  The dense product multiplies every one of them; here each sample's
   non-zero inputs are marked in a bit mask first (a vector compare and movemask), then its
   output row (n_out <= 64 floats, held in up to eight 256-bit registers) accumulates
   h_j * W[j, :] over the marked j only, walking the mask's set bits.  Per non-zero input
   this costs what the dense register-blocked kernel pays per input, so it pays once a tile
   has more than FM_SPARSE_MIN_ZEROS zeros (judged on its first 16 rows); below that the
   caller uses the dense product.

   When such a layer (with its ReLU) feeds a last layer of one linear output, the common
   classifier and regressor ending, fm_dense_sparse_input_dot_f32 also takes that output in
   the same pass: the hidden row stays in registers, and neither it nor the output layer's
   separate pass over the tile is needed (5-64-64-1 inference 13 % faster on one thread of a
   Zen 3 VM, 16 % on two: best of 25 calls on 2M rows, alternating builds).

   Used by mlp_forward (inference) in float32.  NaN and inf inputs are not zero, so they
   propagate exactly as in the dense product; only the order of the additions differs (the
   products are exact zeros that are left out), within the float32 conformance tolerance. */
#include "internal.h"

#define FM_SPARSE_MAX_IN 1024      /* the mask lives on the stack */
#define FM_SPARSE_MIN_ZEROS 0.2    /* share of zero inputs in a tile's first rows */

#if FM_AVX2

/* Bit j % 64 of mask[j / 64] is set when h[j] != 0 (NaN included: not-equal, unordered).
   The accumulation walks the set bits in ascending order (count trailing zeros, clear the
   lowest bit), the order of the list of positions this replaces, so the sums are the same
   bits.  That list (AVX-512 compress, or under AVX2 a 256-entry table of positions per
   8-bit mask) was written and read back per row: on a Zen 3 VM (one thread, 1024 rows,
   half the inputs zero, 2,000 alternating calls in one process) the mask ran as fast for
   64 inputs and 5-8 % faster for 128 to 512. */
static void fm_nonzero_mask(const float *h, int64_t n, uint64_t *mask)
{
    int64_t j = 0, w;
    for (w = 0; w < (n + 63) / 64; w++) mask[w] = 0;
#if !defined(__AVX512F__)
    for (; j + 8 <= n; j += 8) {
        const unsigned m = (unsigned)_mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_loadu_ps(h + j), _mm256_setzero_ps(), _CMP_NEQ_UQ));
        mask[j >> 6] |= (uint64_t)m << (j & 63);
    }
#else
    for (; j + 16 <= n; j += 16) {
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(h + j), _mm512_setzero_ps(),
                                               _CMP_NEQ_UQ);
        mask[j >> 6] |= (uint64_t)m << (j & 63);
    }
#endif
    for (; j < n; j++)
        mask[j >> 6] |= (uint64_t)!(h[j] == 0.0f) << (j & 63);
}

/* One sample's accumulators: c[v] = b + sum over the non-zero h_j of h_j W[j, 8v .. 8v + 8),
   in ascending j.  (Two inputs per iteration ran 5 % slower on a Zen 3 VM.) */
#define FM_SPARSE_ACCUMULATE(c, nv, h, mask, n_in, W, n_out, b)                             \
    do {                                                                                   \
        int v_;                                                                            \
        int64_t w_;                                                                        \
        for (v_ = 0; v_ < (nv); v_++) (c)[v_] = _mm256_loadu_ps((b) + 8 * v_);             \
        for (w_ = 0; w_ < ((n_in) + 63) / 64; w_++) {                                      \
            uint64_t m_ = (mask)[w_];                                                      \
            while (m_) {                                                                   \
                const int64_t j_ = 64 * w_ + __builtin_ctzll(m_);                          \
                const __m256 hv_ = _mm256_broadcast_ss((h) + j_);                          \
                const float *wr_ = (W) + j_ * (n_out);                                     \
                m_ &= m_ - 1;                                                              \
                for (v_ = 0; v_ < (nv); v_++)                                              \
                    (c)[v_] = _mm256_fmadd_ps(hv_, _mm256_loadu_ps(wr_ + 8 * v_), (c)[v_]); \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* relu as np.maximum(x, 0): NaN stays NaN (x <= 0 is false for it), -0 gives +0 */
FM_INLINE __m256 fm_relu8(__m256 x)
{
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OQ), x);
}

/* One sample: z = b + sum over listed j of h_j W[j, :]; a = relu(z) if a (NaN stays NaN).
   z == a (ReLU in place): only relu(z) is stored. */
FM_INLINE void fm_sparse_row(const int nv, const float *h, const uint64_t *mask, int64_t n_in,
                             const float *W, int64_t n_out, const float *b, float *z, float *a)
{
    __m256 c[8];
    int v;
    FM_SPARSE_ACCUMULATE(c, nv, h, mask, n_in, W, n_out, b);
    for (v = 0; v < nv; v++) {
        if (a != z) _mm256_storeu_ps(z + 8 * v, c[v]);
        if (a) _mm256_storeu_ps(a + 8 * v, fm_relu8(c[v]));
    }
}

/* One sample through this layer, its ReLU and a single-output layer:
   returns bo + sum_k relu(z_k) wo_k, z as in fm_sparse_row.  The hidden row never leaves
   the registers. */
FM_INLINE float fm_sparse_row_dot(const int nv, const float *h, const uint64_t *mask,
                                  int64_t n_in, const float *W, int64_t n_out, const float *b,
                                  const float *wo, float bo)
{
    __m256 c[8], p0, p1;
    __m128 q;
    int v;
    FM_SPARSE_ACCUMULATE(c, nv, h, mask, n_in, W, n_out, b);
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
   (a sample: counting every input cost a twentieth of the product on 5-64-64-1) reaches
   min_zeros (< 0: FM_SPARSE_MIN_ZEROS; above 1: never).  Where it pays differs between
   CPUs: on a Zen 3 VM skipping won from 20 % zeros, on a Zen 4 VM (whose dense kernel runs
   zmm vectors) 5-32-32-1 inference ran 1.4x faster without it at the ~50 % zeros of a
   trained net, so the Python package measures it per CPU and net class
   (fastmlp.backends.tuning.forward_skip_zeros, fastmlp_set_thread_skip_zeros). */
static int fm_sparse_pays(int64_t ns, int64_t n_in, const float *a_in, double min_zeros)
{
    const int64_t n = (ns < 16 ? ns : 16) * n_in;
    int64_t i, zeros = 0;
    if (min_zeros < 0) min_zeros = FM_SPARSE_MIN_ZEROS;
    if (min_zeros > 1) return 0;
    for (i = 0; i < n; i++) zeros += a_in[i] == 0.0f;
    return (double)zeros >= min_zeros * (double)n;
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
                          const float *wo, const float *bo, float *out, double min_zeros)
{
#if FM_AVX2
    uint64_t mask[FM_SPARSE_MAX_IN / 64];
    int64_t s;
    if (!FM_SPARSE_SHAPE_OK(n_in, n_out) || !fm_sparse_pays(ns, n_in, a_in, min_zeros))
        return 0;
    for (s = 0; s < ns; s++) {
        const float *h = a_in + s * n_in;
        fm_nonzero_mask(h, n_in, mask);
        if (wo) {
#define FM_ROW(nv) out[s] = fm_sparse_row_dot(nv, h, mask, n_in, W, n_out, b, wo, bo[0])
            FM_SPARSE_BY_WIDTH(n_out, FM_ROW)
#undef FM_ROW
        } else {
            float *zr = z + s * n_out, *ar = a_out ? a_out + s * n_out : NULL;
#define FM_ROW(nv) fm_sparse_row(nv, h, mask, n_in, W, n_out, b, zr, ar)
            FM_SPARSE_BY_WIDTH(n_out, FM_ROW)
#undef FM_ROW
        }
    }
    return 1;
#else
    (void)ns; (void)n_in; (void)n_out; (void)a_in; (void)W; (void)b; (void)z; (void)a_out;
    (void)wo; (void)bo; (void)out; (void)min_zeros;
    return 0;
#endif
}

int fm_dense_sparse_input_f32(int64_t ns, int64_t n_in, int64_t n_out, const float *a_in,
                              const float *W, const float *b, float *z, float *a_out,
                              double min_zeros)
{
    return fm_sparse_rows(ns, n_in, n_out, a_in, W, b, z, a_out, NULL, NULL, NULL, min_zeros);
}

int fm_dense_sparse_input_dot_f32(int64_t ns, int64_t n_in, int64_t n_hid, const float *a_in,
                                  const float *W, const float *b, const float *wo,
                                  const float *bo, float *out, double min_zeros)
{
    return fm_sparse_rows(ns, n_in, n_hid, a_in, W, b, NULL, NULL, wo, bo, out, min_zeros);
}
