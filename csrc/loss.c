/* loss.c -- instantiates loss.inc for float32 and float64. */
#include "internal.h"

#if FM_AVX2
/* exp(x) for 8 floats x <= 0 (Cephes expf: about 1 ulp); NaN stays NaN, x < -87.3 gives
   about 1e-38 instead of a subnormal or 0 (never observable in a loss or a sigmoid). */
static inline __m256 fm_exp_nonpos_ps(__m256 x0)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 x = _mm256_max_ps(x0, _mm256_set1_ps(-87.33654f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 z, y;
    __m256i e;
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    z = _mm256_mul_ps(x, x);
    y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, z, x), one);
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_blendv_ps(y, x0, _mm256_cmp_ps(x0, x0, _CMP_UNORD_Q));
}

/* log1p(e) for 8 floats e in [0, 1] (Cephes logf of u = 1 + e, then Goldberg's correction
   log1p(e) = log(u) e / (u - 1), accurate to a few ulp even for tiny e); NaN stays NaN. */
static inline __m256 fm_log1p_unit_ps(__m256 e)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 u = _mm256_add_ps(one, e);
    __m256 big = _mm256_cmp_ps(u, _mm256_set1_ps(1.41421356237f), _CMP_GT_OQ);
    __m256 m = _mm256_blendv_ps(u, _mm256_mul_ps(u, _mm256_set1_ps(0.5f)), big);
    __m256 k = _mm256_and_ps(big, one);
    __m256 x = _mm256_sub_ps(m, one), z = _mm256_mul_ps(x, x), y, r, d;
    y = _mm256_set1_ps(7.0376836292e-2f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.1514610310e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.1676998740e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.2420140846e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.4249322787e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.6668057665e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(2.0000714765e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-2.4999993993e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(3.3333331174e-1f));
    y = _mm256_mul_ps(_mm256_mul_ps(y, x), z);
    y = _mm256_fmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), y);
    y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), z, y);
    r = _mm256_add_ps(x, y);
    r = _mm256_fmadd_ps(k, _mm256_set1_ps(0.693359375f), r);
    d = _mm256_sub_ps(u, one); /* exact: u in [1, 2] */
    r = _mm256_mul_ps(r, _mm256_div_ps(e, d));
    return _mm256_blendv_ps(r, e, _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_EQ_OQ));
}
#endif

#define FM_REAL_F32
#include "typedefs.h"
#include "loss.inc"

#define FM_REAL_F64
#include "typedefs.h"
#include "loss.inc"
