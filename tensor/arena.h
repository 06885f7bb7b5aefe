/* arena.h: bump allocators for sgt's two memory lifetimes.
 *
 *   persistent: parameters, gradients, optimizer state. Never reset.
 *   per-step:   activations, tape nodes, intermediate gradients. Reset after every step.
 *
 * An arena grows in chunks while its size is still being learnt (the first step is the measuring
 * pass). A reset that finds more than one chunk replaces them with one chunk of the high-water
 * size, so from the second identical step on there is no malloc or free at all. A limit (0 = none)
 * turns growth past it into an error that names the arena and the bytes asked for.
 *
 * What the CPU itself reads and writes (tensor structs, tape nodes, names) must be host memory even
 * when the arena's bytes live on a device: sgt_arena_alloc_host serves it. A CPU arena serves it
 * from itself; a device arena keeps a host side-arena for it, which reset, mark and rewind cover. */
#ifndef SGT_ARENA_H
#define SGT_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"

#define SGT_ARENA_MAX_CHUNKS 48
#define SGT_ARENA_ALIGN 64

typedef struct {
    char *base;
    size_t size, used;
} sgt_arena_chunk;

typedef struct sgt_arena {
    char name[32];
    sgt_device device;       /* where the bytes live */
    size_t limit;            /* 0: unlimited; else total capacity may not exceed it */
    size_t min_chunk;        /* smallest chunk to allocate when growing */
    sgt_arena_chunk chunk[SGT_ARENA_MAX_CHUNKS];
    int nchunk;
    int cur;                 /* chunk being filled */
    size_t high_water;       /* most bytes in use at once since creation */
    size_t in_use;           /* bytes in use now (sum over chunks, incl. alignment) */
    uint64_t n_system_allocs; /* chunk mallocs over the arena's life (for tests and stats) */
    struct sgt_arena *host;  /* device arenas: the host side-arena (created on first use); else NULL */
} sgt_arena;

typedef struct {
    int cur;
    size_t used, in_use;
    int host_cur;            /* the host side-arena's position (all 0 while it has none) */
    size_t host_used, host_in_use;
} sgt_arena_mark;

sgt_arena *sgt_arena_create(const char *name, sgt_device dev, size_t initial, size_t limit);
void sgt_arena_destroy(sgt_arena *a);
/* Returns SGT_ARENA_ALIGN-aligned memory; fails with the arena's name and sizes on overflow. */
void *sgt_arena_alloc(sgt_arena *a, size_t nbytes);
/* Host memory with the arena's lifetime (the arena itself when it is a CPU arena). */
void *sgt_arena_alloc_host(sgt_arena *a, size_t nbytes);
/* Frees everything at once; consolidates chunks to one of the high-water size. */
void sgt_arena_reset(sgt_arena *a);
sgt_arena_mark sgt_arena_get_mark(const sgt_arena *a);
void sgt_arena_rewind(sgt_arena *a, sgt_arena_mark m);
size_t sgt_arena_capacity(const sgt_arena *a);

#endif
