/* dcm_arena: a capped bump allocator for the DICOM dataset and query modules. Everything taken
 * from an arena dies with it, at once: a parsed tree, its copied values and a query's keys need
 * no per-node free and can never leak a node. Pure: libc only. */
#ifndef GW_DCM_ARENA_H
#define GW_DCM_ARENA_H

#include <stddef.h>

#include "err.h"

struct dcm_arena_blk;

struct dcm_arena {
    struct dcm_arena_blk *head; /* newest block first */
    size_t used;                /* bytes handed out plus block headers, for the cap */
    size_t max;                 /* hard cap on used */
    int err;                    /* why the last failed alloc failed: ERR_LIMIT or ERR_NOMEM */
};

/* Caller's storage; nothing is allocated until the first alloc. max is the hard cap in bytes. */
void dcm_arena_init(struct dcm_arena *a, size_t max);
/* Release every block; the arena can be used again afterwards (same cap). */
void dcm_arena_cleanup(struct dcm_arena *a);
/* n bytes, zeroed, aligned for any object, valid until cleanup. NULL when n would pass the cap
 * or malloc fails; a->err then says which (ERR_LIMIT / ERR_NOMEM). n == 0 gives a valid
 * unique pointer. */
void *dcm_arena_alloc(struct dcm_arena *a, size_t n);
/* Copy n bytes into the arena (NULL as for alloc). */
void *dcm_arena_dup(struct dcm_arena *a, const void *p, size_t n);

#endif
