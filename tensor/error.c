/* error.c: fatal-error reporting with file:line and a replaceable handler. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static sgt_error_handler g_handler;
static _Thread_local char g_msg[1024];

sgt_error_handler sgt_set_error_handler(sgt_error_handler h) {
    sgt_error_handler old = g_handler;
    g_handler = h;
    return old;
}

const char *sgt_last_error(void) { return g_msg; }

void sgt_fail_at(const char *file, int line, const char *fmt, ...) {
    char body[896];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(g_msg, sizeof g_msg, "sgt: %s:%d: %s", file, line, body);
    if (g_handler) {
        g_handler(g_msg);
        abort(); /* handlers must not return */
    }
    fprintf(stderr, "%s\n", g_msg);
    exit(1);
}
