/* wbuf: a growable byte buffer with a hard cap fixed at init (STYLE.md §5 rule 5). Appends that
 * would pass the cap, or fail to allocate, set a sticky error so encoders check once at the end. */
#ifndef GW_WBUF_H
#define GW_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct wbuf {
    uint8_t *p;
    size_t len;
    size_t cap; /* allocated */
    size_t max; /* hard cap */
    int err;    /* sticky: 0 or the first failure */
};

/* Caller's storage; nothing is allocated until the first append. */
void wbuf_init(struct wbuf *b, size_t max);
void wbuf_cleanup(struct wbuf *b);
static inline void wbuf_reset(struct wbuf *b)
{
    b->len = 0;
    b->err = 0;
}
/* Make room for n more bytes; 0 or ERR_NOMEM / ERR_LIMIT (also made sticky). */
MUST_CHECK int wbuf_reserve(struct wbuf *b, size_t n);
void wbuf_put(struct wbuf *b, const void *p, size_t n);
void wbuf_u8(struct wbuf *b, uint8_t v);
void wbuf_u16be(struct wbuf *b, uint16_t v);
void wbuf_u32be(struct wbuf *b, uint32_t v);
void wbuf_u16le(struct wbuf *b, uint16_t v);
void wbuf_u32le(struct wbuf *b, uint32_t v);
void wbuf_fill(struct wbuf *b, uint8_t v, size_t n);
/* Overwrite 4 bytes already written at off (for lengths known only at the end). */
void wbuf_set_u32be(struct wbuf *b, size_t off, uint32_t v);
void wbuf_set_u16be(struct wbuf *b, size_t off, uint16_t v);
void wbuf_set_u32le(struct wbuf *b, size_t off, uint32_t v);
/* Append a NUL-free string without its terminator. */
void wbuf_str(struct wbuf *b, const char *s);
/* printf-style append; truncation or cap is a sticky error. */
void wbuf_printf(struct wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
