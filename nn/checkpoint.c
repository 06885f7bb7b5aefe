/* checkpoint.c: safetensors writing (atomic: temp file, fsync, rename) and validating reading for
 * the parameter store and the optimizer's state (see checkpoint.h). */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes tensor bytes as they lie in memory, and safetensors is little-endian"
#endif

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */
#define ST_META "__metadata__"
#define ST_TRAIN_FORMAT "sgt-adamw"
#define ST_TRAIN_VERSION "1"

static int fail(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errn, const char *fmt, ...) {
    if (err && errn) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errn, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* For file calls: on failure, report the call, errno and where in this file it happened, then
 * jump to the caller's cleanup. errno is cleared first so a short write without one says so. */
#define IO_CHECK(cond, what)                                                                              \
    do {                                                                                                  \
        errno = 0;                                                                                        \
        if (!(cond)) {                                                                                    \
            int e_ = errno;                                                                               \
            fail(err, errn, "%s: %s failed: %s (%s:%d)", path, what, e_ ? strerror(e_) : "short transfer", \
                 __FILE__, __LINE__);                                                                     \
            goto fail;                                                                                    \
        }                                                                                                 \
    } while (0)

static const char *st_dtype(sgt_dtype t) {
    switch (t) {
    case SGT_F32: return "F32";
    case SGT_F64: return "F64";
    case SGT_I32: return "I32";
    case SGT_BF16: return "BF16";
    default: return NULL;
    }
}

static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, d ? "," : "", shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* ---- a growable string for the header ---- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_putn(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* a quoted JSON string; bytes >= 0x80 (UTF-8) pass through */
static void sb_json_string(sbuf *b, const char *s) {
    sb_putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_putn(b, e, 2);
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_putn(b, (const char *)p, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

/* ---- names, sorted for lookup ---- */

typedef struct {
    const char *name;
    int idx;
} named;

static int named_cmp(const void *a, const void *b) { return strcmp(((const named *)a)->name, ((const named *)b)->name); }

static named *sorted_names(int n, const char *const *names) {
    named *s = malloc(sizeof *s * (size_t)(n ? n : 1));
    if (!s) return NULL;
    for (int i = 0; i < n; i++) s[i] = (named){names[i], i};
    qsort(s, (size_t)n, sizeof *s, named_cmp);
    return s;
}

static int find_name(const named *s, int n, const char *name) {
    named key = {name, -1};
    const named *hit = bsearch(&key, s, (size_t)n, sizeof *s, named_cmp);
    return hit ? hit->idx : -1;
}

/* ---- writing ---- */

/* Best effort: make the rename itself durable. A failure here does not undo a complete file. */
static void fsync_parent_dir(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int nn_save_safetensors(const char *path, int n, const char *const *names, sgt_tensor *const *tensors,
                        const char *metadata_json, char *err, size_t errn) {
    if (err && errn) err[0] = 0;
    sbuf h = {0};
    named *sorted = NULL;
    cJSON *meta = NULL;
    FILE *f = NULL;
    bool created = false;
    char *stage = NULL;
    char tmp[4096];
    int rc = -1;

    /* ---- check the inputs and build the header ---- */
    if (n < 0) {
        fail(err, errn, "%s: negative tensor count %d", path, n);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        if (!names[i] || !names[i][0]) {
            fail(err, errn, "%s: tensor %d has no name", path, i);
            goto fail;
        }
        if (!strcmp(names[i], ST_META)) {
            fail(err, errn, "%s: '%s' is reserved and cannot name a tensor", path, ST_META);
            goto fail;
        }
        if (!st_dtype(tensors[i]->dtype)) {
            fail(err, errn, "%s: tensor '%s' has dtype %s, which safetensors cannot hold", path, names[i],
                 sgt_dtype_name(tensors[i]->dtype));
            goto fail;
        }
    }
    sorted = sorted_names(n, names);
    if (!sorted) {
        fail(err, errn, "%s: out of host memory", path);
        goto fail;
    }
    for (int i = 1; i < n; i++)
        if (!strcmp(sorted[i - 1].name, sorted[i].name)) {
            fail(err, errn, "%s: tensor name '%s' is used twice", path, sorted[i].name);
            goto fail;
        }

    sb_puts(&h, "{");
    if (metadata_json) {
        meta = cJSON_Parse(metadata_json);
        if (!cJSON_IsObject(meta)) {
            fail(err, errn, "%s: the metadata is not a JSON object: %.80s", path, metadata_json);
            goto fail;
        }
        sb_json_string(&h, ST_META);
        sb_puts(&h, ":{");
        int k = 0;
        for (cJSON *it = meta->child; it; it = it->next, k++) {
            if (!cJSON_IsString(it)) {
                fail(err, errn, "%s: metadata value '%s' is not a string (safetensors metadata maps strings to strings)",
                     path, it->string);
                goto fail;
            }
            if (k) sb_puts(&h, ",");
            sb_json_string(&h, it->string);
            sb_puts(&h, ":");
            sb_json_string(&h, it->valuestring);
        }
        sb_puts(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const sgt_tensor *t = tensors[i];
        uint64_t nbytes = (uint64_t)sgt_numel(t) * sgt_dtype_size(t->dtype);
        if (metadata_json || i) sb_puts(&h, ",");
        sb_json_string(&h, names[i]);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype(t->dtype));
        for (int d = 0; d < t->ndim; d++) sb_printf(&h, "%s%" PRId64, d ? "," : "", t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + nbytes);
        off += nbytes;
    }
    sb_puts(&h, "}");
    while (!h.oom && h.len % 8) sb_puts(&h, " "); /* the data section starts 8-byte aligned */
    if (h.oom) {
        fail(err, errn, "%s: out of host memory building the header", path);
        goto fail;
    }
    if ((uint64_t)h.len >= ST_MAX_HEADER) {
        fail(err, errn, "%s: the header would be %zu bytes, over the 100 MB limit of readers", path, h.len);
        goto fail;
    }

    /* ---- write <path>.tmp.<pid>, then rename it over <path> ---- */
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        fail(err, errn, "%s: path too long", path);
        goto fail;
    }
    if (!(f = fopen(tmp, "wb"))) {
        fail(err, errn, "%s: creating the temp file %s failed: %s (%s:%d)", path, tmp, strerror(errno), __FILE__,
             __LINE__);
        goto fail;
    }
    created = true;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    IO_CHECK(fwrite(len8, 1, 8, f) == 8, "writing the header length");
    IO_CHECK(fwrite(h.s, 1, h.len, f) == h.len, "writing the header");
    for (int i = 0; i < n; i++) {
        sgt_tensor *t = tensors[i];
        size_t nbytes = (size_t)sgt_numel(t) * sgt_dtype_size(t->dtype);
        if (!nbytes) continue;
        if (t->device == SGT_CPU && sgt_is_contiguous(t)) {
            IO_CHECK(fwrite(sgt_ptr(t), 1, nbytes, f) == nbytes, "writing tensor data");
        } else { /* a view, or a device tensor: stage it densely in host memory */
            free(stage);
            if (!(stage = malloc(nbytes))) {
                fail(err, errn, "%s: out of host memory staging %zu bytes of tensor '%s'", path, nbytes, names[i]);
                goto fail;
            }
            sgt_copy_to_host(t, stage);
            IO_CHECK(fwrite(stage, 1, nbytes, f) == nbytes, "writing tensor data");
        }
    }
    IO_CHECK(fflush(f) == 0, "flushing the temp file");
    IO_CHECK(fsync(fileno(f)) == 0, "fsync of the temp file");
    {
        FILE *done = f;
        f = NULL; /* fclose releases the stream even when it fails */
        IO_CHECK(fclose(done) == 0, "closing the temp file");
    }
    IO_CHECK(rename(tmp, path) == 0, "renaming the temp file over the checkpoint");
    created = false;
    fsync_parent_dir(path);
    rc = 0;

fail:
    if (f) fclose(f);
    if (created) unlink(tmp);
    free(stage);
    cJSON_Delete(meta);
    free(sorted);
    free(h.s);
    return rc;
}

int nn_save_params(nn_params *p, const char *path, const char *metadata_json, char *err, size_t errn) {
    const char **names = malloc(sizeof *names * (size_t)(p->n ? p->n : 1));
    sgt_tensor **ts = malloc(sizeof *ts * (size_t)(p->n ? p->n : 1));
    int rc;
    if (!names || !ts) {
        rc = fail(err, errn, "%s: out of host memory", path);
    } else {
        for (int i = 0; i < p->n; i++) {
            names[i] = p->items[i].name;
            ts[i] = p->items[i].t;
        }
        rc = nn_save_safetensors(path, p->n, names, ts, metadata_json, err, errn);
    }
    free(names);
    free(ts);
    return rc;
}

/* ---- reading ---- */

typedef struct {
    const char *path;
    FILE *f;
    int64_t fsize;
    uint64_t hlen, data_size;
    char *header;        /* hlen + 1 bytes */
    cJSON *root, *meta;  /* meta: "__metadata__" or NULL */
    unsigned char *data; /* the data section, once read */
    uint64_t *begin;     /* per target: offset of its bytes in the data section */
} st_file;

static void st_close(st_file *sf) {
    if (sf->f) fclose(sf->f);
    cJSON_Delete(sf->root);
    free(sf->header);
    free(sf->data);
    free(sf->begin);
    memset(sf, 0, sizeof *sf);
}

/* Opens path and parses its header; checks sizes, JSON and the metadata's shape. */
static int st_open(st_file *sf, const char *path, char *err, size_t errn) {
    memset(sf, 0, sizeof *sf);
    sf->path = path;
    if (err && errn) err[0] = 0;
    struct stat st;
    unsigned char len8[8];
    IO_CHECK((sf->f = fopen(path, "rb")) != NULL, "opening");
    IO_CHECK(fstat(fileno(sf->f), &st) == 0, "stat");
    if (!S_ISREG(st.st_mode)) {
        fail(err, errn, "%s: not a regular file", path);
        goto fail;
    }
    sf->fsize = (int64_t)st.st_size;
    if (sf->fsize < 8) {
        fail(err, errn, "%s: the file is %" PRId64 " bytes, too short for the 8-byte header length (truncated?)",
             path, sf->fsize);
        goto fail;
    }
    IO_CHECK(fread(len8, 1, 8, sf->f) == 8, "reading the header length");
    for (int i = 0; i < 8; i++) sf->hlen |= (uint64_t)len8[i] << (8 * i);
    if (sf->hlen > (uint64_t)(sf->fsize - 8)) {
        fail(err, errn,
             "%s: the header length %" PRIu64 " exceeds the %" PRId64
             " bytes that follow it (truncated, or not a safetensors file)",
             path, sf->hlen, sf->fsize - 8);
        goto fail;
    }
    if (sf->hlen >= ST_MAX_HEADER) {
        fail(err, errn, "%s: the header length %" PRIu64 " is over the 100 MB limit", path, sf->hlen);
        goto fail;
    }
    sf->data_size = (uint64_t)sf->fsize - 8 - sf->hlen;
    sf->header = malloc(sf->hlen + 1);
    if (!sf->header) {
        fail(err, errn, "%s: out of host memory for a %" PRIu64 "-byte header", path, sf->hlen);
        goto fail;
    }
    IO_CHECK(fread(sf->header, 1, sf->hlen, sf->f) == sf->hlen, "reading the header");
    sf->header[sf->hlen] = 0;
    const char *end = NULL;
    sf->root = cJSON_ParseWithLengthOpts(sf->header, sf->hlen, &end, false);
    if (!sf->root) {
        const char *at = cJSON_GetErrorPtr();
        size_t pos = at && at >= sf->header && at <= sf->header + sf->hlen ? (size_t)(at - sf->header) : 0;
        char near[24];
        size_t k = 0;
        for (size_t i = pos; i < sf->hlen && k + 1 < sizeof near; i++)
            near[k++] = sf->header[i] >= 0x20 && sf->header[i] < 0x7f ? sf->header[i] : '?';
        near[k] = 0;
        fail(err, errn, "%s: the header is not valid JSON (error at byte %zu of %" PRIu64 ", near '%s')", path, pos,
             sf->hlen, near);
        goto fail;
    }
    for (const char *q = end; q && q < sf->header + sf->hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            fail(err, errn, "%s: the header has bytes after its JSON object (at byte %zu)", path,
                 (size_t)(q - sf->header));
            goto fail;
        }
    if (!cJSON_IsObject(sf->root)) {
        fail(err, errn, "%s: the header is not a JSON object", path);
        goto fail;
    }
    sf->meta = cJSON_GetObjectItemCaseSensitive(sf->root, ST_META);
    if (sf->meta) {
        if (!cJSON_IsObject(sf->meta)) {
            fail(err, errn, "%s: '%s' is not an object", path, ST_META);
            goto fail;
        }
        for (cJSON *it = sf->meta->child; it; it = it->next)
            if (!cJSON_IsString(it)) {
                fail(err, errn, "%s: metadata field '%s' is not a string", path, it->string);
                goto fail;
            }
    }
    return 0;
fail:
    st_close(sf);
    return -1;
}

/* a JSON number that is an exact non-negative integer (safe in a double: below 2^53) */
static bool json_u64(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x)) return false;
    double d = x->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || (double)(uint64_t)d != d) return false;
    *out = (uint64_t)d;
    return true;
}

typedef struct {
    uint64_t begin, end;
    const char *name;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* The model name of a file name under the options' prefix map: the first entry whose `from` begins
 * name rewrites that prefix to `to` into buf; NULL when that entry drops the name (to == NULL). */
static const char *mapped_name(const nn_load_opts *o, const char *name, char *buf, size_t n) {
    for (int k = 0; o && k < o->n_prefix; k++) {
        const nn_prefix_map *m = &o->prefix[k];
        size_t lf = strlen(m->from);
        if (strncmp(name, m->from, lf)) continue;
        if (!m->to) return NULL;
        snprintf(buf, n, "%s%s", m->to, name + lf);
        return buf;
    }
    return name;
}

/* Appends a copy of name to a report list; false when out of memory. */
static bool report_add(char ***list, int *n, const char *name) {
    char **l = realloc(*list, sizeof *l * (size_t)(*n + 1));
    if (!l) return false;
    *list = l;
    if (!(l[*n] = strdup(name))) return false;
    (*n)++;
    return true;
}

void nn_load_report_free(nn_load_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_missing; i++) free(r->missing[i]);
    for (int i = 0; i < r->n_unexpected; i++) free(r->unexpected[i]);
    free(r->missing);
    free(r->unexpected);
    memset(r, 0, sizeof *r);
}

/* Checks the file against the n targets (names[i] -> tensors[i], on any device): dtypes and shapes
 * of the tensors they share (always), no unknown and no missing tensor (when o is NULL or strict),
 * and consistent offsets for every tensor of the file; fills sf->begin (NOT_LOADED for a target the
 * file lacks) and, when rep is not NULL, the report. */
#define NOT_LOADED UINT64_MAX
static int st_match(st_file *sf, int n, const char *const *names, sgt_tensor *const *tensors,
                    const nn_load_opts *o, nn_load_report *rep, char *err, size_t errn) {
    bool strict = !o || o->strict;
    char mapbuf[NN_NAME_MAX + 256];
    const char *path = sf->path;
    named *sorted = sorted_names(n, names);
    bool *seen = calloc((size_t)(n ? n : 1), sizeof *seen);
    span *spans = malloc(sizeof *spans * (size_t)(n ? n : 1));
    sf->begin = calloc((size_t)(n ? n : 1), sizeof *sf->begin);
    int nspan = 0, rc = -1, nentry = 0;
    char b0[160], b1[160];
    for (cJSON *e = sf->root->child; e; e = e->next) nentry++;
    if (rep) memset(rep, 0, sizeof *rep);
    span *more = spans ? realloc(spans, sizeof *spans * (size_t)(nentry > n ? nentry : n ? n : 1)) : NULL;
    if (more) spans = more;
    if (!sorted || !seen || !more || !sf->begin) {
        fail(err, errn, "%s: out of host memory", path);
        goto out;
    }
    for (cJSON *e = sf->root->child; e; e = e->next) {
        const char *name = e->string;
        if (!strcmp(name, ST_META)) continue;
        const char *mname = mapped_name(o, name, mapbuf, sizeof mapbuf);
        int i = mname ? find_name(sorted, n, mname) : -1;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (i < 0) {
            if (strict && mname) {
                fail(err, errn, "%s: unknown tensor '%s' in the file (the model has no such parameter)", path, mname);
                goto out;
            }
            /* not loaded, but its bytes still count in the layout checks below */
            uint64_t beg, end;
            if (!cJSON_IsObject(e) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
                !json_u64(cJSON_GetArrayItem(of, 0), &beg) || !json_u64(cJSON_GetArrayItem(of, 1), &end) ||
                end < beg || end > sf->data_size) {
                fail(err, errn, "%s: tensor '%s': field 'data_offsets' is missing or not a [begin, end] pair within the data",
                     path, name);
                goto out;
            }
            spans[nspan++] = (span){beg, end, e->string};
            if (mname && rep && !report_add(&rep->unexpected, &rep->n_unexpected, name)) {
                fail(err, errn, "%s: out of host memory", path);
                goto out;
            }
            continue;
        }
        if (seen[i]) {
            fail(err, errn, "%s: tensor '%s' appears twice in the header%s", path, mname,
                 mname != name ? " (after renaming)" : "");
            goto out;
        }
        seen[i] = true;
        const sgt_tensor *t = tensors[i];
        if (!cJSON_IsObject(e) || !cJSON_IsString(dt)) {
            fail(err, errn, "%s: tensor '%s': field 'dtype' is missing or not a string", path, name);
            goto out;
        }
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > 64) {
            fail(err, errn, "%s: tensor '%s': field 'shape' is missing or not an array of sizes", path, name);
            goto out;
        }
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2) {
            fail(err, errn, "%s: tensor '%s': field 'data_offsets' is missing or not a [begin, end] pair", path, name);
            goto out;
        }
        int64_t fshape[64];
        int fnd = 0;
        for (cJSON *d = sh->child; d; d = d->next) {
            uint64_t v;
            if (!json_u64(d, &v)) {
                fail(err, errn, "%s: tensor '%s': field 'shape' holds something other than a non-negative integer",
                     path, name);
                goto out;
            }
            fshape[fnd++] = (int64_t)v;
        }
        const char *want_dt = st_dtype(t->dtype);
        if (strcmp(dt->valuestring, want_dt)) {
            fail(err, errn, "%s: tensor '%s' has dtype %s, the model expects %s", path, name, dt->valuestring, want_dt);
            goto out;
        }
        bool same = fnd == t->ndim;
        for (int d = 0; same && d < fnd; d++) same = fshape[d] == t->shape[d];
        if (!same) {
            fail(err, errn, "%s: tensor '%s' has shape %s, the model expects %s", path, name,
                 shape_str(b0, sizeof b0, fnd, fshape), shape_str(b1, sizeof b1, t->ndim, t->shape));
            goto out;
        }
        uint64_t beg, end;
        if (!json_u64(cJSON_GetArrayItem(of, 0), &beg) || !json_u64(cJSON_GetArrayItem(of, 1), &end)) {
            fail(err, errn, "%s: tensor '%s': field 'data_offsets' holds something other than non-negative integers",
                 path, name);
            goto out;
        }
        if (end < beg) {
            fail(err, errn, "%s: tensor '%s': data_offsets [%" PRIu64 ",%" PRIu64 "] end before they begin", path, name,
                 beg, end);
            goto out;
        }
        uint64_t need = (uint64_t)sgt_numel(t) * sgt_dtype_size(t->dtype);
        if (end - beg != need) {
            fail(err, errn,
                 "%s: tensor '%s': data_offsets [%" PRIu64 ",%" PRIu64 "] span %" PRIu64
                 " bytes, but %s %s needs %" PRIu64,
                 path, name, beg, end, end - beg, want_dt, shape_str(b0, sizeof b0, t->ndim, t->shape), need);
            goto out;
        }
        if (end > sf->data_size) {
            fail(err, errn,
                 "%s: the file is truncated: tensor '%s' ends at byte %" PRIu64 " of the data section, but only %" PRIu64
                 " bytes follow the header (file size %" PRId64 ")",
                 path, name, end, sf->data_size, sf->fsize);
            goto out;
        }
        sf->begin[i] = beg;
        spans[nspan++] = (span){beg, end, names[i]};
    }
    for (int i = 0; i < n; i++)
        if (!seen[i]) {
            if (strict) {
                fail(err, errn, "%s: tensor '%s' (%s %s) is missing from the file", path, names[i],
                     st_dtype(tensors[i]->dtype), shape_str(b0, sizeof b0, tensors[i]->ndim, tensors[i]->shape));
                goto out;
            }
            sf->begin[i] = NOT_LOADED;
            if (rep && !report_add(&rep->missing, &rep->n_missing, names[i])) {
                fail(err, errn, "%s: out of host memory", path);
                goto out;
            }
        } else if (rep) {
            rep->n_loaded++;
        }
    qsort(spans, (size_t)nspan, sizeof *spans, span_cmp);
    uint64_t max_end = 0;
    const char *last = NULL;
    for (int k = 0; k < nspan; k++) {
        if (spans[k].begin == spans[k].end) continue; /* empty tensors occupy nothing */
        if (spans[k].begin < max_end) {
            fail(err, errn, "%s: tensors '%s' and '%s' overlap in the data section", path, last, spans[k].name);
            goto out;
        }
        max_end = spans[k].end;
        last = spans[k].name;
    }
    if (max_end != sf->data_size) {
        fail(err, errn,
             "%s: the file is %" PRId64 " bytes, but its header (%" PRIu64 ") and tensors (%" PRIu64
             ") account for %" PRIu64 " (%" PRIu64 " unexpected trailing bytes)",
             path, sf->fsize, 8 + sf->hlen, max_end, 8 + sf->hlen + max_end, sf->data_size - max_end);
        goto out;
    }
    rc = 0;
out:
    if (rc && rep) nn_load_report_free(rep);
    free(sorted);
    free(seen);
    free(spans);
    return rc;
}

/* Reads the whole data section, so that nothing is written to a tensor unless every byte arrived. */
static int st_read_data(st_file *sf, char *err, size_t errn) {
    const char *path = sf->path;
    sf->data = malloc(sf->data_size ? sf->data_size : 1);
    if (!sf->data) return fail(err, errn, "%s: out of host memory for %" PRIu64 " bytes of tensor data", path,
                               sf->data_size);
    IO_CHECK(fseek(sf->f, (long)(8 + sf->hlen), SEEK_SET) == 0, "seeking to the data section");
    IO_CHECK(fread(sf->data, 1, sf->data_size, sf->f) == sf->data_size, "reading the tensor data");
    return 0;
fail:
    return -1;
}

static void st_copy_out(const st_file *sf, int n, sgt_tensor *const *tensors) {
    for (int i = 0; i < n; i++) {
        if (sf->begin[i] == NOT_LOADED) continue;
        size_t nbytes = (size_t)sgt_numel(tensors[i]) * sgt_dtype_size(tensors[i]->dtype);
        if (nbytes) sgt_copy_from_host(tensors[i], sf->data + sf->begin[i]); /* any device, any view */
    }
}

static int load_into(const char *path, int n, const char *const *names, sgt_tensor *const *tensors,
                     const nn_load_opts *o, nn_load_report *rep, char *err, size_t errn) {
    st_file sf;
    if (rep) memset(rep, 0, sizeof *rep);
    if (st_open(&sf, path, err, errn)) return -1;
    int rc = st_match(&sf, n, names, tensors, o, rep, err, errn);
    if (!rc) rc = st_read_data(&sf, err, errn);
    if (rc && rep) nn_load_report_free(rep);
    if (!rc) st_copy_out(&sf, n, tensors);
    st_close(&sf);
    return rc;
}

int nn_load_params_opts(nn_params *p, const char *path, const nn_load_opts *o, nn_load_report *rep, char *err,
                        size_t errn) {
    const char **names = malloc(sizeof *names * (size_t)(p->n ? p->n : 1));
    sgt_tensor **ts = malloc(sizeof *ts * (size_t)(p->n ? p->n : 1));
    int rc;
    if (!names || !ts) {
        rc = fail(err, errn, "%s: out of host memory", path);
    } else {
        for (int i = 0; i < p->n; i++) {
            names[i] = p->items[i].name;
            ts[i] = p->items[i].t;
        }
        rc = load_into(path, p->n, names, ts, o, rep, err, errn);
    }
    free(names);
    free(ts);
    return rc;
}

int nn_load_params(nn_params *p, const char *path, char *err, size_t errn) {
    return nn_load_params_opts(p, path, NULL, NULL, err, errn);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int nn_read_metadata(const char *path, char **json_out, char *err, size_t errn) {
    *json_out = NULL;
    st_file sf;
    if (st_open(&sf, path, err, errn)) return -1;
    char *s = sf.meta ? cJSON_PrintUnformatted(sf.meta) : NULL;
    *json_out = dup_str(s ? s : "{}"); /* from malloc, whatever allocator cJSON was built with */
    cJSON_free(s);
    st_close(&sf);
    return *json_out ? 0 : fail(err, errn, "%s: out of host memory", path);
}

/* ---- optimizer state ---- */

#define MOMENT_NAME_MAX (NN_NAME_MAX + 8)

/* names "adam.m.<param>" (first n) and "adam.v.<param>" (next n), with their tensors */
static int moment_list(const nn_adamw *o, char (**names)[MOMENT_NAME_MAX], const char ***pnames,
                       sgt_tensor ***ts) {
    int n = o->n;
    *names = malloc(sizeof **names * (size_t)(2 * n + 1));
    *pnames = malloc(sizeof **pnames * (size_t)(2 * n + 1));
    *ts = malloc(sizeof **ts * (size_t)(2 * n + 1));
    if (!*names || !*pnames || !*ts) return -1;
    for (int i = 0; i < n; i++) {
        snprintf((*names)[i], MOMENT_NAME_MAX, "adam.m.%s", o->params->items[i].name);
        snprintf((*names)[n + i], MOMENT_NAME_MAX, "adam.v.%s", o->params->items[i].name);
        (*pnames)[i] = (*names)[i];
        (*pnames)[n + i] = (*names)[n + i];
        (*ts)[i] = o->m[i];
        (*ts)[n + i] = o->v[i];
    }
    return 0;
}

int nn_save_train_state(const nn_adamw *o, const char *path, const char *state_json, char *err, size_t errn) {
    char(*names)[MOMENT_NAME_MAX] = NULL;
    const char **pnames = NULL;
    sgt_tensor **ts = NULL;
    cJSON *meta = NULL, *state = NULL;
    char *meta_s = NULL;
    int rc = -1;
    if (state_json && !(state = cJSON_Parse(state_json))) {
        fail(err, errn, "%s: the trainer state is not valid JSON: %.80s", path, state_json);
        goto out;
    }
    char step[32];
    snprintf(step, sizeof step, "%" PRId64, o->step);
    meta = cJSON_CreateObject();
    if (!meta || !cJSON_AddStringToObject(meta, "format", ST_TRAIN_FORMAT) ||
        !cJSON_AddStringToObject(meta, "version", ST_TRAIN_VERSION) || !cJSON_AddStringToObject(meta, "step", step) ||
        !cJSON_AddStringToObject(meta, "state", state_json ? state_json : "null") ||
        !(meta_s = cJSON_PrintUnformatted(meta)) || moment_list(o, &names, &pnames, &ts)) {
        fail(err, errn, "%s: out of host memory", path);
        goto out;
    }
    rc = nn_save_safetensors(path, 2 * o->n, pnames, ts, meta_s, err, errn);
out:
    cJSON_Delete(state);
    cJSON_Delete(meta);
    cJSON_free(meta_s);
    free(names);
    free(pnames);
    free(ts);
    return rc;
}

int nn_load_train_state(nn_adamw *o, const char *path, char **state_json_out, char *err, size_t errn) {
    if (state_json_out) *state_json_out = NULL;
    char(*names)[MOMENT_NAME_MAX] = NULL;
    const char **pnames = NULL;
    sgt_tensor **ts = NULL;
    char *state = NULL;
    int rc = -1;
    st_file sf;
    if (st_open(&sf, path, err, errn)) return -1;
    if (moment_list(o, &names, &pnames, &ts)) {
        fail(err, errn, "%s: out of host memory", path);
        goto out;
    }
    /* the metadata first: it says whether this is our file at all */
    cJSON *fmt = sf.meta ? cJSON_GetObjectItemCaseSensitive(sf.meta, "format") : NULL;
    cJSON *ver = sf.meta ? cJSON_GetObjectItemCaseSensitive(sf.meta, "version") : NULL;
    cJSON *stp = sf.meta ? cJSON_GetObjectItemCaseSensitive(sf.meta, "step") : NULL;
    cJSON *sta = sf.meta ? cJSON_GetObjectItemCaseSensitive(sf.meta, "state") : NULL;
    if (!fmt || strcmp(fmt->valuestring, ST_TRAIN_FORMAT)) {
        fail(err, errn, "%s: metadata field 'format' is %s%s%s, expected '%s' (not a training-state file)", path,
             fmt ? "'" : "", fmt ? fmt->valuestring : "missing", fmt ? "'" : "", ST_TRAIN_FORMAT);
        goto out;
    }
    if (!ver || strcmp(ver->valuestring, ST_TRAIN_VERSION)) {
        fail(err, errn, "%s: metadata field 'version' is '%s', this build reads version %s", path,
             ver ? ver->valuestring : "(missing)", ST_TRAIN_VERSION);
        goto out;
    }
    char *endp = NULL;
    errno = 0;
    long long step = stp ? strtoll(stp->valuestring, &endp, 10) : -1;
    if (!stp || errno || endp == stp->valuestring || *endp || step < 0) {
        fail(err, errn, "%s: metadata field 'step' is '%s', not a non-negative integer", path,
             stp ? stp->valuestring : "(missing)");
        goto out;
    }
    if (!sta) {
        fail(err, errn, "%s: metadata field 'state' is missing", path);
        goto out;
    }
    if (state_json_out && !(state = dup_str(sta->valuestring))) {
        fail(err, errn, "%s: out of host memory", path);
        goto out;
    }
    if (st_match(&sf, 2 * o->n, pnames, ts, NULL, NULL, err, errn) || st_read_data(&sf, err, errn)) goto out;
    st_copy_out(&sf, 2 * o->n, ts);
    o->step = (int64_t)step;
    if (state_json_out) {
        *state_json_out = state;
        state = NULL;
    }
    rc = 0;
out:
    st_close(&sf);
    free(state);
    free(names);
    free(pnames);
    free(ts);
    return rc;
}
