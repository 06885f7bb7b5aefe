/* arena.c: chunked bump allocator with consolidation on reset (see arena.h). */
#include "arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static size_t align_up(size_t n) { return (n + SGT_ARENA_ALIGN - 1) & ~(size_t)(SGT_ARENA_ALIGN - 1); }

sgt_arena *sgt_arena_create(const char *name, sgt_device dev, size_t initial, size_t limit) {
    sgt_arena *a = calloc(1, sizeof *a);
    SGT_CHECK(a, "out of host memory creating arena '%s'", name);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->device = dev;
    a->limit = limit;
    a->min_chunk = 1 << 20;
    if (initial) {
        SGT_CHECK(!limit || initial <= limit, "arena '%s': initial size %zu exceeds its limit %zu",
                  name, initial, limit);
        a->chunk[0].base = sgt_device_alloc(dev, initial);
        a->chunk[0].size = initial;
        a->nchunk = 1;
        a->n_system_allocs = 1;
    }
    return a;
}

void sgt_arena_destroy(sgt_arena *a) {
    if (!a) return;
    sgt_arena_destroy(a->host);
    for (int i = 0; i < a->nchunk; i++) sgt_device_free(a->device, a->chunk[i].base);
    free(a);
}

size_t sgt_arena_capacity(const sgt_arena *a) {
    size_t c = 0;
    for (int i = 0; i < a->nchunk; i++) c += a->chunk[i].size;
    return c;
}

void *sgt_arena_alloc(sgt_arena *a, size_t nbytes) {
    size_t need = align_up(nbytes ? nbytes : 1);
    for (; a->cur < a->nchunk; a->cur++) {
        sgt_arena_chunk *c = &a->chunk[a->cur];
        if (c->size - c->used >= need) {
            void *p = c->base + c->used;
            c->used += need;
            a->in_use += need;
            if (a->in_use > a->high_water) a->high_water = a->in_use;
            return p;
        }
        /* the rest of this chunk is abandoned until reset; count it as used */
        a->in_use += c->size - c->used;
        c->used = c->size;
    }
    size_t cap = sgt_arena_capacity(a);
    size_t grow = need > a->min_chunk ? need : a->min_chunk;
    if (cap > grow) grow = cap; /* double the capacity: few chunks on the measuring pass */
    if (a->limit && cap + grow > a->limit) grow = a->limit > cap ? a->limit - cap : 0;
    if (grow < need || a->nchunk == SGT_ARENA_MAX_CHUNKS)
        SGT_FAIL("arena '%s' overflow: %zu bytes requested, %zu of %zu bytes in use, limit %zu%s",
                 a->name, nbytes, a->in_use, cap, a->limit,
                 a->nchunk == SGT_ARENA_MAX_CHUNKS ? " (too many chunks)" : "");
    sgt_arena_chunk *c = &a->chunk[a->nchunk++];
    c->base = sgt_device_alloc(a->device, grow);
    c->size = grow;
    c->used = need;
    a->n_system_allocs++;
    a->cur = a->nchunk - 1;
    a->in_use += need;
    if (a->in_use > a->high_water) a->high_water = a->in_use;
    return c->base;
}

void *sgt_arena_alloc_host(sgt_arena *a, size_t nbytes) {
    if (a->device == SGT_CPU) return sgt_arena_alloc(a, nbytes);
    if (!a->host) {
        char name[sizeof a->name + 8];
        snprintf(name, sizeof name, "%s/host", a->name);
        a->host = sgt_arena_create(name, SGT_CPU, 0, 0);
    }
    return sgt_arena_alloc(a->host, nbytes);
}

void sgt_arena_reset(sgt_arena *a) {
    if (a->host) sgt_arena_reset(a->host);
    if (a->nchunk > 1) {
        /* consolidate: one chunk as big as the most ever in use */
        size_t size = a->high_water;
        for (int i = 0; i < a->nchunk; i++) sgt_device_free(a->device, a->chunk[i].base);
        memset(a->chunk, 0, sizeof a->chunk);
        a->chunk[0].base = sgt_device_alloc(a->device, size);
        a->chunk[0].size = size;
        a->nchunk = 1;
        a->n_system_allocs++;
    }
    for (int i = 0; i < a->nchunk; i++) a->chunk[i].used = 0;
    a->cur = 0;
    a->in_use = 0;
}

sgt_arena_mark sgt_arena_get_mark(const sgt_arena *a) {
    sgt_arena_mark m = {a->cur, a->cur < a->nchunk ? a->chunk[a->cur].used : 0, a->in_use, 0, 0, 0};
    if (a->host) {
        sgt_arena_mark h = sgt_arena_get_mark(a->host);
        m.host_cur = h.cur;
        m.host_used = h.used;
        m.host_in_use = h.in_use;
    }
    return m;
}

void sgt_arena_rewind(sgt_arena *a, sgt_arena_mark m) {
    if (a->host) sgt_arena_rewind(a->host, (sgt_arena_mark){m.host_cur, m.host_used, m.host_in_use, 0, 0, 0});
    for (int i = m.cur + 1; i < a->nchunk; i++) a->chunk[i].used = 0;
    if (m.cur < a->nchunk) a->chunk[m.cur].used = m.used;
    a->cur = m.cur;
    a->in_use = m.in_use;
}
