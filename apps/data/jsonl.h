/* jsonl.h: streaming JSONL reader: one JSON object per line, the document text in one string
 * field ("text" by default).
 *
 * The file is read line by line into a growable buffer (never loaded whole), so lines of any
 * length work; "\n" and "\r\n" endings are both accepted, and a UTF-8 BOM on the first line is
 * dropped. Lines that cannot be used are skipped and counted, never fatal:
 *   empty_lines    empty or whitespace-only lines
 *   bad_json       not parseable JSON, or JSON that is not an object
 *   missing_field  an object without the field, or with a non-string field
 *   bad_utf8       the field's decoded text is not valid UTF-8 (e.g. from raw bytes in the line)
 * Known limit: cJSON returns NUL-terminated strings, so a text containing the escape \u0000 is cut
 * at that character.
 *
 * Errors: 0 or a negative errno value, and a one-line message naming the file in err[errsz]
 * (err may be NULL). Opening a missing file, an empty file, or a file with no valid document
 * fails (jsonl_open reads ahead to the first valid document to find out). */
#ifndef SGT_JSONL_H
#define SGT_JSONL_H

#include <stddef.h>
#include <stdint.h>

typedef struct sgt_jsonl_stats {
    uint64_t lines;         /* physical lines read so far */
    uint64_t docs;          /* documents returned (or read ahead) so far */
    uint64_t empty_lines;
    uint64_t bad_json;
    uint64_t missing_field;
    uint64_t bad_utf8;
    uint64_t first_bad_line; /* 1-based line number of the first skipped bad line; 0 if none */
    uint64_t bytes;          /* bytes of the file consumed so far (for progress) */
    uint64_t file_size;      /* size of the file at open */
} sgt_jsonl_stats;

typedef struct sgt_jsonl sgt_jsonl;

/* Opens path; field NULL means "text". On success *out owns the reader. */
int sgt_jsonl_open(const char *path, const char *field, sgt_jsonl **out, char *err, size_t errsz);

/* Next document: returns 1 and sets *text and *len (valid UTF-8, NUL-terminated, owned by the reader
 * and valid until the next call), 0 at end of file, or a negative errno on a read error. */
int sgt_jsonl_next(sgt_jsonl *r, const char **text, size_t *len, char *err, size_t errsz);

const sgt_jsonl_stats *sgt_jsonl_stats_of(const sgt_jsonl *r);
const char *sgt_jsonl_path(const sgt_jsonl *r);
void sgt_jsonl_close(sgt_jsonl *r);

#endif
