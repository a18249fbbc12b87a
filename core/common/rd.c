#include "rd.h"

#include <string.h>

int rd_u8(struct rd *r, uint8_t *out)
{
    if (rd_left(r) < 1)
        return ERR_TRUNCATED;
    *out = r->p[r->pos++];
    return 0;
}

int rd_u16be(struct rd *r, uint16_t *out)
{
    if (rd_left(r) < 2)
        return ERR_TRUNCATED;
    const uint8_t *b = r->p + r->pos;
    *out = (uint16_t)(b[0] << 8 | b[1]);
    r->pos += 2;
    return 0;
}

int rd_u32be(struct rd *r, uint32_t *out)
{
    if (rd_left(r) < 4)
        return ERR_TRUNCATED;
    const uint8_t *b = r->p + r->pos;
    *out = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    r->pos += 4;
    return 0;
}

int rd_u16le(struct rd *r, uint16_t *out)
{
    if (rd_left(r) < 2)
        return ERR_TRUNCATED;
    const uint8_t *b = r->p + r->pos;
    *out = (uint16_t)(b[1] << 8 | b[0]);
    r->pos += 2;
    return 0;
}

int rd_u32le(struct rd *r, uint32_t *out)
{
    if (rd_left(r) < 4)
        return ERR_TRUNCATED;
    const uint8_t *b = r->p + r->pos;
    *out = (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
    r->pos += 4;
    return 0;
}

int rd_skip(struct rd *r, size_t n)
{
    if (n > rd_left(r))
        return ERR_TRUNCATED;
    r->pos += n;
    return 0;
}

int rd_sub(struct rd *r, size_t n, struct rd *sub)
{
    if (n > rd_left(r))
        return ERR_TRUNCATED;
    *sub = rd_make(r->p + r->pos, n);
    r->pos += n;
    return 0;
}

int rd_slice(struct rd *r, size_t n, struct slice *out)
{
    if (n > rd_left(r))
        return ERR_TRUNCATED;
    out->p = r->p + r->pos;
    out->len = n;
    r->pos += n;
    return 0;
}

int rd_copy(struct rd *r, void *out, size_t n)
{
    if (n > rd_left(r))
        return ERR_TRUNCATED;
    if (n > 0)
        memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 0;
}
