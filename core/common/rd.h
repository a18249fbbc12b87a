/* rd: a bounds-checked read cursor over untrusted bytes (STYLE.md §6). Every reader checks the
 * remaining length before touching memory and leaves the cursor unchanged on failure. */
#ifndef GW_RD_H
#define GW_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct slice {
    const uint8_t *p;
    size_t len;
};

struct rd {
    const uint8_t *p;
    size_t len;
    size_t pos; /* invariant: pos <= len */
};

static inline struct rd rd_make(const void *p, size_t len)
{
    struct rd r = {(const uint8_t *)p, len, 0};
    return r;
}

static inline size_t rd_left(const struct rd *r)
{
    return r->len - r->pos;
}

static inline const uint8_t *rd_cur(const struct rd *r)
{
    return r->p + r->pos;
}

MUST_CHECK int rd_u8(struct rd *r, uint8_t *out);
MUST_CHECK int rd_u16be(struct rd *r, uint16_t *out);
MUST_CHECK int rd_u32be(struct rd *r, uint32_t *out);
MUST_CHECK int rd_u16le(struct rd *r, uint16_t *out);
MUST_CHECK int rd_u32le(struct rd *r, uint32_t *out);
/* Skip n bytes; ERR_TRUNCATED if fewer are left. */
MUST_CHECK int rd_skip(struct rd *r, size_t n);
/* The next n bytes become *sub (borrowed), so an item cannot read past itself. */
MUST_CHECK int rd_sub(struct rd *r, size_t n, struct rd *sub);
/* The next n bytes as a borrowed slice that dies with the buffer. */
MUST_CHECK int rd_slice(struct rd *r, size_t n, struct slice *out);
/* Copy the next n bytes into out (which has room for n). */
MUST_CHECK int rd_copy(struct rd *r, void *out, size_t n);

static inline bool slice_eq_str(struct slice s, const char *str)
{
    size_t i = 0;
    for (; i < s.len; i++) {
        if (str[i] == '\0' || (uint8_t)str[i] != s.p[i])
            return false;
    }
    return str[i] == '\0';
}

#endif
