/* typedefs.h -- re-includable: defines T, SFX() and the math/vector macros for the dtype
   selected by FM_REAL_F32 or FM_REAL_F64 (see activation.c for the pattern). */
#include <float.h>
#undef T
#undef SFX
#undef SFX_
#undef TEXP
#undef TEXPM1
#undef TLOG
#undef TLOG1P
#undef TTANH
#undef TSQRT
#undef TFABS
#undef TTINY
#undef VT
#undef VL
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VFMA
#undef VZERO
#undef FM_IS_F32
#undef VMUL
#undef VAND
#undef VANDNOT
#undef VOR
#undef VCMPGT
#undef VCMPLT

#define SFX_(a, b) a##b
#if defined(FM_REAL_F32)
#define T float
#define FM_IS_F32 1
#define SFX(name) SFX_(name, _f32)
#define TEXP expf
#define TEXPM1 expm1f
#define TLOG logf
#define TLOG1P log1pf
#define TTANH tanhf
#define TSQRT sqrtf
#define TFABS fabsf
#define TTINY FLT_MIN /* the smallest normal number */
#if FM_AVX2
#define VT __m256
#define VL 8
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VZERO _mm256_setzero_ps
#define VMUL _mm256_mul_ps
#define VAND _mm256_and_ps
#define VANDNOT _mm256_andnot_ps
#define VOR _mm256_or_ps
#define VCMPGT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define VCMPLT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#endif
#undef FM_REAL_F32
#elif defined(FM_REAL_F64)
#define T double
#define FM_IS_F32 0
#define SFX(name) SFX_(name, _f64)
#define TEXP exp
#define TEXPM1 expm1
#define TLOG log
#define TLOG1P log1p
#define TTANH tanh
#define TSQRT sqrt
#define TFABS fabs
#define TTINY DBL_MIN
#if FM_AVX2
#define VT __m256d
#define VL 4
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VSET1 _mm256_set1_pd
#define VFMA _mm256_fmadd_pd
#define VZERO _mm256_setzero_pd
#define VMUL _mm256_mul_pd
#define VAND _mm256_and_pd
#define VANDNOT _mm256_andnot_pd
#define VOR _mm256_or_pd
#define VCMPGT(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define VCMPLT(a, b) _mm256_cmp_pd(a, b, _CMP_LT_OQ)
#endif
#undef FM_REAL_F64
#else
#error "define FM_REAL_F32 or FM_REAL_F64 before including typedefs.h"
#endif
