/* C tests of the model file loader and fastmlp_model_predict_* (csrc/model_file.c), through
   the public header only.  Model images are built here byte by byte from the layout in
   fastmlp.h; predictions are checked against naive float64 loops; every truncation, every
   single-byte corruption and every inconsistent field must give an error code, never a
   crash (`make sanitize` runs this under ASan + UBSan).
   Usage: test_model_file [scratch-file-path] */
#include "fastmlp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_checks = 0, g_fail = 0;
#define CHECK(cond) do { g_checks++; if (!(cond)) { g_fail++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_ST(call, want) do { int st_ = (call); g_checks++; if (st_ != (want)) { g_fail++; \
    fprintf(stderr, "FAIL %s:%d: %s returned %d (%s), expected %d\n", __FILE__, __LINE__, \
            #call, st_, fastmlp_model_strerror(st_), (int)(want)); } } while (0)
#define NEAR(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol) * (1.0 + fabs((double)(b))))

static unsigned long long g_rng = 88172645463325252ULL;
static double urand(void) /* xorshift64, uniform in [-1, 1) */
{
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* ---- a model image, field by field (layout: fastmlp.h) ---- */
#define MAXP 64
typedef struct {
    uint32_t L, dtype, act, link, target, has_feat, has_std, n_cls;
    int32_t loss, output, positive;
    double threshold, temp;
    uint64_t sizes[4];
    const char *names[3], *ta[3], *tb[3], *cls[3];
    double mean[3], std[3];
    double params[MAXP]; /* already rounded to float for a float32 model */
    int64_t n_params;
} spec;

typedef struct { unsigned char b[4096]; int64_t n; } image;

static void put(image *im, uint64_t v, int bytes)
{
    int i;
    for (i = 0; i < bytes; i++) im->b[im->n++] = (unsigned char)(v >> (8 * i));
}
static void put_f64(image *im, double d) { uint64_t u; memcpy(&u, &d, 8); put(im, u, 8); }
static void put_str(image *im, const char *s)
{
    put(im, strlen(s), 4);
    memcpy(im->b + im->n, s, strlen(s));
    im->n += (int64_t)strlen(s);
}

static void build(const spec *s, image *im)
{
    uint32_t j;
    int64_t i;
    im->n = 24;
    put(im, s->L, 4); put(im, s->dtype, 4); put(im, s->act, 4); put(im, s->link, 4);
    put(im, (uint32_t)s->loss, 4); put(im, (uint32_t)s->output, 4); put(im, s->target, 4);
    put(im, (uint32_t)s->positive, 4); put_f64(im, s->threshold); put_f64(im, s->temp);
    for (j = 0; j <= s->L && j < 4; j++) put(im, s->sizes[j], 8);
    put(im, s->has_feat, 4);
    for (j = 0; s->has_feat && j < s->sizes[0]; j++) {
        put_str(im, s->names[j]); put_str(im, s->ta[j]); put_str(im, s->tb[j]);
    }
    put(im, s->has_std, 4);
    for (j = 0; s->has_std && j < s->sizes[0]; j++) put_f64(im, s->mean[j]);
    for (j = 0; s->has_std && j < s->sizes[0]; j++) put_f64(im, s->std[j]);
    put(im, s->n_cls, 4);
    for (j = 0; j < s->n_cls; j++) put_str(im, s->cls[j]);
    for (i = 0; i < s->n_params; i++) {
        if (s->dtype == FASTMLP_DTYPE_F32) {
            float f = (float)s->params[i];
            uint32_t u;
            memcpy(&u, &f, 4);
            put(im, u, 4);
        } else {
            put_f64(im, s->params[i]);
        }
    }
    memcpy(im->b, "FMLPMODL", 8);
    {   /* header: version, crc, payload length */
        int64_t n = im->n;
        im->n = 8;
        put(im, 1, 4);
        put(im, fastmlp_model_crc32(im->b + 24, n - 24), 4);
        put(im, (uint64_t)(n - 24), 8);
        im->n = n;
    }
}

static void fill_params(spec *s)
{
    uint32_t l;
    int64_t i;
    s->n_params = 0;
    for (l = 0; l < s->L; l++) s->n_params += (int64_t)(s->sizes[l] * s->sizes[l + 1] + s->sizes[l + 1]);
    for (i = 0; i < s->n_params; i++) {
        double v = urand();
        s->params[i] = s->dtype == FASTMLP_DTYPE_F32 ? (double)(float)v : v;
    }
}

/* softmax, float64: 3 inputs u-g, g, r-i (standardised), tanh, 3 classes, temperature 2 */
static spec softmax_spec(void)
{
    spec s = {2, FASTMLP_DTYPE_F64, FASTMLP_ACT_TANH, FASTMLP_LINK_SOFTMAX, FASTMLP_TARGET_NONE,
              1, 1, 3, FASTMLP_LOSS_CROSS_ENTROPY, -1, -1, NAN, 2.0, {3, 4, 3, 0},
              {"u-g", "g", "r-i"}, {"u", "g", "r"}, {"g", "", "i"}, {"star", "qso", "galaxy"},
              {1.0, 20.0, 0.2}, {0.5, 2.0, 0.25}, {0}, 0};
    fill_params(&s);
    return s;
}

/* The naive network: z (n_out) of the raw row x (standardised first), before temperature. */
static void naive_logits(const spec *s, const double *x, double *z)
{
    double a[8], h[8];
    int64_t i, k, o = 0;
    uint32_t l, j;
    for (j = 0; j < s->sizes[0]; j++)
        a[j] = s->has_std ? (x[j] - s->mean[j]) / s->std[j] : x[j];
    if (s->dtype == FASTMLP_DTYPE_F32)
        for (j = 0; j < s->sizes[0]; j++) a[j] = (float)a[j];
    for (l = 0; l < s->L; l++) {
        int64_t ni = (int64_t)s->sizes[l], no = (int64_t)s->sizes[l + 1];
        for (k = 0; k < no; k++) {
            double acc = s->params[o + ni * no + k];
            for (i = 0; i < ni; i++) acc += a[i] * s->params[o + i * no + k];
            h[k] = l + 1 < s->L ? (s->act == FASTMLP_ACT_TANH ? tanh(acc) : (acc > 0 ? acc : 0))
                                : acc;
        }
        o += ni * no + no;
        memcpy(a, h, sizeof(double) * (size_t)no);
    }
    memcpy(z, a, sizeof(double) * (size_t)s->sizes[s->L]);
}

static void test_crc(void)
{
    CHECK(fastmlp_model_crc32("123456789", 9) == 0xCBF43926u); /* the CRC-32 check value */
    CHECK(fastmlp_model_crc32(NULL, 3) == 0 && fastmlp_model_crc32("a", -1) == 0);
}

static void test_softmax_model(void)
{
    spec s = softmax_spec();
    image im;
    fastmlp_model *m = NULL;
    const char *a, *b, *cols[6] = {"z", "i", "r", "g", "u", "r-i"}, *cols3[3] = {"u", "g", "r"};
    int64_t ca[3], cb[3], labels[5], i, k;
    double table[5 * 6], x[5 * 3], p[5 * 3], z[3], ref[3], mean[3], sd[3], dec[5 * 3];
    build(&s, &im);
    CHECK_ST(fastmlp_model_load_memory(im.b, im.n, &m), FASTMLP_OK);
    if (!m) return;
    CHECK(fastmlp_model_n_inputs(m) == 3 && fastmlp_model_n_outputs(m) == 3);
    CHECK(fastmlp_model_n_classes(m) == 3 && fastmlp_model_label_width(m) == 1);
    CHECK(fastmlp_model_n_layers(m) == 2 && fastmlp_model_layer_size(m, 1) == 4);
    CHECK(fastmlp_model_layer_size(m, 3) == -1 && fastmlp_model_n_params(m) == s.n_params);
    CHECK(fastmlp_model_link(m) == FASTMLP_LINK_SOFTMAX && fastmlp_model_dtype(m) == 1);
    CHECK(fastmlp_model_activation(m) == FASTMLP_ACT_TANH && fastmlp_model_positive(m) == -1);
    CHECK(isnan(fastmlp_model_threshold(m)) && fastmlp_model_temperature(m) == 2.0);
    CHECK(strcmp(fastmlp_model_class_name(m, 2), "galaxy") == 0);
    CHECK(fastmlp_model_class_name(m, 3) == NULL && fastmlp_model_feature_name(m, -1) == NULL);
    CHECK(strcmp(fastmlp_model_feature_name(m, 0), "u-g") == 0);
    CHECK_ST(fastmlp_model_feature_terms(m, 1, &a, &b), FASTMLP_OK);
    CHECK(strcmp(a, "g") == 0 && b[0] == '\0');
    CHECK_ST(fastmlp_model_feature_terms(m, 3, &a, &b), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_model_standardization(m, mean, sd), FASTMLP_OK);
    CHECK(mean[1] == 20.0 && sd[2] == 0.25);
    /* "r-i" is a column of its own: it wins over r minus i, as in Python */
    CHECK_ST(fastmlp_model_resolve_columns(m, cols, 6, ca, cb), FASTMLP_OK);
    CHECK(ca[0] == 4 && cb[0] == 3 && ca[1] == 3 && cb[1] == -1 && ca[2] == 5 && cb[2] == -1);
    CHECK_ST(fastmlp_model_resolve_columns(m, cols3, 3, ca, cb), FASTMLP_EVALUE);
    CHECK(ca[2] == -1 && cb[2] == -1 && ca[0] == 0 && cb[0] == 1 && ca[1] == 1); /* no i */
    CHECK_ST(fastmlp_model_resolve_columns(m, cols, 6, ca, cb), FASTMLP_OK);
    for (i = 0; i < 30; i++) table[i] = 18 + 3 * urand();
    CHECK_ST(fastmlp_model_gather_features(m, x, table, 5, 6, ca, cb), FASTMLP_OK);
    CHECK(x[0] == table[4] - table[3] && x[4] == table[6 + 3] && x[8] == table[12 + 5]);
    { /* SDSS's -9999 in a raw column reads as NaN (Python's FeatureSpec.transform) */
        double t2[5 * 6], x2[5 * 3];
        memcpy(t2, table, sizeof t2);
        t2[3] = FASTMLP_MISSING_VALUE;      /* row 0, column "g": features 0 (u-g), 1 (g) */
        t2[6 + 4] = FASTMLP_MISSING_VALUE;  /* row 1, column "u": feature 0 only */
        CHECK_ST(fastmlp_model_gather_features(m, x2, t2, 5, 6, ca, cb), FASTMLP_OK);
        CHECK(isnan(x2[0]) && isnan(x2[1]) && x2[2] == t2[5]);
        CHECK(isnan(x2[3]) && x2[4] == t2[6 + 3] && x2[5] == t2[6 + 5]);
        CHECK(memcmp(x2 + 6, x + 6, 9 * sizeof(double)) == 0);
    }
    CHECK_ST(fastmlp_model_predict_proba(m, x, 5, p), FASTMLP_OK);
    CHECK_ST(fastmlp_model_predict_labels(m, x, 5, labels), FASTMLP_OK);
    CHECK_ST(fastmlp_model_decision_function(m, x, 5, dec), FASTMLP_OK);
    for (i = 0; i < 5; i++) {
        double mx = -INFINITY, sum = 0;
        int64_t best = 0;
        naive_logits(&s, x + 3 * i, z);
        for (k = 0; k < 3; k++) mx = fmax(mx, z[k] / 2.0);
        for (k = 0; k < 3; k++) sum += ref[k] = exp(z[k] / 2.0 - mx);
        for (k = 0; k < 3; k++) {
            CHECK(NEAR(p[3 * i + k], ref[k] / sum, 1e-12));
            CHECK(NEAR(dec[3 * i + k], z[k] / 2.0, 1e-12));
            if (ref[k] > ref[best]) best = k;
        }
        CHECK(labels[i] == best);
    }
    CHECK_ST(fastmlp_model_predict_values(m, x, 5, p), FASTMLP_EVALUE); /* a classifier */
    fastmlp_model_free(m);
}

/* one sigmoid output, float32, relu, threshold 0.3 on the positive class 1 */
static void test_sigmoid_model(void)
{
    spec s = {2, FASTMLP_DTYPE_F32, FASTMLP_ACT_RELU, FASTMLP_LINK_SIGMOID, FASTMLP_TARGET_NONE,
              0, 0, 2, FASTMLP_LOSS_BCE, -1, 1, 0.3, 1.0, {2, 5, 1, 0}, {0}, {0}, {0},
              {"star", "qso"}, {0}, {0}, {0}, 0};
    image im;
    fastmlp_model *m = NULL;
    int64_t labels[40], ca[2], cb[2], i;
    double x[80], p[80], z;
    const char *cols[1] = {"u"};
    fill_params(&s);
    build(&s, &im);
    CHECK_ST(fastmlp_model_load_memory(im.b, im.n, &m), FASTMLP_OK);
    if (!m) return;
    CHECK(fastmlp_model_n_classes(m) == 2 && fastmlp_model_label_width(m) == 1);
    CHECK(fastmlp_model_has_features(m) == 0 && fastmlp_model_has_standardization(m) == 0);
    CHECK_ST(fastmlp_model_resolve_columns(m, cols, 1, ca, cb), FASTMLP_EVALUE);
    for (i = 0; i < 80; i++) x[i] = 3 * urand();
    x[2 * 39] = NAN;
    CHECK_ST(fastmlp_model_predict_proba(m, x, 40, p), FASTMLP_OK);
    CHECK_ST(fastmlp_model_predict_labels(m, x, 40, labels), FASTMLP_OK);
    for (i = 0; i < 39; i++) {
        naive_logits(&s, x + 2 * i, &z);
        CHECK(NEAR(p[2 * i + 1], 1 / (1 + exp(-z)), 1e-6) && NEAR(p[2 * i], 1 / (1 + exp(z)), 1e-6));
        CHECK(labels[i] == (p[2 * i + 1] >= 0.3 ? 1 : 0));
    }
    CHECK(isnan(p[2 * 39]) && isnan(p[2 * 39 + 1]) && labels[39] == -1);
    fastmlp_model_free(m);
}

/* regression, float64, log1p target; and a multilabel model (two sigmoid outputs) */
static void test_regression_and_multilabel(void)
{
    spec r = {1, FASTMLP_DTYPE_F64, FASTMLP_ACT_RELU, FASTMLP_LINK_IDENTITY, FASTMLP_TARGET_LOG1P,
              0, 0, 0, FASTMLP_LOSS_MSE, -1, -1, NAN, 1.0, {2, 1, 0, 0}, {0}, {0}, {0}, {0},
              {0}, {0}, {0}, 0};
    spec ml = {2, FASTMLP_DTYPE_F64, FASTMLP_ACT_RELU, FASTMLP_LINK_SIGMOID, FASTMLP_TARGET_NONE,
               0, 0, 0, -1, FASTMLP_LINK_SIGMOID, -1, 0.6, 1.0, {2, 3, 2, 0}, {0}, {0}, {0},
               {0}, {0}, {0}, {0}, 0};
    image im;
    fastmlp_model *m = NULL;
    double x[6] = {0.5, -1, 2, 0.25, -3, 1}, v[6], z[2];
    int64_t lab[6], i, k;
    fill_params(&r);
    build(&r, &im);
    CHECK_ST(fastmlp_model_load_memory(im.b, im.n, &m), FASTMLP_OK);
    CHECK(fastmlp_model_n_classes(m) == 0 && fastmlp_model_label_width(m) == 0);
    CHECK_ST(fastmlp_model_predict_values(m, x, 3, v), FASTMLP_OK);
    for (i = 0; i < 3; i++) {
        naive_logits(&r, x + 2 * i, z);
        CHECK(NEAR(v[i], expm1(z[0]), 1e-12));
    }
    CHECK_ST(fastmlp_model_predict_proba(m, x, 3, v), FASTMLP_EVALUE);
    CHECK_ST(fastmlp_model_predict_labels(m, x, 3, lab), FASTMLP_EVALUE);
    fastmlp_model_free(m);
    fill_params(&ml);
    build(&ml, &im);
    CHECK_ST(fastmlp_model_load_memory(im.b, im.n, &m), FASTMLP_OK);
    CHECK(fastmlp_model_n_classes(m) == 2 && fastmlp_model_label_width(m) == 2);
    CHECK_ST(fastmlp_model_predict_proba(m, x, 3, v), FASTMLP_OK);
    CHECK_ST(fastmlp_model_predict_labels(m, x, 3, lab), FASTMLP_OK);
    for (i = 0; i < 3; i++) {
        naive_logits(&ml, x + 2 * i, z);
        for (k = 0; k < 2; k++) {
            CHECK(NEAR(v[2 * i + k], 1 / (1 + exp(-z[k])), 1e-12));
            CHECK(lab[2 * i + k] == (v[2 * i + k] >= 0.6));
        }
    }
    fastmlp_model_free(m);
}

/* Every field that breaks the contract, with a correct checksum: refused. */
static void test_inconsistent_fields(void)
{
    static const struct { int field; double value; } bad[] = {
        {0, 0}, {0, 65}, {1, 2}, {2, 8}, {3, 3}, {3, FASTMLP_LINK_SIGMOID}, {4, 3}, {5, 3},
        {6, 2}, {7, 3}, {7, -2}, {8, 1.5}, {8, 0.5}, {9, 0}, {9, INFINITY}, {10, 0}, {10, 1 << 25}, {10, 5},
        {11, 0}, {12, 2}, {13, 2}, {14, 0}, {14, NAN}, {15, -1}};
    size_t t;
    for (t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        spec s = softmax_spec();
        image im;
        fastmlp_model *m = (fastmlp_model *)&im; /* must be reset to NULL on failure */
        double v = bad[t].value;
        switch (bad[t].field) {
        case 0: s.L = (uint32_t)v; break;
        case 1: s.dtype = (uint32_t)v; break;
        case 2: s.act = (uint32_t)v; break;
        case 3: s.link = (uint32_t)v; break;    /* link not the one loss/output give */
        case 4: s.loss = (int32_t)v; break;
        case 5: s.output = (int32_t)v; break;
        case 6: s.target = (uint32_t)v; break;
        case 7: s.positive = (int32_t)v; break;
        case 8: s.threshold = v; break;   /* 0.5: a softmax threshold without positive */
        case 9: s.temp = v; break;
        case 10: s.sizes[1] = (uint64_t)v; break; /* 5: params no longer fill the payload */
        case 11: s.names[1] = ""; break;
        case 12: s.n_cls = 2; break;
        case 13: s.has_std = 2; break;
        case 14: s.std[0] = v; break;
        case 15: s.mean[2] = INFINITY * v; break;
        }
        build(&s, &im);
        CHECK_ST(fastmlp_model_load_memory(im.b, im.n, &m), FASTMLP_EFORMAT);
        CHECK(m == NULL);
        if (m) fastmlp_model_free(m);
    }
}

/* Every truncation and every single-byte change of a valid image is refused. */
static void test_corruption(void)
{
    spec s = softmax_spec();
    image im, bad;
    fastmlp_model *m = NULL;
    int64_t n, i;
    int st, refused = 1;
    build(&s, &im);
    for (n = 0; n < im.n; n++) {
        st = fastmlp_model_load_memory(im.b, n, &m);
        refused &= st != FASTMLP_OK && m == NULL;
    }
    CHECK(refused);
    for (n = 24; n < im.n; n++) { /* truncated payloads with a header and CRC that agree */
        bad = im;
        bad.n = 8; put(&bad, 1, 4); put(&bad, fastmlp_model_crc32(im.b + 24, n - 24), 4);
        put(&bad, (uint64_t)(n - 24), 8);
        st = fastmlp_model_load_memory(bad.b, n, &m);
        refused &= st == FASTMLP_EFORMAT && m == NULL;
    }
    CHECK(refused);
    for (i = 0; i < im.n; i++) {
        bad = im;
        bad.b[i] ^= 0x5A;
        st = fastmlp_model_load_memory(bad.b, bad.n, &m);
        refused &= st != FASTMLP_OK && m == NULL;
        if (i >= 24) refused &= st == FASTMLP_ECHECKSUM;
    }
    CHECK(refused);
    bad = im; bad.b[0] = 'X';
    CHECK_ST(fastmlp_model_load_memory(bad.b, bad.n, &m), FASTMLP_EFORMAT);
    bad = im; bad.b[8] = FASTMLP_MODEL_FORMAT_VERSION + 1;
    CHECK_ST(fastmlp_model_load_memory(bad.b, bad.n, &m), FASTMLP_EVERSION);
    bad = im; bad.b[12] ^= 1;
    CHECK_ST(fastmlp_model_load_memory(bad.b, bad.n, &m), FASTMLP_ECHECKSUM);
    bad = im; bad.b[23] = 0x7F; /* payload length 2^62-ish: nothing allocated */
    CHECK_ST(fastmlp_model_load_memory(bad.b, bad.n, &m), FASTMLP_EFORMAT);
    bad = im; bad.b[bad.n] = 0; bad.n++;  /* a trailing byte */
    CHECK_ST(fastmlp_model_load_memory(bad.b, bad.n, &m), FASTMLP_EFORMAT);
    CHECK_ST(fastmlp_model_load_memory(im.b, im.n, NULL), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_model_load_memory(NULL, im.n, &m), FASTMLP_EINVAL);
    CHECK(m == NULL);
    {   /* a string length of 2^32 - 1 with a correct checksum */
        image h;
        s.names[0] = "u-g";
        build(&s, &h);
        /* the first feature name's length sits right after the sizes and has_features */
        n = 24 + 48 + 8 * 3 + 4;
        h.b[n] = h.b[n + 1] = h.b[n + 2] = h.b[n + 3] = 0xFF;
        i = h.n;
        h.n = 8; put(&h, 1, 4); put(&h, fastmlp_model_crc32(h.b + 24, i - 24), 4); h.n = i;
        CHECK_ST(fastmlp_model_load_memory(h.b, h.n, &m), FASTMLP_EFORMAT);
    }
}

/* Random changes of 1..4 payload bytes with the CRC made to agree, so that the parser sees
   them: each image is refused or loads into a model that predicts (never a crash). */
static void test_fuzz(void)
{
    spec specs[2];
    int t, k, ok = 1, loaded = 0;
    specs[0] = softmax_spec();
    specs[1] = specs[0];
    specs[1].dtype = FASTMLP_DTYPE_F32;
    for (t = 0; t < 4000; t++) {
        image im;
        fastmlp_model *m = NULL;
        double x[2 * 3] = {20, 19, 18, 21, 20, 19}, p[2 * 4];
        int64_t lab[2 * 4], n;
        build(&specs[t & 1], &im);
        for (k = 0; k <= t % 4; k++) {
            uint64_t r = (uint64_t)((urand() + 1) * 0.5 * (double)(im.n - 24));
            im.b[24 + r % (uint64_t)(im.n - 24)] = (unsigned char)(256 * (urand() + 1) / 2);
        }
        n = im.n;
        im.n = 12; put(&im, fastmlp_model_crc32(im.b + 24, n - 24), 4); im.n = n;
        if (fastmlp_model_load_memory(im.b, im.n, &m) != FASTMLP_OK) {
            ok &= m == NULL;
            continue;
        }
        loaded++;
        if (fastmlp_model_n_inputs(m) == 3 && fastmlp_model_n_classes(m) > 0 &&
            fastmlp_model_n_classes(m) <= 4)
            ok &= fastmlp_model_predict_proba(m, x, 2, p) == FASTMLP_OK &&
                  fastmlp_model_predict_labels(m, x, 2, lab) == FASTMLP_OK;
        fastmlp_model_free(m);
    }
    CHECK(ok);
    CHECK(loaded > 0); /* changed weights / values in range still load */
}

static void test_files_and_arguments(const char *path)
{
    spec s = softmax_spec();
    image im;
    fastmlp_model *m = NULL;
    FILE *f;
    double x[3] = {0, 0, 0}, p[3];
    int64_t lab[1];
    build(&s, &im);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(im.b, 1, (size_t)im.n, f) == (size_t)im.n);
    fclose(f);
    CHECK_ST(fastmlp_model_load(path, &m), FASTMLP_OK);
    CHECK_ST(fastmlp_model_predict_proba(m, x, 1, p), FASTMLP_OK);
    CHECK_ST(fastmlp_model_predict_proba(NULL, x, 1, p), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_model_predict_proba(m, NULL, 1, p), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_model_predict_labels(m, x, 1, NULL), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_model_predict_proba(m, x, 0, p), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_model_predict_proba(m, x, (int64_t)1 << 62, p), FASTMLP_ESIZE);
    CHECK_ST(fastmlp_model_predict_labels(m, x, 1, lab), FASTMLP_OK);
    fastmlp_model_free(m);
    f = fopen(path, "wb");   /* truncated on disk */
    if (f) { fwrite(im.b, 1, (size_t)im.n - 7, f); fclose(f); }
    CHECK_ST(fastmlp_model_load(path, &m), FASTMLP_EFORMAT);
    f = fopen(path, "wb");   /* shorter than a header */
    if (f) { fwrite(im.b, 1, 10, f); fclose(f); }
    CHECK_ST(fastmlp_model_load(path, &m), FASTMLP_EFORMAT);
    remove(path);
    CHECK_ST(fastmlp_model_load(path, &m), FASTMLP_EIO);
    CHECK_ST(fastmlp_model_load(NULL, &m), FASTMLP_EINVAL);
    CHECK_ST(fastmlp_model_load(path, NULL), FASTMLP_EINVAL);
    CHECK(m == NULL);
    CHECK(fastmlp_model_n_inputs(NULL) == -1 && fastmlp_model_n_classes(NULL) == -1);
    CHECK(fastmlp_model_class_name(NULL, 0) == NULL && isnan(fastmlp_model_threshold(NULL)));
    fastmlp_model_free(NULL);
    CHECK(strstr(fastmlp_model_strerror(FASTMLP_ECHECKSUM), "corrupt") != NULL);
    CHECK(strcmp(fastmlp_model_strerror(FASTMLP_ESIZE), fastmlp_strerror(FASTMLP_ESIZE)) == 0);
}

int main(int argc, char **argv)
{
    test_crc();
    test_softmax_model();
    test_sigmoid_model();
    test_regression_and_multilabel();
    test_inconsistent_fields();
    test_corruption();
    test_fuzz();
    test_files_and_arguments(argc > 1 ? argv[1] : "test_model_file.tmp");
    printf("model file: %d checks, %d failures\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
