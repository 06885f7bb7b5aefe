/* errors.h: how the data layer reports failure: a one-line message into the caller's buffer
 * (err may be NULL or errsz 0), returned alongside a negative errno value. */
#ifndef SGT_DATA_ERRORS_H
#define SGT_DATA_ERRORS_H

#include <stddef.h>

void sgt_data_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
