#include "wbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wbuf_init(struct wbuf *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->err = 0;
}

void wbuf_cleanup(struct wbuf *b)
{
    FREE_NULL(b->p);
    b->len = 0;
    b->cap = 0;
}

int wbuf_reserve(struct wbuf *b, size_t n)
{
    if (b->err)
        return b->err;
    size_t need;
    if (__builtin_add_overflow(b->len, n, &need) || need > b->max) {
        b->err = ERR_LIMIT;
        return b->err;
    }
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > b->max / 2 ? b->max : ncap * 2;
    uint8_t *np = realloc(b->p, ncap);
    if (!np) {
        b->err = ERR_NOMEM;
        return b->err;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

void wbuf_put(struct wbuf *b, const void *p, size_t n)
{
    if (n == 0 || wbuf_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void wbuf_u8(struct wbuf *b, uint8_t v)
{
    wbuf_put(b, &v, 1);
}

void wbuf_u16be(struct wbuf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wbuf_put(b, t, 2);
}

void wbuf_u32be(struct wbuf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wbuf_put(b, t, 4);
}

void wbuf_u16le(struct wbuf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    wbuf_put(b, t, 2);
}

void wbuf_u32le(struct wbuf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    wbuf_put(b, t, 4);
}

void wbuf_fill(struct wbuf *b, uint8_t v, size_t n)
{
    if (n == 0 || wbuf_reserve(b, n) < 0)
        return;
    memset(b->p + b->len, v, n);
    b->len += n;
}

void wbuf_set_u32be(struct wbuf *b, size_t off, uint32_t v)
{
    if (b->err || off > b->len || b->len - off < 4)
        return;
    b->p[off] = (uint8_t)(v >> 24);
    b->p[off + 1] = (uint8_t)(v >> 16);
    b->p[off + 2] = (uint8_t)(v >> 8);
    b->p[off + 3] = (uint8_t)v;
}

void wbuf_set_u16be(struct wbuf *b, size_t off, uint16_t v)
{
    if (b->err || off > b->len || b->len - off < 2)
        return;
    b->p[off] = (uint8_t)(v >> 8);
    b->p[off + 1] = (uint8_t)v;
}

void wbuf_set_u32le(struct wbuf *b, size_t off, uint32_t v)
{
    if (b->err || off > b->len || b->len - off < 4)
        return;
    b->p[off] = (uint8_t)v;
    b->p[off + 1] = (uint8_t)(v >> 8);
    b->p[off + 2] = (uint8_t)(v >> 16);
    b->p[off + 3] = (uint8_t)(v >> 24);
}

void wbuf_str(struct wbuf *b, const char *s)
{
    wbuf_put(b, s, strlen(s)); /* our own NUL-terminated strings, never raw input */
}

void wbuf_printf(struct wbuf *b, const char *fmt, ...)
{
    if (b->err)
        return;
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = ERR_MALFORMED;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        wbuf_put(b, tmp, (size_t)n);
        return;
    }
    if (wbuf_reserve(b, (size_t)n + 1) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
