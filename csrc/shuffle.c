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

#define FM_PERM_BLOCK 1024
/* rows (or shuffle positions) per piece of a fm_perm_job: ~0.3 us of work, so that a
   piece begun just before the next batch opens holds it up by little */
#define FM_PJ_ROWS 256

#define IX int64_t
#define PSFX(name) name
#include "perm.inc"
#undef IX
#undef PSFX
#define IX int32_t
#define PSFX(name) name##_i32
#include "perm.inc"
#undef IX
#undef PSFX


/* ---------------------------------------------------------------------------------------
   fm_perm_job (internal.h): the permutation above, a piece at a time.
   --------------------------------------------------------------------------------------- */

int fm_perm_job_init(fm_perm_job *j, void *out, int i32, int64_t n, uint64_t key)
{
    int k = 0;
    memset(j, 0, sizeof(*j));
    FM_CHECK(out, FASTMLP_EINVAL);
    FM_CHECK(n >= 1 && n <= FM_MAX_ELEMS, FASTMLP_ESIZE);
    FM_CHECK(!i32 || n - 1 <= INT32_MAX, FASTMLP_ESIZE);
    while (k < FM_PERM_MAX_BUCKET_BITS && (n >> k) > FM_PERM_BUCKET_ROWS) k++;
    j->out = out;
    j->i32 = i32;
    j->k = k;
    j->n = n;
    j->nb = (int64_t)1 << k;
    j->key = key;
    j->phase = FM_PJ_COUNT;
    j->start = (int64_t *)fm_alloc((size_t)(2 * j->nb + 1) * sizeof(int64_t));
    if (!j->start) return FASTMLP_ENOMEM;
    memset(j->start, 0, (size_t)(2 * j->nb + 1) * sizeof(int64_t));
    j->fill = j->start + j->nb + 1;
    return FASTMLP_OK;
}

int fm_perm_job_try(fm_perm_job *j)
{
    int was_busy, is_done;
#pragma omp atomic read seq_cst
    is_done = j->done;
    if (is_done) return 0;
#pragma omp atomic capture seq_cst
    { was_busy = j->busy; j->busy = 1; }
    if (was_busy) return 0;
    if (j->phase != FM_PJ_DONE) {
        if (j->i32) fm_pj_step_i32(j);
        else fm_pj_step(j);
    }
    is_done = j->phase == FM_PJ_DONE;
#pragma omp atomic write seq_cst
    j->done = is_done;
#pragma omp atomic write seq_cst
    j->busy = 0;
    return 1;
}

int fm_perm_job_finish(fm_perm_job *j)
{
    int st = FASTMLP_OK;
    if (!j->start) return FASTMLP_ENOMEM;   /* init failed */
    if (j->phase == FM_PJ_COUNT && j->pos == 0) {   /* not begun: the chunked passes */
        st = j->i32 ? fastmlp_epoch_permutation_i32((int32_t *)j->out, j->n, j->key)
                    : fastmlp_epoch_permutation((int64_t *)j->out, j->n, j->key);
    } else if (j->i32)
        fm_pj_rest_i32(j);
    else
        fm_pj_rest(j);
    j->phase = FM_PJ_DONE;
    j->done = 1;
    fm_free(j->start);
    j->start = j->fill = NULL;
    return st;
}
