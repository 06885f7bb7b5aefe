/* cli.h: a table-driven command-line flag parser for the apps. Each flag has a name, a type, a
 * destination, its default (the destination's initial value) and a help line. --help prints
 * every flag with its default. Unknown flags and bad values give a one-line error naming the
 * flag, and the apps exit non-zero. Flags take "--name value" or "--name=value". */
#ifndef SGT_APPS_CLI_H
#define SGT_APPS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CLI_INT, CLI_DOUBLE, CLI_STRING, CLI_BOOL, CLI_CHOICE } cli_type;

typedef struct {
    const char *name;      /* without the leading -- */
    cli_type type;
    void *dst;             /* int64_t*, double*, const char**, bool*, const char** */
    const char *help;
    const char *choices;   /* CLI_CHOICE: "a|b|c" */
    double min, max;       /* numeric range, inclusive, when min < max */
    bool set;              /* filled by the parser: given on the command line */
} cli_flag;

/* Returns 0, 1 if --help was printed (exit 0), or -1 with an error printed (exit 2). */
int cli_parse(const char *prog, const char *summary, cli_flag *flags, int nflags, int argc, char **argv);
bool cli_was_set(const cli_flag *flags, int nflags, const char *name);

#endif
