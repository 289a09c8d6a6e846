/* C tests of the fastmlp kernels through the public header only.
   Hand-computed values, naive reference loops, finite differences, and the error paths:
   NULL pointers, bad sizes, unknown codes, out-of-range values and NaNs must give the
   documented status codes (never a crash: `make sanitize` runs this under ASan + UBSan).
   One internal piece is tested directly, through internal.h: fm_perm_job, whose pieces the
   public calls run at times that depend on the threads' timing. */
#include "fastmlp.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_checks = 0, g_fail = 0;
#define CHECK(cond) do { g_checks++; if (!(cond)) { g_fail++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_ST(call, want) do { int st_ = (call); g_checks++; if (st_ != (want)) { g_fail++; \
    fprintf(stderr, "FAIL %s:%d: %s returned %d (%s), expected %d\n", __FILE__, __LINE__, \
            #call, st_, fastmlp_strerror(st_), (int)(want)); } } while (0)
#define NEAR(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol) * (1.0 + fabs((double)(b))))

static unsigned long long g_rng = 88172645463325252ULL;
static double urand(void) /* xorshift64, uniform in [-1, 1) */
{
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static void test_misc(void)
{
    int c;
    for (c = -1; c <= 7; c++) CHECK(fastmlp_strerror(c) != NULL && strlen(fastmlp_strerror(c)) > 3);
    /* every code the library returns, the model-file ones included */
    for (c = 16; c <= 19; c++)
        CHECK(strstr(fastmlp_strerror(c), "model file") == fastmlp_strerror(c));
    CHECK(strstr(fastmlp_strerror(20), "unknown") != NULL);
    CHECK(strcmp(fastmlp_strerror(FASTMLP_OK), fastmlp_strerror(FASTMLP_EINVAL)) != 0);
    CHECK_ST(fastmlp_set_num_threads(0), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_set_num_threads(-3), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_set_num_threads(2), FASTMLP_OK);
    CHECK(fastmlp_get_num_threads() == (fastmlp_has_openmp() ? 2 : 1));
    CHECK(fastmlp_optimizer_state_rows(FASTMLP_OPT_SGD) == 1);
    CHECK(fastmlp_optimizer_state_rows(FASTMLP_OPT_ADAMW) == 3);
    CHECK(fastmlp_optimizer_state_rows(5) == -1 && fastmlp_optimizer_state_rows(-1) == -1);
    {
        int64_t sizes[3] = {5, 32, 1}, bad[3] = {5, 0, 1};
        CHECK(fastmlp_n_params(sizes, 2) == 5 * 32 + 32 + 32 + 1);
        CHECK(fastmlp_n_params(bad, 2) == -1);
        CHECK(fastmlp_n_params(NULL, 2) == -1);
        CHECK(fastmlp_n_params(sizes, 0) == -1);
    }
}

/* Overlapping arrays (fastmlp.h, Conventions): a written array sharing a byte with another
   array of the call gives FASTMLP_EINVAL with nothing written; exactly in place (where the
   header says "may alias") and adjacent slices of one buffer are fine. */
static void test_overlap(void)
{
    float buf[40], copy[40];
    double h[FASTMLP_N_HYPER] = {0.1, 0.9, 0.999, 1e-8, 0, 0, 0, 0}, loss;
    int64_t sizes[3] = {2, 3, 1}, acts[2] = {FASTMLP_ACT_TANH, FASTMLP_ACT_IDENTITY}, i;
    for (i = 0; i < 40; i++) buf[i] = (float)(i % 7) * 0.25f - 0.5f;
    memcpy(copy, buf, sizeof buf);
    CHECK_ST(fastmlp_adam_update_f32(buf, buf + 8, buf, buf + 16, NULL, 8, 1, 0.1, 0.9, 0.999,
                                     1e-8, 0, 0, 0, 0), FASTMLP_EINVAL);          /* p == m */
    CHECK_ST(fastmlp_adam_update_f32(buf, buf + 8, buf + 16, buf + 23, NULL, 8, 1, 0.1, 0.9,
                                     0.999, 1e-8, 0, 0, 0, 0), FASTMLP_EINVAL);   /* m, v */
    CHECK_ST(fastmlp_optimizer_update_f32(FASTMLP_OPT_ADAM, buf + 4, buf, buf + 16, 8, 1, h),
             FASTMLP_EINVAL);                                                      /* p, g */
    CHECK_ST(fastmlp_sigmoid_pair_f32(buf, buf, 8), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_activation_forward_f32(buf + 1, buf, 8, FASTMLP_ACT_TANH), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_mse_loss_grad_f32(&loss, buf, buf, buf + 8, buf + 16, 4, 2),
             FASTMLP_EINVAL);
    CHECK_ST(fastmlp_mlp_forward_f32(buf, buf + 8, buf, 4, sizes, acts, 2), FASTMLP_EINVAL);
    CHECK(memcmp(buf, copy, sizeof buf) == 0);
    /* adjacent: p, g, m, v, each 8 floats, one after another */
    CHECK_ST(fastmlp_adam_update_f32(buf, buf + 8, buf + 16, buf + 24, NULL, 8, 1, 0.1, 0.9,
                                     0.999, 1e-8, 0, 0, 0, 0), FASTMLP_OK);
    CHECK_ST(fastmlp_activation_forward_f32(buf, buf, 8, FASTMLP_ACT_TANH), FASTMLP_OK);
    CHECK_ST(fastmlp_sigmoid_pair_f32(buf, buf + 16, 8), FASTMLP_OK);
}

/* The element-wise kernels' choice of threads (fastmlp_set_parallel_min_work): argument
   checks, the estimate of the work (a float64 element counts twice), and the same bits on
   the threads (min work 0) and on one thread (INFINITY). */
static void test_parallel_min_work(void)
{
    enum { N = 100003 };
    const int two = fastmlp_has_openmp() ? 2 : 1;
    float *p[2], *m[2], *v[2], *g = malloc(sizeof(float) * N), *z = malloc(sizeof(float) * N);
    float *out[2], *act[2];
    int k;
    int64_t i;
    CHECK_ST(fastmlp_set_parallel_min_work(NAN), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_set_parallel_min_work(-1.0), FASTMLP_EVALUE);
    CHECK(fastmlp_get_parallel_min_work() == FM_PAR_MIN_WORK_NS);   /* unchanged */
    CHECK_ST(fastmlp_set_num_threads(2), FASTMLP_OK);
    /* 262,144 float32 plain SGD elements: ~66 us of work, below the default 300 us */
    CHECK(fm_par_threads(262144, FM_NS_SGD, 4) == 1);
    CHECK(fm_par_threads(1 << 22, FM_NS_ADAM, 4) == two);
    CHECK(fm_par_threads(200000, 1.0, 4) == 1 && fm_par_threads(200000, 1.0, 8) == two);
    /* a pass (mlp_forward): two threads from the threshold, one more per further half of
       it, at most the team (these machines have 2 cores, but the rule is arithmetic) */
    CHECK(fm_threads_for_work(299999.0, 8) == 1 && fm_threads_for_work(300000.0, 8) == 2);
    CHECK(fm_threads_for_work(449999.0, 8) == 2 && fm_threads_for_work(450000.0, 8) == 3);
    CHECK(fm_threads_for_work(600000.0, 8) == 4 && fm_threads_for_work(1.2e6, 8) == 8);
    CHECK(fm_threads_for_work(1e12, 8) == 8 && fm_threads_for_work(1e12, 1) == 1);
    CHECK(fm_threads_for_work(450000.0, 2) == 2);
    CHECK_ST(fastmlp_set_parallel_min_work(0.0), FASTMLP_OK);
    CHECK(fastmlp_get_parallel_min_work() == 0.0 && fm_par_threads(1, FM_NS_SGD, 4) == two);
    CHECK(fm_threads_for_work(0.0, 8) == 8 && fm_threads_for_work(0.0, 1) == 1);
    for (i = 0; i < N; i++) { g[i] = (float)urand(); z[i] = (float)(20 * urand()); }
    for (k = 0; k < 2; k++) {
        p[k] = malloc(sizeof(float) * N); m[k] = malloc(sizeof(float) * N);
        v[k] = malloc(sizeof(float) * N); out[k] = malloc(sizeof(float) * 2 * N);
        act[k] = malloc(sizeof(float) * N);
        for (i = 0; i < N; i++) { p[k][i] = (float)(i % 97) / 7.0f; m[k][i] = 0; v[k][i] = 0; }
        CHECK_ST(fastmlp_set_parallel_min_work(k == 0 ? 0.0 : INFINITY), FASTMLP_OK);
        CHECK_ST(fastmlp_adam_update_f32(p[k], g, m[k], v[k], NULL, N, 1, 1e-3, 0.9, 0.999,
                                         1e-8, 0.0, 0, 0, 0), FASTMLP_OK);
        CHECK_ST(fastmlp_sgd_update_f32(p[k], g, m[k], N, 2, 0.1, 0.9, 0.0, 0.0, 1, 0),
                 FASTMLP_OK);
        CHECK_ST(fastmlp_sigmoid_pair_f32(out[k], z, N), FASTMLP_OK);
        CHECK_ST(fastmlp_activation_forward_f32(act[k], z, N, FASTMLP_ACT_TANH), FASTMLP_OK);
    }
    CHECK(memcmp(p[0], p[1], sizeof(float) * N) == 0 && memcmp(m[0], m[1], sizeof(float) * N) == 0);
    CHECK(memcmp(v[0], v[1], sizeof(float) * N) == 0);
    CHECK(memcmp(out[0], out[1], sizeof(float) * 2 * N) == 0);
    CHECK(memcmp(act[0], act[1], sizeof(float) * N) == 0);
    CHECK_ST(fastmlp_set_parallel_min_work(FM_PAR_MIN_WORK_NS), FASTMLP_OK);
    for (k = 0; k < 2; k++) { free(p[k]); free(m[k]); free(v[k]); free(out[k]); free(act[k]); }
    free(g);
    free(z);
}

static void test_activations(void)
{
    double z[4] = {-1.0, 0.0, 2.0, NAN}, out[4], dz[4], da[4] = {1, 1, 1, 1};
    float zf[3] = {-1.0f, 0.0f, 2.0f}, of[3];
    CHECK_ST(fastmlp_activation_forward_f64(out, z, 4, FASTMLP_ACT_RELU), FASTMLP_OK);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 2 && isnan(out[3])); /* NaN propagates */
    CHECK_ST(fastmlp_activation_forward_f64(out, z, 3, FASTMLP_ACT_LEAKY_RELU), FASTMLP_OK);
    CHECK(NEAR(out[0], -0.01, 1e-15) && out[2] == 2);
    CHECK_ST(fastmlp_activation_forward_f64(out, z, 3, FASTMLP_ACT_ELU), FASTMLP_OK);
    CHECK(NEAR(out[0], exp(-1.0) - 1, 1e-15) && out[1] == 0 && out[2] == 2);
    CHECK_ST(fastmlp_activation_forward_f64(out, z, 3, FASTMLP_ACT_SIGMOID), FASTMLP_OK);
    CHECK(NEAR(out[1], 0.5, 1e-15) && NEAR(out[0], 1 / (1 + exp(1.0)), 1e-15));
    CHECK_ST(fastmlp_activation_forward_f64(out, z, 3, FASTMLP_ACT_SOFTPLUS), FASTMLP_OK);
    CHECK(NEAR(out[1], log(2.0), 1e-15) && NEAR(out[2], log1p(exp(2.0)), 1e-15));
    CHECK_ST(fastmlp_activation_forward_f64(out, z, 3, FASTMLP_ACT_GELU), FASTMLP_OK);
    CHECK(out[1] == 0 &&
          NEAR(out[2], 1.0 * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (2 + 0.044715 * 8))), 1e-15));
    CHECK_ST(fastmlp_activation_forward_f32(of, zf, 3, FASTMLP_ACT_TANH), FASTMLP_OK);
    CHECK(NEAR(of[2], tanh(2.0), 1e-6) && of[1] == 0);
    CHECK_ST(fastmlp_activation_backward_f64(dz, da, z, 3, FASTMLP_ACT_RELU), FASTMLP_OK);
    CHECK(dz[0] == 0 && dz[1] == 0 && dz[2] == 1);
    CHECK_ST(fastmlp_activation_backward_f64(dz, da, z, 3, FASTMLP_ACT_SIGMOID), FASTMLP_OK);
    CHECK(NEAR(dz[1], 0.25, 1e-15));
    CHECK_ST(fastmlp_activation_backward_f64(dz, da, z, 3, FASTMLP_ACT_TANH), FASTMLP_OK);
    CHECK(NEAR(dz[2], 1 - tanh(2.0) * tanh(2.0), 1e-14) && dz[1] == 1);
    /* gelu' at 0 is 1/2 */
    CHECK_ST(fastmlp_activation_backward_f64(dz, da, z, 3, FASTMLP_ACT_GELU), FASTMLP_OK);
    CHECK(NEAR(dz[1], 0.5, 1e-15));
    /* errors */
    CHECK_ST(fastmlp_activation_forward_f64(NULL, z, 3, 0), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_activation_forward_f64(out, NULL, 3, 0), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_activation_forward_f64(out, z, 0, 0), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_activation_forward_f64(out, z, -5, 0), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_activation_forward_f32(of, zf, 3, 8), FASTMLP_ECODE);
    CHECK_ST(fastmlp_activation_backward_f64(dz, da, z, 3, -1), FASTMLP_ECODE);
    CHECK_ST(fastmlp_activation_backward_f64(dz, NULL, z, 3, 1), FASTMLP_EINVAL);
}

/* predict_proba's link: [sigmoid(-z), sigmoid(z)] per row, 11 rows (an AVX2 vector of
   floats and a scalar tail) */
static void test_sigmoid_pair(void)
{
    float zf[11] = {0.0f, -0.0f, 1.0f, -1.0f, 20.0f, -20.0f, 200.0f, -200.0f, INFINITY,
                    -INFINITY, NAN};
    float pf[22];
    double z[5] = {3.0, -3.0, 40.0, -800.0, NAN}, p[10];
    int i;
    CHECK_ST(fastmlp_sigmoid_pair_f32(pf, zf, 11), FASTMLP_OK);
    CHECK(pf[0] == 0.5f && pf[1] == 0.5f && pf[2] == 0.5f && pf[3] == 0.5f);
    CHECK(NEAR(pf[5], 1 / (1 + exp(-1.0)), 1e-7) && NEAR(pf[4], 1 / (1 + exp(1.0)), 1e-7));
    CHECK(pf[4] == pf[7] && pf[5] == pf[6] && pf[8] == pf[11] && pf[9] == pf[10]); /* z, -z */
    CHECK(NEAR(pf[8], exp(-20.0) / (1 + exp(-20.0)), 1e-7 * exp(-20.0))); /* no 1 - p */
    CHECK(pf[12] == 0 && pf[13] == 1 && pf[14] == 1 && pf[15] == 0);  /* exp(-200) < FLT_MIN */
    CHECK(pf[16] == 0 && pf[17] == 1 && pf[18] == 1 && pf[19] == 0);
    CHECK(isnan(pf[20]) && isnan(pf[21]));
    CHECK_ST(fastmlp_sigmoid_pair_f64(p, z, 5), FASTMLP_OK);
    for (i = 0; i < 4; i++) CHECK(NEAR(p[2 * i] + p[2 * i + 1], 1.0, 1e-15));
    CHECK(NEAR(p[1], 1 / (1 + exp(-3.0)), 1e-15) && NEAR(p[4], exp(-40.0), 1e-15 * exp(-40.0)));
    CHECK(p[6] == 1 && p[7] == 0 && isnan(p[8]) && isnan(p[9]));
    CHECK_ST(fastmlp_sigmoid_pair_f64(NULL, z, 5), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_sigmoid_pair_f32(pf, NULL, 5), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_sigmoid_pair_f64(p, z, 0), FASTMLP_ESIZE);
}

/* naive z = x w + b for checking the blocked kernels */
static void naive_dense(double *z, const double *x, const double *w, const double *b,
                        int B, int ni, int no)
{
    int r, i, c;
    for (r = 0; r < B; r++)
        for (c = 0; c < no; c++) {
            double s = b[c];
            for (i = 0; i < ni; i++) s += x[r * ni + i] * w[i * no + c];
            z[r * no + c] = s;
        }
}

static void test_dense(void)
{
    /* hand values */
    double x[2] = {1, 2}, w[6] = {1, 0, -1, 2, 1, 0}, b[3] = {0.5, -3, 0}, z[3], out[3];
    CHECK_ST(fastmlp_dense_forward_f64(out, z, x, w, b, 1, 2, 3, FASTMLP_ACT_RELU), FASTMLP_OK);
    CHECK(z[0] == 5.5 && z[1] == -1 && z[2] == -1 && out[0] == 5.5 && out[1] == 0 && out[2] == 0);
    /* awkward sizes against naive loops, both dtypes (hits every micro-kernel edge) */
    {
        const int shapes[6][3] = {{37, 19, 23}, {1, 1, 1}, {13, 40, 17}, {50, 3, 64}, {29, 21, 1}, {7, 600, 24}};
        int s;
        for (s = 0; s < 6; s++) {
            int B = shapes[s][0], ni = shapes[s][1], no = shapes[s][2], k, r, c, i;
            double *X = malloc(sizeof(double) * B * ni), *W = malloc(sizeof(double) * ni * no);
            double *Bv = malloc(sizeof(double) * no), *Z = malloc(sizeof(double) * B * no);
            double *Zr = malloc(sizeof(double) * B * no), *O = malloc(sizeof(double) * B * no);
            double *D = malloc(sizeof(double) * B * no), *DX = malloc(sizeof(double) * B * ni);
            double *DW = malloc(sizeof(double) * ni * no), *DB = malloc(sizeof(double) * no);
            float *Xf = malloc(sizeof(float) * B * ni), *Wf = malloc(sizeof(float) * ni * no);
            float *Bf = malloc(sizeof(float) * no), *Zf = malloc(sizeof(float) * B * no);
            float *Of = malloc(sizeof(float) * B * no);
            double err = 0, errf = 0, errb = 0;
            for (k = 0; k < B * ni; k++) Xf[k] = (float)(X[k] = urand());
            for (k = 0; k < ni * no; k++) Wf[k] = (float)(W[k] = urand());
            for (k = 0; k < no; k++) Bf[k] = (float)(Bv[k] = urand());
            for (k = 0; k < B * no; k++) D[k] = urand();
            naive_dense(Zr, X, W, Bv, B, ni, no);
            CHECK_ST(fastmlp_dense_forward_f64(O, Z, X, W, Bv, B, ni, no, FASTMLP_ACT_IDENTITY),
                     FASTMLP_OK);
            CHECK_ST(fastmlp_dense_forward_f32(Of, Zf, Xf, Wf, Bf, B, ni, no, FASTMLP_ACT_IDENTITY),
                     FASTMLP_OK);
            for (k = 0; k < B * no; k++) {
                err = fmax(err, fabs(Z[k] - Zr[k]));
                errf = fmax(errf, fabs(Zf[k] - Zr[k]));
            }
            CHECK(err < 1e-12 && errf < 1e-4);
            /* backward with identity: dw = x^T d, db = colsum d, dx = d w^T */
            CHECK_ST(fastmlp_dense_backward_f64(DX, DW, DB, D, X, W, Z, B, ni, no,
                                                FASTMLP_ACT_IDENTITY), FASTMLP_OK);
            for (i = 0; i < ni; i++)
                for (c = 0; c < no; c++) {
                    double sacc = 0;
                    for (r = 0; r < B; r++) sacc += X[r * ni + i] * D[r * no + c];
                    errb = fmax(errb, fabs(sacc - DW[i * no + c]));
                }
            for (c = 0; c < no; c++) {
                double sacc = 0;
                for (r = 0; r < B; r++) sacc += D[r * no + c];
                errb = fmax(errb, fabs(sacc - DB[c]));
            }
            for (r = 0; r < B; r++)
                for (i = 0; i < ni; i++) {
                    double sacc = 0;
                    for (c = 0; c < no; c++) sacc += D[r * no + c] * W[i * no + c];
                    errb = fmax(errb, fabs(sacc - DX[r * ni + i]));
                }
            CHECK(errb < 1e-12);
            CHECK_ST(fastmlp_dense_backward_f64(NULL, DW, DB, D, X, W, Z, B, ni, no, 1),
                     FASTMLP_OK); /* dx optional */
            free(X); free(W); free(Bv); free(Z); free(Zr); free(O); free(D); free(DX);
            free(DW); free(DB); free(Xf); free(Wf); free(Bf); free(Zf); free(Of);
        }
    }
    CHECK_ST(fastmlp_dense_forward_f64(out, z, x, w, NULL, 1, 2, 3, 1), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_dense_forward_f64(out, z, x, w, b, 0, 2, 3, 1), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_dense_forward_f64(out, z, x, w, b, 1, -2, 3, 1), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_dense_forward_f64(out, z, x, w, b, (int64_t)1 << 40, (int64_t)1 << 40, 3, 1),
             FASTMLP_ESIZE); /* overflowing extents */
    CHECK_ST(fastmlp_dense_forward_f64(out, z, x, w, b, 1, 2, 3, 9), FASTMLP_ECODE);
    CHECK_ST(fastmlp_dense_backward_f64(NULL, NULL, b, z, x, w, z, 1, 2, 3, 1), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_dense_backward_f64(NULL, w, b, z, x, w, z, 1, 0, 3, 1), FASTMLP_ESIZE);
    /* valid extents whose scratch (2^40 doubles) cannot be allocated: ENOMEM, nothing read */
    CHECK_ST(fastmlp_dense_backward_f64(NULL, w, b, z, x, w, z, (int64_t)1 << 40, 2, 1, 1),
             FASTMLP_ENOMEM);
}

static void test_losses(void)
{
    double loss = -1, zero[1] = {0}, one[1] = {1}, sw[2] = {1, 1}, g[4];
    double lg[2] = {0, 0}, cls1[1] = {1}, out[2] = {1, 3}, y0[2] = {0, 0};
    float lf[1] = {0}, yf[1] = {1}, swf[1] = {1}, gf[1];
    CHECK_ST(fastmlp_bce_loss_grad_f64(&loss, g, zero, one, sw, 1), FASTMLP_OK);
    CHECK(NEAR(loss, log(2.0), 1e-15) && NEAR(g[0], -0.5, 1e-15));
    CHECK_ST(fastmlp_bce_loss_grad_f32(&loss, gf, lf, yf, swf, 1), FASTMLP_OK);
    CHECK(NEAR(loss, log(2.0), 1e-6) && NEAR(gf[0], -0.5, 1e-6));
    CHECK_ST(fastmlp_cross_entropy_loss_grad_f64(&loss, g, lg, cls1, sw, 1, 2), FASTMLP_OK);
    CHECK(NEAR(loss, log(2.0), 1e-15) && NEAR(g[0], 0.5, 1e-15) && NEAR(g[1], -0.5, 1e-15));
    CHECK_ST(fastmlp_mse_loss_grad_f64(&loss, g, out, y0, sw, 1, 2), FASTMLP_OK);
    CHECK(NEAR(loss, 5.0, 1e-15) && NEAR(g[0], 1.0, 1e-15) && NEAR(g[1], 3.0, 1e-15));
    CHECK_ST(fastmlp_loss_grad_f64(&loss, g, out, y0, sw, 1, 2, FASTMLP_LOSS_MSE), FASTMLP_OK);
    CHECK(NEAR(loss, 5.0, 1e-15));
    /* weighted mean: two samples with weights 3 and 1 */
    {
        double z2[2] = {0, 0}, t2[2] = {1, 0}, w2[2] = {3, 1};
        CHECK_ST(fastmlp_bce_loss_grad_f64(&loss, g, z2, t2, w2, 2), FASTMLP_OK);
        CHECK(NEAR(loss, log(2.0), 1e-15) && NEAR(g[0], 3 * -0.5 / 4, 1e-15) &&
              NEAR(g[1], 0.5 / 4, 1e-15));
    }
    /* NaN logits give a NaN loss (no error: the epoch driver decides what to do) */
    {
        double zn[1] = {NAN};
        CHECK_ST(fastmlp_bce_loss_grad_f64(&loss, g, zn, one, sw, 1), FASTMLP_OK);
        CHECK(isnan(loss) && isnan(g[0]));
    }
    /* class indices out of range, NaN class */
    {
        double bad[1] = {2}, neg[1] = {-1}, nan_[1] = {NAN};
        CHECK_ST(fastmlp_cross_entropy_loss_grad_f64(&loss, g, lg, bad, sw, 1, 2), FASTMLP_EVALUE);
        CHECK_ST(fastmlp_cross_entropy_loss_grad_f64(&loss, g, lg, neg, sw, 1, 2), FASTMLP_EVALUE);
        CHECK_ST(fastmlp_cross_entropy_loss_grad_f64(&loss, g, lg, nan_, sw, 1, 2), FASTMLP_EVALUE);
    }
    CHECK_ST(fastmlp_bce_loss_grad_f64(NULL, g, zero, one, sw, 1), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_bce_loss_grad_f64(&loss, g, zero, one, NULL, 1), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_bce_loss_grad_f64(&loss, g, zero, one, sw, 0), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_mse_loss_grad_f64(&loss, g, out, y0, sw, 1, 0), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_loss_grad_f64(&loss, g, out, y0, sw, 1, 2, 3), FASTMLP_ECODE);
    {   /* weights: negative, NaN, inf, or summing to 0 (0 / 0: a NaN loss before) refused,
           nothing written */
        double z2[2] = {0, 0}, t2[2] = {1, 0}, bad[4][2] = {{0, 0}, {-1, -1}, {1, NAN},
                                                            {INFINITY, 1}};
        float zf[2] = {0, 0}, tf[2] = {1, 0}, wf[2] = {0, 0}, gf2[2] = {7, 7};
        int b;
        for (b = 0; b < 4; b++) {
            g[0] = g[1] = 7; loss = 7;
            CHECK_ST(fastmlp_bce_loss_grad_f64(&loss, g, z2, t2, bad[b], 2), FASTMLP_EVALUE);
            CHECK_ST(fastmlp_mse_loss_grad_f64(&loss, g, z2, t2, bad[b], 2, 1), FASTMLP_EVALUE);
            CHECK(loss == 7 && g[0] == 7 && g[1] == 7);
        }
        CHECK_ST(fastmlp_bce_loss_grad_f32(&loss, gf2, zf, tf, wf, 2), FASTMLP_EVALUE);
        CHECK(gf2[0] == 7 && gf2[1] == 7);
        wf[1] = 1;   /* one weight is enough */
        CHECK_ST(fastmlp_bce_loss_grad_f32(&loss, gf2, zf, tf, wf, 2), FASTMLP_OK);
    }
    /* bce with several outputs (multilabel): the outputs' binary cross-entropies, summed */
    CHECK_ST(fastmlp_loss_grad_f64(&loss, g, out, y0, sw, 1, 2, FASTMLP_LOSS_BCE), FASTMLP_OK);
    CHECK(NEAR(loss, log1p(exp(1.0)) + log1p(exp(3.0)), 1e-14) &&
          NEAR(g[1], 1 / (1 + exp(-3.0)), 1e-15));
}

/* The float32 BCE (vectorised exp / log1p on AVX2) against float64 over a sweep of logits,
   including a well-classified batch whose loss is tiny, and NaN / inf logits. */
static void test_bce_f32_accuracy(void)
{
    enum { B = 1003 };
    static float z[B], t[B], w[B], g[B];
    static double zd[B], td[B], wd[B], gd[B];
    double lf, ld, gmax = 0, gerr = 0;
    int i, pass;
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < B; i++) {
            /* pass 0: logits over [-100, 100] and around 0; pass 1: all well classified */
            double v = pass == 0 ? (i % 3 == 0 ? 100 * urand() : 4 * urand()) : 6 + 6 * urand();
            z[i] = (float)v; zd[i] = z[i];
            t[i] = pass == 0 ? (float)(i % 2) : 1.0f; td[i] = t[i];
            w[i] = (float)(1 + 0.5 * urand()); wd[i] = w[i];
        }
        CHECK_ST(fastmlp_bce_loss_grad_f32(&lf, g, z, t, w, B), FASTMLP_OK);
        CHECK_ST(fastmlp_bce_loss_grad_f64(&ld, gd, zd, td, wd, B), FASTMLP_OK);
        gmax = gerr = 0;
        for (i = 0; i < B; i++) {
            gmax = fmax(gmax, fabs(gd[i]));
            gerr = fmax(gerr, fabs(g[i] - gd[i]));
        }
        CHECK(fabs(lf - ld) <= 2e-6 * fabs(ld));
        CHECK(gerr <= 2e-6 * gmax);
    }
    /* (all targets are 1 now) NaN logit: NaN loss and gradient; +inf: gradient 0 and a NaN
       loss term (inf - inf, as NumPy); -inf: gradient -w/wsum and an infinite loss */
    z[3] = NAN;
    z[11] = INFINITY;
    z[12] = -INFINITY;
    CHECK_ST(fastmlp_bce_loss_grad_f32(&lf, g, z, t, w, B), FASTMLP_OK);
    CHECK(isnan(lf) && isnan(g[3]) && g[11] == 0 && g[12] < 0 && !isnan(g[12]));
    z[3] = 1;
    CHECK_ST(fastmlp_bce_loss_grad_f32(&lf, g, z, t, w, B), FASTMLP_OK);
    CHECK(isnan(lf));
    z[11] = 1;
    CHECK_ST(fastmlp_bce_loss_grad_f32(&lf, g, z, t, w, B), FASTMLP_OK);
    CHECK(isinf(lf) && lf > 0);
}

static void test_optimizers(void)
{
    double p[1], g[1] = {2}, buf[1], st[3] = {0, 0, 0}, h[8] = {0};
    float pf[1], gf[1] = {0.5f}, mf[1] = {0}, vf[1] = {0};
    p[0] = 1;
    CHECK_ST(fastmlp_sgd_update_f64(p, g, NULL, 1, 1, 0.1, 0, 0, 0, 0, 0), FASTMLP_OK);
    CHECK(NEAR(p[0], 0.8, 1e-15));
    p[0] = 1;
    CHECK_ST(fastmlp_sgd_update_f64(p, g, buf, 1, 1, 0.1, 0.9, 0, 0, 0, 0), FASTMLP_OK);
    CHECK(buf[0] == 2 && NEAR(p[0], 0.8, 1e-15));
    CHECK_ST(fastmlp_sgd_update_f64(p, g, buf, 1, 2, 0.1, 0.9, 0, 0, 0, 0), FASTMLP_OK);
    CHECK(NEAR(buf[0], 3.8, 1e-15) && NEAR(p[0], 0.8 - 0.38, 1e-14));
    /* adam, first step: m/(1-b1) = g, sqrt(v/(1-b2)) = |g| -> p -= lr g / (|g| + eps) */
    pf[0] = 1;
    CHECK_ST(fastmlp_adam_update_f32(pf, gf, mf, vf, NULL, 1, 1, 0.1, 0.9, 0.999, 1e-8, 0, 0, 0,
                                     0), FASTMLP_OK);
    CHECK(NEAR(pf[0], 0.9, 1e-6) && NEAR(mf[0], 0.05, 1e-6) && NEAR(vf[0], 0.00025, 1e-6));
    /* adamw decays the parameter first: p (1 - lr wd) */
    p[0] = 1; st[0] = st[1] = st[2] = 0;
    h[0] = 0.1; h[1] = 0.9; h[2] = 0.999; h[3] = 1e-8; h[4] = 0.5;
    g[0] = 0.0; /* zero gradient: only the decay moves p */
    CHECK_ST(fastmlp_optimizer_update_f64(FASTMLP_OPT_ADAMW, p, g, st, 1, 1, h), FASTMLP_OK);
    CHECK(NEAR(p[0], 0.95, 1e-15));
    /* adagrad: p -= lr g / (sqrt(g^2) + eps) */
    p[0] = 1; g[0] = 2; st[0] = 0;
    CHECK_ST(fastmlp_adagrad_update_f64(p, g, st, 1, 1, 0.1, 0, 0, 1e-10, 0), FASTMLP_OK);
    CHECK(NEAR(p[0], 0.9, 1e-9) && st[0] == 4);
    /* rmsprop: v = (1 - alpha) g^2, p -= lr g / (sqrt(v) + eps) */
    p[0] = 1; st[0] = st[1] = st[2] = 0;
    CHECK_ST(fastmlp_rmsprop_update_f64(p, g, st, NULL, NULL, 1, 1, 0.01, 0.99, 1e-8, 0, 0, 0, 0),
             FASTMLP_OK);
    CHECK(NEAR(st[0], 0.04, 1e-15) && NEAR(p[0], 1 - 0.01 * 2 / (0.2 + 1e-8), 1e-14));
    /* errors */
    CHECK_ST(fastmlp_sgd_update_f64(p, g, NULL, 1, 1, 0.1, 0.9, 0, 0, 0, 0), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_sgd_update_f64(NULL, g, buf, 1, 1, 0.1, 0, 0, 0, 0, 0), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_sgd_update_f64(p, g, buf, 0, 1, 0.1, 0, 0, 0, 0, 0), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_sgd_update_f64(p, g, buf, 1, 0, 0.1, 0, 0, 0, 0, 0), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_adam_update_f64(p, g, st, st + 1, NULL, 1, 1, 0.1, 0.9, 0.999, 1e-8, 0, 1, 0,
                                     0), FASTMLP_EINVAL); /* amsgrad needs vmax */
    CHECK_ST(fastmlp_rmsprop_update_f64(p, g, st, NULL, NULL, 1, 1, 0.01, 0.99, 1e-8, 0, 0, 1, 0),
             FASTMLP_EINVAL); /* centered needs grad_avg */
    CHECK_ST(fastmlp_optimizer_update_f64(5, p, g, st, 1, 1, h), FASTMLP_ECODE);
    CHECK_ST(fastmlp_optimizer_update_f64(-1, p, g, st, 1, 1, h), FASTMLP_ECODE);
    CHECK_ST(fastmlp_optimizer_update_f64(0, p, g, st, 1, 1, NULL), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_optimizer_update_f64(0, p, g, st, 1, 0, h), FASTMLP_EVALUE);
    {   /* a flag other than 0 or 1 is refused, nothing written (maximize = -1 ran as on) */
        double ha[FASTMLP_N_HYPER] = {0.1, 0.9, 0.999, 1e-8, 0, 0, -1, 0};
        double pa[2] = {1, 2}, ga[2] = {1, 1}, sa[6] = {0};
        CHECK_ST(fastmlp_optimizer_update_f64(FASTMLP_OPT_ADAM, pa, ga, sa, 2, 1, ha),
                 FASTMLP_EVALUE);
        ha[6] = 0; ha[5] = 2;    /* amsgrad */
        CHECK_ST(fastmlp_optimizer_update_f64(FASTMLP_OPT_ADAM, pa, ga, sa, 2, 1, ha),
                 FASTMLP_EVALUE);
        ha[5] = 1; ha[6] = 1;    /* both on: accepted */
        CHECK_ST(fastmlp_optimizer_update_f64(FASTMLP_OPT_ADAM, pa, ga, sa, 2, 1, ha),
                 FASTMLP_OK);
        pa[0] = 1; pa[1] = 2;
        CHECK_ST(fastmlp_sgd_update_f64(pa, ga, sa, 2, 1, 0.1, 0.9, 0, 0, 2, 0), FASTMLP_EVALUE);
        CHECK_ST(fastmlp_adagrad_update_f64(pa, ga, sa, 2, 1, 0.1, 0, 0, 1e-10, -1),
                 FASTMLP_EVALUE);
        CHECK_ST(fastmlp_rmsprop_update_f64(pa, ga, sa, sa + 2, NULL, 2, 1, 0.01, 0.99, 1e-8, 0,
                                            0, 2, 0), FASTMLP_EVALUE);
        CHECK(pa[0] == 1 && pa[1] == 2);
    }
}

/* A small network: mlp_loss_grad against central finite differences (float64); bce with
   two outputs is multilabel; cross_entropy and mse run with an L2 term (the _l2 entry). */
static void test_mlp_gradient(void)
{
    int64_t sizes[4] = {3, 5, 4, 2}, acts[3] = {FASTMLP_ACT_TANH, FASTMLP_ACT_GELU, 0};
    enum { B = 7, NP = 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2 };
    double params[NP], grad[NP], gtmp[NP], tmp[NP], x[B * 3], y[B * 2], sw[B], loss, lp, lm, err = 0;
    double out[B * 2];
    int i, lo;
    CHECK(fastmlp_n_params(sizes, 3) == NP);
    for (i = 0; i < NP; i++) params[i] = 0.7 * urand();
    for (i = 0; i < B * 3; i++) x[i] = urand();
    for (i = 0; i < B; i++) sw[i] = 1.0 + 0.5 * urand();
    for (lo = 0; lo < 3; lo++) {
        const double l2 = 0.25 * lo;
        for (i = 0; i < B; i++) {
            y[2 * i] = lo != FASTMLP_LOSS_MSE ? (double)(i % 2) : urand();
            y[2 * i + 1] = lo == FASTMLP_LOSS_BCE ? (double)(i / 2 % 2) : urand();
        }
        CHECK_ST(fastmlp_mlp_loss_grad_l2_f64(&loss, grad, params, x, y, sw, B, sizes, acts, 3,
                                              lo, l2), FASTMLP_OK);
        for (i = 0; i < NP; i++) {
            const double hstep = 1e-6;
            memcpy(tmp, params, sizeof tmp);
            tmp[i] += hstep;
            CHECK_ST(fastmlp_mlp_loss_grad_l2_f64(&lp, gtmp, tmp, x, y, sw, B, sizes, acts, 3, lo,
                                                  l2), 0);
            tmp[i] -= 2 * hstep;
            CHECK_ST(fastmlp_mlp_loss_grad_l2_f64(&lm, gtmp, tmp, x, y, sw, B, sizes, acts, 3, lo,
                                                  l2), 0);
            err = fmax(err, fabs((lp - lm) / (2 * hstep) - grad[i]));
        }
        CHECK(err < 1e-7);
    }
    CHECK_ST(fastmlp_mlp_forward_f64(out, params, x, B, sizes, acts, 3), FASTMLP_OK);
    /* errors */
    {
        int64_t badacts[3] = {1, 8, 0}, badsizes[4] = {3, 0, 4, 2};
        CHECK_ST(fastmlp_mlp_forward_f64(out, params, x, B, sizes, badacts, 3), FASTMLP_ECODE);
        CHECK_ST(fastmlp_mlp_forward_f64(out, params, x, B, badsizes, acts, 3), FASTMLP_ESIZE);
        CHECK_ST(fastmlp_mlp_forward_f64(out, params, x, B, sizes, acts, 0), FASTMLP_ESIZE);
        CHECK_ST(fastmlp_mlp_forward_f64(out, params, x, 0, sizes, acts, 3), FASTMLP_ESIZE);
        CHECK_ST(fastmlp_mlp_forward_f64(out, NULL, x, B, sizes, acts, 3), FASTMLP_EINVAL);
        CHECK_ST(fastmlp_mlp_loss_grad_f64(&loss, grad, params, x, y, sw, B, sizes, NULL, 3, 2),
                 FASTMLP_EINVAL);
        CHECK_ST(fastmlp_mlp_loss_grad_l2_f64(&loss, grad, params, x, y, sw, B, sizes, acts, 3,
                                              2, -1.0), FASTMLP_EVALUE); /* l2 < 0 */
        CHECK_ST(fastmlp_mlp_loss_grad_l2_f64(&loss, grad, params, x, y, sw, B, sizes, acts, 3,
                                              2, NAN), FASTMLP_EVALUE);
        CHECK_ST(fastmlp_mlp_loss_grad_f64(&loss, grad, params, x, y, sw, B, sizes, acts, 3, 7),
                 FASTMLP_ECODE);
        y[0] = 2.0; /* class index out of range */
        CHECK_ST(fastmlp_mlp_loss_grad_f64(&loss, grad, params, x, y, sw, B, sizes, acts, 3, 1),
                 FASTMLP_EVALUE);
    }
}

/* train_epoch: learns a separable problem; stops before a non-finite update; deterministic. */
static void test_train_epoch(void)
{
    enum { N = 300, NP = 2 * 8 + 8 + 8 * 1 + 1 };
    int64_t sizes[3] = {2, 8, 1}, acts[2] = {FASTMLP_ACT_RELU, 0}, perm[N], done = -1;
    float x[N * 2], y[N], sw[N], params[NP], p0[NP], grad[NP], state[3 * NP], p1[NP];
    double losses[20], lrs[20], h[8] = {0, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    int i, e;
    for (i = 0; i < N; i++) {
        x[2 * i] = (float)urand();
        x[2 * i + 1] = (float)urand();
        y[i] = x[2 * i] + x[2 * i + 1] > 0 ? 1.0f : 0.0f;
        sw[i] = 1.0f;
        perm[i] = (i * 7) % N;
    }
    for (i = 0; i < NP; i++) p0[i] = (float)(0.5 * urand());
    for (i = 0; i < 20; i++) lrs[i] = 0.05;
    /* determinism: two runs from the same start give bit-identical parameters */
    for (e = 0; e < 2; e++) {
        memcpy(params, p0, sizeof params);
        memset(state, 0, sizeof state);
        CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                         32, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                         FASTMLP_LOSS_BCE), FASTMLP_OK);
        CHECK(done == 10);
        if (e == 0) memcpy(p1, params, sizeof p1);
        else CHECK(memcmp(p1, params, sizeof p1) == 0);
    }
    for (e = 0; e < 30; e++)
        CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                         32, lrs, 10 * (e + 1), FASTMLP_OPT_ADAM, h, sizes, acts,
                                         2, FASTMLP_LOSS_BCE), FASTMLP_OK);
    CHECK(losses[9] < 0.15); /* separable: the loss falls well below log 2 */
    /* a NaN feature in the 4th batch: 3 batches applied, then stop without updating */
    {
        float saved = x[2 * perm[3 * 32 + 5]];
        float three[NP];
        /* reference: the first 3 batches alone */
        memcpy(params, p0, sizeof params);
        memset(state, 0, sizeof state);
        CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm,
                                         3 * 32, 32, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                         FASTMLP_LOSS_BCE), FASTMLP_OK);
        CHECK(done == 3);
        memcpy(three, params, sizeof three);
        x[2 * perm[3 * 32 + 5]] = NAN;
        memcpy(params, p0, sizeof params);
        memset(state, 0, sizeof state);
        CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                         32, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                         FASTMLP_LOSS_BCE), FASTMLP_ENONFINITE);
        CHECK(done == 3 && isnan(losses[3]) && !isnan(losses[2]));
        CHECK(memcmp(three, params, sizeof three) == 0); /* the NaN update was not applied */
        x[2 * perm[3 * 32 + 5]] = saved;
    }
    {   /* an int32 row order: the same epoch bit for bit, and its range checked */
        int32_t perm32[N];
        float a[NP], sa[3 * NP];
        for (i = 0; i < N; i++) perm32[i] = (int32_t)perm[i];
        memcpy(params, p0, sizeof params);
        memset(state, 0, sizeof state);
        CHECK_ST(fastmlp_train_epoch_l2_f32(&done, params, grad, state, losses, x, y, sw, N,
                                            perm, N, 32, lrs, 0, FASTMLP_OPT_ADAM, h, sizes,
                                            acts, 2, FASTMLP_LOSS_BCE, 0.0), FASTMLP_OK);
        memcpy(a, params, sizeof a);
        memcpy(sa, state, sizeof sa);
        memcpy(params, p0, sizeof params);
        memset(state, 0, sizeof state);
        CHECK_ST(fastmlp_train_epoch_i32_l2_f32(&done, params, grad, state, losses, x, y, sw, N,
                                                perm32, N, 32, lrs, 0, FASTMLP_OPT_ADAM, h,
                                                sizes, acts, 2, FASTMLP_LOSS_BCE, 0.0),
                 FASTMLP_OK);
        CHECK(done == 10 && memcmp(a, params, sizeof a) == 0 &&
              memcmp(sa, state, sizeof sa) == 0);
        perm32[40] = N;
        CHECK_ST(fastmlp_train_epoch_i32_l2_f32(&done, params, grad, state, losses, x, y, sw, N,
                                                perm32, N, 32, lrs, 0, FASTMLP_OPT_ADAM, h,
                                                sizes, acts, 2, FASTMLP_LOSS_BCE, 0.0),
                 FASTMLP_EVALUE);
        perm32[40] = -1;
        CHECK_ST(fastmlp_train_epoch_i32_l2_f32(&done, params, grad, state, losses, x, y, sw, N,
                                                perm32, N, 32, lrs, 0, FASTMLP_OPT_ADAM, h,
                                                sizes, acts, 2, FASTMLP_LOSS_BCE, 0.0),
                 FASTMLP_EVALUE);
        CHECK(done == 0 && memcmp(a, params, sizeof a) == 0);   /* nothing changed */
    }
    {   /* sw NULL: every row weighs 1, the same bits as an array of ones (int64 and int32
           orders, and one batch through mlp_loss_grad in both dtypes) */
        int32_t perm32[N];
        float a[NP], sa[3 * NP];
        double la[20], lg = 0, lg1 = 0, xd[N * 2], yd[N], swd[N], pd[NP], gd[NP], gd1[NP];
        int k;
        for (i = 0; i < N; i++) perm32[i] = (int32_t)perm[i];
        for (k = 0; k < 4; k++) {   /* k / 2: int32 order; k % 2: sw NULL */
            const float *w = k % 2 ? NULL : sw;
            memcpy(params, p0, sizeof params);
            memset(state, 0, sizeof state);
            if (k / 2 == 0)
                CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, w, N,
                                                 perm, N, 32, lrs, 0, FASTMLP_OPT_ADAM, h,
                                                 sizes, acts, 2, FASTMLP_LOSS_BCE), FASTMLP_OK);
            else
                CHECK_ST(fastmlp_train_epoch_i32_l2_f32(&done, params, grad, state, losses, x,
                                                        y, w, N, perm32, N, 32, lrs, 0,
                                                        FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                                        FASTMLP_LOSS_BCE, 0.0), FASTMLP_OK);
            CHECK(done == 10);
            if (k % 2 == 0) {   /* with the array of ones: what NULL must give */
                memcpy(a, params, sizeof a);
                memcpy(sa, state, sizeof sa);
                memcpy(la, losses, sizeof la);
            } else {
                CHECK(memcmp(a, params, sizeof a) == 0 && memcmp(sa, state, sizeof sa) == 0);
                CHECK(memcmp(la, losses, 10 * sizeof(double)) == 0);
            }
        }
        for (i = 0; i < N; i++) {
            xd[2 * i] = x[2 * i];
            xd[2 * i + 1] = x[2 * i + 1];
            yd[i] = y[i];
            swd[i] = 1.0;
        }
        for (i = 0; i < NP; i++) pd[i] = p0[i];
        CHECK_ST(fastmlp_mlp_loss_grad_f64(&lg1, gd1, pd, xd, yd, swd, N, sizes, acts, 2,
                                           FASTMLP_LOSS_BCE), FASTMLP_OK);
        CHECK_ST(fastmlp_mlp_loss_grad_f64(&lg, gd, pd, xd, yd, NULL, N, sizes, acts, 2,
                                           FASTMLP_LOSS_BCE), FASTMLP_OK);
        CHECK(lg == lg1 && memcmp(gd, gd1, sizeof gd) == 0);
    }
    /* errors */
    CHECK_ST(fastmlp_train_epoch_f32(NULL, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, NULL, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 0,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, -1, 3, h, sizes, acts, 2, 0), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 9, h, sizes, acts, 2, 0), FASTMLP_ECODE);
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 5), FASTMLP_ECODE);
    perm[17] = N; /* sample index out of range */
    memcpy(p1, params, sizeof p1);
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_EVALUE);
    CHECK(done == 0 && memcmp(p1, params, sizeof p1) == 0); /* nothing changed */
    perm[17] = -1;
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_EVALUE);
    perm[17] = 17;
    double lw;
    sw[40] = -1;   /* a negative weight anywhere: refused up front, nothing trained */
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_EVALUE);
    CHECK(done == 0 && memcmp(p1, params, sizeof p1) == 0);
    sw[40] = NAN;
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_mlp_loss_grad_f32(&lw, grad, params, x, y, sw, N, sizes, acts, 2, 0),
             FASTMLP_EVALUE);
    sw[40] = 1;
    {   /* the second batch (perm[32..63]) weighs nothing: the epoch stops there, NaN loss */
        float zeros[32] = {0};
        for (i = 32; i < 64; i++) sw[perm[i]] = 0;
        CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm,
                                         N, 32, lrs, 0, 3, h, sizes, acts, 2, 0),
                 FASTMLP_ENONFINITE);
        CHECK(done == 1 && isnan(losses[1]));
        for (i = 32; i < 64; i++) sw[perm[i]] = 1;
        CHECK_ST(fastmlp_mlp_loss_grad_f32(&lw, grad, params, x, y, zeros, 32, sizes, acts, 2,
                                           0), FASTMLP_EVALUE);
    }
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, NULL, x, y, sw, N, perm, N, 32,
                                     lrs, 0, 3, h, sizes, acts, 2, 0), FASTMLP_EINVAL);
    /* no samples: nothing to do */
    CHECK_ST(fastmlp_train_epoch_f32(&done, params, grad, state, NULL, x, y, sw, N, NULL, 0, 32,
                                     NULL, 0, 3, h, sizes, acts, 2, 0), FASTMLP_OK);
    CHECK(done == 0);
}

/* fm_perm_job: any number of pieces, then the rest, gives fastmlp_epoch_permutation's
   order (int32 and int64 entries; one bucket, a few, and the count / scatter / shuffle
   phases each cut midway). */
static void test_perm_job(void)
{
    enum { N = 70001 };
    static int64_t want[N], got[N];
    static int32_t got32[N];
    const int64_t ns[] = {1, 300, 16385, N};
    const long pieces[] = {0, 1, 2, 150, 300, 600, 1000000};
    int a, b, same;
    int64_t i;
    for (a = 0; a < 4; a++)
        for (b = 0; b < 7; b++) {
            fm_perm_job j;
            const int64_t n = ns[a];
            const uint64_t key = 0x9E3779B97F4A7C15ULL * (uint64_t)(a * 7 + b + 1);
            long p = 0;
            CHECK(fastmlp_epoch_permutation(want, n, key) == FASTMLP_OK);
            CHECK(fm_perm_job_init(&j, got, 0, n, key) == FASTMLP_OK);
            while (p < pieces[b] && fm_perm_job_try(&j)) p++;
            CHECK(fm_perm_job_finish(&j) == FASTMLP_OK);
            CHECK(memcmp(want, got, (size_t)n * sizeof(int64_t)) == 0);
            CHECK(fm_perm_job_init(&j, got32, 1, n, key) == FASTMLP_OK);
            for (p = 0; p < pieces[b] && fm_perm_job_try(&j); p++) {}
            CHECK(fm_perm_job_finish(&j) == FASTMLP_OK);
            for (same = 1, i = 0; i < n; i++) same &= (int64_t)got32[i] == want[i];
            CHECK(same);
        }
    {   /* a job runs out of pieces: try says so and changes nothing */
        fm_perm_job j;
        CHECK(fm_perm_job_init(&j, got, 0, 300, 5) == FASTMLP_OK);
        while (fm_perm_job_try(&j)) {}
        CHECK(j.done == 1 && fm_perm_job_try(&j) == 0);
        CHECK(fm_perm_job_finish(&j) == FASTMLP_OK);
        CHECK(fastmlp_epoch_permutation(want, 300, 5) == FASTMLP_OK);
        CHECK(memcmp(want, got, 300 * sizeof(int64_t)) == 0);
    }
}

/* fastmlp_train_epoch_i32_next: the epoch of fastmlp_train_epoch_i32_l2 bit for bit, and the
   next epoch's order of fastmlp_epoch_permutation_i32, on 2 threads (a 5-32-32-1 net cut
   into 2 parts per batch, whose waits for the serial step run pieces of the order) and on
   one; also when the epoch stops at a non-finite value. */
static void test_train_epoch_next(void)
{
    enum { N = 9000, NP = 5 * 32 + 32 + 32 * 32 + 32 + 32 + 1, NB = (N + 23) / 24, NN = 70001 };
    int64_t sizes[4] = {5, 32, 32, 1}, acts[3] = {FASTMLP_ACT_RELU, FASTMLP_ACT_RELU, 0};
    int64_t done = -1, done2 = -1, i;
    float *x = malloc(sizeof(float) * N * 5), *y = malloc(sizeof(float) * N);
    float p0[NP], pa[NP], pb[NP], grad[NP], sa[3 * NP], sb[3 * NP];
    static int32_t perm[N], next[NN], want[NN];
    static double la[NB], lb[NB], lrs[NB];
    double h[8] = {0, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    const int64_t nexts[] = {1, 300, N, NN};
    const int threads = fastmlp_get_num_threads();
    int run, c;
    for (i = 0; i < N * 5; i++) x[i] = (float)urand();
    for (i = 0; i < N; i++) {
        y[i] = x[5 * i] * x[5 * i + 1] > 0;
        perm[i] = (int32_t)((i * 37) % N);
    }
    for (i = 0; i < NP; i++) p0[i] = (float)(0.3 * urand());
    for (i = 0; i < NB; i++) lrs[i] = 0.01;
    for (run = 0; run < 2; run++) {
        fastmlp_set_num_threads(run == 0 ? 2 : 1);
        memcpy(pa, p0, sizeof pa);
        memset(sa, 0, sizeof sa);
        CHECK_ST(fastmlp_train_epoch_i32_l2_f32(&done, pa, grad, sa, la, x, y, NULL, N, perm, N,
                                                24, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 3,
                                                FASTMLP_LOSS_BCE, 0.0), FASTMLP_OK);
        for (c = 0; c < 4; c++) {
            const uint64_t key = 77 + (uint64_t)c;
            memcpy(pb, p0, sizeof pb);
            memset(sb, 0, sizeof sb);
            memset(next, 0xff, sizeof next);
            CHECK_ST(fastmlp_train_epoch_i32_next_f32(&done2, pb, grad, sb, lb, x, y, NULL, N,
                                                      perm, N, 24, lrs, 0, FASTMLP_OPT_ADAM, h,
                                                      sizes, acts, 3, FASTMLP_LOSS_BCE, 0.0,
                                                      next, nexts[c], key), FASTMLP_OK);
            CHECK(done2 == done && done == NB);
            CHECK(memcmp(pa, pb, sizeof pa) == 0 && memcmp(sa, sb, sizeof sa) == 0);
            CHECK(memcmp(la, lb, sizeof la) == 0);
            CHECK(fastmlp_epoch_permutation_i32(want, nexts[c], key) == FASTMLP_OK);
            CHECK(memcmp(want, next, (size_t)nexts[c] * sizeof(int32_t)) == 0);
        }
    }
    fastmlp_set_num_threads(2);
    {   /* a stop at a non-finite feature in batch 100: the same stop, the order written */
        const float saved = x[5 * perm[100 * 24 + 3]];
        x[5 * perm[100 * 24 + 3]] = NAN;
        memcpy(pa, p0, sizeof pa);
        memset(sa, 0, sizeof sa);
        CHECK_ST(fastmlp_train_epoch_i32_l2_f32(&done, pa, grad, sa, la, x, y, NULL, N, perm, N,
                                                24, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 3,
                                                FASTMLP_LOSS_BCE, 0.0), FASTMLP_ENONFINITE);
        memcpy(pb, p0, sizeof pb);
        memset(sb, 0, sizeof sb);
        memset(next, 0xff, sizeof next);
        CHECK_ST(fastmlp_train_epoch_i32_next_f32(&done2, pb, grad, sb, lb, x, y, NULL, N, perm,
                                                  N, 24, lrs, 0, FASTMLP_OPT_ADAM, h, sizes,
                                                  acts, 3, FASTMLP_LOSS_BCE, 0.0, next, NN, 9),
                 FASTMLP_ENONFINITE);
        CHECK(done == 100 && done2 == 100 && memcmp(pa, pb, sizeof pa) == 0);
        CHECK(fastmlp_epoch_permutation_i32(want, NN, 9) == FASTMLP_OK);
        CHECK(memcmp(want, next, sizeof next) == 0);
        x[5 * perm[100 * 24 + 3]] = saved;
    }
    /* errors: no order buffer, no rows, more rows than int32 indices reach */
    CHECK_ST(fastmlp_train_epoch_i32_next_f32(&done2, pb, grad, sb, lb, x, y, NULL, N, perm, N,
                                              24, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 3,
                                              FASTMLP_LOSS_BCE, 0.0, NULL, NN, 9),
             FASTMLP_EINVAL);
    CHECK_ST(fastmlp_train_epoch_i32_next_f32(&done2, pb, grad, sb, lb, x, y, NULL, N, perm, N,
                                              24, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 3,
                                              FASTMLP_LOSS_BCE, 0.0, next, 0, 9),
             FASTMLP_ESIZE);
    CHECK_ST(fastmlp_train_epoch_i32_next_f32(&done2, pb, grad, sb, lb, x, y, NULL, N, perm, N,
                                              24, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 3,
                                              FASTMLP_LOSS_BCE, 0.0, next,
                                              ((int64_t)1 << 31) + 1, 9),
             FASTMLP_ESIZE);
    fastmlp_set_num_threads(threads);
    free(x);
    free(y);
}

/* The boundary checks of issue 12 item 6: sizes that would overflow int64 arithmetic,
   non-finite / negative learning rates and hyper-parameters, the thread bound and the
   thread setting being per calling thread.  Every refused call leaves params untouched. */
static void test_boundary_values(void)
{
    enum { N = 40, NP = 3 * 4 + 4 + 4 + 1 };
    int64_t sizes[3] = {3, 4, 1}, acts[2] = {FASTMLP_ACT_TANH, 0}, perm[N], done = -1;
    double x[N * 3], y[N], sw[N], params[NP], p0[NP], grad[NP], state[3 * NP], losses[N];
    double lrs[N], h[8] = {0, 0.9, 0.999, 1e-8, 0, 0, 0, 0}, g[NP], m[NP], v[NP];
    int i;
    for (i = 0; i < N * 3; i++) x[i] = urand();
    for (i = 0; i < N; i++) { y[i] = x[3 * i] > 0; sw[i] = 1; perm[i] = i; lrs[i] = 0.01; }
    for (i = 0; i < NP; i++) { p0[i] = 0.3 * urand(); g[i] = urand(); m[i] = v[i] = 0; }
    memset(state, 0, sizeof state);
    memcpy(params, p0, sizeof params);
    /* batch_size = INT64_MAX: one batch of all rows, no overflow in ceil(n / bs) */
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     INT64_MAX, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_OK);
    CHECK(done == 1);
    /* step0 + n_batches would pass INT64_MAX */
    memcpy(params, p0, sizeof params);
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     10, lrs, INT64_MAX - 2, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_EVALUE);
    CHECK(done == 0 && memcmp(params, p0, sizeof params) == 0);
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     10, lrs, INT64_MAX - 4, FASTMLP_OPT_SGD, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_OK);
    /* a NaN, an inf and a negative learning rate; a NaN hyper-parameter */
    lrs[2] = NAN;
    memcpy(params, p0, sizeof params);
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     10, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_EVALUE);
    CHECK(done == 0 && memcmp(params, p0, sizeof params) == 0);
    lrs[2] = INFINITY;
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     10, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_EVALUE);
    lrs[2] = -0.01;
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     10, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_EVALUE);
    lrs[2] = 0.01;
    lrs[7] = NAN; /* beyond the 4 batches of this epoch: not read */
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     10, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_OK);
    h[2] = NAN;
    memcpy(params, p0, sizeof params);
    CHECK_ST(fastmlp_train_epoch_f64(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                     10, lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 2,
                                     FASTMLP_LOSS_BCE), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_optimizer_update_f64(FASTMLP_OPT_ADAM, params, g, state, NP, 1, h),
             FASTMLP_EVALUE);
    h[2] = 0.999;
    h[0] = -1;
    CHECK_ST(fastmlp_optimizer_update_f64(FASTMLP_OPT_ADAM, params, g, state, NP, 1, h),
             FASTMLP_EVALUE);
    h[0] = 0;
    CHECK_ST(fastmlp_adam_update_f64(params, g, m, v, NULL, NP, 1, NAN, 0.9, 0.999, 1e-8, 0, 0, 0,
                                     0), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_sgd_update_f64(params, g, NULL, NP, 1, 0.1, 0, INFINITY, 0, 0, 0),
             FASTMLP_EVALUE);
    CHECK_ST(fastmlp_adagrad_update_f64(params, g, m, NP, 1, -0.1, 0, 0, 1e-10, 0),
             FASTMLP_EVALUE);
    CHECK_ST(fastmlp_rmsprop_update_f64(params, g, m, NULL, NULL, NP, 1, 0.1, NAN, 1e-8, 0, 0, 0,
                                        0), FASTMLP_EVALUE);
    /* centered with alpha = 0: every step would be lr * g / eps */
    CHECK_ST(fastmlp_rmsprop_update_f64(params, g, m, v, NULL, NP, 1, 0.1, 0, 1e-8, 0, 0, 1, 0),
             FASTMLP_EVALUE);
    CHECK(memcmp(params, p0, sizeof params) == 0);
    /* the adam step count near INT64_MAX stays valid (no overflow in the bias corrections) */
    CHECK_ST(fastmlp_adam_update_f64(params, g, m, v, NULL, NP, INT64_MAX, 0.1, 0.9, 0.999, 1e-8,
                                     0, 0, 0, 0), FASTMLP_OK);
    for (i = 0; i < NP; i++) CHECK(isfinite(params[i]));
    /* the thread bound */
    CHECK_ST(fastmlp_set_num_threads(FASTMLP_MAX_THREADS + 1), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_set_num_threads(100000), FASTMLP_ESIZE);
    CHECK(fastmlp_optimizer_n_hyper(FASTMLP_OPT_SGD) == 6 && fastmlp_optimizer_n_hyper(9) == -1);
    /* too many layers: a clear size error, no out-of-bounds write */
    {
        int64_t big[FASTMLP_MAX_LAYERS + 2], bacts[FASTMLP_MAX_LAYERS + 1];
        for (i = 0; i < FASTMLP_MAX_LAYERS + 2; i++) big[i] = 1;
        for (i = 0; i < FASTMLP_MAX_LAYERS + 1; i++) bacts[i] = 0;
        CHECK(fastmlp_n_params(big, FASTMLP_MAX_LAYERS + 1) == -1);
        CHECK_ST(fastmlp_mlp_forward_f64(y, params, x, 1, big, bacts, FASTMLP_MAX_LAYERS + 1),
                 FASTMLP_ESIZE);
        big[1] = (int64_t)FASTMLP_MAX_WIDTH + 1;
        CHECK_ST(fastmlp_mlp_forward_f64(y, params, x, 1, big, bacts, 2), FASTMLP_ESIZE);
    }
}

/* A network and batch large enough that the fused epoch cuts each batch into 2 parts:
   bit-identical across runs at 2 threads, equal to rounding with 1 thread, and the same
   non-finite stop. */
static void test_train_epoch_parts(void)
{
    enum { N = 515, NP = 5 * 32 + 32 + 32 * 32 + 32 + 32 + 1 };
    int64_t sizes[4] = {5, 32, 32, 1}, acts[3] = {FASTMLP_ACT_RELU, FASTMLP_ACT_TANH, 0};
    int64_t perm[N], done = -1;
    double *x = malloc(sizeof(double) * N * 5), y[N], sw[N], p0[NP], pa[NP], pb[NP], pc[NP];
    double grad[NP], *state = malloc(sizeof(double) * 3 * NP), losses[8], lrs[8];
    double h[8] = {0, 0.9, 0.999, 1e-8, 0.01, 1, 0, 0}; /* adam(w) with amsgrad */
    double err = 0;
    int i, run;
    for (i = 0; i < N * 5; i++) x[i] = urand();
    for (i = 0; i < N; i++) {
        y[i] = x[5 * i] * x[5 * i + 1] > 0;
        sw[i] = 1 + 0.5 * urand();
        perm[i] = (i * 37) % N;
    }
    for (i = 0; i < NP; i++) p0[i] = 0.3 * urand();
    for (i = 0; i < 8; i++) lrs[i] = 0.01 / (1 + i);
    for (run = 0; run < 3; run++) {
        double *dst = run == 0 ? pa : run == 1 ? pb : pc;
        fastmlp_set_num_threads(run < 2 ? 2 : 1);
        memcpy(dst, p0, sizeof p0);
        memset(state, 0, sizeof(double) * 3 * NP);
        CHECK_ST(fastmlp_train_epoch_f64(&done, dst, grad, state, losses, x, y, sw, N, perm, N,
                                         128, lrs, 0, FASTMLP_OPT_ADAMW, h, sizes, acts, 3,
                                         FASTMLP_LOSS_BCE), FASTMLP_OK);
        CHECK(done == 5);
    }
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    for (i = 0; i < NP; i++) err = fmax(err, fabs(pa[i] - pc[i]));
    CHECK(err < 1e-12);
    fastmlp_set_num_threads(2);
    x[5 * perm[3 * 128 + 100] + 2] = INFINITY; /* batch 3 */
    memcpy(pa, p0, sizeof p0);
    memset(state, 0, sizeof(double) * 3 * NP);
    CHECK_ST(fastmlp_train_epoch_f64(&done, pa, grad, state, losses, x, y, sw, N, perm, N, 128,
                                     lrs, 0, FASTMLP_OPT_ADAMW, h, sizes, acts, 3,
                                     FASTMLP_LOSS_BCE), FASTMLP_ENONFINITE);
    CHECK(done == 3);
    free(x);
    free(state);
}

/* mlp_forward_f32 of a ReLU net wide enough for the zero-skipping inference layer
   (sparse.c) against a plain double loop, with a NaN row and an inf row: H = 64 hidden
   inputs (one word of the non-zero mask), and H = 150 (two whole words, then 22 bits, the
   last 6 of them past the vector loop). */
static void forward_relu_sparse(const int64_t H, const int64_t H2)
{
    enum { B = 301, N0 = 8 };
    int64_t sizes[4] = {N0, H, H2, 1}, acts[3] = {FASTMLP_ACT_RELU, FASTMLP_ACT_RELU, 0};
    const int64_t np_ = N0 * H + H + H * H2 + H2 + H2 + 1;
    float *p = malloc(sizeof(float) * np_), *x = malloc(sizeof(float) * B * N0);
    float out[B];
    double *h1 = malloc(sizeof(double) * H), *h2 = malloc(sizeof(double) * H2), worst = 0;
    int64_t i, s, j, c;
    for (i = 0; i < np_; i++) p[i] = (float)(0.4 * urand());
    for (i = 0; i < B * N0; i++) x[i] = (float)urand();
    x[5 * N0 + 2] = NAN;
    x[9 * N0 + 1] = INFINITY;
    CHECK_ST(fastmlp_mlp_forward_f32(out, p, x, B, sizes, acts, 3), FASTMLP_OK);
    for (s = 0; s < B; s++) {
        const float *w1 = p, *b1 = p + N0 * H, *w2 = b1 + H, *b2 = w2 + H * H2, *w3 = b2 + H2;
        double o = w3[H2];
        for (c = 0; c < H; c++) {
            double z = b1[c];
            for (j = 0; j < N0; j++) z += (double)x[s * N0 + j] * w1[j * H + c];
            h1[c] = z < 0 ? 0 : z;  /* NaN stays NaN */
        }
        for (c = 0; c < H2; c++) {
            double z = b2[c];
            for (j = 0; j < H; j++) z += h1[j] * w2[j * H2 + c];
            h2[c] = z < 0 ? 0 : z;
        }
        for (j = 0; j < H2; j++) o += h2[j] * w3[j];
        if (isnan(o) || isinf(o)) {
            CHECK(isnan(o) ? isnan(out[s]) : out[s] == (float)o);
            continue;
        }
        worst = fmax(worst, fabs(out[s] - o) / fmax(1.0, fabs(o)));
    }
    CHECK(isnan(out[5]));
    CHECK(worst < 1e-5);
    free(p);
    free(x);
    free(h1);
    free(h2);
}

static void test_forward_relu_sparse(void)
{
    forward_relu_sparse(64, 40);
    forward_relu_sparse(150, 24);
    /* the same with the dense products only (fastmlp_set_thread_skip_zeros), then back */
    CHECK_ST(fastmlp_set_thread_skip_zeros(NAN), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_set_thread_skip_zeros(INFINITY), FASTMLP_OK);
    forward_relu_sparse(64, 40);
    forward_relu_sparse(150, 24);
    CHECK_ST(fastmlp_set_thread_skip_zeros(-1), FASTMLP_OK);
}

/* Kernels flush subnormal results to zero on every thread they run on (FM_FLUSH_BEGIN in
   internal.h) and leave the calling thread's floating-point mode as they found it. */
static void test_subnormals_flushed(void)
{
    enum { B = 4096, W = 64 };   /* 16.7 M multiply-adds: the forward runs on the threads */
    int64_t sizes[2] = {W, W}, acts[1] = {FASTMLP_ACT_IDENTITY}, i, zeros = 0;
    const int64_t np_ = W * W + W;
    float *p = malloc(sizeof(float) * np_), *x = malloc(sizeof(float) * B * W);
    float *out = malloc(sizeof(float) * B * W);
    volatile float tiny = 1e-20f, prod;
    for (i = 0; i < np_; i++) p[i] = i < W * W ? 1e-20f : 0.0f;  /* products 1e-40 */
    for (i = 0; i < B * W; i++) x[i] = 1e-20f;
    CHECK_ST(fastmlp_mlp_forward_f32(out, p, x, B, sizes, acts, 1), FASTMLP_OK);
    for (i = 0; i < B * W; i++) zeros += out[i] == 0.0f;
    CHECK(zeros == (int64_t)B * W);   /* IEEE: 64 x 1e-40 = 6.4e-39, a subnormal */
    prod = tiny * tiny;
    CHECK(prod != 0.0f && prod < 1.2e-38f);   /* the caller's mode: subnormals kept */
    free(p);
    free(x);
    free(out);
}

static void test_shuffle(void)
{
    enum { N = 1000 };
    double u[N];
    int64_t out[N], seen[N], i, sorted = 1;
    uint64_t s = 12345;
    for (i = 0; i < N; i++) {  /* splitmix-like uniforms in [0, 1) */
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        u[i] = (double)(s >> 11) * (1.0 / 9007199254740992.0);
    }
    CHECK(fastmlp_shuffle_indices(out, u, N) == FASTMLP_OK);
    memset(seen, 0, sizeof seen);
    for (i = 0; i < N; i++) {
        if (out[i] >= 0 && out[i] < N) seen[out[i]]++;
        sorted &= out[i] == i;
    }
    for (i = 0; i < N; i++) CHECK(seen[i] == 1);            /* a permutation */
    CHECK(!sorted);
    /* u just below 1: j = i for every i (nothing read past the end under ASan), so the
       result is the identity */
    for (i = 0; i < N; i++) u[i] = nextafter(1.0, 0.0);
    CHECK(fastmlp_shuffle_indices(out, u, N) == FASTMLP_OK);
    for (i = 0; i < N; i++) CHECK(out[i] == i);
    /* bad arguments change nothing */
    u[N - 1] = 1.0;
    out[0] = -7;
    CHECK(fastmlp_shuffle_indices(out, u, N) == FASTMLP_EVALUE && out[0] == -7);
    u[N - 1] = NAN;
    CHECK(fastmlp_shuffle_indices(out, u, N) == FASTMLP_EVALUE && out[0] == -7);
    u[N - 1] = -0.0 - 1e-300;
    CHECK(fastmlp_shuffle_indices(out, u, N) == FASTMLP_EVALUE && out[0] == -7);
    CHECK(fastmlp_shuffle_indices(NULL, u, N) == FASTMLP_EINVAL);
    CHECK(fastmlp_shuffle_indices(out, NULL, N) == FASTMLP_EINVAL);
    CHECK(fastmlp_shuffle_indices(out, u, 0) == FASTMLP_ESIZE);
    CHECK(fastmlp_shuffle_indices(out, u, -3) == FASTMLP_ESIZE);
}

static void test_epoch_permutation(void)
{
    enum { N = 70001 };   /* 8 buckets */
    static int64_t out[N], again[N], seen[N];
    int64_t i, moved = 0;
    const int threads = fastmlp_get_num_threads();
    CHECK(fastmlp_set_num_threads(2) == FASTMLP_OK);
    CHECK(fastmlp_epoch_permutation(out, N, 0xFFFFFFFFFFFFFFFFULL) == FASTMLP_OK);
    memset(seen, 0, sizeof seen);
    for (i = 0; i < N; i++) {
        if (out[i] >= 0 && out[i] < N) seen[out[i]]++;
        moved += out[i] != i;
    }
    for (i = 0; i < N; i++) CHECK(seen[i] == 1);            /* a permutation */
    CHECK(moved > N / 2);
    CHECK(fastmlp_set_num_threads(1) == FASTMLP_OK);      /* the same on one thread */
    CHECK(fastmlp_epoch_permutation(again, N, 0xFFFFFFFFFFFFFFFFULL) == FASTMLP_OK);
    CHECK(memcmp(out, again, sizeof out) == 0);
    CHECK(fastmlp_set_num_threads(threads) == FASTMLP_OK);
    CHECK(fastmlp_epoch_permutation(again, 1, 5) == FASTMLP_OK && again[0] == 0);
    CHECK(fastmlp_epoch_permutation(NULL, N, 5) == FASTMLP_EINVAL);
    CHECK(fastmlp_epoch_permutation(out, 0, 5) == FASTMLP_ESIZE);
    CHECK(fastmlp_epoch_permutation(out, -3, 5) == FASTMLP_ESIZE);
    {   /* int32 entries: the same permutation; more than 2^31 rows refused before writing */
        static int32_t o32[N];
        int same = 1;
        CHECK(fastmlp_epoch_permutation(out, N, 0x0123456789ABCDEFULL) == FASTMLP_OK);
        CHECK(fastmlp_epoch_permutation_i32(o32, N, 0x0123456789ABCDEFULL) == FASTMLP_OK);
        for (i = 0; i < N; i++) same &= (int64_t)o32[i] == out[i];
        CHECK(same);
        o32[0] = -7;
        CHECK(fastmlp_epoch_permutation_i32(o32, ((int64_t)1 << 31) + 1, 5) == FASTMLP_ESIZE);
        CHECK(o32[0] == -7);
        CHECK(fastmlp_epoch_permutation_i32(NULL, N, 5) == FASTMLP_EINVAL);
        CHECK(fastmlp_epoch_permutation_i32(o32, 0, 5) == FASTMLP_ESIZE);
    }
}

/* The batched epoch (batched.inc): K models side by side, one per thread, each cutting its
   batches into the parts train_epoch alone uses and running them in turn; every model must
   end bit for bit where fastmlp_train_epoch takes it alone (the same parts, the same
   reduction order), whatever thread ran it.  The wide net (>= FM_PAR_STEP_MIN parameters)
   also compares the per-batch step on the threads (train_epoch alone, 2 threads) with the
   same step on one thread (in the batch). */
static void run_batched_epoch(int64_t hidden, int64_t N, int64_t K)
{
    const int64_t LD = N / 50 + 1;
    const int64_t NP = 4 * hidden + (hidden + 1) * hidden + hidden + 1;
    const int64_t SN = FASTMLP_N_STATE_MAX * NP;
    const int opt_of[3] = {FASTMLP_OPT_ADAM, FASTMLP_OPT_SGD, FASTMLP_OPT_RMSPROP};
    int64_t sizes[4] = {3, hidden, hidden, 1}, acts[3] = {FASTMLP_ACT_RELU, FASTMLP_ACT_TANH, 0};
    int64_t *perm = malloc(sizeof(int64_t) * N), *n_rows = malloc(sizeof(int64_t) * K);
    int64_t *bs = malloc(sizeof(int64_t) * K), *step0 = malloc(sizeof(int64_t) * K);
    int64_t *opts = malloc(sizeof(int64_t) * K), *done = malloc(sizeof(int64_t) * K);
    double *x = malloc(sizeof(double) * N * 3), *y = malloc(sizeof(double) * N);
    double *sw = malloc(sizeof(double) * N), *bl = malloc(sizeof(double) * K * LD);
    double *lrs = malloc(sizeof(double) * K * LD), *blk = malloc(sizeof(double) * LD);
    double *hy = calloc((size_t)(K * FASTMLP_N_HYPER), sizeof(double));
    double *p0 = malloc(sizeof(double) * K * NP), *p = malloc(sizeof(double) * K * NP);
    double *g = malloc(sizeof(double) * K * NP), *st = malloc(sizeof(double) * K * SN);
    double *pk = malloc(sizeof(double) * NP), *gk = malloc(sizeof(double) * NP);
    double *sk = malloc(sizeof(double) * SN);
    int64_t i, k;
    int nthreads;
    for (i = 0; i < N; i++) {
        x[3 * i] = urand(); x[3 * i + 1] = urand(); x[3 * i + 2] = urand();
        y[i] = x[3 * i] - x[3 * i + 2] > 0 ? 1.0 : 0.0;
        sw[i] = 1.0 + 0.5 * urand();
        perm[i] = (i * 13) % N;
    }
    for (i = 0; i < K * NP; i++) p0[i] = 0.4 * urand();
    for (i = 0; i < K * LD; i++) lrs[i] = 0.01 * (1 + i % 3);
    for (k = 0; k < K; k++) {   /* three kinds of model in turn: rows, batch, step, optimizer */
        double *h = hy + k * FASTMLP_N_HYPER;
        n_rows[k] = k % 3 == 1 ? N - N / 5 : N;
        bs[k] = k % 3 == 2 ? 50 : 64;
        step0[k] = k % 3 == 1 ? 3 : 0;
        opts[k] = opt_of[k % 3];
        if (k % 3 == 0) { h[0] = 0.01; h[1] = 0.9; h[2] = 0.999; h[3] = 1e-8; }  /* adam */
        if (k % 3 == 1) { h[0] = 0.01; h[1] = 0.9; }                             /* momentum */
        if (k % 3 == 2) { h[0] = 0.01; h[1] = 0.99; h[2] = 1e-8; h[4] = 0.5; }   /* rmsprop */
    }
    for (nthreads = 1; nthreads <= 2; nthreads++) {
        CHECK_ST(fastmlp_set_num_threads(nthreads), FASTMLP_OK);
        memcpy(p, p0, sizeof(double) * K * NP);
        memset(st, 0, sizeof(double) * K * SN);
        CHECK_ST(fastmlp_batched_train_epoch_f64(done, p, g, st, bl, LD, x, 1, y, sw, 1, N,
                                                 perm, 1, N, n_rows, bs, lrs, LD, step0, opts,
                                                 hy, K, sizes, acts, 3, FASTMLP_LOSS_BCE),
                 FASTMLP_OK);
        for (k = 0; k < K; k++) {
            int64_t d = -1;
            memcpy(pk, p0 + k * NP, sizeof(double) * NP);
            memset(sk, 0, sizeof(double) * SN);
            CHECK_ST(fastmlp_train_epoch_f64(&d, pk, gk, sk, blk, x, y, sw, N, perm, n_rows[k],
                                             bs[k], lrs + LD * k, step0[k], (int)opts[k],
                                             hy + k * FASTMLP_N_HYPER, sizes, acts, 3,
                                             FASTMLP_LOSS_BCE), FASTMLP_OK);
            CHECK(d == done[k] && d == (n_rows[k] + bs[k] - 1) / bs[k]);
            CHECK(memcmp(pk, p + k * NP, sizeof(double) * NP) == 0);
            CHECK(memcmp(sk, st + k * SN, sizeof(double) * SN) == 0);
            CHECK(memcmp(blk, bl + LD * k, (size_t)d * sizeof(double)) == 0);
        }
    }
    fastmlp_set_num_threads(2);
    free(perm); free(n_rows); free(bs); free(step0); free(opts); free(done); free(x); free(y);
    free(sw); free(bl); free(lrs); free(blk); free(hy);
    free(p0); free(p); free(g); free(st); free(pk); free(gk); free(sk);
}

static void test_batched_epoch(void)
{
    run_batched_epoch(24, 500, 3);    /* the step on the last thread to finish */
    run_batched_epoch(130, 500, 3);   /* 17,681 parameters: the step on the threads */
    /* 3 chunks of 16,384 rows, 5 models on 2 threads: a parallel region holds the next
       chunk of some models beside the current chunk of others; fewer rows end earlier */
    run_batched_epoch(8, 40000, 5);
}

/* A digest of one epoch's trained parameters in each dtype (5-40-33-3, relu, softmax,
   batches of 64 over 500 rows, one thread): the layer widths use the zmm, the ymm and the
   plain-loop columns of the products.  The C tests print it; a build with
   -DFASTMLP_NO_AVX512 must print the same digest (the widths round the same: tested from
   tests/test_c_backend.py). */
static unsigned long long fnv1a(const void *p, size_t n, unsigned long long h)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static unsigned long long training_digest(void)
{
    enum { N = 500, NP = 5 * 40 + 40 + 40 * 33 + 33 + 33 * 3 + 3, NB = 8 };
    int64_t sizes[4] = {5, 40, 33, 3}, acts[3] = {FASTMLP_ACT_RELU, FASTMLP_ACT_RELU, 0};
    int64_t perm[N], done = 0;
    static float xf[N * 5], yf[N], pf[NP], gf[NP], sf[3 * NP];
    static double xd[N * 5], yd[N], pd[NP], gd[NP], sd[3 * NP];
    double losses[NB], lrs[NB], h[8] = {1e-2, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    unsigned long long dig = 0xcbf29ce484222325ULL;
    int i, th = fastmlp_get_num_threads();
    for (i = 0; i < N * 5; i++) xf[i] = (float)(xd[i] = urand());
    for (i = 0; i < N; i++) {
        yd[i] = (double)(i % 3);
        yf[i] = (float)yd[i];
        perm[i] = (i * 37) % N;
    }
    for (i = 0; i < NP; i++) pf[i] = (float)(pd[i] = 0.3 * urand());
    for (i = 0; i < NB; i++) lrs[i] = 1e-2;
    memset(sf, 0, sizeof sf);
    memset(sd, 0, sizeof sd);
    fastmlp_set_num_threads(1);
    CHECK_ST(fastmlp_train_epoch_f32(&done, pf, gf, sf, losses, xf, yf, NULL, N, perm, N, 64,
                                     lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 3,
                                     FASTMLP_LOSS_CROSS_ENTROPY), FASTMLP_OK);
    CHECK_ST(fastmlp_train_epoch_f64(&done, pd, gd, sd, losses, xd, yd, NULL, N, perm, N, 64,
                                     lrs, 0, FASTMLP_OPT_ADAM, h, sizes, acts, 3,
                                     FASTMLP_LOSS_CROSS_ENTROPY), FASTMLP_OK);
    fastmlp_set_num_threads(th);
    dig = fnv1a(pf, sizeof pf, dig);
    return fnv1a(pd, sizeof pd, dig);
}

int main(void)
{
    unsigned long long digest;
    digest = training_digest();
    test_misc();
    test_parallel_min_work();
    test_epoch_permutation();
    test_activations();
    test_sigmoid_pair();
    test_dense();
    test_losses();
    test_overlap();
    test_bce_f32_accuracy();
    test_optimizers();
    test_mlp_gradient();
    test_train_epoch();
    test_train_epoch_parts();
    test_perm_job();
    test_train_epoch_next();
    test_batched_epoch();
    test_boundary_values();
    test_shuffle();
    test_forward_relu_sparse();
    test_subnormals_flushed();
    fastmlp_set_num_threads(1);
    test_train_epoch(); /* single-thread path too */
    printf("%d checks, %d failures (threads %d, openmp %d, avx2 %d, avx512 %d)\n", g_checks,
           g_fail, fastmlp_get_num_threads(), fastmlp_has_openmp(), fastmlp_has_avx2(),
           fastmlp_has_avx512());
    printf("training digest %016llx\n", digest);
    return g_fail ? 1 : 0;
}
