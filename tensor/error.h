/* error.h: the one way sgt reports a fatal misuse (bad shape, bad dtype, arena overflow).
 * SGT_FAIL prints "sgt: <file>:<line>: <message>" and calls the installed handler; the default
 * handler exits with status 1. Tests install a handler that longjmps so they can assert errors. */
#ifndef SGT_ERROR_H
#define SGT_ERROR_H

/* C++ (the CUDA backend's .cu files include this header) spells noreturn as an attribute. */
#ifdef __cplusplus
#define SGT_NORETURN [[noreturn]]
#else
#include <stdnoreturn.h>
#define SGT_NORETURN noreturn
#endif

typedef void (*sgt_error_handler)(const char *msg);

/* Installs a handler (NULL restores the default: exit(1)). Returns the previous one.
 * The handler must not return (longjmp or exit); if it does, sgt aborts. */
sgt_error_handler sgt_set_error_handler(sgt_error_handler h);

/* The last message that was reported (for tests). */
const char *sgt_last_error(void);

SGT_NORETURN void sgt_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SGT_FAIL(...) sgt_fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define SGT_CHECK(cond, ...) do { if (!(cond)) SGT_FAIL(__VA_ARGS__); } while (0)

#endif
