/* shuffle.c -- the row order of an epoch (fastmlp.backends.reference.shuffle_indices).

   Fisher-Yates is sequential; the C loop exists because NumPy's Generator.permutation
   costs ~16 ns per row (a fifth of an epoch of the fused C step on a 5-32-32-1 net), while
   u = rng.random(n) plus this loop cost ~4-5 ns per row.  Inside-out form: the writes at i
   are sequential and only the reads/writes at j_i are random. */
#include "internal.h"

int fastmlp_shuffle_indices(int64_t *out, const double *u, int64_t n)
{
    int64_t i;
    FM_CHECK(out && u, FASTMLP_EINVAL);
    FM_CHECK(n >= 1, FASTMLP_ESIZE);
    for (i = 0; i < n; i++)
        FM_CHECK(u[i] >= 0.0 && u[i] < 1.0, FASTMLP_EVALUE);  /* also rejects NaN */
    for (i = 0; i < n; i++) {
        int64_t j = (int64_t)(u[i] * (double)(i + 1));
        if (j > i) j = i;   /* never taken in round-to-nearest; keeps j in bounds anyway */
        out[i] = i;         /* so that j == i reads nothing uninitialised */
        out[i] = out[j];
        out[j] = i;
    }
    return FASTMLP_OK;
}


/* ---------------------------------------------------------------------------------------
   fastmlp_epoch_permutation: the row order of an epoch from one 64-bit key, the one-pass
   Rao-Sandelius shuffle of fastmlp.backends.reference.epoch_permutation (the spec):
   rows go to 2^k buckets by the top k bits of x_i = mix64(key + (i + 1) PHI), then each
   bucket (~16k rows, 128 KB: it stays in L2) is shuffled by Fisher-Yates from the bits
   below.  The plain Fisher-Yates above misses the cache on every row once the order
   outgrows it; this one streams, and its buckets are independent work for the threads.
   The row range is cut into `chunks` pieces that do not depend on the thread count, so
   the permutation is the same on any number of threads.
   --------------------------------------------------------------------------------------- */

#define FM_PERM_PHI 0x9E3779B97F4A7C15ULL
#define FM_PERM_BUCKET_ROWS 16384
#define FM_PERM_MAX_BUCKET_BITS 32
#define FM_PERM_CHUNKS 8          /* row pieces of the first two passes */
#define FM_PERM_PAR_MIN 65536     /* rows: below this one thread does it all */

FM_INLINE uint64_t fm_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

FM_INLINE int64_t fm_perm_bucket(uint64_t key, int64_t i, int k)
{
    /* k == 0: one bucket (a shift by 64 would be undefined) */
    return k ? (int64_t)(fm_mix64(key + (uint64_t)(i + 1) * FM_PERM_PHI) >> (64 - k)) : 0;
}

/* Fisher-Yates inside one bucket a[0..m-1] (m >= 1), in blocks of FM_PERM_BLOCK positions:
   the j of a block are computed first, in a loop that vectorises, then its swaps.  The swap
   at position p touches a[p] and a[j <= p] only, so the rows of positions beyond p are
   still the ones their j were computed from. */
#define FM_PERM_BLOCK 1024
static void fm_perm_bucket_shuffle(int64_t *a, int64_t m, uint64_t key, int k)
{
    int64_t jb[FM_PERM_BLOCK], q, p;
    for (q = 0; q < m; q += FM_PERM_BLOCK) {
        int64_t e = q + FM_PERM_BLOCK < m ? q + FM_PERM_BLOCK : m;
        for (p = q; p < e; p++) {
            uint64_t v = (fm_mix64(key + (uint64_t)(a[p] + 1) * FM_PERM_PHI) << k) >> 11;
            jb[p - q] = (int64_t)((double)v * 0x1p-53 * (double)(p + 1));
        }
        for (p = q > 0 ? q : 1; p < e; p++) {
            int64_t item = a[p], j = jb[p - q] > p ? p : jb[p - q];
            a[p] = a[j];
            a[j] = item;
        }
    }
}

int fastmlp_epoch_permutation(int64_t *out, int64_t n, uint64_t key)
{
    int k = 0, nt;
    int64_t nb, *cnt;
    FM_CHECK(out, FASTMLP_EINVAL);
    FM_CHECK(n >= 1 && n <= FM_MAX_ELEMS, FASTMLP_ESIZE);
    while (k < FM_PERM_MAX_BUCKET_BITS && (n >> k) > FM_PERM_BUCKET_ROWS) k++;
    nb = (int64_t)1 << k;
    nt = n >= FM_PERM_PAR_MIN ? fm_threads() : 1;
    (void)nt;   /* unused without OpenMP */
    /* cnt[c * nb + b]: rows of chunk c in bucket b, then where chunk c writes them */
    cnt = (int64_t *)fm_alloc((size_t)(FM_PERM_CHUNKS * nb) * sizeof(int64_t));
    if (!cnt) return FASTMLP_ENOMEM;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t c, b;
#pragma omp for schedule(static)
        for (c = 0; c < FM_PERM_CHUNKS; c++) {
            int64_t *h = cnt + c * nb, i, i1 = (c + 1) * n / FM_PERM_CHUNKS;
            memset(h, 0, (size_t)nb * sizeof(int64_t));
            for (i = c * n / FM_PERM_CHUNKS; i < i1; i++) h[fm_perm_bucket(key, i, k)]++;
        }
#pragma omp single
        {   /* bucket b: chunk 0's rows, then chunk 1's, ...: rows in increasing order */
            int64_t s = 0;
            for (b = 0; b < nb; b++)
                for (c = 0; c < FM_PERM_CHUNKS; c++) {
                    int64_t v = cnt[c * nb + b];
                    cnt[c * nb + b] = s;
                    s += v;
                }
        }
#pragma omp for schedule(static)
        for (c = 0; c < FM_PERM_CHUNKS; c++) {
            int64_t *h = cnt + c * nb, i, i1 = (c + 1) * n / FM_PERM_CHUNKS;
            for (i = c * n / FM_PERM_CHUNKS; i < i1; i++)
                out[h[fm_perm_bucket(key, i, k)]++] = i;
        }
        /* now chunk c's counter of bucket b points where chunk c + 1's rows of b begin, so
           the last chunk's counters are the bucket ends */
#pragma omp for schedule(dynamic, 1)
        for (b = 0; b < nb; b++) {
            int64_t e = cnt[(FM_PERM_CHUNKS - 1) * nb + b];
            int64_t s = b ? cnt[(FM_PERM_CHUNKS - 1) * nb + b - 1] : 0;
            if (e > s) fm_perm_bucket_shuffle(out + s, e - s, key, k);
        }
    }
    fm_free(cnt);
    return FASTMLP_OK;
}
