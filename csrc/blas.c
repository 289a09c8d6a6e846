/* blas.c -- an optional BLAS (sgemm / dgemm) for the wide layers, handed in at load.

   The library links no BLAS.  A host that has one passes its Fortran-interface sgemm and
   dgemm with fastmlp_set_gemm(); the Python package passes SciPy's OpenBLAS (the addresses of
   scipy.linalg.cython_blas.sgemm / dgemm, the library SciPy already loaded).  Until then, or
   after fastmlp_set_gemm(NULL, NULL, ...), every product runs in the hand-written kernels
   (gemm.inc): the standalone library (examples/c) works without any BLAS.

   The pointers and crossovers are process-wide: set them once, before kernels run in other
   threads.  A calling thread may replace the crossover by a choice of layers for the
   whole-network kernels it calls (fastmlp_set_thread_gemm_layers): the Python package
   measures which layers of a net train faster through BLAS (fastmlp.backends.tuning), because
   a product size alone does not tell. */
#include "internal.h"

#include <limits.h>

static fm_sgemm_fn g_sgemm = NULL;
static fm_dgemm_fn g_dgemm = NULL;
static double g_min_macs[2] = {0, 0};
/* The calling thread's layer choice for the whole-network kernels (like its thread count):
   BLAS for the layers of at least this many weights, whatever the rows; < 0: none set. */
static FM_THREAD_LOCAL double tl_min_weights = -1;

int fastmlp_set_gemm(void *sgemm, void *dgemm, double min_macs_f32, double min_macs_f64)
{
    FM_CHECK(!(min_macs_f32 < 0) && !(min_macs_f64 < 0) && min_macs_f32 == min_macs_f32 &&
             min_macs_f64 == min_macs_f64, FASTMLP_EVALUE);
    /* a data pointer to function pointer: fine on every platform with dlsym */
    g_sgemm = (fm_sgemm_fn)sgemm;
    g_dgemm = (fm_dgemm_fn)dgemm;
    g_min_macs[0] = min_macs_f32;
    g_min_macs[1] = min_macs_f64;
    return FASTMLP_OK;
}

int fastmlp_has_gemm(void)
{
    return (g_sgemm != NULL) | ((g_dgemm != NULL) << 1);
}

/* Store a per-thread choice: NaN is FASTMLP_EVALUE, a negative value means "none set" (-1). */
static int fm_set_thread_choice(double *slot, double value)
{
    FM_CHECK(value == value, FASTMLP_EVALUE);
    *slot = value < 0 ? -1 : value;
    return FASTMLP_OK;
}

int fastmlp_set_thread_gemm_layers(double min_weights)
{
    return fm_set_thread_choice(&tl_min_weights, min_weights);
}

double fm_thread_gemm_layers(void)
{
    return tl_min_weights;
}

/* The calling thread's share of zero inputs from which mlp_forward's layers after a ReLU
   skip them (sparse.c); < 0: the default.  Kept here with the other per-thread choices of
   the whole-network kernels. */
static FM_THREAD_LOCAL double tl_skip_zeros = -1;

int fastmlp_set_thread_skip_zeros(double min_zeros)
{
    return fm_set_thread_choice(&tl_skip_zeros, min_zeros);
}

double fm_thread_skip_zeros(void)
{
    return tl_skip_zeros;
}

/* The calling thread's tile rows for the whole-network kernels when a layer goes to BLAS;
   0: FM_BLAS_TILE. */
static FM_THREAD_LOCAL int64_t tl_tile_rows = 0;

int fastmlp_set_thread_gemm_tile(int64_t rows)
{
    FM_CHECK(rows == 0 || (rows >= 6 && rows <= 65536), FASTMLP_EVALUE);
    tl_tile_rows = rows;
    return FASTMLP_OK;
}

int64_t fm_thread_gemm_tile(void)
{
    return tl_tile_rows > 0 ? tl_tile_rows : FM_BLAS_TILE;
}

static int fits(int64_t M, int64_t N, int64_t K)
{
    return M <= INT_MAX && N <= INT_MAX && K <= INT_MAX;
}

int fm_blas_use_f32(int64_t M, int64_t N, int64_t K)
{
    return g_sgemm && fits(M, N, K) && (double)M * (double)N * (double)K >= g_min_macs[0];
}

int fm_blas_use_f64(int64_t M, int64_t N, int64_t K)
{
    return g_dgemm && fits(M, N, K) && (double)M * (double)N * (double)K >= g_min_macs[1];
}

int fm_blas_layer_f32(int64_t rows, int64_t n_out, int64_t n_in)
{
    if (tl_min_weights < 0) return fm_blas_use_f32(rows, n_out, n_in);
    return g_sgemm && fits(rows, n_out, n_in) && (double)n_out * (double)n_in >= tl_min_weights;
}

int fm_blas_layer_f64(int64_t rows, int64_t n_out, int64_t n_in)
{
    if (tl_min_weights < 0) return fm_blas_use_f64(rows, n_out, n_in);
    return g_dgemm && fits(rows, n_out, n_in) && (double)n_out * (double)n_in >= tl_min_weights;
}

/* Row-major C = alpha op(A) op(B) + beta C as the column-major C^T = op(B)^T op(A)^T: the
   same transpose flags, the operands and M / N swapped. */
void fm_blas_gemm_f32(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc)
{
    char fa = tb ? 'T' : 'N', fb = ta ? 'T' : 'N';
    int m = (int)N, n = (int)M, k = (int)K, la = (int)ldb, lb = (int)lda, lc = (int)ldc;
    g_sgemm(&fa, &fb, &m, &n, &k, &alpha, (float *)B, &la, (float *)A, &lb, &beta, C, &lc);
}

void fm_blas_gemm_f64(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                      const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                      double *C, int64_t ldc)
{
    char fa = tb ? 'T' : 'N', fb = ta ? 'T' : 'N';
    int m = (int)N, n = (int)M, k = (int)K, la = (int)ldb, lb = (int)lda, lc = (int)ldc;
    g_dgemm(&fa, &fb, &m, &n, &k, &alpha, (double *)B, &la, (double *)A, &lb, &beta, C, &lc);
}

#define FM_REAL_F32
#include "typedefs.h"
#include "blas.inc"

#define FM_REAL_F64
#include "typedefs.h"
#include "blas.inc"
