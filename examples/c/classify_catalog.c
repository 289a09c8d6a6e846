/* classify_catalog.c -- classify a CSV catalog with a model trained in Python.
 *
 * In Python:   fastmlp.io.c_model.write_c_model(model, "model.fmlp")
 * Here:        classify_catalog model.fmlp catalog.csv [out.csv]
 *
 * The catalog is a CSV file with a header line (e.g. SDSS's obj_ID,...,u,g,r,i,z,...).  The
 * model file says which features it reads: a column named like the feature, or a colour
 * "u-g" formed as column u minus column g (fastmlp_model_resolve_columns, the same rule as
 * Python's FeatureSpec).  The model applies its own standardisation, temperature and link,
 * so the probabilities are those of model.predict_proba in Python.
 *
 * Output (stdout, or out.csv): one line per catalog row.  Classifiers: "label" (the class
 * index: argmax, or the positive class where its probability reaches the model's threshold;
 * -1 for a row with a missing value), then "p_<class>" per class.  Multilabel models:
 * "label_<class>" (0/1) then "p_<class>" per output.  Regressors: "value" per output.
 * Probabilities are printed with 17 significant digits (a double round-trips).
 * Empty fields and the nulls Python's CSV reader takes as missing (NULL, null, NA, N/A,
 * None, nan) are missing values (NaN), and so is SDSS's -9999 (FASTMLP_MISSING_VALUE:
 * fastmlp_model_gather_features reads it as NaN, as Python does for a table's raw columns);
 * any other non-number in a used column is an error.  OUT.csv is written to a temporary
 * file renamed over it at the end: after an error OUT.csv is as it was (absent, or the old
 * file), never half of a new one (a FIFO or device such as /dev/stdout is written directly);
 * an OUT.csv that is the catalog itself is refused.
 *
 * Build:  make -C examples/c classify     (builds csrc/build/libfastmlp.so first)
 * Exit status: 0 on success, 1 on a bad model file, catalog or argument. */
#define _XOPEN_SOURCE 700 /* realpath, getpid */
#include "fastmlp.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 4096 /* catalog rows per call of the model */

typedef struct {
    char *buf;
    size_t cap;
} line_buf;

/* The next line without its end-of-line characters; NULL at end of file. */
static char *read_line(FILE *f, line_buf *lb)
{
    size_t n = 0;
    if (!lb->buf) {
        lb->cap = 1024;
        if (!(lb->buf = malloc(lb->cap))) return NULL;
    }
    for (;;) {
        if (!fgets(lb->buf + n, (int)(lb->cap - n), f)) {
            if (n == 0) return NULL;
            break;
        }
        n += strlen(lb->buf + n);
        if (n > 0 && lb->buf[n - 1] == '\n') break;
        if (n + 1 == lb->cap) {
            char *p = realloc(lb->buf, lb->cap * 2);
            if (!p) return NULL;
            lb->buf = p;
            lb->cap *= 2;
        }
    }
    while (n > 0 && (lb->buf[n - 1] == '\n' || lb->buf[n - 1] == '\r')) lb->buf[--n] = '\0';
    return lb->buf;
}

/* Split a line in place at commas outside double quotes; fields are trimmed and unquoted.
   Returns the number of fields (at most max). */
static int64_t split_csv(char *line, char **fields, int64_t max)
{
    int64_t n = 0;
    char *p = line, *start = line;
    int quoted = 0;
    for (;; p++) {
        if (*p == '"') quoted = !quoted;
        if ((*p == ',' && !quoted) || *p == '\0') {
            char *e = p, *s = start, last = *p;
            *p = '\0';
            while (s < e && isspace((unsigned char)*s)) s++;
            while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
            if (e - s >= 2 && *s == '"' && e[-1] == '"') { s++; e[-1] = '\0'; }
            if (n < max) fields[n] = s;
            n++;
            if (last == '\0') break;
            start = p + 1;
        }
    }
    return n;
}

/* The fields that are a missing value (NaN), as Python's CSV reader takes them
   (fastmlp.data.formats.NULL_STRINGS; "nan" in any case strtod reads itself). */
static const char *const NULL_FIELDS[] = {"", "NULL", "null", "NA", "N/A", "None"};

/* A field as a number: a null field is a missing value (NaN); returns 0 if it is not a
   number. */
static int parse_number(const char *s, double *v)
{
    char *end;
    size_t k;
    for (k = 0; k < sizeof NULL_FIELDS / sizeof NULL_FIELDS[0]; k++)
        if (strcmp(s, NULL_FIELDS[k]) == 0) { *v = NAN; return 1; }
    *v = strtod(s, &end);
    return end != s && *end == '\0';
}

typedef struct {
    FILE *in, *out;
    fastmlp_model *model;
    char *header;        /* the header line, split in place */
    char **names;        /* (n_cols) column names, into header */
    int64_t n_cols, *col_a, *col_b;
    char *used;          /* (n_cols) 1 for a column the features read */
} job;

static void print_header(const job *j)
{
    const fastmlp_model *m = j->model;
    int64_t k, nc = fastmlp_model_n_classes(m), w = fastmlp_model_label_width(m);
    if (nc == 0) {                                   /* a regressor */
        int64_t n_out = fastmlp_model_n_outputs(m);
        if (n_out == 1) fputs("value", j->out);
        for (k = 0; k < n_out && n_out > 1; k++)
            fprintf(j->out, "%svalue_%lld", k ? "," : "", (long long)k);
        fputc('\n', j->out);
        return;
    }
    for (k = 0; k < w; k++) {
        const char *c = fastmlp_model_class_name(m, k);
        if (w == 1) fputs("label", j->out);
        else if (c) fprintf(j->out, "%slabel_%s", k ? "," : "", c);
        else fprintf(j->out, "%slabel_%lld", k ? "," : "", (long long)k);
    }
    for (k = 0; k < nc; k++) {
        const char *c = fastmlp_model_class_name(m, k);
        if (c) fprintf(j->out, ",p_%s", c);
        else fprintf(j->out, ",p_%lld", (long long)k);
    }
    fputc('\n', j->out);
}

/* Read the header, resolve the model's features against it. */
static int read_header(job *j, line_buf *lb)
{
    char *line = read_line(j->in, lb);
    int64_t c, n_max = 1, n_in = fastmlp_model_n_inputs(j->model);
    if (!line) { fprintf(stderr, "catalog: empty file (no header line)\n"); return 1; }
    for (c = 0; line[c]; c++) n_max += line[c] == ',';
    j->header = malloc(strlen(line) + 1);
    j->names = malloc((size_t)n_max * sizeof(char *));
    j->used = calloc((size_t)n_max, 1);
    j->col_a = malloc((size_t)n_in * sizeof(int64_t));
    j->col_b = malloc((size_t)n_in * sizeof(int64_t));
    if (!j->header || !j->names || !j->used || !j->col_a || !j->col_b) return 1;
    strcpy(j->header, line);
    j->n_cols = split_csv(j->header, j->names, n_max);
    if (fastmlp_model_resolve_columns(j->model, (const char *const *)j->names, j->n_cols,
                                      j->col_a, j->col_b) != FASTMLP_OK) {
        if (!fastmlp_model_has_features(j->model))
            fprintf(stderr, "model: the file has no feature spec (set model.features)\n");
        for (c = 0; c < n_in && fastmlp_model_has_features(j->model); c++)
            if (j->col_a[c] < 0)
                fprintf(stderr, "catalog: no column for feature '%s' (nor its terms)\n",
                        fastmlp_model_feature_name(j->model, c));
        return 1;
    }
    for (c = 0; c < n_in; c++) {
        j->used[j->col_a[c]] = 1;
        if (j->col_b[c] >= 0) j->used[j->col_b[c]] = 1;
    }
    return 0;
}

/* Parse up to CHUNK data lines into table (rows, n_cols); *rows = 0 at end of file. */
static int read_chunk(job *j, line_buf *lb, double *table, char **fields, int64_t *rows,
                      int64_t *line_no)
{
    char *line;
    int64_t c;
    *rows = 0;
    while (*rows < CHUNK && (line = read_line(j->in, lb)) != NULL) {
        double *t = table + *rows * j->n_cols;
        ++*line_no;
        if (!*line) continue; /* blank line */
        if (split_csv(line, fields, j->n_cols) != j->n_cols) {
            fprintf(stderr, "catalog line %lld: expected %lld fields\n", (long long)*line_no,
                    (long long)j->n_cols);
            return 1;
        }
        for (c = 0; c < j->n_cols; c++) {
            t[c] = NAN;
            if (j->used[c] && !parse_number(fields[c], &t[c])) {
                fprintf(stderr, "catalog line %lld, column '%s': '%s' is not a number\n",
                        (long long)*line_no, j->names[c], fields[c]);
                return 1;
            }
        }
        ++*rows;
    }
    return 0;
}

static void print_rows(const job *j, const double *out, const int64_t *labels, int64_t rows)
{
    const fastmlp_model *m = j->model;
    int64_t i, k, nc = fastmlp_model_n_classes(m), w = fastmlp_model_label_width(m);
    int64_t width = nc ? nc : fastmlp_model_n_outputs(m);
    for (i = 0; i < rows; i++) {
        for (k = 0; k < w; k++) fprintf(j->out, k ? ",%lld" : "%lld", (long long)labels[i * w + k]);
        for (k = 0; k < width; k++)
            fprintf(j->out, k || w ? ",%.17g" : "%.17g", out[i * width + k]);
        fputc('\n', j->out);
    }
}

/* The catalog, chunk by chunk: features, then the model's outputs, printed. */
static int classify(job *j, line_buf *lb)
{
    const fastmlp_model *m = j->model;
    int64_t rows, line_no = 1, n_in = fastmlp_model_n_inputs(m);
    int64_t nc = fastmlp_model_n_classes(m), w = fastmlp_model_label_width(m);
    int64_t width = nc ? nc : fastmlp_model_n_outputs(m);
    double *table = malloc((size_t)(CHUNK * j->n_cols) * sizeof(double));
    double *x = malloc((size_t)(CHUNK * n_in) * sizeof(double));
    double *out = malloc((size_t)(CHUNK * width) * sizeof(double));
    int64_t *labels = malloc((size_t)(CHUNK * (w ? w : 1)) * sizeof(int64_t));
    char **fields = malloc((size_t)j->n_cols * sizeof(char *));
    int st = !(table && x && out && labels && fields);
    print_header(j);
    while (!st && !(st = read_chunk(j, lb, table, fields, &rows, &line_no)) && rows > 0) {
        st = fastmlp_model_gather_features(m, x, table, rows, j->n_cols, j->col_a, j->col_b);
        if (!st && nc) st = fastmlp_model_predict_proba(m, x, rows, out);
        if (!st && nc) st = fastmlp_model_predict_labels(m, x, rows, labels);
        if (!st && !nc) st = fastmlp_model_predict_values(m, x, rows, out);
        if (st) fprintf(stderr, "prediction failed: %s\n", fastmlp_model_strerror(st));
        else print_rows(j, out, labels, rows);
    }
    free(table); free(x); free(out); free(labels); free(fields);
    return st != 0;
}

/* Whether paths a and b name one existing file (the same device and inode: links too). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Where OUT.csv goes: target = the file a symlink points to (the link stays a link; a
   dangling link, whose file realpath cannot resolve, is refused), and tmp = a temporary
   file beside it made by mkstemp (opened in *fd), renamed over it at the end; a device or
   FIFO (/dev/stdout) is written directly (tmp = "", *fd = -1: a rename would put a regular
   file in its place).  Returns 0, or 1 with a message naming out. */
static int output_path(const char *out, char *target, char *tmp, int *fd)
{
    struct stat st;
    char dir[PATH_MAX];
    const char *slash = strrchr(out, '/');
    int exists;
    *fd = -1;
    *tmp = '\0';
    if (realpath(out, target) == NULL) {
        if (errno != ENOENT || lstat(out, &st) == 0) {   /* a dangling link, a loop, ... */
            fprintf(stderr, "%s: cannot write there: %s\n", out,
                    errno == ENOENT ? "a symlink to a file that does not exist" :
                    strerror(errno));
            return 1;
        }
        /* a new file: its directory must exist */
        if (strlen(out) >= PATH_MAX) { fprintf(stderr, "%s: path too long\n", out); return 1; }
        if (!slash) snprintf(dir, sizeof dir, ".");
        else snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
        if (realpath(dir, target) == NULL) {
            fprintf(stderr, "%s: cannot write there: %s\n", out, strerror(errno));
            return 1;
        }
        const size_t used = strlen(target);   /* before snprintf writes past it */
        if (snprintf(target + used, PATH_MAX - used, "/%s", slash ? slash + 1 : out) >=
            (int)(PATH_MAX - used)) {
            fprintf(stderr, "%s: path too long\n", out);
            return 1;
        }
    }
    if (stat(target, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s is a directory, not a file\n", out);
        return 1;
    }
    exists = stat(target, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) return 0;
    snprintf(tmp, PATH_MAX + 32, "%s.XXXXXX", target);
    if ((*fd = mkstemp(tmp)) < 0) {
        fprintf(stderr, "%s: cannot write there: %s\n", out, strerror(errno));
        *tmp = '\0';
        return 1;
    }
    {   /* mkstemp's file is 0600: give it the mode fopen would give -- the old file's,
           or 0666 less the umask for a new one */
        const mode_t mask = umask(0);
        umask(mask);
        if (fchmod(*fd, exists ? st.st_mode & 07777 : 0666 & ~mask) != 0) {
            fprintf(stderr, "%s: cannot set its mode: %s\n", out, strerror(errno));
            close(*fd);
            remove(tmp);
            *fd = -1;
            *tmp = '\0';
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    job j;
    line_buf lb = {NULL, 0};
    char tmp[PATH_MAX + 32] = "", target[PATH_MAX] = "";
    int st, fd = -1;
    memset(&j, 0, sizeof j);
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL_FILE CATALOG.csv [OUT.csv]\n", argv[0]);
        return 1;
    }
    if ((st = fastmlp_model_load(argv[1], &j.model)) != FASTMLP_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], fastmlp_model_strerror(st));
        return 1;
    }
    if (argc == 4 && same_file(argv[2], argv[3])) {
        fprintf(stderr, "%s is the catalog itself: refusing to overwrite the input (give "
                "another output path)\n", argv[3]);
        fastmlp_model_free(j.model);
        return 1;
    }
    if (argc == 4 && output_path(argv[3], target, tmp, &fd) != 0) {
        fastmlp_model_free(j.model);
        return 1;
    }
    j.in = fopen(argv[2], "r");
    j.out = argc < 4 ? stdout : fd >= 0 ? fdopen(fd, "w") : fopen(target, "w");
    if (j.out == NULL && fd >= 0) close(fd);
    if (!j.in || !j.out) {
        fprintf(stderr, "cannot open %s: %s\n", !j.in ? argv[2] : argv[3], strerror(errno));
        st = 1;
    } else {
        st = read_header(&j, &lb) || classify(&j, &lb);
    }
    if (j.out && j.out != stdout) {
        if (fclose(j.out) != 0) st = 1;
        if (*tmp && !st && rename(tmp, target) != 0) {
            fprintf(stderr, "cannot write %s: %s\n", argv[3], strerror(errno));
            st = 1;
        }
        if (*tmp && st) remove(tmp);
    }
    if (j.in) fclose(j.in);
    fastmlp_model_free(j.model);
    free(j.header); free(j.names); free(j.used); free(j.col_a); free(j.col_b); free(lb.buf);
    return st ? 1 : 0;
}
