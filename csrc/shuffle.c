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
