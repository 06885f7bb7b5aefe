/* errors.c: the data layer's error-message helper (see errors.h). */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

void sgt_data_err(char *err, size_t errsz, const char *fmt, ...) {
    if (!err || errsz == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}
