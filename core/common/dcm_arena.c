#include "dcm_arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 8192u /* small datasets fit one block */

struct dcm_arena_blk {
    struct dcm_arena_blk *next;
    size_t size; /* usable bytes after the header */
    size_t off;  /* next free byte */
    alignas(max_align_t) unsigned char data[];
};

void dcm_arena_init(struct dcm_arena *a, size_t max)
{
    a->head = NULL;
    a->used = 0;
    a->max = max;
    a->err = 0;
}

void dcm_arena_cleanup(struct dcm_arena *a)
{
    struct dcm_arena_blk *b = a->head;
    while (b) {
        struct dcm_arena_blk *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

static size_t round_up(size_t n)
{
    size_t al = alignof(max_align_t);
    return (n + al - 1) / al * al;
}

void *dcm_arena_alloc(struct dcm_arena *a, size_t n)
{
    if (n > a->max) {
        a->err = ERR_LIMIT;
        return NULL;
    }
    size_t want = round_up(n ? n : 1);
    struct dcm_arena_blk *b = a->head;
    if (!b || b->size - b->off < want) {
        size_t size = want > ARENA_BLOCK ? want : ARENA_BLOCK;
        size_t total = sizeof(*b) + size;
        size_t need;
        if (__builtin_add_overflow(a->used, total, &need) || need > a->max) {
            /* a last, exact-size block may still fit under the cap */
            size = want;
            total = sizeof(*b) + size;
            if (__builtin_add_overflow(a->used, total, &need) || need > a->max) {
                a->err = ERR_LIMIT;
                return NULL;
            }
        }
        b = malloc(total);
        if (!b) {
            a->err = ERR_NOMEM;
            return NULL;
        }
        b->size = size;
        b->off = 0;
        b->next = a->head;
        a->head = b;
        a->used = need;
    }
    void *p = b->data + b->off;
    b->off += want;
    memset(p, 0, want);
    return p;
}

void *dcm_arena_dup(struct dcm_arena *a, const void *p, size_t n)
{
    void *q = dcm_arena_alloc(a, n);
    if (q && n > 0)
        memcpy(q, p, n);
    return q;
}
