/* typedefs.h -- re-includable: defines T, SFX() and the math/vector macros for the dtype
   selected by FM_REAL_F32 or FM_REAL_F64 (see activation.c for the pattern). */
#include <float.h>
#undef T
#undef SFX
#undef SFX_
#undef TEXP
#undef TLOG
#undef TLOG1P
#undef TSQRT
#undef TFABS
#undef TCOPYSIGN
#undef TU
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
#undef VCMPLE
#undef VUNPACKLO
#undef VUNPACKHI
#undef VPERM2F128
#undef VADD
#undef VSUB
#undef VDIV
#undef VBLEND
#undef VCMPGE
#undef VCMPEQ
#undef VCMPNAN
#undef VI
#undef VCASTI
#undef VCASTF
#undef VIADD
#undef VISUB
#undef VISHL
#undef VISET1
#undef TBITS

#define SFX_(a, b) a##b
#if defined(FM_REAL_F32)
#define T float
#define FM_IS_F32 1
#define SFX(name) SFX_(name, _f32)
#define TEXP expf
#define TLOG logf
#define TLOG1P log1pf
#define TSQRT sqrtf
#define TFABS fabsf
#define TCOPYSIGN copysignf
#define TTINY FLT_MIN /* the smallest normal number */
#define TU uint32_t /* the unsigned integer of T's width (its bit pattern) */
#define TBITS 23    /* T's stored mantissa bits: the exponent field's shift */
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
#define VCMPLE(a, b) _mm256_cmp_ps(a, b, _CMP_LE_OQ)
#define VUNPACKLO _mm256_unpacklo_ps
#define VUNPACKHI _mm256_unpackhi_ps
#define VPERM2F128 _mm256_permute2f128_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VDIV _mm256_div_ps
#define VBLEND(a, b, mask) _mm256_blendv_ps(a, b, mask) /* b where mask, else a */
#define VCMPGE(a, b) _mm256_cmp_ps(a, b, _CMP_GE_OQ)
#define VCMPEQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define VCMPNAN(a) _mm256_cmp_ps(a, a, _CMP_UNORD_Q)
#define VI __m256i
#define VCASTI _mm256_castps_si256
#define VCASTF _mm256_castsi256_ps
#define VIADD _mm256_add_epi32
#define VISUB _mm256_sub_epi32
#define VISHL _mm256_slli_epi32
#define VISET1 _mm256_set1_epi32
#endif
#undef FM_REAL_F32
#elif defined(FM_REAL_F64)
#define T double
#define FM_IS_F32 0
#define SFX(name) SFX_(name, _f64)
#define TEXP exp
#define TLOG log
#define TLOG1P log1p
#define TSQRT sqrt
#define TFABS fabs
#define TCOPYSIGN copysign
#define TTINY DBL_MIN
#define TU uint64_t
#define TBITS 52
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
#define VCMPLE(a, b) _mm256_cmp_pd(a, b, _CMP_LE_OQ)
#define VUNPACKLO _mm256_unpacklo_pd
#define VUNPACKHI _mm256_unpackhi_pd
#define VPERM2F128 _mm256_permute2f128_pd
#define VADD _mm256_add_pd
#define VSUB _mm256_sub_pd
#define VDIV _mm256_div_pd
#define VBLEND(a, b, mask) _mm256_blendv_pd(a, b, mask) /* b where mask, else a */
#define VCMPGE(a, b) _mm256_cmp_pd(a, b, _CMP_GE_OQ)
#define VCMPEQ(a, b) _mm256_cmp_pd(a, b, _CMP_EQ_OQ)
#define VCMPNAN(a) _mm256_cmp_pd(a, a, _CMP_UNORD_Q)
#define VI __m256i
#define VCASTI _mm256_castpd_si256
#define VCASTF _mm256_castsi256_pd
#define VIADD _mm256_add_epi64
#define VISUB _mm256_sub_epi64
#define VISHL _mm256_slli_epi64
#define VISET1 _mm256_set1_epi64x
#endif
#undef FM_REAL_F64
#else
#error "define FM_REAL_F32 or FM_REAL_F64 before including typedefs.h"
#endif
