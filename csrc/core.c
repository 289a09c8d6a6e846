/* core.c -- status strings, thread setting, allocation, network validation, barrier. */
#if !defined(_POSIX_C_SOURCE) && (defined(__unix__) || defined(__APPLE__))
#define _POSIX_C_SOURCE 200112L /* sched_yield */
#endif
#include "internal.h"

#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <sched.h>
#define FM_YIELD() sched_yield()
#else
#define FM_YIELD() ((void)0)
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FM_PAUSE() _mm_pause()
#else
#define FM_PAUSE() ((void)0)
#endif
#ifndef FM_SPIN
#define FM_SPIN 2000 /* pauses (tens of microseconds) before yielding */
#endif

void fm_relax(long spins)
{
    if (spins < FM_SPIN) FM_PAUSE();
    else FM_YIELD();
}

/* The thread setting, one per calling thread: two threads of a program
   (two Python threads) may run kernels with different counts at once.  0: OpenMP's default. */
static FM_THREAD_LOCAL int g_num_threads = 0;

const char *fastmlp_strerror(int status)
{
    switch (status) {
    case FASTMLP_OK: return "success";
    case FASTMLP_EINVAL:
        return "invalid argument: a required pointer is NULL, or overlaps an array it must not";
    case FASTMLP_ESIZE:
        return "invalid size: a size is not positive, too large, or inconsistent with another";
    case FASTMLP_ECODE: return "unknown activation, loss or optimizer code";
    case FASTMLP_EVALUE:
        return "value out of range (class index, sample index, step, or network shape)";
    case FASTMLP_ENOMEM: return "out of memory: a scratch allocation failed";
    case FASTMLP_ENONFINITE: return "stopped before applying a non-finite loss or gradient";
    default: {   /* the model-file codes (16..19) are explained in model_file.c */
        const char *text = fm_model_status_text(status);
        return text ? text : "unknown fastmlp status code";
    }
    }
}

int fastmlp_set_num_threads(int n)
{
    if (n < 1 || n > FASTMLP_MAX_THREADS) return FASTMLP_ESIZE;
    g_num_threads = n;
    return FASTMLP_OK;
}

int fm_threads(void)
{
#ifdef _OPENMP
    return g_num_threads > 0 ? g_num_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

int fastmlp_get_num_threads(void) { return fm_threads(); }

/* Process-wide, like the BLAS pointers: set before kernels run in other threads. */
static double g_par_min_work = FM_PAR_MIN_WORK_NS;

int fastmlp_set_parallel_min_work(double ns)
{
    if (!(ns >= 0)) return FASTMLP_EVALUE;   /* NaN and negatives */
    g_par_min_work = ns;
    return FASTMLP_OK;
}

double fastmlp_get_parallel_min_work(void) { return g_par_min_work; }

double fm_par_min_work(void) { return g_par_min_work; }

int fm_par_threads(int64_t n, double ns_per_elem, size_t elem_bytes)
{
    const double work = (double)n * ns_per_elem * (double)elem_bytes / 4.0;
    return work >= g_par_min_work ? fm_threads() : 1;
}

int fm_threads_for_work(double work, int nt)
{
    const double need = g_par_min_work;
    if (nt <= 1 || work < need) return 1;
    if (need <= 0 || 2.0 * work >= need * nt) return nt;
    return (int)(2.0 * work / need);   /* >= 2 here */
}

int fastmlp_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fastmlp_has_avx2(void) { return FM_AVX2; }
int fastmlp_has_avx512(void) { return FM_AVX512; }

int fastmlp_optimizer_state_rows(int opt)
{
    switch (opt) {
    case FASTMLP_OPT_SGD: case FASTMLP_OPT_ADAGRAD: return 1;
    case FASTMLP_OPT_RMSPROP: case FASTMLP_OPT_ADAM: case FASTMLP_OPT_ADAMW: return 3;
    default: return -1;
    }
}

int fastmlp_optimizer_n_hyper(int opt)
{
    switch (opt) {
    case FASTMLP_OPT_SGD: return 6;
    case FASTMLP_OPT_ADAGRAD: return 5;
    case FASTMLP_OPT_RMSPROP: case FASTMLP_OPT_ADAM: case FASTMLP_OPT_ADAMW: return 7;
    default: return -1;
    }
}

/* The entries of optimizer opt's hyper vector that are flags (nesterov, maximize, amsgrad,
   centered) each exactly 0 or 1: any other value, -1 or 0.5 say, is a caller's mistake that
   would otherwise silently switch the flag on. */
static int fm_flags_ok(int opt, const double *h)
{
    int first;
    switch (opt) {
    case FASTMLP_OPT_SGD:     first = 4; break;    /* nesterov, maximize */
    case FASTMLP_OPT_ADAGRAD: first = 4; break;    /* maximize */
    default:                  first = 5; break;    /* centered / amsgrad, maximize */
    }
    for (; first < fastmlp_optimizer_n_hyper(opt); first++)
        if (h[first] != 0 && h[first] != 1) return 0;
    return 1;
}

int fm_hyper_ok(int opt, const double *h, int skip_lr)
{
    const int n = fastmlp_optimizer_n_hyper(opt);
    int i;
    if (n < 0) return 0;
    for (i = skip_lr ? 1 : 0; i < n; i++)
        if (!isfinite(h[i])) return 0;
    if (!skip_lr && h[0] < 0) return 0;
    if (!fm_flags_ok(opt, h)) return 0;
    switch (opt) {
    case FASTMLP_OPT_SGD:    /* momentum, dampening, weight_decay; nesterov */
        return h[1] >= 0 && h[2] >= 0 && h[3] >= 0 && (h[4] == 0 || (h[1] > 0 && h[2] == 0));
    /* eps > 0: with eps = 0 a coordinate whose gradients were all 0 steps by 0/0 = NaN */
    case FASTMLP_OPT_ADAGRAD:    /* lr_decay, weight_decay, eps */
        return h[1] >= 0 && h[2] >= 0 && h[3] > 0;
    /* alpha in [0, 1), eps, weight_decay, momentum; centered needs alpha > 0: with alpha = 0
       its variance g^2 - g^2 is 0 and every step is lr * g / eps */
    case FASTMLP_OPT_RMSPROP:
        return h[1] >= 0 && h[1] < 1 && h[2] > 0 && h[3] >= 0 && h[4] >= 0 &&
               (h[5] == 0 || h[1] > 0);
    default:    /* adam, adamw: beta1, beta2 in [0, 1), eps, weight_decay */
        return h[1] >= 0 && h[1] < 1 && h[2] >= 0 && h[2] < 1 && h[3] > 0 && h[4] >= 0;
    }
}

int64_t fm_mul(int64_t a, int64_t b)
{
    if (a <= 0 || b <= 0) return -1;
    if (a > FM_MAX_ELEMS / b) return -1;
    return a * b;
}

void *fm_alloc(size_t bytes)
{
    /* malloc + manual 64-byte alignment, the offset stored just before the block (C99). */
    unsigned char *raw, *p;
    if (bytes > ((size_t)1 << 60)) return NULL;
    raw = (unsigned char *)malloc(bytes + 64 + sizeof(void *));
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (64 - ((uintptr_t)p & 63)) & 63;
    ((void **)p)[-1] = raw;
    return p;
}

void fm_free(void *p)
{
    if (p) free(((void **)p)[-1]);
}

int fm_net_init(fm_net *net, const int64_t *sizes, const int64_t *acts, int64_t n_layers)
{
    int64_t l, o = 0, wt = 0;
    FM_CHECK(sizes && acts, FASTMLP_EINVAL);
    FM_CHECK(n_layers >= 1 && n_layers <= FM_MAX_LAYERS, FASTMLP_ESIZE);
    for (l = 0; l <= n_layers; l++)
        FM_CHECK(sizes[l] >= 1 && sizes[l] <= FASTMLP_MAX_WIDTH, FASTMLP_ESIZE);
    for (l = 0; l < n_layers; l++)
        FM_CHECK(acts[l] >= 0 && acts[l] < FASTMLP_N_ACTIVATIONS, FASTMLP_ECODE);
    net->L = n_layers;
    net->sizes = sizes;
    net->max_width = 0;
    net->sum_width = 0;
    for (l = 0; l < n_layers; l++) {
        int64_t nw = fm_mul(sizes[l], sizes[l + 1]);
        FM_CHECK(nw > 0, FASTMLP_ESIZE);
        net->act[l] = (int)acts[l];
        net->woff[l] = o;
        net->boff[l] = o + nw;
        net->wtoff[l] = wt;
        o += nw + sizes[l + 1];
        wt += nw;
        FM_CHECK(o <= FM_MAX_ELEMS, FASTMLP_ESIZE);
        if (sizes[l + 1] > net->max_width) net->max_width = sizes[l + 1];
        if (sizes[l] > net->max_width) net->max_width = sizes[l];
        net->sum_width += sizes[l + 1];
    }
    net->n_params = o;
    net->n_wt = wt;
    return FASTMLP_OK;
}

int64_t fastmlp_n_params(const int64_t *sizes, int64_t n_layers)
{
    int64_t acts[FM_MAX_LAYERS] = {0};
    fm_net net;
    if (n_layers < 1 || n_layers > FM_MAX_LAYERS) return -1;
    if (fm_net_init(&net, sizes, acts, n_layers) != FASTMLP_OK) return -1;
    return net.n_params;
}

double fm_opt_ns(int opt, const double *hyper)
{
    switch (opt) {
    case FASTMLP_OPT_SGD: return hyper[1] == 0 ? FM_NS_SGD : FM_NS_SGD_MOMENTUM;
    case FASTMLP_OPT_ADAGRAD: case FASTMLP_OPT_RMSPROP: return FM_NS_ADAGRAD;
    default: return FM_NS_ADAM;
    }
}

double fm_act_ns(int act, int backward)
{
    const int cheap = act == FASTMLP_ACT_IDENTITY || act == FASTMLP_ACT_RELU ||
                      act == FASTMLP_ACT_LEAKY_RELU;
    if (cheap) return backward ? FM_NS_ACT_CHEAP_BACK : FM_NS_ACT_CHEAP;
    return backward ? FM_NS_ACT_SMOOTH_BACK : FM_NS_ACT_SMOOTH;
}

int fm_check_opt(int opt, const void *state, int64_t step, const double *hyper)
{
    FM_CHECK(hyper && state, FASTMLP_EINVAL);
    FM_CHECK(fastmlp_optimizer_state_rows(opt) > 0, FASTMLP_ECODE);
    FM_CHECK(step >= 1, FASTMLP_EVALUE);
    FM_CHECK(fm_hyper_ok(opt, hyper, 0), FASTMLP_EVALUE);
    return FASTMLP_OK;
}
