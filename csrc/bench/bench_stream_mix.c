/* bench_stream_mix.c -- can plain SGD stream as fast per byte as the fastest streaming kernel?
   ./bench_stream_mix [n_floats] [rounds] [threads] [g_offset_bytes].  Built by
   `make -C csrc bench`.

   Issue 13 asks every optimizer update to reach 90 % of the fastest streaming kernel of the
   same rounds.  Plain SGD moves 12 bytes per parameter (read p and g, write p); on some CPUs
   the fastest kernel is update3 (a, b, c += s d: 4 reads and 3 writes, 28 B), which a memory
   system may serve faster per byte than SGD's mix.  This program times, in alternating rounds
   with the caches evicted before each call (by reading a buffer of 4 x 32 MiB, so no dirty
   line of the eviction is written back during a timed call):

     sgd            fastmlp_sgd_update_f32, the library's kernel (one loop a thread)  12 B
     update         a += s b, the bench's same-mix stream                              12 B
     update3        a, b, c += s d over n/2 elements each                              28 B
     sgd_split8     each thread's range walked as 8 interleaved sub-ranges, one cache
                    line of each in turn (16 streams for the hardware prefetchers)     12 B
     sgd_prefetch   one loop with software prefetches 1 KiB ahead                      12 B
     sgd_nt         one loop with non-temporal stores of p                             12 B
     read2          a and b read, nothing written (update's reads alone)               8 B
     read4          update3's four arrays read over n/2 elements, nothing written      16 B

   and prints each one's median GB/s, its share of update3's and of update's median, and
   the GB/s it read (whether the writes or the reads hold an update back).

   What it showed on an AMD EPYC VM (2 threads, 1e7 floats, 2026-12-02): the library's loop
   reached 74-96 % of update3 from run to run, and so did the variants; sgd_split8 won by ~10 %
   in some runs and lost by as much in others, depending on the host's state and on where g
   lies relative to p (g_offset_bytes; NumPy's large arrays start 16 bytes into a page), and
   through Python (NumPy arrays) it was not faster at all.  None of them is in the library.
   Reads alone, three runs of 30 rounds on the same VM: read2 read 25.3-28.9 GB/s and update
   24.5-28.3 (its writes nearly free), read4 28.8-33.0 and update3 25.9-30.1; update3's
   lead over update per byte moved (1.75 against 1.5 bytes per byte read) matches this.
   Through NumPy arrays, timed by Numba kernels between evictions as the bench does, the
   writes cost more at times: p += s g took from as long as to 30 % longer than reading p and
   g alone, with the host's state.  `fastmlp bench` reports, per update, the share of the
   fastest stream it would reach with free writes.

   Arrays: p, g, a, b of n floats (64-byte aligned, g shifted by g_offset_bytes); update3 runs
   on a, b, p, g's first n/2 floats so that its 4 arrays fit in the same memory as the
   others'. */
#define _POSIX_C_SOURCE 200112L /* posix_memalign, clock_gettime */
#include "fastmlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE__)
#include <immintrin.h>
#endif

enum { N_KERNELS = 8, MAX_ROUNDS = 1000 };
static const char *NAMES[N_KERNELS] = {"sgd", "update", "update3", "sgd_split8",
                                       "sgd_prefetch", "sgd_nt", "read2", "read4"};
/* bytes each kernel reads, and reads + writes, per float of n */
static const double READ_B[N_KERNELS] = {8, 8, 8, 8, 8, 8, 8, 8};
static const double MOVED_B[N_KERNELS] = {12, 12, 14, 12, 12, 12, 8, 8};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n floats starting `offset` bytes (a multiple of 64) past a 64-byte boundary; *base is what
   to free (NULL if there is no memory) */
static float *lines(int64_t n, int64_t offset, void **base)
{
    *base = NULL;
    if (posix_memalign(base, 64, (size_t)((n + 15) / 16 * 64 + offset)) != 0) return NULL;
    return (float *)((char *)*base + offset);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the range [i0, i1) of thread t of nt over n elements, whole cache lines */
static void thread_range(int64_t n, int t, int nt, int64_t *i0, int64_t *i1)
{
    int64_t lines = (n + 15) / 16;
    *i0 = lines * t / nt * 16;
    *i1 = t == nt - 1 ? n : lines * (t + 1) / nt * 16;
}

static void sgd_loop(float *restrict p, const float *restrict g, int64_t i0, int64_t i1,
                     float lr)
{
    int64_t i;
#pragma omp simd
    for (i = i0; i < i1; i++) p[i] = p[i] - lr * g[i];
}

static void sgd_split8(float *restrict p, const float *restrict g, int64_t i0, int64_t i1,
                       float lr)
{
    const int64_t part = (i1 - i0) / 8 / 16 * 16;   /* whole lines per sub-range */
    int64_t j;
    int k, t;
    for (j = 0; j < part; j += 16)
        for (k = 0; k < 8; k++) {
            float *restrict pp = p + i0 + k * part + j;
            const float *restrict gg = g + i0 + k * part + j;
#pragma omp simd
            for (t = 0; t < 16; t++) pp[t] = pp[t] - lr * gg[t];
        }
    sgd_loop(p, g, i0 + 8 * part, i1, lr);
}

static void sgd_prefetch(float *restrict p, const float *restrict g, int64_t i0, int64_t i1,
                         float lr)
{
    int64_t i;
    int t;
    for (i = i0; i + 16 <= i1; i += 16) {
        __builtin_prefetch(p + i + 256, 1, 0);
        __builtin_prefetch(g + i + 256, 0, 0);
#pragma omp simd
        for (t = 0; t < 16; t++) p[i + t] = p[i + t] - lr * g[i + t];
    }
    sgd_loop(p, g, i, i1, lr);
}

static void sgd_nt(float *restrict p, const float *restrict g, int64_t i0, int64_t i1,
                   float lr)
{
#if defined(__SSE__)
    int64_t i = i0;   /* i0 is a multiple of 16 floats and p is 64-byte aligned */
    const __m128 l = _mm_set1_ps(lr);
    for (; i + 4 <= i1; i += 4)
        _mm_stream_ps(p + i, _mm_sub_ps(_mm_load_ps(p + i), _mm_mul_ps(l, _mm_loadu_ps(g + i))));
    sgd_loop(p, g, i, i1, lr);
    _mm_sfence();
#else
    sgd_loop(p, g, i0, i1, lr);
#endif
}

static void update3(float *restrict a, float *restrict b, float *restrict c,
                    const float *restrict d, int64_t i0, int64_t i1, float s)
{
    int64_t i;
#pragma omp simd
    for (i = i0; i < i1; i++) {
        a[i] = a[i] + s * d[i];
        b[i] = b[i] + s * d[i];
        c[i] = c[i] + s * d[i];
    }
}

/* the reads of update (a, b) or of update3 (a, b, c, d) without their writes; the sum keeps
   the loads */
static float read_only(const float *restrict a, const float *restrict b,
                       const float *restrict c, const float *restrict d, int64_t i0,
                       int64_t i1)
{
    float s = 0;
    int64_t i;
    if (c) {
#pragma omp simd reduction(+ : s)
        for (i = i0; i < i1; i++) s += a[i] + b[i] + c[i] + d[i];
    } else {
#pragma omp simd reduction(+ : s)
        for (i = i0; i < i1; i++) s += a[i] + b[i];
    }
    return s;
}

static double evict(const float *buf, int64_t n)
{
    double s = 0;
    int64_t i;
#pragma omp parallel for reduction(+ : s)
    for (i = 0; i < n; i += 16) s += buf[i];
    return s;
}

static volatile float g_sink;

/* one timed call of kernel k (update3 and read4 run over n / 2 floats of 4 arrays) */
static void run(int k, float *p, float *g, float *a, float *b, int64_t n, int threads)
{
    const float lr = 1e-7f;
    if (k == 0) {
        fastmlp_sgd_update_f32(p, g, NULL, n, 1, lr, 0, 0, 0, 0, 0);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = 0, nt = 1;
        int64_t i0, i1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        thread_range(k == 2 || k == 7 ? n / 2 : n, t, nt, &i0, &i1);
        switch (k) {
        case 1: sgd_loop(a, b, i0, i1, -lr); break;      /* a += s b */
        case 2: update3(a, b, p, g, i0, i1, lr); break;
        case 3: sgd_split8(p, g, i0, i1, lr); break;
        case 4: sgd_prefetch(p, g, i0, i1, lr); break;
        case 5: sgd_nt(p, g, i0, i1, lr); break;
        case 6: g_sink = read_only(a, b, NULL, NULL, i0, i1); break;
        default: g_sink = read_only(a, b, p, g, i0, i1); break;
        }
    }
}

int main(int argc, char **argv)
{
    const int64_t n = argc > 1 ? atoll(argv[1]) : 10000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 21;
    const int threads = argc > 3 ? atoi(argv[3]) : 2;
    const int64_t g_offset = argc > 4 ? atoll(argv[4]) : 0;
    const int64_t n_evict = (int64_t)32 << 20;   /* floats: 128 MiB */
    float *p, *g, *a, *b, *ev;
    void *mem[4];
    static double gbs[N_KERNELS][MAX_ROUNDS], med[N_KERNELS];
    double sink = 0;
    int64_t i;
    int r, k;
    if (n < 1024 || rounds < 1 || threads < 1 || g_offset < 0 || g_offset % 64) {
        fprintf(stderr, "usage: %s [n_floats >= 1024] [rounds >= 1] [threads >= 1] "
                "[g_offset_bytes: a multiple of 64]\n", argv[0]);
        return 2;
    }
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    fastmlp_set_num_threads(threads);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    p = lines(n, 0, &mem[0]);
    g = lines(n, g_offset, &mem[1]);
    a = lines(n, 0, &mem[2]);
    b = lines(n, 0, &mem[3]);
    ev = malloc((size_t)n_evict * sizeof(float));
    if (!p || !g || !a || !b || !ev) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (i = 0; i < n; i++) {
        p[i] = 1.0f;
        g[i] = 1e-3f;
        a[i] = 2.0f;
        b[i] = 1e-3f;
    }
    for (i = 0; i < n_evict; i++) ev[i] = 1.0f;
    for (k = 0; k < N_KERNELS; k++) run(k, p, g, a, b, n, threads);   /* first touches */
    for (r = 0; r < rounds; r++)
        for (k = 0; k < N_KERNELS; k++) {
            int kk = r % 2 ? N_KERNELS - 1 - k : k;   /* the order reverses every round */
            double t0;
            sink += evict(ev, n_evict);
            t0 = now();
            run(kk, p, g, a, b, n, threads);
            gbs[kk][r] = MOVED_B[kk] * (double)n / (now() - t0) / 1e9;
        }
    for (k = 0; k < N_KERNELS; k++) {
        qsort(gbs[k], (size_t)rounds, sizeof(double), cmp);
        med[k] = gbs[k][rounds / 2];
    }
    printf("%lld floats, %d rounds, %d threads, g %lld bytes past a line (eviction sum %.0f)\n",
           (long long)n, rounds, threads, (long long)g_offset, sink);
    printf("GB/s read + written (median, min, max over the rounds), its share of update3's and\n"
           "update's medians, and the median's GB/s read alone\n");
    printf("%-13s %8s %8s %8s %10s %10s %8s\n", "kernel", "median", "min", "max", "/update3",
           "/update", "read");
    for (k = 0; k < N_KERNELS; k++)
        printf("%-13s %8.1f %8.1f %8.1f %9.0f%% %9.0f%% %8.1f\n", NAMES[k], med[k], gbs[k][0],
               gbs[k][rounds - 1], 100 * med[k] / med[2], 100 * med[k] / med[1],
               med[k] * READ_B[k] / MOVED_B[k]);
    for (k = 0; k < 4; k++) free(mem[k]);
    free(ev);
    return 0;
}
