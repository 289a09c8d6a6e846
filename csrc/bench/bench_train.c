/* bench_train.c -- time fastmlp_train_epoch_f32 (Adam, bce) for one network and batch size,
   without Python: ./bench_train 5,32,32,1 256 [threads] [epochs].  Prints samples/s
   (median over epochs).  Built by `make -C csrc bench`. */
#include "fastmlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu(void) /* CPU time of the whole process (all threads) */
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int64_t sizes[16], acts[15], L = 0, macs = 0, bs, n, np_, nb, i, done;
    int threads = argc > 3 ? atoi(argv[3]) : 2, epochs = argc > 4 ? atoi(argv[4]) : 9, e;
    char *tok, *spec;
    float *x, *y, *sw, *p, *g, *st;
    int64_t *perm;
    double *losses, *lrs, *times, *ctimes, h[8] = {1e-3, 0.9, 0.999, 1e-8, 0, 0, 0, 0};
    if (argc < 3) {
        fprintf(stderr, "usage: %s 5,32,32,1 batch [threads] [epochs]\n", argv[0]);
        return 2;
    }
    spec = malloc(strlen(argv[1]) + 1);
    strcpy(spec, argv[1]);
    for (tok = strtok(spec, ",-"); tok && L < 16; tok = strtok(NULL, ",-")) sizes[L++] = atoll(tok);
    L -= 1;
    for (i = 0; i < L; i++) {
        acts[i] = i < L - 1 ? FASTMLP_ACT_RELU : FASTMLP_ACT_IDENTITY;
        macs += sizes[i] * sizes[i + 1];
    }
    bs = atoll(argv[2]);
    n = (int64_t)(4e8 / (6.0 * (double)macs)) / bs * bs;
    if (n < 4 * bs) n = 4 * bs;
    np_ = fastmlp_n_params(sizes, L);
    nb = (n + bs - 1) / bs;
    x = malloc(sizeof(float) * n * sizes[0]); y = malloc(sizeof(float) * n);
    sw = malloc(sizeof(float) * n); perm = malloc(sizeof(int64_t) * n);
    p = malloc(sizeof(float) * np_); g = malloc(sizeof(float) * np_);
    st = calloc(3 * np_, sizeof(float)); losses = malloc(sizeof(double) * nb);
    lrs = malloc(sizeof(double) * nb); times = malloc(sizeof(double) * epochs);
    ctimes = malloc(sizeof(double) * epochs);
    srand(1);
    for (i = 0; i < n * sizes[0]; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (i = 0; i < n; i++) { y[i] = x[i * sizes[0]] > 0; sw[i] = 1; perm[i] = (i * 7919) % n; }
    for (i = 0; i < np_; i++) p[i] = 0.1f * ((float)rand() / RAND_MAX - 0.5f);
    for (i = 0; i < nb; i++) lrs[i] = 1e-3;
    fastmlp_set_num_threads(threads);
    for (e = 0; e < epochs; e++) {
        double t0 = now(), c0 = cpu();
        int st_ = fastmlp_train_epoch_f32(&done, p, g, st, losses, x, y, sw, n, perm, n, bs, lrs,
                                          e * nb, FASTMLP_OPT_ADAM, h, sizes, acts, L,
                                          FASTMLP_LOSS_BCE);
        times[e] = now() - t0;
        ctimes[e] = cpu() - c0;
        if (st_) { fprintf(stderr, "error %s\n", fastmlp_strerror(st_)); return 1; }
    }
    qsort(times, epochs, sizeof(double), cmp);
    qsort(ctimes, epochs, sizeof(double), cmp);
    printf("%s @%lld threads %d: wall median %.2f M samples/s, best %.2f (%.1f GFLOP/s); "
           "per CPU-second %.2f M samples (%.1f GFLOP/cpu-s)\n", argv[1], (long long)bs, threads,
           n / times[epochs / 2] / 1e6, n / times[0] / 1e6, 6.0 * macs * n / times[0] / 1e9,
           n / ctimes[epochs / 2] / 1e6, 6.0 * macs * n / ctimes[epochs / 2] / 1e9);
    return 0;
}
