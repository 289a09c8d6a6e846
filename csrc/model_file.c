/* model_file.c -- load a model file written by fastmlp.io.c_model.write_c_model and predict
   with its whole contract (standardisation, network, temperature, link).  The layout is
   documented in fastmlp.h; fastmlp/io/c_model.py writes it. */
#include "internal.h"

#include <float.h>
#include <stdio.h>

#define MF_MAGIC "FMLPMODL"
#define MF_HEADER 24
#define MF_MAX_STR 4096
#define MF_MAX_SIZE ((int64_t)1 << 24)
#define MF_BLOCK 65536 /* rows per block of the predict functions */

struct fastmlp_model {
    int64_t n_layers, sizes[FM_MAX_LAYERS + 1], acts[FM_MAX_LAYERS], n_params;
    int dtype, activation, link, loss, output, target, has_features, has_std;
    int64_t positive, n_class_names;
    double threshold, temperature;
    void *params;                   /* (n_params) of the dtype, 64-byte aligned */
    double *mean, *std;             /* (n_inputs) each, or NULL */
    const char **names, **term_a, **term_b; /* (n_inputs) each, or NULL */
    const char **class_names;       /* (n_class_names) or NULL */
    int64_t n_fills;                /* fill values (format version 2), 0 without */
    const char **fill_columns;      /* (n_fills) or NULL */
    double *fill_values;            /* (n_fills) or NULL */
    /* per feature, the fill value of the column it reads (NaN: none): its own name's when
       gather_features reads one column (col_b -1), else those of its terms a and b */
    double *fill_own, *fill_a, *fill_b;
    char *arena;                    /* every string, NUL-terminated */
};

/* ---- little-endian reading with a sticky error flag ---- */
typedef struct {
    const unsigned char *p;
    int64_t left;
    int bad;
    char *arena;                    /* where strings are copied (NUL-terminated) */
} mf_reader;

static const unsigned char *mf_take(mf_reader *r, int64_t n)
{
    const unsigned char *p = r->p;
    if (r->bad || n < 0 || n > r->left) {
        r->bad = 1;
        return NULL;
    }
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t mf_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    int i;
    for (i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t mf_u32(mf_reader *r)
{
    const unsigned char *p = mf_take(r, 4);
    return p ? (uint32_t)mf_le(p, 4) : 0;
}

static int64_t mf_i32(mf_reader *r)
{
    uint32_t u = mf_u32(r);
    return u >= 0x80000000u ? (int64_t)u - ((int64_t)1 << 32) : (int64_t)u;
}

static uint64_t mf_u64(mf_reader *r)
{
    const unsigned char *p = mf_take(r, 8);
    return p ? mf_le(p, 8) : 0;
}

static double mf_f64_at(const unsigned char *p)
{
    uint64_t u = mf_le(p, 8);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static double mf_f64(mf_reader *r)
{
    const unsigned char *p = mf_take(r, 8);
    return p ? mf_f64_at(p) : 0.0;
}

/* A str field copied into the arena; NULL (and r->bad) if too long, truncated or holding
   a NUL byte. */
static const char *mf_str(mf_reader *r)
{
    uint32_t n = mf_u32(r);
    const unsigned char *p;
    char *s;
    if (n > MF_MAX_STR) r->bad = 1;
    p = mf_take(r, (int64_t)n);
    if (!p || memchr(p, 0, n)) {
        r->bad = 1;
        return NULL;
    }
    s = r->arena;
    memcpy(s, p, n);
    s[n] = '\0';
    r->arena += n + 1;
    return s;
}

uint32_t fastmlp_model_crc32(const void *data, int64_t n)
{
    uint32_t table[256], c;
    const unsigned char *p = (const unsigned char *)data;
    int64_t i;
    int k;
    if (!data || n < 0) return 0;
    for (i = 0; i < 256; i++) {
        c = (uint32_t)i;
        for (k = 0; k < 8; k++) c = c & 1u ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    c = 0xFFFFFFFFu;
    for (i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

const char *fm_model_status_text(int status)
{
    switch (status) {
    case FASTMLP_EIO: return "model file: cannot open or read the file";
    case FASTMLP_EFORMAT:
        return "model file: not a fastmlp model file, truncated, or with inconsistent fields";
    case FASTMLP_EVERSION: return "model file: a format version this library cannot read";
    case FASTMLP_ECHECKSUM: return "model file: checksum mismatch (the file is corrupt)";
    default: return NULL;
    }
}

/* the same sentences as fastmlp_strerror, which knows every code (kept for older callers) */
const char *fastmlp_model_strerror(int status) { return fastmlp_strerror(status); }

void fastmlp_model_free(fastmlp_model *m)
{
    if (!m) return;
    fm_free(m->params);
    free(m->mean);
    free(m->std);
    free((void *)m->names);
    free((void *)m->term_a);
    free((void *)m->term_b);
    free((void *)m->class_names);
    free((void *)m->fill_columns);
    free(m->fill_values);
    free(m->fill_own);
    free(m->fill_a);
    free(m->fill_b);
    free(m->arena);
    free(m);
}

/* ---- parsing ---- */
static int64_t mf_class_count(const fastmlp_model *m)
{
    int64_t n_out = m->sizes[m->n_layers];
    return n_out == 1 ? 2 : n_out;
}

/* The link the Python model derives from output, loss and the number of outputs. */
static int mf_expected_link(const fastmlp_model *m)
{
    static const int link_of_loss[3] = {FASTMLP_LINK_SIGMOID, FASTMLP_LINK_SOFTMAX,
                                        FASTMLP_LINK_IDENTITY};
    if (m->output >= 0) return m->output;
    if (m->loss >= 0) return link_of_loss[m->loss];
    return m->sizes[m->n_layers] == 1 ? FASTMLP_LINK_SIGMOID : FASTMLP_LINK_SOFTMAX;
}

static int mf_read_scalars(mf_reader *r, fastmlp_model *m)
{
    uint32_t L = mf_u32(r), dtype = mf_u32(r), act = mf_u32(r), link = mf_u32(r);
    int64_t loss = mf_i32(r), output = mf_i32(r);
    uint32_t target = mf_u32(r);
    m->positive = mf_i32(r);
    m->threshold = mf_f64(r);
    m->temperature = mf_f64(r);
    if (r->bad || L < 1 || L > FM_MAX_LAYERS || dtype > 1 || act > 7 || link > 2 ||
        loss < -1 || loss > 2 || output < -1 || output > 2 || target > 1)
        return FASTMLP_EFORMAT;
    m->n_layers = L;
    m->dtype = (int)dtype;
    m->activation = (int)act;
    m->link = (int)link;
    m->loss = (int)loss;
    m->output = (int)output;
    m->target = (int)target;
    if (!(isfinite(m->temperature) && m->temperature > 0)) return FASTMLP_EFORMAT;
    if (!isnan(m->threshold) && !(m->threshold >= 0 && m->threshold <= 1))
        return FASTMLP_EFORMAT;
    return FASTMLP_OK;
}

static int mf_read_sizes(mf_reader *r, fastmlp_model *m)
{
    int64_t l, ncls;
    fm_net net;
    for (l = 0; l <= m->n_layers; l++) {
        uint64_t s = mf_u64(r);
        if (r->bad || s < 1 || s > (uint64_t)MF_MAX_SIZE) return FASTMLP_EFORMAT;
        m->sizes[l] = (int64_t)s;
    }
    for (l = 0; l < m->n_layers; l++)
        m->acts[l] = l + 1 < m->n_layers ? m->activation : FASTMLP_ACT_IDENTITY;
    if (fm_net_init(&net, m->sizes, m->acts, m->n_layers) != FASTMLP_OK) return FASTMLP_EFORMAT;
    m->n_params = net.n_params;
    /* the contract checks of fastmlp.MLP (model.py: _check_index, _check_threshold, link) */
    ncls = mf_class_count(m);
    if (m->link != mf_expected_link(m)) return FASTMLP_EFORMAT;
    if (m->positive < -1 || m->positive >= ncls) return FASTMLP_EFORMAT;
    if (!isnan(m->threshold) && m->positive < 0 && m->link == FASTMLP_LINK_SOFTMAX)
        return FASTMLP_EFORMAT;
    return FASTMLP_OK;
}

static int mf_read_features(mf_reader *r, fastmlp_model *m)
{
    int64_t j, n = m->sizes[0];
    uint32_t has = mf_u32(r);
    if (r->bad || has > 1) return FASTMLP_EFORMAT;
    m->has_features = (int)has;
    if (!has) return FASTMLP_OK;
    /* each feature takes >= 12 bytes (three lengths): check before allocating */
    if (n > r->left / 12) return FASTMLP_EFORMAT;
    m->names = (const char **)malloc((size_t)n * sizeof(char *));
    m->term_a = (const char **)malloc((size_t)n * sizeof(char *));
    m->term_b = (const char **)malloc((size_t)n * sizeof(char *));
    if (!m->names || !m->term_a || !m->term_b) return FASTMLP_ENOMEM;
    for (j = 0; j < n; j++) {
        m->names[j] = mf_str(r);
        m->term_a[j] = mf_str(r);
        m->term_b[j] = mf_str(r);
        if (r->bad || !m->names[j][0] || !m->term_a[j][0]) return FASTMLP_EFORMAT;
    }
    return FASTMLP_OK;
}

static int mf_read_standardization(mf_reader *r, fastmlp_model *m)
{
    int64_t j, n = m->sizes[0];
    const unsigned char *p;
    uint32_t has = mf_u32(r);
    if (r->bad || has > 1) return FASTMLP_EFORMAT;
    m->has_std = (int)has;
    if (!has) return FASTMLP_OK;
    if (n > r->left / 16) return FASTMLP_EFORMAT;
    p = mf_take(r, 16 * n);
    m->mean = (double *)malloc((size_t)n * sizeof(double));
    m->std = (double *)malloc((size_t)n * sizeof(double));
    if (!m->mean || !m->std) return FASTMLP_ENOMEM;
    for (j = 0; j < n; j++) {
        m->mean[j] = mf_f64_at(p + 8 * j);
        m->std[j] = mf_f64_at(p + 8 * (n + j));
        if (!isfinite(m->mean[j]) || !isfinite(m->std[j]) || !(m->std[j] > 0))
            return FASTMLP_EFORMAT;
    }
    return FASTMLP_OK;
}

static int mf_read_classes(mf_reader *r, fastmlp_model *m)
{
    int64_t k;
    uint32_t n = mf_u32(r);
    if (r->bad || (n != 0 && (int64_t)n != mf_class_count(m))) return FASTMLP_EFORMAT;
    m->n_class_names = n;
    if (!n) return FASTMLP_OK;
    if ((int64_t)n > r->left / 4) return FASTMLP_EFORMAT;
    m->class_names = (const char **)malloc((size_t)n * sizeof(char *));
    if (!m->class_names) return FASTMLP_ENOMEM;
    for (k = 0; k < (int64_t)n; k++) {
        m->class_names[k] = mf_str(r);
        if (r->bad) return FASTMLP_EFORMAT;
    }
    return FASTMLP_OK;
}

/* The fill value of a column by name, NaN if it has none. */
static double mf_fill_of(const fastmlp_model *m, const char *column)
{
    int64_t k;
    for (k = 0; k < m->n_fills; k++)
        if (strcmp(m->fill_columns[k], column) == 0) return m->fill_values[k];
    return NAN;
}

/* Whether a feature reads the column: its name, or a term of it. */
static int mf_reads(const fastmlp_model *m, const char *column)
{
    int64_t j;
    for (j = 0; j < m->sizes[0]; j++)
        if (!strcmp(m->names[j], column) || !strcmp(m->term_a[j], column) ||
            !strcmp(m->term_b[j], column))
            return 1;
    return 0;
}

/* Format version 2: u32 n_fills, then per fill a str column (one a feature reads: its name
   or a term) and its f64 value (finite), each column once. */
static int mf_read_fills(mf_reader *r, fastmlp_model *m)
{
    int64_t k, j, n_in = m->sizes[0];
    uint32_t n = mf_u32(r);
    if (r->bad || (n && !m->has_features)) return FASTMLP_EFORMAT;
    m->n_fills = n;
    if (!n) return FASTMLP_OK;
    if ((int64_t)n > r->left / 12) return FASTMLP_EFORMAT; /* >= 12 bytes each */
    m->fill_columns = (const char **)malloc((size_t)n * sizeof(char *));
    m->fill_values = (double *)malloc((size_t)n * sizeof(double));
    m->fill_own = (double *)malloc((size_t)n_in * sizeof(double));
    m->fill_a = (double *)malloc((size_t)n_in * sizeof(double));
    m->fill_b = (double *)malloc((size_t)n_in * sizeof(double));
    if (!m->fill_columns || !m->fill_values || !m->fill_own || !m->fill_a || !m->fill_b)
        return FASTMLP_ENOMEM;
    for (k = 0; k < (int64_t)n; k++) {
        m->fill_columns[k] = mf_str(r);
        m->fill_values[k] = mf_f64(r);
        if (r->bad || !m->fill_columns[k][0] || !isfinite(m->fill_values[k]))
            return FASTMLP_EFORMAT;
        m->n_fills = k; /* a column given twice, or one no feature reads, is refused */
        if (!isnan(mf_fill_of(m, m->fill_columns[k])) || !mf_reads(m, m->fill_columns[k]))
            return FASTMLP_EFORMAT;
    }
    m->n_fills = n;
    for (j = 0; j < n_in; j++) {
        m->fill_own[j] = mf_fill_of(m, m->names[j]);
        m->fill_a[j] = mf_fill_of(m, m->term_a[j]);
        m->fill_b[j] = m->term_b[j][0] ? mf_fill_of(m, m->term_b[j]) : NAN;
    }
    return FASTMLP_OK;
}

static int mf_read_params(mf_reader *r, fastmlp_model *m)
{
    int64_t i, es = m->dtype == FASTMLP_DTYPE_F32 ? 4 : 8;
    const unsigned char *p;
    /* the payload must end exactly after the parameters */
    if (m->n_params > r->left / es || m->n_params * es != r->left) return FASTMLP_EFORMAT;
    p = mf_take(r, m->n_params * es);
    m->params = fm_alloc((size_t)(m->n_params * es));
    if (!m->params) return FASTMLP_ENOMEM;
    if (es == 4) {
        float *w = (float *)m->params;
        for (i = 0; i < m->n_params; i++) {
            uint32_t u = (uint32_t)mf_le(p + 4 * i, 4);
            memcpy(&w[i], &u, 4);
        }
    } else {
        double *w = (double *)m->params;
        for (i = 0; i < m->n_params; i++) w[i] = mf_f64_at(p + 8 * i);
    }
    return FASTMLP_OK;
}

static int mf_parse(const unsigned char *payload, int64_t n, int64_t version,
                    fastmlp_model *m)
{
    /* every string takes >= 4 bytes of the payload: the arena never needs more than this */
    mf_reader r;
    int st;
    r.p = payload;
    r.left = n;
    r.bad = 0;
    m->arena = r.arena = (char *)malloc((size_t)(n + n / 4 + 1));
    if (!m->arena) return FASTMLP_ENOMEM;
    if ((st = mf_read_scalars(&r, m)) || (st = mf_read_sizes(&r, m)) ||
        (st = mf_read_features(&r, m)) || (st = mf_read_standardization(&r, m)) ||
        (st = mf_read_classes(&r, m)) || (version >= 2 && (st = mf_read_fills(&r, m))) ||
        (st = mf_read_params(&r, m)))
        return st;
    return FASTMLP_OK;
}

/* The header's checks: magic, version (1 .. FASTMLP_MODEL_FORMAT_VERSION), and the payload
   length against the bytes present (the caller checks the CRC). */
static int mf_check_header(const unsigned char *h, int64_t payload_present, int64_t *length)
{
    uint64_t len, version;
    if (memcmp(h, MF_MAGIC, 8) != 0) return FASTMLP_EFORMAT;
    version = mf_le(h + 8, 4);
    if (version < 1 || version > FASTMLP_MODEL_FORMAT_VERSION) return FASTMLP_EVERSION;
    len = mf_le(h + 16, 8);
    if (len != (uint64_t)payload_present) return FASTMLP_EFORMAT;
    *length = (int64_t)len;
    return FASTMLP_OK;
}

int fastmlp_model_load_memory(const void *data, int64_t n_bytes, fastmlp_model **out)
{
    const unsigned char *h = (const unsigned char *)data;
    fastmlp_model *m;
    int64_t len;
    int st;
    FM_CHECK(out, FASTMLP_EINVAL);
    *out = NULL;
    FM_CHECK(data, FASTMLP_EINVAL);
    if (n_bytes < MF_HEADER) return FASTMLP_EFORMAT;
    if ((st = mf_check_header(h, n_bytes - MF_HEADER, &len))) return st;
    if (fastmlp_model_crc32(h + MF_HEADER, len) != (uint32_t)mf_le(h + 12, 4))
        return FASTMLP_ECHECKSUM;
    m = (fastmlp_model *)calloc(1, sizeof(*m));
    if (!m) return FASTMLP_ENOMEM;
    if ((st = mf_parse(h + MF_HEADER, len, (int64_t)mf_le(h + 8, 4), m))) {
        fastmlp_model_free(m);
        return st;
    }
    *out = m;
    return FASTMLP_OK;
}

/* The whole file in one buffer (*size bytes) after checking its header against its real
   length, so a huge declared length allocates nothing. */
static int mf_read_file(FILE *f, unsigned char **buf, int64_t *size)
{
    unsigned char h[MF_HEADER];
    long end;
    int64_t len;
    int st;
    if (fread(h, 1, MF_HEADER, f) != MF_HEADER) return ferror(f) ? FASTMLP_EIO : FASTMLP_EFORMAT;
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0) return FASTMLP_EIO;
    if ((st = mf_check_header(h, (int64_t)end - MF_HEADER, &len))) return st;
    if ((uint64_t)end > (uint64_t)SIZE_MAX / 2) return FASTMLP_ENOMEM;
    *buf = (unsigned char *)malloc((size_t)end);
    if (!*buf) return FASTMLP_ENOMEM;
    if (fseek(f, 0, SEEK_SET) != 0 || fread(*buf, 1, (size_t)end, f) != (size_t)end)
        return FASTMLP_EIO;
    *size = (int64_t)end;
    return FASTMLP_OK;
}

int fastmlp_model_load(const char *path, fastmlp_model **out)
{
    FILE *f;
    unsigned char *buf = NULL;
    int64_t size = 0;
    int st;
    FM_CHECK(out, FASTMLP_EINVAL);
    *out = NULL;
    FM_CHECK(path, FASTMLP_EINVAL);
    f = fopen(path, "rb");
    if (!f) return FASTMLP_EIO;
    st = mf_read_file(f, &buf, &size);
    fclose(f);
    if (st == FASTMLP_OK) st = fastmlp_model_load_memory(buf, size, out);
    free(buf);
    return st;
}

/* ---- accessors ---- */
int64_t fastmlp_model_n_inputs(const fastmlp_model *m) { return m ? m->sizes[0] : -1; }
int64_t fastmlp_model_n_outputs(const fastmlp_model *m)
{
    return m ? m->sizes[m->n_layers] : -1;
}
int64_t fastmlp_model_n_classes(const fastmlp_model *m)
{
    if (!m) return -1;
    return m->link == FASTMLP_LINK_IDENTITY ? 0 : mf_class_count(m);
}
int64_t fastmlp_model_label_width(const fastmlp_model *m)
{
    if (!m) return -1;
    if (m->link == FASTMLP_LINK_IDENTITY) return 0;
    return m->link == FASTMLP_LINK_SIGMOID ? m->sizes[m->n_layers] : 1;
}
int64_t fastmlp_model_n_layers(const fastmlp_model *m) { return m ? m->n_layers : -1; }
int64_t fastmlp_model_layer_size(const fastmlp_model *m, int64_t l)
{
    return m && l >= 0 && l <= m->n_layers ? m->sizes[l] : -1;
}
int64_t fastmlp_model_n_params(const fastmlp_model *m) { return m ? m->n_params : -1; }
int fastmlp_model_dtype(const fastmlp_model *m) { return m ? m->dtype : -1; }
int fastmlp_model_activation(const fastmlp_model *m) { return m ? m->activation : -1; }
int fastmlp_model_link(const fastmlp_model *m) { return m ? m->link : -1; }
int fastmlp_model_target_transform(const fastmlp_model *m) { return m ? m->target : -1; }
int64_t fastmlp_model_positive(const fastmlp_model *m) { return m ? m->positive : -1; }
double fastmlp_model_threshold(const fastmlp_model *m) { return m ? m->threshold : NAN; }
double fastmlp_model_temperature(const fastmlp_model *m) { return m ? m->temperature : NAN; }
int fastmlp_model_has_features(const fastmlp_model *m) { return m ? m->has_features : -1; }
int fastmlp_model_has_standardization(const fastmlp_model *m) { return m ? m->has_std : -1; }

int fastmlp_model_standardization(const fastmlp_model *m, double *mean, double *std)
{
    FM_CHECK(m && mean && std, FASTMLP_EINVAL);
    FM_CHECK(m->has_std, FASTMLP_EVALUE);
    memcpy(mean, m->mean, (size_t)m->sizes[0] * sizeof(double));
    memcpy(std, m->std, (size_t)m->sizes[0] * sizeof(double));
    return FASTMLP_OK;
}

const char *fastmlp_model_feature_name(const fastmlp_model *m, int64_t j)
{
    return m && m->has_features && j >= 0 && j < m->sizes[0] ? m->names[j] : NULL;
}

int fastmlp_model_feature_terms(const fastmlp_model *m, int64_t j, const char **a,
                                const char **b)
{
    FM_CHECK(m && a && b, FASTMLP_EINVAL);
    FM_CHECK(m->has_features && j >= 0 && j < m->sizes[0], FASTMLP_EVALUE);
    *a = m->term_a[j];
    *b = m->term_b[j];
    return FASTMLP_OK;
}

const char *fastmlp_model_class_name(const fastmlp_model *m, int64_t k)
{
    return m && k >= 0 && k < m->n_class_names ? m->class_names[k] : NULL;
}

int64_t fastmlp_model_n_fills(const fastmlp_model *m) { return m ? m->n_fills : -1; }

const char *fastmlp_model_fill_column(const fastmlp_model *m, int64_t k)
{
    return m && k >= 0 && k < m->n_fills ? m->fill_columns[k] : NULL;
}

double fastmlp_model_fill_value(const fastmlp_model *m, int64_t k)
{
    return m && k >= 0 && k < m->n_fills ? m->fill_values[k] : NAN;
}

/* ---- raw table -> features ---- */
static int64_t mf_find(const char *const *columns, int64_t n, const char *name)
{
    int64_t c;
    for (c = 0; c < n; c++)
        if (columns[c] && strcmp(columns[c], name) == 0) return c;
    return -1;
}

int fastmlp_model_resolve_columns(const fastmlp_model *m, const char *const *columns,
                                  int64_t n_columns, int64_t *col_a, int64_t *col_b)
{
    int64_t j;
    int st = FASTMLP_OK;
    FM_CHECK(m && columns && col_a && col_b, FASTMLP_EINVAL);
    FM_CHECK(n_columns >= 1, FASTMLP_ESIZE);
    FM_CHECK(m->has_features, FASTMLP_EVALUE);
    for (j = 0; j < m->sizes[0]; j++) {
        col_a[j] = mf_find(columns, n_columns, m->names[j]);
        col_b[j] = -1;
        if (col_a[j] < 0 && m->term_b[j][0]) {
            col_a[j] = mf_find(columns, n_columns, m->term_a[j]);
            col_b[j] = mf_find(columns, n_columns, m->term_b[j]);
            if (col_b[j] < 0) col_a[j] = -1;
        }
        if (col_a[j] < 0) {
            col_b[j] = -1;
            st = FASTMLP_EVALUE;
        }
    }
    return st;
}

/* A raw table value as the model reads it: SDSS's -9999 is a missing value (NaN), as in
   Python's FeatureSpec; with a fill value (not NaN) a missing one (NaN, inf, -9999, or for a
   float32 model beyond float32's range: what a float32 training run imputed) is replaced by
   it, as training's --missing impute-median replaced it. */
static double mf_raw(double v, double fill, int f32)
{
    int missing = !isfinite(v) || v == FASTMLP_MISSING_VALUE || (f32 && fabs(v) > FLT_MAX);
    if (!missing) return v;
    if (!isnan(fill)) return fill;
    return v == FASTMLP_MISSING_VALUE ? NAN : v;
}

int fastmlp_model_gather_features(const fastmlp_model *m, double *x_raw, const double *table,
                                  int64_t n_rows, int64_t n_columns, const int64_t *col_a,
                                  const int64_t *col_b)
{
    int64_t i, j, n_in;
    int f32;
    FM_CHECK(m && x_raw && table && col_a && col_b, FASTMLP_EINVAL);
    n_in = m->sizes[0];
    f32 = m->dtype == FASTMLP_DTYPE_F32;
    FM_CHECK(n_rows >= 1 && n_columns >= 1 && fm_mul(n_rows, n_columns) > 0 &&
             fm_mul(n_rows, n_in) > 0, FASTMLP_ESIZE);
    for (j = 0; j < n_in; j++)
        FM_CHECK(col_a[j] >= 0 && col_a[j] < n_columns && col_b[j] >= -1 &&
                 col_b[j] < n_columns, FASTMLP_EVALUE);
    for (i = 0; i < n_rows; i++) {
        const double *t = table + i * n_columns;
        for (j = 0; j < n_in; j++) {
            double a, b = 0.0;
            if (col_b[j] < 0) {
                a = mf_raw(t[col_a[j]], m->n_fills ? m->fill_own[j] : NAN, f32);
            } else {
                a = mf_raw(t[col_a[j]], m->n_fills ? m->fill_a[j] : NAN, f32);
                b = mf_raw(t[col_b[j]], m->n_fills ? m->fill_b[j] : NAN, f32);
            }
            x_raw[i * n_in + j] = col_b[j] < 0 ? a : a - b;
        }
    }
    return FASTMLP_OK;
}

/* ---- predictions ----
   Every step is computed as model.py computes it, so that a float32 model gives Python's
   float32 probabilities (to the last bit or two of exp) whatever the size of the logits:
   standardisation in float64 rounded to the dtype; network, temperature, link and expm1 in
   the dtype; the results widened to double. */
enum { MF_PROBA, MF_LABELS, MF_VALUES, MF_LOGITS_OUT };

/* Scratch of one block: the network's inputs x and outputs y in the dtype, proba in double
   (the labels are chosen from it, as Python chooses them from predict_proba). */
typedef struct {
    void *x, *y;
    double *proba;
} mf_block;

/* The label of one row of probabilities (n classes), as MLP.predict. */
static int64_t mf_label(const fastmlp_model *m, const double *p, int64_t n)
{
    int64_t k, best = -1, pos = m->positive >= 0 ? m->positive : 1;
    for (k = 0; k < n; k++)
        if (!isfinite(p[k])) return -1;
    if (!isnan(m->threshold) && p[pos] >= m->threshold) return pos;
    for (k = 0; k < n; k++) {
        if (!isnan(m->threshold) && k == pos) continue; /* the most probable other class */
        if (best < 0 || p[k] > p[best]) best = k;
    }
    return best;
}

/* Labels of nb rows from their probabilities (nb, n_classes). */
static void mf_labels(const fastmlp_model *m, const double *proba, int64_t nb, int64_t *out)
{
    int64_t i, n_out = m->sizes[m->n_layers], ncls = mf_class_count(m);
    if (m->link == FASTMLP_LINK_SIGMOID && n_out > 1) {          /* multilabel */
        double cut = isnan(m->threshold) ? 0.5 : m->threshold;
        for (i = 0; i < nb; i++) {    /* a row without finite probabilities: all -1 */
            int64_t j, ok = 1;
            for (j = 0; j < n_out; j++) ok &= isfinite(proba[i * n_out + j]) != 0;
            for (j = 0; j < n_out; j++)
                out[i * n_out + j] = ok ? proba[i * n_out + j] >= cut : -1;
        }
        return;
    }
    for (i = 0; i < nb; i++) out[i] = mf_label(m, proba + i * ncls, ncls);
}

/* MF_KERNELS(T, SUFFIX, EXP, EXPM1, FABS) defines for one dtype:
   mf_logits: y (nb, n_out) = network((x_raw - mean) / std) / temperature, a NaN row where
              an input is not finite;
   mf_link:   proba (nb, n_classes) from y: [sigmoid(-z), sigmoid(z)] for one sigmoid
              output (each directly, no 1 - p, as _sigmoid_pair), a sigmoid per output
              (multilabel), or softmax (z - max, exp, / sum); a NaN row where a logit is
              not finite (as Python's _proba_of_logits);
   mf_real:   y widened to double, expm1'd for a log1p regressor's values. */
#define MF_KERNELS(T, SUFFIX, EXP, EXPM1, FABS)                                               \
    static int mf_logits##SUFFIX(const fastmlp_model *m, const double *x_raw, int64_t nb,    \
                                 mf_block *s)                                                \
    {                                                                                        \
        int64_t i, j, n_in = m->sizes[0], n_out = m->sizes[m->n_layers];                     \
        T *x = (T *)s->x, *y = (T *)s->y, temp = (T)m->temperature;                          \
        int st;                                                                              \
        for (i = 0; i < nb; i++)                                                             \
            for (j = 0; j < n_in; j++) {                                                     \
                double v = x_raw[i * n_in + j];                                              \
                x[i * n_in + j] = (T)(m->has_std ? (v - m->mean[j]) / m->std[j] : v);        \
            }                                                                                \
        st = fastmlp_mlp_forward##SUFFIX(y, (const T *)m->params, x, nb, m->sizes, m->acts,  \
                                         m->n_layers);                                       \
        if (st) return st;                                                                   \
        /* a row with an input that is not finite has no prediction, even where tanh or     \
           sigmoid saturate an inf to a finite output (as Python's decision_function) */     \
        for (i = 0; i < nb; i++)                                                             \
            for (j = 0; j < n_in; j++)                                                       \
                if (!isfinite(x[i * n_in + j])) {                                            \
                    for (j = 0; j < n_out; j++) y[i * n_out + j] = (T)NAN;                   \
                    break;                                                                   \
                }                                                                            \
        if (m->link != FASTMLP_LINK_IDENTITY && m->temperature != 1.0)                       \
            for (i = 0; i < nb * n_out; i++) y[i] /= temp;                                   \
        return FASTMLP_OK;                                                                   \
    }                                                                                        \
    static void mf_sigmoid##SUFFIX(T z, double *p0, double *p1)                              \
    {                                                                                        \
        T e = EXP(-FABS(z)), den = e + (T)1;                                                 \
        if (p0) *p0 = (double)((z >= 0 ? e : (T)1) / den);                                   \
        *p1 = (double)((z >= 0 ? (T)1 : e) / den);                                           \
    }                                                                                        \
    static void mf_link##SUFFIX(const fastmlp_model *m, const T *y, int64_t nb, double *p)   \
    {                                                                                        \
        int64_t i, k, n_out = m->sizes[m->n_layers];                                         \
        for (i = 0; i < nb; i++) {                                                           \
            const T *z = y + i * n_out;                                                      \
            double *pi = p + i * (n_out == 1 ? 2 : n_out);                                   \
            for (k = 0; k < n_out && isfinite(z[k]); k++) continue;                          \
            if (k < n_out) { /* an overflowed logit (inf or NaN by the order of the sums) */ \
                for (k = 0; k < (n_out == 1 ? 2 : n_out); k++) pi[k] = NAN;                  \
            } else if (m->link == FASTMLP_LINK_SOFTMAX) {                                    \
                T mx = z[0], sum, e;                                                         \
                for (k = 1; k < n_out; k++)                                                  \
                    if (isnan(z[k]) || z[k] > mx) mx = isnan(mx) ? mx : z[k];                \
                sum = EXP(z[0] - mx);                                                        \
                for (k = 1; k < n_out; k++) sum += EXP(z[k] - mx);                           \
                for (k = 0; k < n_out; k++) {                                                \
                    e = EXP(z[k] - mx);                                                      \
                    pi[k] = (double)(e / sum);                                               \
                }                                                                            \
            } else if (n_out == 1) {                                                         \
                mf_sigmoid##SUFFIX(z[0], &pi[0], &pi[1]);                                    \
            } else {                                                                         \
                for (k = 0; k < n_out; k++) mf_sigmoid##SUFFIX(z[k], NULL, &pi[k]);          \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    static void mf_real##SUFFIX(const fastmlp_model *m, const T *y, int64_t n, int expm1_,   \
                                double *out)                                                 \
    {                                                                                        \
        int64_t i;                                                                           \
        for (i = 0; i < n; i++) out[i] = (double)(expm1_ ? EXPM1(y[i]) : y[i]);              \
        (void)m;                                                                             \
    }
MF_KERNELS(float, _f32, expf, expm1f, fabsf)
MF_KERNELS(double, _f64, exp, expm1, fabs)

/* One block (rows r0 .. r0 + nb) of the requested output. */
static int mf_block_run(const fastmlp_model *m, int what, const double *x_raw, int64_t r0,
                        int64_t nb, mf_block *s, void *out)
{
    int64_t n_in = m->sizes[0], n_out = m->sizes[m->n_layers], ncls = mf_class_count(m);
    int f32 = m->dtype == FASTMLP_DTYPE_F32, st;
    int expm1_ = what == MF_VALUES && m->target == FASTMLP_TARGET_LOG1P;
    double *proba = what == MF_PROBA ? (double *)out + r0 * ncls : s->proba;
    x_raw += r0 * n_in;
    st = f32 ? mf_logits_f32(m, x_raw, nb, s) : mf_logits_f64(m, x_raw, nb, s);
    if (st) return st;
    if (what == MF_VALUES || what == MF_LOGITS_OUT) {
        double *o = (double *)out + r0 * n_out;
        if (f32) mf_real_f32(m, (const float *)s->y, nb * n_out, expm1_, o);
        else mf_real_f64(m, (const double *)s->y, nb * n_out, expm1_, o);
        return FASTMLP_OK;
    }
    if (f32) mf_link_f32(m, (const float *)s->y, nb, proba);
    else mf_link_f64(m, (const double *)s->y, nb, proba);
    if (what == MF_LABELS)
        mf_labels(m, proba, nb, (int64_t *)out + r0 * fastmlp_model_label_width(m));
    return FASTMLP_OK;
}

static int mf_predict(const fastmlp_model *m, const double *x_raw, int64_t n_rows, void *out,
                      int what)
{
    int64_t r0, n_in, n_out, block, es;
    mf_block s = {NULL, NULL, NULL};
    int st = FASTMLP_OK;
    FM_CHECK(m && x_raw && out, FASTMLP_EINVAL);
    n_in = m->sizes[0];
    n_out = m->sizes[m->n_layers];
    FM_CHECK(n_rows >= 1 && fm_mul(n_rows, n_in) > 0 && fm_mul(n_rows, n_out + 1) > 0,
             FASTMLP_ESIZE);
    if ((what == MF_PROBA || what == MF_LABELS) && m->link == FASTMLP_LINK_IDENTITY)
        return FASTMLP_EVALUE;
    if (what == MF_VALUES && m->link != FASTMLP_LINK_IDENTITY) return FASTMLP_EVALUE;
    block = n_rows < MF_BLOCK ? n_rows : MF_BLOCK;
    es = m->dtype == FASTMLP_DTYPE_F32 ? 4 : 8;
    s.x = fm_alloc((size_t)(block * n_in * es));
    s.y = fm_alloc((size_t)(block * n_out * es));
    if (what == MF_LABELS) s.proba = (double *)fm_alloc((size_t)(block * (n_out + 1)) * 8);
    if (!s.x || !s.y || (what == MF_LABELS && !s.proba)) st = FASTMLP_ENOMEM;
    for (r0 = 0; st == FASTMLP_OK && r0 < n_rows; r0 += block)
        st = mf_block_run(m, what, x_raw, r0, n_rows - r0 < block ? n_rows - r0 : block, &s,
                          out);
    fm_free(s.x);
    fm_free(s.y);
    fm_free(s.proba);
    return st;
}

int fastmlp_model_predict_proba(const fastmlp_model *m, const double *x_raw, int64_t n_rows,
                                double *proba)
{
    return mf_predict(m, x_raw, n_rows, proba, MF_PROBA);
}

int fastmlp_model_predict_labels(const fastmlp_model *m, const double *x_raw, int64_t n_rows,
                                 int64_t *labels)
{
    return mf_predict(m, x_raw, n_rows, labels, MF_LABELS);
}

int fastmlp_model_predict_values(const fastmlp_model *m, const double *x_raw, int64_t n_rows,
                                 double *values)
{
    return mf_predict(m, x_raw, n_rows, values, MF_VALUES);
}

int fastmlp_model_decision_function(const fastmlp_model *m, const double *x_raw,
                                    int64_t n_rows, double *z)
{
    return mf_predict(m, x_raw, n_rows, z, MF_LOGITS_OUT);
}
