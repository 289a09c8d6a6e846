/*
 * fastmlp.h -- the stable C99 API of the fastmlp kernels (no Python anywhere).
 *
 * The same sources are compiled into the Python extension (fastmlp/_build_ffi.py, through
 * cffi) and into a standalone library (csrc/Makefile: libfastmlp.so / libfastmlp.a) that any
 * C program can embed: see examples/c/train_xor.c.  The NumPy reference
 * (fastmlp/backends/reference.py) is the specification of every function here.
 *
 * Conventions
 *  - Every function exists for float32 (suffix _f32) and float64 (_f64); all arrays of one
 *    call share that type and results are computed in it.
 *  - Outputs first, gradients prefixed d, inputs next, sizes, then options.  Arrays are
 *    dense and row-major: a "(B, n)" buffer holds B*n elements, row r at offset r*n.
 *  - An array a function writes must not overlap any other array of the call, except where
 *    its comment says "may alias" (then exactly the same pointer): overlapping arrays give
 *    wrong results (a cross-entropy gradient written over its logits returns the loss of
 *    the gradient, a parameter vector that is a row of its own optimizer state is updated
 *    from the values it just wrote), so every kernel that writes arrays compares the byte
 *    extents of its arrays (as given by its sizes; O(1), no element read) and returns
 *    FASTMLP_EINVAL, having written no array, when a written array shares a byte with
 *    another one; arrays that only touch (adjacent slices of one buffer) are fine.  The
 *    rule is fastmlp/backends/_contract.py's apart, which the Python backends apply first.
 *    Not checked: the scalar outputs (loss, completed), fastmlp_shuffle_indices' out
 *    against u, and the model-file functions' arrays.
 *  - Every function validates its arguments (null pointers, non-positive sizes, unknown
 *    codes, class indices and sample indices out of range) and returns a status code:
 *    FASTMLP_OK (0) on success.  Nothing aborts, prints or reads outside the documented
 *    extents.  fastmlp_strerror() turns any code the library returns into a sentence.
 *  - Codes are those of fastmlp/codes.py: activations identity relu leaky_relu elu tanh
 *    sigmoid softplus gelu = 0..7 (leaky slope 0.01, elu alpha 1, gelu in its tanh form),
 *    losses bce cross_entropy mse = 0..2, optimizers sgd adagrad rmsprop adam adamw = 0..4.
 *  - Threads: OpenMP; fastmlp_set_num_threads() sets the count used by every kernel called
 *    from the calling thread (the setting is thread-local, so two threads of a program may
 *    run kernels with different counts at once).  Results are deterministic for a given
 *    thread count (per-thread partial sums are reduced in a fixed order).  After fork() in
 *    a process whose OpenMP threads had started, call fastmlp_set_num_threads(1) in the
 *    child before any kernel: libgomp cannot restart its threads there.
 *  - Subnormal numbers: on x86 the kernels run with flush-to-zero and denormals-are-zero
 *    set in each thread's SSE control register (MXCSR) while they work, except in the
 *    optimizer updates, and put every thread's own setting back before they return: the
 *    calling program never sees the mode (internal.h, FM_FLUSH_BEGIN, says why).  Build
 *    with -DFASTMLP_KEEP_SUBNORMALS for IEEE subnormals everywhere (slower once they occur).
 *  - Hyper-parameters and learning rates must be finite and in torch.optim's ranges,
 *    narrowed where those give NaN (fastmlp.codes.HYPER_RANGES): learning rates, momentum,
 *    dampening, weight_decay and lr_decay >= 0, eps > 0, alpha and betas in [0, 1),
 *    nesterov only with momentum > 0 and dampening 0, RMSprop's centered only with
 *    alpha > 0; steps >= 1 with step0 + the number
 *    of batches below 2^63: anything else gives FASTMLP_EVALUE.
 *  - Flat parameter layout of an MLP with sizes [n0, ..., nL] (L layers): for each layer l,
 *    the weight W_l (n_l, n_{l+1}) row-major, then the bias b_l (n_{l+1}).  A layer computes
 *    z = x W + b, a = f(z).  The network returns the last layer's a (its activation is
 *    normally identity: logits), and the loss applies the link.
 *  - Losses are weighted means L = sum_i sw_i l_i / sum_i sw_i (sw: sample weights (B,)),
 *    returned through a double pointer; their gradients are written to a (B, n_out) buffer.
 *    Every weight must be finite and >= 0 and (loss calls, mlp_loss_grad) their sum finite
 *    and > 0, else FASTMLP_EVALUE with nothing written.  train_epoch checks the N weights
 *    once per call; a batch of it whose weights sum to 0 has no weighted mean: its loss and
 *    gradient are NaN and the epoch stops there (FASTMLP_ENONFINITE, as below).
 *    Targets y are float arrays: (B, 1) for cross_entropy (the class index stored as a
 *    float), (B, n_out) for bce (0/1; several outputs = multilabel, one binary
 *    cross-entropy per output summed over the outputs) and mse.
 */
#ifndef FASTMLP_H
#define FASTMLP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FASTMLP_API marks the public functions: the library is built with -fvisibility=hidden
   (fastmlp/_build_ffi.py, csrc/Makefile), so these are its only exported symbols and the
   internal fm_* kernels stay private (no clash with a program's own names). */
#ifndef FASTMLP_API
#if defined(__GNUC__) && __GNUC__ >= 4 && !defined(_WIN32) && !defined(__CYGWIN__)
#define FASTMLP_API __attribute__((visibility("default")))
#else
#define FASTMLP_API
#endif
#endif

#define FASTMLP_VERSION_MAJOR 0
#define FASTMLP_VERSION_MINOR 1
#define FASTMLP_LEAKY_RELU_SLOPE 0.01
#define FASTMLP_ELU_ALPHA 1.0
#define FASTMLP_N_HYPER 8

/* FASTMLP_CDEF_BEGIN  (fastmlp/_build_ffi.py feeds the text from here to the END mark to
   cffi, without preprocessor lines) */

/* Status codes returned by every function. */
enum fastmlp_status {
    FASTMLP_OK = 0,
    FASTMLP_EINVAL = 1,      /* a required pointer is NULL (or overlaps one it must not) */
    FASTMLP_ESIZE = 2,       /* a size is not positive, or sizes are inconsistent */
    FASTMLP_ECODE = 3,       /* unknown activation, loss or optimizer code */
    FASTMLP_EVALUE = 4,      /* a value is out of range: class index, sample index, step, ... */
    FASTMLP_ENOMEM = 5,      /* a scratch allocation failed */
    FASTMLP_ENONFINITE = 6   /* train_epoch stopped before applying a non-finite update */
};
/* FASTMLP_EINVAL..FASTMLP_EVALUE are all invalid arguments (the call changed nothing). */

enum fastmlp_activation {
    FASTMLP_ACT_IDENTITY = 0, FASTMLP_ACT_RELU = 1, FASTMLP_ACT_LEAKY_RELU = 2,
    FASTMLP_ACT_ELU = 3, FASTMLP_ACT_TANH = 4, FASTMLP_ACT_SIGMOID = 5,
    FASTMLP_ACT_SOFTPLUS = 6, FASTMLP_ACT_GELU = 7
};
enum fastmlp_loss { FASTMLP_LOSS_BCE = 0, FASTMLP_LOSS_CROSS_ENTROPY = 1, FASTMLP_LOSS_MSE = 2 };
enum fastmlp_optimizer {
    FASTMLP_OPT_NONE = -1,   /* loss and gradient only, no update (fastmlp.codes.OPT_NONE) */
    FASTMLP_OPT_SGD = 0, FASTMLP_OPT_ADAGRAD = 1, FASTMLP_OPT_RMSPROP = 2,
    FASTMLP_OPT_ADAM = 3, FASTMLP_OPT_ADAMW = 4
};
/* Counts (fastmlp/codes.py: N_ACTIVATIONS, N_LOSSES, N_OPTIMIZERS) and limits: the network
   kernels take at most FASTMLP_MAX_LAYERS layers of widths up to FASTMLP_MAX_WIDTH (else
   FASTMLP_ESIZE; the Python backend runs such models on the NumPy reference), and
   fastmlp_set_num_threads at most FASTMLP_MAX_THREADS. */
enum fastmlp_limits {
    FASTMLP_N_ACTIVATIONS = 8, FASTMLP_N_LOSSES = 3, FASTMLP_N_OPTIMIZERS = 5,
    FASTMLP_MAX_LAYERS = 64, FASTMLP_MAX_WIDTH = 16777216, FASTMLP_MAX_THREADS = 1024
};

/* A sentence explaining any status code the library returns, the model-file codes
   (FASTMLP_EIO .. FASTMLP_ECHECKSUM) included (a static string; never NULL). */
FASTMLP_API
const char *fastmlp_strerror(int status);

/* Threads used by every kernel called from this thread (1 <= n <= FASTMLP_MAX_THREADS, else
   FASTMLP_ESIZE).  Default: OpenMP's default. */
FASTMLP_API
int fastmlp_set_num_threads(int n);
/* The thread count the kernels will use (1 when built without OpenMP). */
FASTMLP_API
int fastmlp_get_num_threads(void);
/* The element-wise kernels (optimizer updates, activation_forward / _backward, sigmoid_pair,
   dense_forward's activation) use the threads only for calls whose estimated work on one
   thread reaches `ns` nanoseconds (>= 0, INFINITY: never; NaN or negative: FASTMLP_EVALUE):
   a parallel region costs a passive OpenMP team ~100-300 us on small VMs, more than such a
   kernel's work on 262,144 elements.  Default 300,000; fastmlp's Python package measures
   it once per machine and thread count and sets it.  Process-wide.  The results are the
   same bits at any thread count. */
FASTMLP_API
int fastmlp_set_parallel_min_work(double ns);
FASTMLP_API
double fastmlp_get_parallel_min_work(void);
/* 1 if built with OpenMP, 0 if not. */
FASTMLP_API
int fastmlp_has_openmp(void);
/* 1 if the AVX2/FMA kernels were compiled in, 0 for the portable path. */
FASTMLP_API
int fastmlp_has_avx2(void);
/* 1 if the matrix products' AVX-512 (zmm) micro-kernel was compiled in as well. */
FASTMLP_API
int fastmlp_has_avx512(void);
/* An optional BLAS for the wide layers (csrc/blas.c): sgemm / dgemm with the reference
   Fortran interface (void ?gemm(char *transa, char *transb, int *m, int *n, int *k, T *alpha,
   T *a, int *lda, T *b, int *ldb, T *beta, T *c, int *ldc)), or NULL for the hand-written
   kernels (the default).  A layer product of M x N x K multiply-adds goes to BLAS when it
   reaches min_macs of its dtype (>= 0, else FASTMLP_EVALUE).  Process-wide: set it before
   kernels run in other threads.  BLAS threads are the BLAS library's own setting. */
FASTMLP_API
int fastmlp_set_gemm(void *sgemm, void *dgemm, double min_macs_f32, double min_macs_f64);
/* This calling thread's choice of layers for BLAS in the whole-network kernels (mlp_forward,
   mlp_loss_grad, train_epoch, batched_train_epoch), kept per calling thread like the thread
   count: a layer of n_in x n_out >= min_weights weights goes to BLAS whatever the rows
   (INFINITY: no layer does); min_weights < 0 goes back to the product crossover of
   fastmlp_set_gemm (the default).  NaN: FASTMLP_EVALUE.  Needs a BLAS set to have effect. */
FASTMLP_API
int fastmlp_set_thread_gemm_layers(double min_weights);
/* This calling thread's tile for mlp_forward, mlp_loss_grad and train_epoch when some layer
   goes to BLAS: each thread's rows of a batch are processed in tiles of at most `rows` rows
   (6 .. 65536; 0: the default, 1024).  Taller tiles run BLAS nearer its peak, shorter ones keep
   a tile's activations nearer the core; the best differs between CPUs, so fastmlp
   measures it (fastmlp.backends.tuning.blas_tile).  The tile changes the order in which a
   batch's weight gradients are summed, so results change at the rounding level.
   Otherwise FASTMLP_EVALUE. */
FASTMLP_API
int fastmlp_set_thread_gemm_tile(int64_t rows);
/* This calling thread's rule for mlp_forward_f32's layers that follow a ReLU: a tile skips
   their zero inputs (sparse.c; the same sums, without the exact zero products) when at least
   `min_zeros` of its first rows' inputs are zero.  < 0: the default (0.2); above 1 (e.g.
   INFINITY): never, the dense product always.  Which is faster differs between CPUs, so
   fastmlp measures it (fastmlp.backends.tuning.forward_skip_zeros).  Skipping sums a
   ReLU layer into a single output in another order, so results change at the rounding
   level.  NaN: FASTMLP_EVALUE. */
FASTMLP_API
int fastmlp_set_thread_skip_zeros(double min_zeros);
/* Bit 0: an sgemm is set, bit 1: a dgemm is set. */
FASTMLP_API
int fastmlp_has_gemm(void);

/* Rows of the optimizer state matrix (N_STATE, n) for an optimizer code, or -1 if unknown:
   sgd [momentum_buffer], adagrad [sum], rmsprop [square_avg, grad_avg, momentum_buffer],
   adam/adamw [exp_avg, exp_avg_sq, max_exp_avg_sq]. */
FASTMLP_API
int fastmlp_optimizer_state_rows(int opt);
/* Entries of the hyper vector an optimizer code reads (fastmlp.codes.HYPER_NAMES), or -1. */
FASTMLP_API
int fastmlp_optimizer_n_hyper(int opt);
/* Length of the flat parameter vector of an MLP with sizes[0..n_layers] (or -1 if invalid). */
FASTMLP_API
int64_t fastmlp_n_params(const int64_t *sizes, int64_t n_layers);

/* ---- activations: elementwise over n values ------------------------------------------ */
/* out = f(z).  out, z: (n,) (may alias) */
FASTMLP_API
int fastmlp_activation_forward_f32(float *out, const float *z, int64_t n, int act);
FASTMLP_API
int fastmlp_activation_forward_f64(double *out, const double *z, int64_t n, int act);
/* dz = da * f'(z).  dz, da, z: (n,) (dz may alias da or z) */
FASTMLP_API
int fastmlp_activation_backward_f32(float *dz, const float *da, const float *z, int64_t n, int act);
FASTMLP_API
int fastmlp_activation_backward_f64(double *dz, const double *da, const double *z, int64_t n, int act);
/* The output link of one sigmoid output, as predict_proba:
   out[2i] = sigmoid(-z[i]), out[2i+1] = sigmoid(z[i]), each computed directly (1/(1+e) or
   e/(1+e), e = exp(-|z|)) so that a small probability keeps its relative precision down to
   the smallest normal number (below it: 0); NaN gives NaN in both.  out: (n, 2); z: (n,) */
FASTMLP_API
int fastmlp_sigmoid_pair_f32(float *out, const float *z, int64_t n);
FASTMLP_API
int fastmlp_sigmoid_pair_f64(double *out, const double *z, int64_t n);

/* ---- dense layer ------------------------------------------------------------------------ */
/* z = x w + b; out = f(z).  out, z: (B, n_out) (may alias); x: (B, n_in); w: (n_in, n_out);
   b: (n_out) */
FASTMLP_API
int fastmlp_dense_forward_f32(float *out, float *z, const float *x, const float *w,
                              const float *b, int64_t B, int64_t n_in, int64_t n_out, int act);
FASTMLP_API
int fastmlp_dense_forward_f64(double *out, double *z, const double *x, const double *w,
                              const double *b, int64_t B, int64_t n_in, int64_t n_out, int act);
/* dz = dout * f'(z); dw = x^T dz; db = sum_rows dz; dx = dz w^T (dx may be NULL: skipped).
   dx: (B, n_in); dw: (n_in, n_out); db: (n_out); dout, z: (B, n_out); x: (B, n_in);
   w: (n_in, n_out).  dw, db, dx are overwritten.  Allocates B*n_out + n_in*n_out scratch. */
FASTMLP_API
int fastmlp_dense_backward_f32(float *dx, float *dw, float *db, const float *dout,
                               const float *x, const float *w, const float *z,
                               int64_t B, int64_t n_in, int64_t n_out, int act);
FASTMLP_API
int fastmlp_dense_backward_f64(double *dx, double *dw, double *db, const double *dout,
                               const double *x, const double *w, const double *z,
                               int64_t B, int64_t n_in, int64_t n_out, int act);

/* ---- losses with fused gradients -------------------------------------------------------- */
/* Binary cross-entropy on logits.  dlogits, logits, y: (B, 1); sw: (B).
   l = max(z,0) - z y + log1p(exp(-|z|));  dl/dz = sigmoid(z) - y */
FASTMLP_API
int fastmlp_bce_loss_grad_f32(double *loss, float *dlogits, const float *logits,
                              const float *y, const float *sw, int64_t B);
FASTMLP_API
int fastmlp_bce_loss_grad_f64(double *loss, double *dlogits, const double *logits,
                              const double *y, const double *sw, int64_t B);
/* Softmax cross-entropy.  dlogits, logits: (B, C); y: (B, 1) class index in [0, C) stored as
   a float (truncated toward zero; anything outside gives FASTMLP_EVALUE); sw: (B). */
FASTMLP_API
int fastmlp_cross_entropy_loss_grad_f32(double *loss, float *dlogits, const float *logits,
                                        const float *y, const float *sw, int64_t B, int64_t C);
FASTMLP_API
int fastmlp_cross_entropy_loss_grad_f64(double *loss, double *dlogits, const double *logits,
                                        const double *y, const double *sw, int64_t B, int64_t C);
/* Mean squared error, mean over the K outputs.  dout, out, y: (B, K); sw: (B). */
FASTMLP_API
int fastmlp_mse_loss_grad_f32(double *loss, float *dout, const float *out, const float *y,
                              const float *sw, int64_t B, int64_t K);
FASTMLP_API
int fastmlp_mse_loss_grad_f64(double *loss, double *dout, const double *out, const double *y,
                              const double *sw, int64_t B, int64_t K);
/* Dispatch on the loss code.  dout, out: (B, n_out); y: (B, 1) for cross_entropy,
   (B, n_out) for mse and bce (with several outputs: one binary cross-entropy per output,
   summed over the outputs, i.e. multilabel targets). */
FASTMLP_API
int fastmlp_loss_grad_f32(double *loss, float *dout, const float *out, const float *y,
                          const float *sw, int64_t B, int64_t n_out, int loss_code);
FASTMLP_API
int fastmlp_loss_grad_f64(double *loss, double *dout, const double *out, const double *y,
                          const double *sw, int64_t B, int64_t n_out, int loss_code);

/* ---- optimizer updates: one fused pass over flat buffers, in place ---------------------- */
/* torch.optim's formulas in its order of operations: float64 matches torch to rounding
   (1e-12 relative per step), float32 to float32 rounding (1-2 ulp, not bit for bit). */
/* step is the 1-based number of this update.  p, g and every state buffer: (n).
   A state buffer may be NULL when the options leave it untouched (noted per function). */
/* torch.optim.SGD.  buf may be NULL if momentum == 0. */
FASTMLP_API
int fastmlp_sgd_update_f32(float *p, const float *g, float *buf, int64_t n, int64_t step,
                           double lr, double momentum, double dampening, double weight_decay,
                           int nesterov, int maximize);
FASTMLP_API
int fastmlp_sgd_update_f64(double *p, const double *g, double *buf, int64_t n, int64_t step,
                           double lr, double momentum, double dampening, double weight_decay,
                           int nesterov, int maximize);
/* torch.optim.Adagrad. */
FASTMLP_API
int fastmlp_adagrad_update_f32(float *p, const float *g, float *state_sum, int64_t n,
                               int64_t step, double lr, double lr_decay, double weight_decay,
                               double eps, int maximize);
FASTMLP_API
int fastmlp_adagrad_update_f64(double *p, const double *g, double *state_sum, int64_t n,
                               int64_t step, double lr, double lr_decay, double weight_decay,
                               double eps, int maximize);
/* torch.optim.RMSprop.  grad_avg may be NULL unless centered; momentum_buffer may be NULL
   unless momentum > 0.  centered needs alpha > 0 (alpha = 0 makes the centered variance
   g^2 - g^2 = 0: every step lr * g / eps), else FASTMLP_EVALUE. */
FASTMLP_API
int fastmlp_rmsprop_update_f32(float *p, const float *g, float *square_avg, float *grad_avg,
                               float *momentum_buffer, int64_t n, int64_t step, double lr,
                               double alpha, double eps, double weight_decay, double momentum,
                               int centered, int maximize);
FASTMLP_API
int fastmlp_rmsprop_update_f64(double *p, const double *g, double *square_avg, double *grad_avg,
                               double *momentum_buffer, int64_t n, int64_t step, double lr,
                               double alpha, double eps, double weight_decay, double momentum,
                               int centered, int maximize);
/* torch.optim.Adam (decoupled = 0) and torch.optim.AdamW (decoupled = 1).  vmax may be NULL
   unless amsgrad. */
FASTMLP_API
int fastmlp_adam_update_f32(float *p, const float *g, float *m, float *v, float *vmax,
                            int64_t n, int64_t step, double lr, double beta1, double beta2,
                            double eps, double weight_decay, int amsgrad, int maximize,
                            int decoupled);
FASTMLP_API
int fastmlp_adam_update_f64(double *p, const double *g, double *m, double *v, double *vmax,
                            int64_t n, int64_t step, double lr, double beta1, double beta2,
                            double eps, double weight_decay, int amsgrad, int maximize,
                            int decoupled);
/* Dispatch on the optimizer code.  state: (fastmlp_optimizer_state_rows(opt), n) row-major;
   hyper: (FASTMLP_N_HYPER) laid out as in fastmlp/codes.py:
     sgd [lr, momentum, dampening, weight_decay, nesterov, maximize]
     adagrad [lr, lr_decay, weight_decay, eps, maximize]
     rmsprop [lr, alpha, eps, weight_decay, momentum, centered, maximize]
     adam, adamw [lr, beta1, beta2, eps, weight_decay, amsgrad, maximize]
   The flags (nesterov, amsgrad, centered, maximize; also the int flags of the calls above)
   must be exactly 0 or 1, else FASTMLP_EVALUE with nothing written. */
FASTMLP_API
int fastmlp_optimizer_update_f32(int opt, float *p, const float *g, float *state, int64_t n,
                                 int64_t step, const double *hyper);
FASTMLP_API
int fastmlp_optimizer_update_f64(int opt, double *p, const double *g, double *state, int64_t n,
                                 int64_t step, const double *hyper);

/* ---- whole network ---------------------------------------------------------------------- */
/* sizes: (n_layers + 1) layer widths; acts: (n_layers) activation codes. */
/* Network output for a batch.  out: (B, sizes[L]); params: (n_params); x: (B, sizes[0]).
   out must not overlap x or params (rows of x are read where they are, by several threads;
   else FASTMLP_EINVAL). */
FASTMLP_API
int fastmlp_mlp_forward_f32(float *out, const float *params, const float *x, int64_t B,
                            const int64_t *sizes, const int64_t *acts, int64_t n_layers);
FASTMLP_API
int fastmlp_mlp_forward_f64(double *out, const double *params, const double *x, int64_t B,
                            const int64_t *sizes, const int64_t *acts, int64_t n_layers);
/* Weighted-mean loss of a batch (through *loss) and its gradient w.r.t. every parameter.
   grad: (n_params) overwritten; x: (B, sizes[0]); y: (B, k); sw: (B), or NULL: every row
   weighs 1 (the same bits as an array of ones, without reading one). */
FASTMLP_API
int fastmlp_mlp_loss_grad_f32(double *loss, float *grad, const float *params, const float *x,
                              const float *y, const float *sw, int64_t B, const int64_t *sizes,
                              const int64_t *acts, int64_t n_layers, int loss_code);
FASTMLP_API
int fastmlp_mlp_loss_grad_f64(double *loss, double *grad, const double *params,
                              const double *x, const double *y, const double *sw, int64_t B,
                              const int64_t *sizes, const int64_t *acts, int64_t n_layers,
                              int loss_code);
/* One epoch of mini-batch training, fused: for each batch of batch_size rows of perm (the
   last may be smaller), loss and gradient (parallel over the batch, per-thread gradient
   buffers reduced in a fixed order), then the optimizer update with lr = lrs[batch] and
   step = step0 + batch + 1.  Before each update the batch loss and gradient are checked:
   if either is not finite the epoch stops there without applying that update, *completed
   is the number of batches applied and FASTMLP_ENONFINITE is returned.  On success
   *completed = n_batches = ceil(n_perm / batch_size).
   params, grad: (n_params) (grad ends holding the last batch's gradient);
   state: (fastmlp_optimizer_state_rows(opt), n_params); batch_losses, lrs: (n_batches);
   x: (N, sizes[0]); y: (N, k); sw: (N), or NULL: unit weights (as for mlp_loss_grad: no
   weight is gathered per row, which saves ~8 % of a 5-32-32-1 epoch at batch 256);
   perm: (n_perm) sample indices in [0, N);
   hyper: (FASTMLP_N_HYPER) as for fastmlp_optimizer_update (hyper[0] is ignored). */
FASTMLP_API
int fastmlp_train_epoch_f32(int64_t *completed, float *params, float *grad, float *state,
                            double *batch_losses, const float *x, const float *y,
                            const float *sw, int64_t N, const int64_t *perm, int64_t n_perm,
                            int64_t batch_size, const double *lrs, int64_t step0, int opt,
                            const double *hyper, const int64_t *sizes, const int64_t *acts,
                            int64_t n_layers, int loss_code);
FASTMLP_API
int fastmlp_train_epoch_f64(int64_t *completed, double *params, double *grad, double *state,
                            double *batch_losses, const double *x, const double *y,
                            const double *sw, int64_t N, const int64_t *perm, int64_t n_perm,
                            int64_t batch_size, const double *lrs, int64_t step0, int opt,
                            const double *hyper, const int64_t *sizes, const int64_t *acts,
                            int64_t n_layers, int loss_code);

/* The same two calls with an L2 penalty on the weights (never the biases), scaled per batch
   by the batch's weight sum W = sum sw as scikit-learn's MLPs scale it: the loss gains
   l2 / (2 W) * sum_l ||W_l||^2 and grad_W_l gains (l2 / W) W_l.  l2 finite and >= 0, else
   FASTMLP_EVALUE; l2 = 0 is exactly the calls above. */
FASTMLP_API
int fastmlp_mlp_loss_grad_l2_f32(double *loss, float *grad, const float *params,
                                 const float *x, const float *y, const float *sw, int64_t B,
                                 const int64_t *sizes, const int64_t *acts, int64_t n_layers,
                                 int loss_code, double l2);
FASTMLP_API
int fastmlp_mlp_loss_grad_l2_f64(double *loss, double *grad, const double *params,
                                 const double *x, const double *y, const double *sw, int64_t B,
                                 const int64_t *sizes, const int64_t *acts, int64_t n_layers,
                                 int loss_code, double l2);
FASTMLP_API
int fastmlp_train_epoch_l2_f32(int64_t *completed, float *params, float *grad, float *state,
                               double *batch_losses, const float *x, const float *y,
                               const float *sw, int64_t N, const int64_t *perm, int64_t n_perm,
                               int64_t batch_size, const double *lrs, int64_t step0, int opt,
                               const double *hyper, const int64_t *sizes, const int64_t *acts,
                               int64_t n_layers, int loss_code, double l2);
FASTMLP_API
int fastmlp_train_epoch_l2_f64(int64_t *completed, double *params, double *grad,
                               double *state, double *batch_losses, const double *x,
                               const double *y, const double *sw, int64_t N,
                               const int64_t *perm, int64_t n_perm, int64_t batch_size,
                               const double *lrs, int64_t step0, int opt, const double *hyper,
                               const int64_t *sizes, const int64_t *acts, int64_t n_layers,
                               int loss_code, double l2);

/* The row order of an epoch: out = a uniform random permutation of 0..n-1 from n uniforms
   u in [0, 1) by the inside-out Fisher-Yates shuffle, j_i = min(floor(u[i] * (i + 1)), i):
       for i = 0 .. n-1:  out[i] = out[j_i];  out[j_i] = i
   The same u gives the same permutation in every fastmlp backend.  n >= 1; a u[i] outside
   [0, 1) (or NaN) gives FASTMLP_EVALUE with out untouched.  Sequential (one thread). */
FASTMLP_API
int fastmlp_shuffle_indices(int64_t *out, const double *u, int64_t n);

/* The row order of an epoch from one 64-bit key (what fit uses): out = a uniform random
   permutation of 0..n-1, a one-pass Rao-Sandelius shuffle.  With
   x_i = mix64(key + (i + 1) * 0x9E3779B97F4A7C15) (splitmix64's output function) and k the
   smallest k with n >> k <= 16384 (at most 32), row i goes to bucket (x_i >> (64 - k)),
   buckets in order and rows in increasing order inside each; then inside each bucket
   a[0..m-1], for p = 1 .. m-1: v = (x_{a[p]} << k) >> 11, j = (int64)((double)v * 2^-53
   * (double)(p + 1)), swap a[p] and a[j].  The same key gives the same permutation in every
   fastmlp backend and on any number of threads.  n >= 1.  Multi-threaded (OpenMP). */
FASTMLP_API
int fastmlp_epoch_permutation(int64_t *out, int64_t n, uint64_t key);
/* The same permutation into int32 entries: n - 1 <= INT32_MAX, else FASTMLP_ESIZE.  Half the
   bytes to write, shuffle and read; fit uses it with the _i32 training call below whenever
   the rows fit. */
FASTMLP_API
int fastmlp_epoch_permutation_i32(int32_t *out, int64_t n, uint64_t key);
/* fastmlp_train_epoch_l2 with a row order of int32 indices (perm: (n_perm) in [0, N)): the
   same arithmetic and results bit for bit. */
FASTMLP_API
int fastmlp_train_epoch_i32_l2_f32(int64_t *completed, float *params, float *grad,
                                   float *state, double *batch_losses, const float *x,
                                   const float *y, const float *sw, int64_t N,
                                   const int32_t *perm, int64_t n_perm, int64_t batch_size,
                                   const double *lrs, int64_t step0, int opt,
                                   const double *hyper, const int64_t *sizes,
                                   const int64_t *acts, int64_t n_layers, int loss_code,
                                   double l2);
FASTMLP_API
int fastmlp_train_epoch_i32_l2_f64(int64_t *completed, double *params, double *grad,
                                   double *state, double *batch_losses, const double *x,
                                   const double *y, const double *sw, int64_t N,
                                   const int32_t *perm, int64_t n_perm, int64_t batch_size,
                                   const double *lrs, int64_t step0, int opt,
                                   const double *hyper, const int64_t *sizes,
                                   const int64_t *acts, int64_t n_layers, int loss_code,
                                   double l2);

/* fastmlp_train_epoch_i32_l2, and meanwhile the next epoch's row order: next_order =
   fastmlp_epoch_permutation_i32(n_next, next_key), built in pieces by threads that would
   otherwise wait (for the serial optimizer step of a small net), the rest at the end.  The
   training is the same, bit for bit; next_order is written whenever the call returns
   FASTMLP_OK or FASTMLP_ENONFINITE, and must not overlap perm or any other array of the
   call (else FASTMLP_EINVAL).
   n_next - 1 <= INT32_MAX. */
FASTMLP_API
int fastmlp_train_epoch_i32_next_f32(int64_t *completed, float *params, float *grad,
                                     float *state, double *batch_losses, const float *x,
                                     const float *y, const float *sw, int64_t N,
                                     const int32_t *perm, int64_t n_perm, int64_t batch_size,
                                     const double *lrs, int64_t step0, int opt,
                                     const double *hyper, const int64_t *sizes,
                                     const int64_t *acts, int64_t n_layers, int loss_code,
                                     double l2, int32_t *next_order, int64_t n_next,
                                     uint64_t next_key);
FASTMLP_API
int fastmlp_train_epoch_i32_next_f64(int64_t *completed, double *params, double *grad,
                                     double *state, double *batch_losses, const double *x,
                                     const double *y, const double *sw, int64_t N,
                                     const int32_t *perm, int64_t n_perm, int64_t batch_size,
                                     const double *lrs, int64_t step0, int opt,
                                     const double *hyper, const int64_t *sizes,
                                     const int64_t *acts, int64_t n_layers, int loss_code,
                                     double l2, int32_t *next_order, int64_t n_next,
                                     uint64_t next_key);

/* FASTMLP_CDEF_END */

/* ==== Model files: a model trained in Python, used from C ================================
 *
 * fastmlp.io.c_model.write_c_model(model, path) writes a trained fastmlp.MLP with its whole
 * input-to-output contract; fastmlp_model_load reads it and fastmlp_model_predict_proba
 * turns RAW feature values into the same probabilities as model.predict_proba in Python:
 *     x = (x_raw - mean) / std     in float64, then rounded to the model's dtype
 *     z = network(x) / temperature in the model's dtype (no temperature for regression)
 *     p = link(z)                  in the model's dtype, returned as double: [sigmoid(-z),
 *                                  sigmoid(z)] for one sigmoid output, one sigmoid per
 *                                  output (multilabel), or softmax
 * each step as fastmlp/model.py computes it, so a float32 model gives NumPy's float32
 * numbers (to an ulp or two of exp), whatever the size of the logits.
 *
 * File layout, format versions 1 and 2.  Every integer and float is little-endian (IEEE 754),
 * whatever the machine; no padding; "str" is a u32 byte length (<= 4096) followed by that
 * many UTF-8 bytes (no NUL, no terminator).
 *   header, 24 bytes:
 *     0  u8[8]  magic "FMLPMODL"
 *     8  u32    format version (1, or 2 for a model with fill values)
 *    12  u32    CRC-32 of the payload (zlib's crc32: IEEE polynomial, reflected)
 *    16  u64    payload length in bytes (the file is exactly 24 + this long)
 *   payload:
 *     u32 n_layers L (1..64)          u32 dtype (FASTMLP_DTYPE_*)
 *     u32 activation of the hidden layers (FASTMLP_ACT_*; the last layer is identity)
 *     u32 link (FASTMLP_LINK_*: the output in use)
 *     i32 loss (-1 none, else FASTMLP_LOSS_*)   i32 output (-1: derived, else FASTMLP_LINK_*)
 *     u32 target transform (FASTMLP_TARGET_*)  i32 positive class (-1 none)
 *     f64 threshold (NaN: none, argmax)        f64 temperature (finite, > 0)
 *     u64 sizes[L + 1] (each 1 .. 2^24)
 *     u32 has_features (0/1); if 1, per input: str name, str a, str b  (the feature is the
 *         column named `name` if the table has one, else column a minus column b; b is ""
 *         for a plain column)
 *     u32 has_standardization (0/1); if 1: f64 mean[sizes[0]], f64 std[sizes[0]] (std > 0)
 *     u32 n_class_names (0, or the class count); then that many str
 *     version 2 only: u32 n_fills, then per fill: str column, f64 value (finite): a missing
 *         value (NaN, inf, -9999) of that raw column is replaced by the value before the
 *         features are formed (fastmlp train --missing impute-median stores the training
 *         catalog's column medians; each column once, one that a feature reads)
 *     params: every layer's W (n_in, n_out) row-major then its b (n_out), in the dtype
 *         (f32 or f64); the payload ends exactly there.
 * The loader checks every count against the bytes actually present before allocating,
 * checks the contract the way the Python model does (link consistent with loss / output,
 * positive class and threshold in range, std > 0), and refuses anything else.  A later
 * format version gets a new number: older readers refuse it (FASTMLP_EVERSION).  A model
 * without fill values is written as version 1, which every version of this library reads.
 *
 * Every function below validates its arguments and returns a status (or -1 / NULL from an
 * accessor given a NULL model or an index out of range); none prints or aborts. */

/* Status codes of the model-file functions, beside the kernels' (fastmlp_strerror and
   fastmlp_model_strerror explain both). */
#define FASTMLP_EIO 16        /* the file cannot be opened or read */
#define FASTMLP_EFORMAT 17    /* not a fastmlp model file, truncated, or inconsistent */
#define FASTMLP_EVERSION 18   /* a model file format version this library does not read */
#define FASTMLP_ECHECKSUM 19  /* the payload does not match its CRC-32: the file is corrupt */

/* the newest model file format version this library reads (it reads every older one) */
#define FASTMLP_MODEL_FORMAT_VERSION 2
enum fastmlp_dtype { FASTMLP_DTYPE_F32 = 0, FASTMLP_DTYPE_F64 = 1 };
enum fastmlp_link { FASTMLP_LINK_SIGMOID = 0, FASTMLP_LINK_SOFTMAX = 1, FASTMLP_LINK_IDENTITY = 2 };
enum fastmlp_target { FASTMLP_TARGET_NONE = 0, FASTMLP_TARGET_LOG1P = 1 };

typedef struct fastmlp_model fastmlp_model;

/* Load a model file; on success *out owns it (free with fastmlp_model_free), on failure
   *out is NULL.  load_memory reads the n_bytes of a file image already in memory. */
FASTMLP_API
int fastmlp_model_load(const char *path, fastmlp_model **out);
FASTMLP_API
int fastmlp_model_load_memory(const void *data, int64_t n_bytes, fastmlp_model **out);
FASTMLP_API
void fastmlp_model_free(fastmlp_model *model); /* NULL is fine */
/* The same as fastmlp_strerror: a sentence explaining any status code (never NULL). */
FASTMLP_API
const char *fastmlp_model_strerror(int status);
/* zlib's CRC-32 of n bytes (the file's checksum); 0 for NULL or n < 0. */
FASTMLP_API
uint32_t fastmlp_model_crc32(const void *data, int64_t n);

/* ---- the contract, read back (-1 / NULL / NaN: a NULL model, an index out of range, or
   a field the model does not have) ---- */
FASTMLP_API
int64_t fastmlp_model_n_inputs(const fastmlp_model *m);
FASTMLP_API
int64_t fastmlp_model_n_outputs(const fastmlp_model *m);
/* Classes: 2 for one sigmoid output, else n_outputs; 0 for a regressor (identity link).
   The width of predict_proba's rows. */
FASTMLP_API
int64_t fastmlp_model_n_classes(const fastmlp_model *m);
/* Values per row from fastmlp_model_predict_labels: 1, or n_outputs for a multilabel model
   (several sigmoid outputs); 0 for a regressor. */
FASTMLP_API
int64_t fastmlp_model_label_width(const fastmlp_model *m);
FASTMLP_API
int64_t fastmlp_model_n_layers(const fastmlp_model *m);
FASTMLP_API
int64_t fastmlp_model_layer_size(const fastmlp_model *m, int64_t l); /* l in 0..n_layers */
FASTMLP_API
int64_t fastmlp_model_n_params(const fastmlp_model *m);
FASTMLP_API
int fastmlp_model_dtype(const fastmlp_model *m);            /* FASTMLP_DTYPE_* */
FASTMLP_API
int fastmlp_model_activation(const fastmlp_model *m);       /* FASTMLP_ACT_* */
FASTMLP_API
int fastmlp_model_link(const fastmlp_model *m);             /* FASTMLP_LINK_* */
FASTMLP_API
int fastmlp_model_target_transform(const fastmlp_model *m); /* FASTMLP_TARGET_* */
FASTMLP_API
int64_t fastmlp_model_positive(const fastmlp_model *m);     /* -1: none */
FASTMLP_API
double fastmlp_model_threshold(const fastmlp_model *m);     /* NaN: none (argmax) */
FASTMLP_API
double fastmlp_model_temperature(const fastmlp_model *m);
/* 1 if the file holds a feature spec / a standardisation, 0 if not, -1 for NULL. */
FASTMLP_API
int fastmlp_model_has_features(const fastmlp_model *m);
FASTMLP_API
int fastmlp_model_has_standardization(const fastmlp_model *m);
/* Copies the standardisation into mean, std: (n_inputs) each.  FASTMLP_EVALUE if none. */
FASTMLP_API
int fastmlp_model_standardization(const fastmlp_model *m, double *mean, double *std);
FASTMLP_API
const char *fastmlp_model_feature_name(const fastmlp_model *m, int64_t j);
/* The feature's terms: column *a, minus column *b when *b is not "". */
FASTMLP_API
int fastmlp_model_feature_terms(const fastmlp_model *m, int64_t j, const char **a,
                                const char **b);
FASTMLP_API
const char *fastmlp_model_class_name(const fastmlp_model *m, int64_t k);
/* Fill values (format version 2): how many (0 for none), and the k-th one's raw column and
   value; fastmlp_model_gather_features applies them. */
FASTMLP_API
int64_t fastmlp_model_n_fills(const fastmlp_model *m);
FASTMLP_API
const char *fastmlp_model_fill_column(const fastmlp_model *m, int64_t k);
FASTMLP_API
double fastmlp_model_fill_value(const fastmlp_model *m, int64_t k); /* NaN: no such fill */

/* ---- from a table of raw columns to the model's inputs ---- */
/* For each feature j, the table columns it reads, by the Python rule: the column named
   like the feature (col_a[j], col_b[j] = -1), else columns a and b of its terms.  columns:
   (n_columns) names; col_a, col_b: (n_inputs).  A feature that cannot be formed gets
   col_a[j] = -1 and the call returns FASTMLP_EVALUE (so does a model without features). */
FASTMLP_API
int fastmlp_model_resolve_columns(const fastmlp_model *m, const char *const *columns,
                                  int64_t n_columns, int64_t *col_a, int64_t *col_b);
/* SDSS's value for a missing measurement: a raw table value equal to it reads as NaN (as
   in Python's FeatureSpec.transform and the catalog loaders, fastmlp.features.MISSING_VALUES);
   x_raw given to the predict functions below is taken as it is. */
#define FASTMLP_MISSING_VALUE (-9999.0)
/* x_raw (n_rows, n_inputs) from table (n_rows, n_columns) row-major: x = t[a] - t[b], or
   t[a] when b is -1 (indices from fastmlp_model_resolve_columns, checked again here); a
   table value equal to FASTMLP_MISSING_VALUE counts as NaN, so its features are NaN --
   unless the model has a fill value for that column (fastmlp_model_n_fills): then a
   missing value (NaN, inf or FASTMLP_MISSING_VALUE) is replaced by it, as Python's
   FeatureSpec.transform does.  The column is the feature's own name when b is -1, else
   its terms a and b (fastmlp_model_feature_terms). */
FASTMLP_API
int fastmlp_model_gather_features(const fastmlp_model *m, double *x_raw, const double *table,
                                  int64_t n_rows, int64_t n_columns, const int64_t *col_a,
                                  const int64_t *col_b);

/* ---- predictions from raw features x_raw (n_rows, n_inputs), in feature order ----
   Rows with NaN or inf inputs, or inputs beyond the model's dtype once standardised /
   cast (1e300 for float32), give NaN outputs (label -1), as in Python, and so do a
   classifier's rows with a logit that is not finite.  Rows are processed in
   blocks of 65536 (the kernels' threads work inside a block). */
/* proba: (n_rows, n_classes).  FASTMLP_EVALUE for a regressor. */
FASTMLP_API
int fastmlp_model_predict_proba(const fastmlp_model *m, const double *x_raw, int64_t n_rows,
                                double *proba);
/* labels: (n_rows, label_width): the class index (argmax, or the positive class where its
   probability reaches the threshold, else the most probable other class; -1 for a row
   with a non-finite probability), or for a multilabel model one 0/1 per output
   (probability >= threshold, default 0.5; -1 in every column of a row with a non-finite
   probability).  FASTMLP_EVALUE for a regressor. */
FASTMLP_API
int fastmlp_model_predict_labels(const fastmlp_model *m, const double *x_raw, int64_t n_rows,
                                 int64_t *labels);
/* Regression: values (n_rows, n_outputs), the target transform inverted (expm1 for log1p).
   FASTMLP_EVALUE for a classifier. */
FASTMLP_API
int fastmlp_model_predict_values(const fastmlp_model *m, const double *x_raw, int64_t n_rows,
                                 double *values);
/* The network's outputs divided by the temperature (classifiers), as Python's
   decision_function: (n_rows, n_outputs). */
FASTMLP_API
int fastmlp_model_decision_function(const fastmlp_model *m, const double *x_raw,
                                    int64_t n_rows, double *z);

#ifdef __cplusplus
}
#endif
#endif /* FASTMLP_H */

/* ==== batched training: K models of one architecture in one pass (issue 16) ============
   A separate block (outside the FASTMLP_CDEF region; fastmlp/backends/batched_c.py reads
   the declarations between its own BATCHED marks).  Contract and shapes:
   fastmlp/backends/batched_reference.py. */
#ifndef FASTMLP_BATCHED_H
#define FASTMLP_BATCHED_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* FASTMLP_BATCHED_CDEF_BEGIN */
/* Optimizer state rows kept per model of a batch (the most any optimizer needs). */
#define FASTMLP_N_STATE_MAX 3
/* Every mini-batch of one call for every model: model k trains on rows
   perm[k or 0][0 .. n_rows[k]) in batches of batch_size[k] with row weights sw[k or 0],
   lrs[k * ld_lrs + b] and steps step0[k] + b + 1, exactly as fastmlp_train_epoch would
   train it alone.  params, grads: (K, n_params); states: (K, FASTMLP_N_STATE_MAX, n_params);
   batch_losses: (K, ld_losses); x: (x_rows, N, sizes[0]) network inputs, x_rows 1 (shared)
   or K (per model, e.g. each fold's own standardisation); y: (N, k); sw: (sw_rows, N) with sw_rows
   1 (shared) or K; perm: (perm_rows, ld_perm); n_rows, batch_size, step0, opts, done: (K);
   hypers: (K, FASTMLP_N_HYPER).  done[k] = batches model k applied (fewer than its
   ceil(n_rows / batch_size) when its loss or gradient went non-finite: it stopped there,
   the others went on).  Returns FASTMLP_OK, or an error code for invalid arguments (the
   sizes are checked before any model trains; row indices of perm are checked per batch,
   so check them first to keep a bad call from changing anything). */
FASTMLP_API
int fastmlp_batched_train_epoch_f32(int64_t *done, float *params, float *grads, float *states,
                                    double *batch_losses, int64_t ld_losses, const float *x,
                                    int64_t x_rows, const float *y, const float *sw,
                                    int64_t sw_rows, int64_t N, const int64_t *perm,
                                    int64_t perm_rows,
                                    int64_t ld_perm, const int64_t *n_rows,
                                    const int64_t *batch_size, const double *lrs,
                                    int64_t ld_lrs, const int64_t *step0, const int64_t *opts,
                                    const double *hypers, int64_t K, const int64_t *sizes,
                                    const int64_t *acts, int64_t n_layers, int loss_code);
FASTMLP_API
int fastmlp_batched_train_epoch_f64(int64_t *done, double *params, double *grads,
                                    double *states, double *batch_losses, int64_t ld_losses,
                                    const double *x, int64_t x_rows, const double *y,
                                    const double *sw, int64_t sw_rows, int64_t N, const int64_t *perm,
                                    int64_t perm_rows, int64_t ld_perm, const int64_t *n_rows,
                                    const int64_t *batch_size, const double *lrs,
                                    int64_t ld_lrs, const int64_t *step0, const int64_t *opts,
                                    const double *hypers, int64_t K, const int64_t *sizes,
                                    const int64_t *acts, int64_t n_layers, int loss_code);
/* FASTMLP_BATCHED_CDEF_END */
#ifdef __cplusplus
}
#endif
#endif /* FASTMLP_BATCHED_H */
