/* dcm_ds internals shared by dcm_ds.c (tree, accessors, builder) and dcm_ds_codec.c (parse,
 * write). Not for other modules. */
#ifndef GW_DCM_DS_INT_H
#define GW_DCM_DS_INT_H

#include "dcm_arena.h"
#include "dcm_ds.h"

struct dcm_elem {
    uint32_t tag;
    uint16_t vr;
    bool seq;                 /* a sequence: items, no value */
    unsigned depth;           /* depth of the item holding it (set by dcm_ds_link) */
    struct slice val;         /* value bytes in the arena (padding as encoded or none) */
    struct dcm_item *items;   /* seq: first item */
    struct dcm_item *items_tail;
    size_t nitems;
    struct dcm_elem *next;
};

struct dcm_item {
    struct dcm_elem *first, *last;
    size_t n;
    unsigned depth; /* 0 for the root; an item of a sequence at depth d has depth d + 1 */
    struct dcm_item *next;
};

struct dcm_ds {
    struct dcm_arena arena;
    struct dcm_limits lim;
    size_t nelems; /* elements and items */
    bool utf8;     /* the root declares ISO_IR 192: count characters as code points */
    struct dcm_item root;
};

/* A new element node (not linked) or NULL with the error in *err: ERR_LIMIT / ERR_NOMEM. */
struct dcm_elem *dcm_ds_new_elem(struct dcm_ds *ds, uint32_t tag, uint16_t vr, int *err);
/* Link e into it in tag order: ERR_MALFORMED on a duplicate tag. */
MUST_CHECK int dcm_ds_link(struct dcm_item *it, struct dcm_elem *e);
/* A new empty item appended to seq, or NULL with *err set (ERR_LIMIT / ERR_NOMEM). */
struct dcm_item *dcm_ds_new_item(struct dcm_ds *ds, struct dcm_elem *seq, int *err);

#endif
