/* fuzz_tokenizer.h: GPT-2's tokenizer for the fuzz targets that need one, loaded once from
 * $SGT_TOKENIZER, $SGT_SHARED/tokenizer/gpt2 or ../shared/tokenizer/gpt2; exits if it is missing. */
#ifndef SGT_FUZZ_TOKENIZER_H
#define SGT_FUZZ_TOKENIZER_H

#include <stdio.h>
#include <stdlib.h>

#include "tokenizer.h"

static inline sgt_tokenizer *fz_tokenizer(const char *who) {
    char dir[1024], err[512] = "";
    sgt_tokenizer *t = NULL;
    if (sgt_tokenizer_resolve_dir(NULL, dir, sizeof dir) || sgt_tokenizer_load(dir, &t, err, sizeof err)) {
        fprintf(stderr, "%s: %s (set SGT_SHARED)\n", who, err);
        exit(1);
    }
    return t;
}

#endif
