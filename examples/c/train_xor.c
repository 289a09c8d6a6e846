/* train_xor.c -- train a small MLP through the fastmlp C API alone (no Python).
 *
 * The data: 800 points around the four corners (+-1, +-1) with label x0 * x1 < 0 (XOR of
 * the signs: not linearly separable).  A 2-16-16-1 ReLU network with a logit output is
 * trained with Adam on the binary cross-entropy for up to 300 epochs of mini-batches of
 * 32, calling fastmlp_train_epoch_f32 once per epoch; then fastmlp_mlp_forward_f32 gives
 * the predictions.  Exit status 0 only if the training accuracy is 100% and the last epoch's
 * mean loss is below 0.05.
 *
 * Build and run:  make -C examples/c run   (builds csrc/build/libfastmlp.so first)
 */
#include "fastmlp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 800
#define BATCH 32
#define EPOCHS 300

static unsigned long long rng = 2463534242ULL;
static double uniform(void) /* [0, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

#define TRY(call) do { int st_ = (call); if (st_ != FASTMLP_OK) { \
    fprintf(stderr, "%s failed: %s\n", #call, fastmlp_strerror(st_)); return 2; } } while (0)

int main(void)
{
    const int64_t sizes[4] = {2, 16, 16, 1};
    const int64_t acts[3] = {FASTMLP_ACT_RELU, FASTMLP_ACT_RELU, FASTMLP_ACT_IDENTITY};
    const int64_t n_layers = 3, n_batches = (N + BATCH - 1) / BATCH;
    /* Adam: [lr, beta1, beta2, eps, weight_decay, amsgrad, maximize] */
    const double hyper[FASTMLP_N_HYPER] = {0.01, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    int64_t n_params = fastmlp_n_params(sizes, n_layers), perm[N], done, i, l, e;
    float x[N * 2], y[N], sw[N], out[N];
    float *params, *grad, *state;
    double losses[(N + BATCH - 1) / BATCH], lrs[(N + BATCH - 1) / BATCH], mean = 0;
    int correct = 0;

    params = calloc((size_t)n_params, sizeof(float));
    grad = calloc((size_t)n_params, sizeof(float));
    state = calloc((size_t)(3 * n_params), sizeof(float)); /* exp_avg, exp_avg_sq, max_exp_avg_sq */
    if (!params || !grad || !state) return 2;

    for (i = 0; i < N; i++) {
        double cx = i % 4 < 2 ? -1 : 1, cy = i % 2 ? -1 : 1;
        x[2 * i] = (float)(cx + 0.6 * (uniform() - 0.5));
        x[2 * i + 1] = (float)(cy + 0.6 * (uniform() - 0.5));
        y[i] = x[2 * i] * x[2 * i + 1] < 0 ? 1.0f : 0.0f;
        sw[i] = 1.0f;
        perm[i] = i;
    }
    /* He-uniform weights, zero biases (flat layout: W_l row-major then b_l, per layer) */
    for (l = 0, i = 0; l < n_layers; l++) {
        int64_t nw = sizes[l] * sizes[l + 1], k;
        double bound = sqrt(6.0 / (double)sizes[l]);
        for (k = 0; k < nw; k++) params[i++] = (float)(bound * (2 * uniform() - 1));
        i += sizes[l + 1];
    }
    for (i = 0; i < n_batches; i++) lrs[i] = hyper[0];

    fastmlp_set_num_threads(2);
    for (e = 0; e < EPOCHS; e++) {
        for (i = N - 1; i > 0; i--) { /* shuffle */
            int64_t j = (int64_t)(uniform() * (double)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        TRY(fastmlp_train_epoch_f32(&done, params, grad, state, losses, x, y, sw, N, perm, N,
                                    BATCH, lrs, e * n_batches, FASTMLP_OPT_ADAM, hyper, sizes,
                                    acts, n_layers, FASTMLP_LOSS_BCE));
        for (mean = 0, i = 0; i < n_batches; i++) mean += losses[i] / (double)n_batches;
        if (e % 50 == 0 || e == EPOCHS - 1) printf("epoch %3d  loss %.5f\n", (int)e, mean);
        if (mean < 0.01) break;
    }
    TRY(fastmlp_mlp_forward_f32(out, params, x, N, sizes, acts, n_layers));
    for (i = 0; i < N; i++) correct += (out[i] >= 0) == (y[i] > 0.5f);
    printf("training accuracy %d/%d, final loss %.5f\n", correct, N, mean);
    free(params); free(grad); free(state);
    if (correct != N || !(mean < 0.05)) {
        fprintf(stderr, "FAILED: expected 100%% accuracy and loss < 0.05\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}
