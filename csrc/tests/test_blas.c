/* test_blas.c -- the BLAS paths of the C kernels (blas.c) without Python: a naive
   Fortran-interface sgemm / dgemm (column-major, the reference BLAS semantics) is handed in
   with fastmlp_set_gemm, and every kernel that can use it must agree with the hand-written
   path (crossover infinite, and NULL pointers) to rounding.  Run by `make test` and, under
   AddressSanitizer + UBSan, by `make sanitize`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastmlp.h"

static long n_checks, n_fail, n_gemm_calls;

#define NAIVE_GEMM(NAME, T)                                                                 \
    static void NAME(char *ta, char *tb, int *m, int *n, int *k, T *alpha, T *a, int *lda,  \
                     T *b, int *ldb, T *beta, T *c, int *ldc)                               \
    {                                                                                       \
        int i, j, p;                                                                        \
        n_gemm_calls++;                                                                     \
        for (j = 0; j < *n; j++)                                                            \
            for (i = 0; i < *m; i++) {                                                      \
                double acc = 0;                                                             \
                for (p = 0; p < *k; p++) {                                                  \
                    T av = *ta == 'N' ? a[i + p * *lda] : a[p + i * *lda];                  \
                    T bv = *tb == 'N' ? b[p + j * *ldb] : b[j + p * *ldb];                  \
                    acc += (double)av * bv;                                                 \
                }                                                                           \
                c[i + j * *ldc] = (T)(*alpha * acc + (*beta == 0 ? 0 : *beta * c[i + j * *ldc])); \
            }                                                                               \
    }
NAIVE_GEMM(naive_sgemm, float)
NAIVE_GEMM(naive_dgemm, double)

static void check(int ok, const char *what)
{
    n_checks++;
    if (!ok) {
        n_fail++;
        printf("FAIL: %s\n", what);
    }
}

static double rel(const double *a, const double *b, long n)
{
    double num = 0, den = 1e-30;
    long i;
    for (i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > num) num = fabs(a[i] - b[i]);
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / den;
}

static double frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0) * 2 - 1;
}

/* One network (float64 and float32): train_epoch, mlp_loss_grad, mlp_forward, dense. */
static void run_net(const int64_t *sizes, const int64_t *acts, int64_t L, int64_t N,
                    int64_t bs, int loss)
{
    int64_t np_ = 0, l, i, done[2];
    const int64_t nL = sizes[L], ky = loss == FASTMLP_LOSS_MSE ? nL : 1;
    unsigned seed = 7;
    double *p0, *x, *y, *sw, *lrs, hyper[FASTMLP_N_HYPER] = {1e-3, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    double *res[2][3];
    int64_t *perm, nb = (N + bs - 1) / bs, pass;
    char what[160];
    for (l = 0; l < L; l++) np_ += (sizes[l] + 1) * sizes[l + 1];
    p0 = malloc(sizeof(double) * np_);
    x = malloc(sizeof(double) * N * sizes[0]);
    y = malloc(sizeof(double) * N * ky);
    sw = malloc(sizeof(double) * N);
    lrs = malloc(sizeof(double) * nb);
    perm = malloc(sizeof(int64_t) * N);
    for (i = 0; i < np_; i++) p0[i] = 0.1 * frand(&seed);
    for (i = 0; i < N * sizes[0]; i++) x[i] = frand(&seed);
    for (i = 0; i < N * ky; i++) y[i] = loss == FASTMLP_LOSS_MSE ? frand(&seed) : (frand(&seed) > 0);
    for (i = 0; i < N; i++) { sw[i] = 1 + 0.5 * frand(&seed); perm[i] = (i * 7919) % N; }
    for (i = 0; i < nb; i++) lrs[i] = 1e-3;
    for (pass = 0; pass < 2; pass++) { /* 0: hand-written, 1: BLAS for every layer */
        double *p = malloc(sizeof(double) * np_), *g = malloc(sizeof(double) * np_);
        double *st = calloc(3 * np_, sizeof(double)), *bl = malloc(sizeof(double) * nb);
        double *out = malloc(sizeof(double) * N * nL), lossv;
        fastmlp_set_gemm(pass ? (void *)naive_sgemm : NULL, pass ? (void *)naive_dgemm : NULL,
                         0, 0);
        memcpy(p, p0, sizeof(double) * np_);
        check(fastmlp_mlp_forward_f64(out, p, x, N, sizes, acts, L) == FASTMLP_OK, "forward");
        check(fastmlp_mlp_loss_grad_f64(&lossv, g, p, x, y, sw, N, sizes, acts, L, loss) ==
              FASTMLP_OK, "loss_grad");
        res[pass][0] = out;
        res[pass][1] = g;
        {
            double *g2 = malloc(sizeof(double) * np_);
            check(fastmlp_train_epoch_f64(&done[pass], p, g2, st, bl, x, y, sw, N, perm, N, bs,
                                          lrs, 0, FASTMLP_OPT_ADAM, hyper, sizes, acts, L,
                                          loss) == FASTMLP_OK, "train_epoch");
            free(g2);
        }
        res[pass][2] = p;
        free(st);
        free(bl);
    }
    snprintf(what, sizeof what, "net L=%ld N=%ld bs=%ld: BLAS path agrees (forward)", (long)L,
             (long)N, (long)bs);
    check(rel(res[1][0], res[0][0], N * nL) < 1e-12, what);
    check(rel(res[1][1], res[0][1], np_) < 1e-12, "BLAS path agrees (gradient)");
    check(rel(res[1][2], res[0][2], np_) < 1e-10 && done[0] == done[1] && done[0] == nb,
          "BLAS path agrees (parameters after an epoch)");
    fastmlp_set_gemm(NULL, NULL, 0, 0);
    for (pass = 0; pass < 2; pass++)
        for (l = 0; l < 3; l++) free(res[pass][l]);
    free(p0); free(x); free(y); free(sw); free(lrs); free(perm);
}

static void run_dense(int64_t B, int64_t n_in, int64_t n_out, int act)
{
    unsigned seed = 3;
    float *x = malloc(sizeof(float) * B * n_in), *w = malloc(sizeof(float) * n_in * n_out);
    float *b = malloc(sizeof(float) * n_out), *r[2][5];
    int64_t i, pass;
    for (i = 0; i < B * n_in; i++) x[i] = (float)frand(&seed);
    for (i = 0; i < n_in * n_out; i++) w[i] = (float)(0.3 * frand(&seed));
    for (i = 0; i < n_out; i++) b[i] = (float)(0.1 * frand(&seed));
    for (pass = 0; pass < 2; pass++) {
        float *out = malloc(sizeof(float) * B * n_out), *z = malloc(sizeof(float) * B * n_out);
        float *dx = malloc(sizeof(float) * B * n_in), *dw = malloc(sizeof(float) * n_in * n_out);
        float *db = malloc(sizeof(float) * n_out);
        fastmlp_set_gemm(pass ? (void *)naive_sgemm : NULL, NULL, 0, INFINITY);
        check(fastmlp_dense_forward_f32(out, z, x, w, b, B, n_in, n_out, act) == FASTMLP_OK,
              "dense_forward");
        check(fastmlp_dense_backward_f32(dx, dw, db, out, x, w, z, B, n_in, n_out, act) ==
              FASTMLP_OK, "dense_backward");
        r[pass][0] = out; r[pass][1] = z; r[pass][2] = dx; r[pass][3] = dw; r[pass][4] = db;
    }
    {
        const int64_t len[5] = {B * n_out, B * n_out, B * n_in, n_in * n_out, n_out};
        int k;
        for (k = 0; k < 5; k++) {
            double *a = malloc(sizeof(double) * len[k]), *c = malloc(sizeof(double) * len[k]);
            for (i = 0; i < len[k]; i++) { a[i] = r[1][k][i]; c[i] = r[0][k][i]; }
            check(rel(a, c, len[k]) < 1e-5, "dense BLAS path agrees (float32)");
            free(a); free(c);
            free(r[0][k]); free(r[1][k]);
        }
    }
    fastmlp_set_gemm(NULL, NULL, 0, 0);
    free(x); free(w); free(b);
}

/* The calling thread's tile (fastmlp_set_thread_gemm_tile): an epoch with every layer
   through BLAS, cut into tiles of 300 rows, makes more BLAS calls than with the default tile
   and ends where it does to rounding (the weight gradients are summed tile by tile); the
   tile's bounds are checked. */
static void check_tile(void)
{
    static const int64_t sizes[] = {5, 32, 32, 1}, acts[] = {1, 1, 0};
    double hyper[FASTMLP_N_HYPER] = {1e-3, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    enum { N = 1200, NP = 6 * 32 + 33 * 32 + 33 };
    static double p[2][NP], g[NP], st[3 * NP], x[N * 5], y[N];
    double lrs[1] = {1e-3}, bl[1];
    static int64_t perm[N];
    int64_t i, done = 0, run;
    long calls[2];
    unsigned seed = 5;
    for (i = 0; i < NP; i++) p[0][i] = p[1][i] = 0.1 * frand(&seed);
    for (i = 0; i < N * 5; i++) x[i] = frand(&seed);
    for (i = 0; i < N; i++) { y[i] = frand(&seed) > 0; perm[i] = (i * 7) % N; }
    fastmlp_set_gemm((void *)naive_sgemm, (void *)naive_dgemm, 0, 0);
    check(fastmlp_set_thread_gemm_layers(0) == FASTMLP_OK, "every layer through BLAS");
    for (run = 0; run < 2; run++) {
        long before = n_gemm_calls;
        memset(st, 0, sizeof st);
        check(fastmlp_set_thread_gemm_tile(run ? 300 : 0) == FASTMLP_OK, "tile set");
        check(fastmlp_train_epoch_f64(&done, p[run], g, st, bl, x, y, NULL, N, perm, N, N, lrs,
                                      0, FASTMLP_OPT_ADAM, hyper, sizes, acts, 3,
                                      FASTMLP_LOSS_BCE) == FASTMLP_OK && done == 1,
              "train_epoch with a tile");
        calls[run] = n_gemm_calls - before;
    }
    check(calls[1] > calls[0], "a smaller tile makes more BLAS calls");
    check(rel(p[1], p[0], NP) < 1e-12, "a smaller tile ends where the default does");
    check(fastmlp_set_thread_gemm_tile(5) == FASTMLP_EVALUE, "tile of 5 rows refused");
    check(fastmlp_set_thread_gemm_tile(-1) == FASTMLP_EVALUE, "negative tile refused");
    check(fastmlp_set_thread_gemm_tile(65537) == FASTMLP_EVALUE, "tile above 65536 refused");
    check(fastmlp_set_thread_gemm_tile(0) == FASTMLP_OK, "default tile back");
    fastmlp_set_thread_gemm_layers(-1);
    fastmlp_set_gemm(NULL, NULL, 0, 0);
}

/* The calling thread's layer choice (fastmlp_set_thread_gemm_layers) overrides the product
   crossover in train_epoch: count the BLAS calls of one epoch of 5-32-32-1 (the 32 x 32
   layer has 1,024 weights, the others 160 and 32) with every product above the crossover. */
static long epoch_gemm_calls(double min_weights)
{
    static const int64_t sizes[] = {5, 32, 32, 1}, acts[] = {1, 1, 0};
    double hyper[FASTMLP_N_HYPER] = {1e-3, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    const int64_t N = 64, np_ = 6 * 32 + 33 * 32 + 33;
    double *p = calloc(np_, sizeof(double)), *g = malloc(sizeof(double) * np_);
    double *st = calloc(3 * np_, sizeof(double)), x[64 * 5], y[64], sw[64], lrs[1] = {1e-3}, bl[1];
    int64_t i, done = 0, perm[64];
    long before = n_gemm_calls;
    unsigned seed = 11;
    for (i = 0; i < np_; i++) p[i] = 0.1 * frand(&seed);
    for (i = 0; i < N * 5; i++) x[i] = frand(&seed);
    for (i = 0; i < N; i++) { y[i] = frand(&seed) > 0; sw[i] = 1; perm[i] = i; }
    fastmlp_set_gemm((void *)naive_sgemm, (void *)naive_dgemm, 0, 0);
    check(fastmlp_set_thread_gemm_layers(min_weights) == FASTMLP_OK, "layer choice set");
    check(fastmlp_train_epoch_f64(&done, p, g, st, bl, x, y, sw, N, perm, N, N, lrs, 0,
                                  FASTMLP_OPT_ADAM, hyper, sizes, acts, 3, FASTMLP_LOSS_BCE)
          == FASTMLP_OK && done == 1, "train_epoch with a layer choice");
    fastmlp_set_thread_gemm_layers(-1);
    fastmlp_set_gemm(NULL, NULL, 0, 0);
    free(p); free(g); free(st);
    return n_gemm_calls - before;
}

int main(void)
{
    static const int64_t s1[] = {5, 32, 32, 1}, a1[] = {1, 1, 0};
    static const int64_t s2[] = {3, 17, 9, 4}, a2[] = {4, 7, 0};
    static const int64_t s3[] = {6, 40, 2}, a3[] = {1, 0};
    long calls_before;
    check(fastmlp_set_gemm(NULL, NULL, -1, 0) == FASTMLP_EVALUE, "negative crossover refused");
    check(fastmlp_set_gemm(NULL, NULL, 0, NAN) == FASTMLP_EVALUE, "NaN crossover refused");
    check(fastmlp_has_gemm() == 0, "no BLAS by default");
    run_net(s1, a1, 3, 300, 64, FASTMLP_LOSS_BCE);
    check(n_gemm_calls > 0, "the BLAS path was taken");
    run_net(s2, a2, 3, 37, 37, FASTMLP_LOSS_CROSS_ENTROPY);
    run_net(s3, a3, 2, 101, 16, FASTMLP_LOSS_MSE);
    check_tile();
    calls_before = n_gemm_calls;
    run_dense(37, 13, 29, 1);
    run_dense(5, 1, 3, 7);
    check(n_gemm_calls > calls_before, "the dense BLAS path was taken");
    check(fastmlp_set_thread_gemm_layers(NAN) == FASTMLP_EVALUE, "NaN layer choice refused");
    check(epoch_gemm_calls(-1) > 0, "no layer choice: the crossover (0) sends layers to BLAS");
    check(epoch_gemm_calls(INFINITY) == 0, "layer choice INFINITY: no layer through BLAS");
    check(epoch_gemm_calls(1025) == 0, "layer choice above every layer: none through BLAS");
    check(epoch_gemm_calls(1024) > 0 && epoch_gemm_calls(1024) < epoch_gemm_calls(0),
          "layer choice 1024: the 32 x 32 layer only");
    printf("%ld checks, %ld failures (blas paths)\n", n_checks, n_fail);
    return n_fail != 0;
}
