/* internal.h -- shared by the fastmlp C sources; not part of the public API. */
#ifndef FASTMLP_INTERNAL_H
#define FASTMLP_INTERNAL_H

#include "fastmlp.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* The AVX2/FMA micro-kernels are compiled when the target has them (-march=native on an
   AVX2 machine) unless FASTMLP_NO_SIMD is defined; everything else is portable C99. */
#if defined(__AVX2__) && defined(__FMA__) && !defined(FASTMLP_NO_SIMD)
#include <immintrin.h>
#define FM_AVX2 1
#else
#define FM_AVX2 0
#endif
/* The zmm micro-kernel where the target has AVX-512 (FASTMLP_NO_AVX512: the ymm one only). */
#if FM_AVX2 && defined(__AVX512F__) && !defined(FASTMLP_NO_AVX512)
#define FM_AVX512 1
#else
#define FM_AVX512 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FM_INLINE static inline __attribute__((always_inline))
#else
#define FM_INLINE static inline
#endif

/* GCC's loop unrolling for one function (-funroll-loops is not in -O3); clang unrolls
   vectorised loops by default and has no such attribute. */
#if defined(__GNUC__) && !defined(__clang__)
#define FM_UNROLLED __attribute__((optimize("unroll-loops")))
#else
#define FM_UNROLLED
#endif

/* Subnormal numbers are flushed to zero inside the kernels: results (FTZ) and operands
   (DAZ), as TensorFlow's CPU kernels do.  On x86 every vector instruction that meets a
   subnormal takes a microcode assist (~100x its cost), and training makes them: once a
   5-512-512-1 net separates its data, products of small deltas and weights fall below the
   smallest normal number and its epochs ran 2.7x slower by the eighth epoch (Intel Xeon).
   Every parallel region of a floating-point kernel sets the mode on its thread with
   FM_FLUSH_BEGIN and puts the thread's own mode back with FM_FLUSH_END before it leaves,
   so the caller (NumPy, or PyTorch on the same OpenMP threads) never runs with it (the
   little serial arithmetic outside the regions runs in the caller's mode).  The
   NumPy reference keeps IEEE subnormals: the two differ by less than the smallest normal
   number (1.2e-38 in float32) in any one operation, far inside the conformance tolerances.  The
   optimizer updates are the exception (FM_IEEE_BEGIN in fm_opt_range): they keep the
   reference's IEEE arithmetic, whose stored state is flushed by its own rule (optim.inc),
   because under FTZ Adam's exp_avg of a dead unit stops decaying near 1e-37 (its step
   0.1 x m is subnormal and becomes 0) where torch and the reference reach 0.  On a CPU
   without the SSE control register the macros do nothing. */
#if (defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)) && \
    !defined(FASTMLP_KEEP_SUBNORMALS)
#include <xmmintrin.h>
#define FM_FLUSH_BEGIN const unsigned int fm_csr_ = _mm_getcsr(); _mm_setcsr(fm_csr_ | 0x8040u)
#define FM_FLUSH_END _mm_setcsr(fm_csr_)
#define FM_IEEE_BEGIN const unsigned int fm_ieee_ = _mm_getcsr(); _mm_setcsr(fm_ieee_ & ~0x8040u)
#define FM_IEEE_END _mm_setcsr(fm_ieee_)
#else
#define FM_FLUSH_BEGIN const int fm_csr_ = 0
#define FM_FLUSH_END (void)fm_csr_
#define FM_IEEE_BEGIN const int fm_ieee_ = 0
#define FM_IEEE_END (void)fm_ieee_
#endif

/* The element-wise kernels (updates, activations, sigmoid_pair), the layer products of the
   layer API and mlp_forward run on the threads when their work on one thread, estimated
   from their size and the FM_NS_* below, reaches fm_par_min_work() ns
   (fastmlp_set_parallel_min_work; fastmlp measures per machine where splitting starts to
   pay, fastmlp.backends.tuning.parallel_min_work).  Why: with passive waiting, a parallel
   region costs its team ~100-300 us on the 2-vCPU VMs (waking, moving the data, the join),
   so the former fixed 32,768 elements made a plain SGD step of 262,144 float32 236 us on
   two threads against 80 us on one (Zen 3 VM).
   FM_NS_*: ns per float32 element on one thread (the Zen 3 VM, 1M elements in cache, median
   of 200 calls); a float64 element counts twice.  The threshold is measured on an Adam
   update against FM_NS_ADAM, so only the costs relative to Adam's matter, and those carry
   roughly from one CPU to another. */
#define FM_PAR_MIN_WORK_NS 300000.0
#define FM_NS_SGD 0.25
#define FM_NS_SGD_MOMENTUM 0.4
#define FM_NS_ADAGRAD 0.5          /* and RMSprop */
#define FM_NS_ADAM 1.0
#define FM_NS_ACT_CHEAP 0.2        /* identity / relu / leaky_relu forward */
#define FM_NS_ACT_CHEAP_BACK 0.35
#define FM_NS_ACT_SMOOTH 1.5       /* elu, tanh, sigmoid, softplus, gelu forward (gelu ~2) */
#define FM_NS_ACT_SMOOTH_BACK 1.7
#define FM_NS_SIGMOID_PAIR 1.2
/* A forward pass or layer product: FM_NS_ROW per row plus FM_NS_MAC per multiply-add (one
   thread, float32; on 8,000 rows the Zen 3 VM took 25 ns a row for 4-16-1, 65 for 5-32-32-1,
   103 for 5-64-64-1, 999 for 5-128-128-128-1, 6,829 for 5-512-512-1). */
#define FM_NS_ROW 20.0
#define FM_NS_MAC 0.025
double fm_par_min_work(void);
/* Threads for n elements of ns_per_elem ns each (float32 units; elem_bytes 4 or 8). */
int fm_par_threads(int64_t n, double ns_per_elem, size_t elem_bytes);
/* Threads, at most nt, for a pass of `work` ns on one thread: 1 below fm_par_min_work()
   (where two threads start to pay), then one more thread for each further half of it. */
int fm_threads_for_work(double work, int nt);

/* Largest element count any buffer may have (keeps every byte offset in range). */
#define FM_MAX_ELEMS ((int64_t)1 << 56)

int fm_threads(void);

/* One step of a wait loop: a pause instruction for the first spins, then a yield of the CPU
   (on a loaded machine spinning would wait for a thread the OS is not running). */
void fm_relax(long spins);
void *fm_alloc(size_t bytes);          /* 64-byte aligned, NULL on failure or overflow */
void fm_free(void *p);
/* a * b if both are positive and the product stays <= FM_MAX_ELEMS, else -1. */
int64_t fm_mul(int64_t a, int64_t b);

/* Validated network description shared by mlp_forward / mlp_loss_grad / train_epoch. */
typedef struct {
    int64_t L;              /* layers */
    const int64_t *sizes;   /* (L + 1) */
    int act[FASTMLP_MAX_LAYERS];  /* copied codes (L <= FASTMLP_MAX_LAYERS enforced) */
    int64_t woff[FASTMLP_MAX_LAYERS], boff[FASTMLP_MAX_LAYERS], wtoff[FASTMLP_MAX_LAYERS];
    int64_t n_params;
    int64_t n_wt;           /* total weight elements (transposed copies) */
    int64_t max_width;
    int64_t sum_width;      /* sum of sizes[1..L] */
} fm_net;

#define FM_MAX_LAYERS FASTMLP_MAX_LAYERS

/* GEMM epilogues (fused into the store of the result):
   FM_EPI_RELU       also C2 = relu(C)  (NaN stays NaN and -0 gives +0, as np.maximum);
                     C2 == C: relu(C) only
   FM_EPI_RELU_GRAD  C = C * (Z > 0 ? 1 : 0)  (the reference's relu backward, NaN-exact) */
#define FM_EPI_NONE 0
#define FM_EPI_RELU 1
#define FM_EPI_RELU_GRAD 2
int fm_net_init(fm_net *net, const int64_t *sizes, const int64_t *acts, int64_t n_layers);

#ifdef _OPENMP
#define FM_OMP_IDS(tid, nt) do { (tid) = omp_get_thread_num(); (nt) = omp_get_num_threads(); } while (0)
#else
#define FM_OMP_IDS(tid, nt) do { (tid) = 0; (nt) = 1; } while (0)
#endif

/* Split [0, n) over the threads (fm_par_threads) in 64-element-aligned slices. */
#define FM_PARALLEL_RANGE(n, ns_per_elem, BODY)                                            \
    do {                                                                                   \
        const int64_t n_ = (n);                                                            \
        const int nt_ = fm_par_threads(n_, (ns_per_elem), sizeof(T));                      \
        _Pragma("omp parallel num_threads(nt_) if (nt_ > 1)")                              \
        {                                                                                  \
            int tid_ = 0, ntt_ = 1;                                                        \
            int64_t chunk_, i0, i1;                                                        \
            (void)nt_;                                                                     \
            FM_OMP_IDS(tid_, ntt_);                                                        \
            chunk_ = ((n_ + ntt_ - 1) / ntt_ + 63) / 64 * 64;                              \
            i0 = chunk_ * tid_;                                                            \
            i1 = i0 + chunk_ < n_ ? i0 + chunk_ : n_;                                      \
            if (i0 < i1) { BODY; }                                                         \
        }                                                                                  \
    } while (0)

#define FM_CHECK(cond, code) do { if (!(cond)) return (code); } while (0)

/* Overlap of the arrays of one call (fastmlp.h, Conventions): an array a function writes
   must not share a byte with another array of the call (fastmlp/backends/_contract.py,
   apart, is the same rule in Python).  A span is an array's bytes [p, p + bytes); NULL or
   empty spans overlap nothing.  Compared as uintptr_t: < on pointers into different
   objects is undefined in C.  O(1) per pair: no element is read. */
typedef struct { const void *p; size_t bytes; } fm_span;
FM_INLINE fm_span fm_span_of(const void *p, int64_t count, size_t elem)
{
    fm_span s;
    s.p = p;
    s.bytes = count > 0 ? (size_t)count * elem : 0;
    return s;
}
/* the span of `count` elements of ptr's type from ptr */
#define FM_SPAN(ptr, count) fm_span_of((ptr), (int64_t)(count), sizeof(*(ptr)))
FM_INLINE int fm_overlap(fm_span a, fm_span b)
{
    const uintptr_t pa = (uintptr_t)a.p, pb = (uintptr_t)b.p;
    if (!a.p || !b.p || !a.bytes || !b.bytes) return 0;
    return pa < pb + b.bytes && pb < pa + a.bytes;
}
/* FASTMLP_EINVAL if a written span (w[0..nw)) overlaps another written one or a read one
   (r[0..nr)), else FASTMLP_OK.  Callers check sizes first (the spans stay in range). */
FM_INLINE int fm_check_apart(const fm_span *w, int nw, const fm_span *r, int nr)
{
    int i, j;
    for (i = 0; i < nw; i++) {
        for (j = i + 1; j < nw; j++)
            if (fm_overlap(w[i], w[j])) return FASTMLP_EINVAL;
        for (j = 0; j < nr; j++)
            if (fm_overlap(w[i], r[j])) return FASTMLP_EINVAL;
    }
    return FASTMLP_OK;
}

/* A row order: int64 indices (i64), int32 ones (i32: the _i32 entry points, half the bytes
   for fit's epoch order to write, shuffle and read), or neither (the rows in order). */
typedef struct { const int64_t *i64; const int32_t *i32; } fm_order;
FM_INLINE fm_order fm_order64(const int64_t *p) { fm_order o; o.i64 = p; o.i32 = NULL; return o; }
FM_INLINE fm_order fm_order32(const int32_t *p) { fm_order o; o.i64 = NULL; o.i32 = p; return o; }
FM_INLINE int fm_order_any(fm_order o) { return o.i64 != NULL || o.i32 != NULL; }
FM_INLINE int64_t fm_order_at(fm_order o, int64_t i)
{
    return o.i32 ? (int64_t)o.i32[i] : o.i64[i];
}
/* the order from its k-th entry on (the same "no order" if there is none) */
FM_INLINE fm_order fm_order_skip(fm_order o, int64_t k)
{
    if (o.i64) o.i64 += k;
    if (o.i32) o.i32 += k;
    return o;
}

/* The next epoch's row order, built a piece at a time inside this epoch's training call
   (shuffle.c): the permutation fastmlp_epoch_permutation(_i32) writes, from the same key,
   by the same three passes run in row order, so the result is the same whoever runs which
   piece.  A thread with nothing to do (waiting while another thread applies the serial
   optimizer step of a small net: ~12 % of its time on 5-32-32-1 at batch 256) takes a
   piece of ~FM_PJ_ROWS rows, short enough not to hold up the next batch; what is left at
   the end of the call is finished then, on the threads.  The epoch order then costs fit
   nothing between epochs (it was ~5 ms of a ~150 ms epoch there, most of its bookkeeping).
   One thread at a time holds the job (busy); the others wait as before. */
typedef struct {
    void *out;          /* (n) int32_t (i32) or int64_t entries */
    int i32, k, phase;  /* phase: FM_PJ_COUNT, _SCATTER, _SHUFFLE, _DONE */
    int busy;           /* 1 while a thread holds the job (atomic) */
    int done;           /* phase == FM_PJ_DONE, read without holding the job (atomic) */
    int64_t n, nb, pos, b;  /* rows (count, scatter) or bucket b and its position pos */
    uint64_t key;
    int64_t *start;     /* (nb + 1) bucket starts */
    int64_t *fill;      /* (nb) the next free slot of each bucket */
} fm_perm_job;
enum { FM_PJ_COUNT = 0, FM_PJ_SCATTER = 1, FM_PJ_SHUFFLE = 2, FM_PJ_DONE = 3 };
int fm_perm_job_init(fm_perm_job *j, void *out, int i32, int64_t n, uint64_t key);
/* One piece of work if no other thread holds the job and work is left: returns 1 if it did
   one, else 0 (the caller waits as it would have). */
int fm_perm_job_try(fm_perm_job *j);
/* The rest of the job (its shuffle on the threads), then the job's memory freed; returns
   FASTMLP_OK once out holds the permutation (FASTMLP_ENOMEM if memory ran out). */
int fm_perm_job_finish(fm_perm_job *j);

/* Internal kernels (both dtypes), defined in the *.c files from the *.inc templates. */
#define FM_DECLARE(T, S)                                                                     \
    void fm_act_forward##S(T *out, const T *z, int64_t n, int act);                          \
    void fm_act_backward##S(T *dz, const T *da, const T *z, int64_t n, int act);             \
    void fm_gemm##S(int64_t M, int64_t N, int64_t K, const T *A, int64_t a_rs, int64_t a_cs, \
                    const T *B, int64_t ldb, T *C, int64_t ldc, const T *bias, int accumulate); \
    void fm_gemm_epi##S(int64_t M, int64_t N, int64_t K, const T *A, int64_t a_rs,           \
                        int64_t a_cs, const T *B, int64_t ldb, T *C, int64_t ldc,            \
                        const T *bias, int accumulate, int epi, T *C2, const T *Z);          \
    T fm_wsum##S(const T *sw, fm_order idx, int64_t n);                                     \
    int fm_weights_ok##S(const T *sw, int64_t n);                                            \
    double fm_loss_rows##S(int loss, T *dl, const T *out, const T *y, const T *sw,           \
                           int64_t n, int64_t k, T wsum);                                    \
    void fm_opt_range##S(int opt, T *p, const T *g, T *state, int64_t n, int64_t i0,         \
                         int64_t i1, int64_t step, const double *h);                         \
    /* fastmlp_train_epoch_l2 with the parts a batch is cut into given (P >= 1; 0: the    */ \
    /* thread setting's, fm_epoch_parts) and, with serial != 0, the parts run one after   */ \
    /* another on the calling thread: the same arithmetic as on P threads (train.inc),    */ \
    /* for the batched kernel, which runs several models at once, one per thread.         */ \
    int fm_train_epoch_parts##S(int64_t *completed, T *params, T *grad, T *state,            \
                                double *batch_losses, const T *x, const T *y, const T *sw,   \
                                int64_t N, fm_order perm, int64_t n_perm,                    \
                                int64_t batch_size, const double *lrs, int64_t step0,        \
                                int opt, const double *hyper, const int64_t *sizes,          \
                                const int64_t *acts, int64_t n_layers, int loss_code,        \
                                double l2, int P, int serial);
FM_DECLARE(float, _f32)
FM_DECLARE(double, _f64)

/* The sentence of a model-file status code (FASTMLP_EIO .. FASTMLP_ECHECKSUM), or NULL for
   any other code (model_file.c; fastmlp_strerror explains every code through it). */
const char *fm_model_status_text(int status);

int fm_check_opt(int opt, const void *state, int64_t step, const double *hyper);
/* FM_NS_* of an update (hyper checked) and of an activation's forward or backward pass */
double fm_opt_ns(int opt, const double *hyper);
double fm_act_ns(int act, int backward);
/* 1 if the hyper vector h of optimizer opt is in range (fastmlp.codes.HYPER_RANGES): the
   entries it reads finite, the lr h[0] >= 0 (not read when skip_lr: train_epoch takes its
   rates from lrs), rates and decays >= 0, betas in [0, 1), nesterov with momentum > 0 and
   dampening 0; else 0 (also for an unknown opt). */
int fm_hyper_ok(int opt, const double *h, int skip_lr);

/* z (ns, n_out) = a_in (ns, n_in) W (n_in, n_out) + b skipping the zero entries of a_in,
   and a_out = relu(z) unless a_out is NULL (sparse.c).  Returns 0, having written nothing,
   when the shape does not qualify or the tile's share of zeros is below min_zeros (< 0: the
   default, FM_SPARSE_MIN_ZEROS; above 1: never): use the dense product. */
int fm_dense_sparse_input_f32(int64_t ns, int64_t n_in, int64_t n_out, const float *a_in,
                              const float *W, const float *b, float *z, float *a_out,
                              double min_zeros);

/* out (ns,) = relu(a_in W + b) wo + bo[0] (wo: (n_hid,)): the last two layers of a network
   ending in one output, a_in a ReLU output, computed as fm_dense_sparse_input_f32 does with
   the hidden row kept in registers.  Returns 0, having written nothing, when it does not pay
   (as fm_dense_sparse_input_f32). */
int fm_dense_sparse_input_dot_f32(int64_t ns, int64_t n_in, int64_t n_hid, const float *a_in,
                                  const float *W, const float *b, const float *wo,
                                  const float *bo, float *out, double min_zeros);

/* Per calling thread storage (the thread setting, the BLAS layer choice). */
#if defined(__GNUC__) || defined(__clang__)
#define FM_THREAD_LOCAL __thread
#elif defined(_MSC_VER)
#define FM_THREAD_LOCAL __declspec(thread)
#else
#define FM_THREAD_LOCAL /* no thread-local storage in plain C99: one per process */
#endif

/* The optional BLAS (blas.c): Fortran-interface ?gemm, handed in by fastmlp_set_gemm. */
typedef void (*fm_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *,
                            float *, int *, float *, float *, int *);
typedef void (*fm_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *, int *,
                            double *, int *, double *, double *, int *);
/* 1 if a BLAS is set and an (M, N, K) product reaches the crossover (and fits an int). */
int fm_blas_use_f32(int64_t M, int64_t N, int64_t K);
int fm_blas_use_f64(int64_t M, int64_t N, int64_t K);
/* The same for a layer of a whole-network kernel (n_in x n_out weights on `rows` rows): the
   calling thread's layer choice (fastmlp_set_thread_gemm_layers) when it has one, else the
   product crossover.  Called on the thread that called the kernel, before its threads start. */
int fm_blas_layer_f32(int64_t rows, int64_t n_out, int64_t n_in);
int fm_blas_layer_f64(int64_t rows, int64_t n_out, int64_t n_in);
/* The calling thread's layer choice (fastmlp_set_thread_gemm_layers; < 0: none). */
double fm_thread_gemm_layers(void);
/* The calling thread's share of zero inputs from which mlp_forward skips them
   (fastmlp_set_thread_skip_zeros; < 0: the default). */
double fm_thread_skip_zeros(void);
/* The tile rows of the whole-network kernels when a layer goes to BLAS: the calling
   thread's fastmlp_set_thread_gemm_tile, else FM_BLAS_TILE. */
#ifndef FM_BLAS_TILE
#define FM_BLAS_TILE 1024
#endif
int64_t fm_thread_gemm_tile(void);

/* Multiply-adds of one sample's forward pass (train.c). */
int64_t fm_net_macs(const int64_t *sizes, int64_t n_layers);
/* The parts (threads) the fused epoch cuts a batch of bs rows of this net into, with the
   calling thread's thread setting (train.c). */
int fm_epoch_parts(const int64_t *sizes, int64_t n_layers, int64_t bs);
/* Row-major C (M, N; row stride ldc) = alpha op(A) op(B) + beta C; ta / tb: op = transpose. */
void fm_blas_gemm_f32(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc);
void fm_blas_gemm_f64(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                      const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                      double *C, int64_t ldc);
/* The same, split over fm_threads() in blocks of rows of C (blas.inc); alpha = 1. */
void fm_blas_gemm_par_f32(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                          int64_t ldc);
void fm_blas_gemm_par_f64(int ta, int tb, int64_t M, int64_t N, int64_t K, const double *A,
                          int64_t lda, const double *B, int64_t ldb, double beta, double *C,
                          int64_t ldc);

#endif
