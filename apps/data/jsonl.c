/* jsonl.c: streaming JSONL reader (getline into a growable buffer, cJSON per line, skip and count
 * unusable lines). See jsonl.h for the contract. */
#include "jsonl.h"
#include "errors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer.h" /* sgt_utf8_valid_prefix */

#define READ_BUFFER (1 << 20)

struct sgt_jsonl {
    FILE *f;
    char *path;
    char *field;
    char *line; /* getline's buffer; grows to the longest line */
    size_t line_cap;
    cJSON *doc; /* parse tree of the current document; its text lives here */
    const char *text;
    size_t text_len;
    bool pending; /* a document was read ahead by open and not yet returned */
    char *iobuf;
    sgt_jsonl_stats stats;
};


static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\f' &&
            s[i] != '\v')
            return false;
    return true;
}

static void count_bad(sgt_jsonl *r, uint64_t *counter) {
    (*counter)++;
    if (!r->stats.first_bad_line) r->stats.first_bad_line = r->stats.lines;
}

/* Reads lines until a usable document: 1 found, 0 end of file, -EIO read error. */
static int read_doc(sgt_jsonl *r, char *err, size_t errsz) {
    for (;;) {
        errno = 0;
        ssize_t got = getline(&r->line, &r->line_cap, r->f);
        if (got < 0) {
            if (ferror(r->f)) {
                int e = errno ? errno : EIO;
                sgt_data_err(err, errsz, "jsonl: read error on %s after line %llu: %s", r->path,
                        (unsigned long long)r->stats.lines, strerror(e));
                return -e;
            }
            return 0;
        }
        r->stats.lines++;
        r->stats.bytes += (uint64_t)got;
        char *s = r->line;
        size_t n = (size_t)got;
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
        if (r->stats.lines == 1 && n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
            s += 3;
            n -= 3;
        }
        if (is_blank(s, n)) {
            r->stats.empty_lines++;
            continue;
        }
        cJSON_Delete(r->doc);
        const char *end = NULL;
        r->doc = cJSON_ParseWithLengthOpts(s, n, &end, false);
        /* cJSON stops after the first value; anything but whitespace after it is malformed */
        if (!r->doc || !cJSON_IsObject(r->doc) || !end || !is_blank(end, (size_t)(s + n - end))) {
            count_bad(r, &r->stats.bad_json);
            continue;
        }
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(r->doc, r->field);
        if (!cJSON_IsString(item) || !item->valuestring) {
            count_bad(r, &r->stats.missing_field);
            continue;
        }
        size_t len = strlen(item->valuestring);
        if (sgt_utf8_valid_prefix(item->valuestring, len) != len) {
            count_bad(r, &r->stats.bad_utf8);
            continue;
        }
        r->text = item->valuestring;
        r->text_len = len;
        r->stats.docs++;
        return 1;
    }
}

void sgt_jsonl_close(sgt_jsonl *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    free(r->iobuf);
    free(r->path);
    free(r->field);
    free(r->line);
    cJSON_Delete(r->doc);
    free(r);
}

int sgt_jsonl_open(const char *path, const char *field, sgt_jsonl **out, char *err, size_t errsz) {
    *out = NULL;
    if (!field) field = "text";
    sgt_jsonl *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path)) || !(r->field = strdup(field))) {
        sgt_jsonl_close(r);
        sgt_data_err(err, errsz, "jsonl: out of memory opening %s", path);
        return -ENOMEM;
    }
    r->f = fopen(path, "rb");
    if (!r->f) {
        int e = errno;
        sgt_data_err(err, errsz, "jsonl: cannot open %s: %s", path, strerror(e));
        sgt_jsonl_close(r);
        return -e;
    }
    struct stat st;
    if (fstat(fileno(r->f), &st) != 0 || S_ISDIR(st.st_mode)) {
        sgt_data_err(err, errsz, "jsonl: %s is not a readable file", path);
        sgt_jsonl_close(r);
        return -EISDIR;
    }
    r->stats.file_size = (uint64_t)st.st_size;
    if (S_ISREG(st.st_mode) && st.st_size == 0) {
        sgt_data_err(err, errsz, "jsonl: %s is empty", path);
        sgt_jsonl_close(r);
        return -ENODATA;
    }
    r->iobuf = malloc(READ_BUFFER);
    if (r->iobuf) setvbuf(r->f, r->iobuf, _IOFBF, READ_BUFFER);
    int rc = read_doc(r, err, errsz);
    if (rc < 0) {
        sgt_jsonl_close(r);
        return rc;
    }
    if (rc == 0) {
        const sgt_jsonl_stats *s = &r->stats;
        sgt_data_err(err, errsz,
                "jsonl: %s has no valid document (%llu lines: %llu empty, %llu bad JSON, %llu "
                "without string field \"%s\", %llu invalid UTF-8)",
                path, (unsigned long long)s->lines, (unsigned long long)s->empty_lines,
                (unsigned long long)s->bad_json, (unsigned long long)s->missing_field, field,
                (unsigned long long)s->bad_utf8);
        sgt_jsonl_close(r);
        return -ENODATA;
    }
    r->pending = true;
    *out = r;
    return 0;
}

int sgt_jsonl_next(sgt_jsonl *r, const char **text, size_t *len, char *err, size_t errsz) {
    if (r->pending) {
        r->pending = false;
    } else {
        int rc = read_doc(r, err, errsz);
        if (rc <= 0) return rc;
    }
    *text = r->text;
    *len = r->text_len;
    return 1;
}

const sgt_jsonl_stats *sgt_jsonl_stats_of(const sgt_jsonl *r) { return &r->stats; }
const char *sgt_jsonl_path(const sgt_jsonl *r) { return r->path; }
