#include "dcm_xcode.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dcm_vr.h"

#define UNDEF 0xFFFFFFFFu
#define NO_END UINT64_MAX

enum xstate { X_TAG, X_HDR, X_COPY, X_ERR };

struct xframe {
    uint64_t end;  /* input offset where a defined-length container ends, NO_END if undefined */
    bool item;     /* an item (else a sequence) */
    bool implicit; /* its elements are Implicit VR already (inside an explicit UN) */
};

struct dcm_xcode {
    enum xstate st;
    int err;
    uint64_t pos; /* input bytes consumed */
    uint8_t hdr[12];
    uint8_t have, need;
    uint64_t copy; /* X_COPY: value bytes left */
    bool drop;     /* X_COPY: the value is not written (a group length) */
    struct xframe fr[DCM_XCODE_DEPTH];
    unsigned depth;
};

struct dcm_xcode *dcm_xcode_new(void)
{
    struct dcm_xcode *x = calloc(1, sizeof *x);
    if (x)
        x->need = 4;
    return x;
}

void dcm_xcode_free(struct dcm_xcode *x)
{
    free(x);
}

static uint16_t u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_hdr(struct wbuf *out, uint16_t g, uint16_t e, uint32_t len)
{
    wbuf_u16le(out, g);
    wbuf_u16le(out, e);
    wbuf_u32le(out, len);
}

static int fail(struct dcm_xcode *x, int err)
{
    x->st = X_ERR;
    x->err = err;
    return err;
}

static bool implicit_here(const struct dcm_xcode *x)
{
    return x->depth > 0 && x->fr[x->depth - 1].implicit;
}

/* Close every container whose defined length ends here (PS3.5 7.5.2 delimiters). */
static int close_ended(struct dcm_xcode *x, struct wbuf *out)
{
    while (x->depth > 0 && x->fr[x->depth - 1].end == x->pos) {
        const struct xframe *f = &x->fr[--x->depth];
        if (!f->implicit) /* implicit containers were copied with their own lengths */
            put_hdr(out, 0xFFFE, f->item ? 0xE00D : 0xE0DD, 0);
    }
    if (x->depth > 0 && x->fr[x->depth - 1].end < x->pos)
        return fail(x, ERR_MALFORMED); /* a value ran past its container */
    return 0;
}

static int push(struct dcm_xcode *x, uint32_t len, bool item, bool implicit)
{
    if (x->depth >= DCM_XCODE_DEPTH)
        return fail(x, ERR_LIMIT);
    uint64_t end = len == UNDEF ? NO_END : x->pos + len;
    if (x->depth > 0 && end != NO_END && end > x->fr[x->depth - 1].end)
        return fail(x, ERR_MALFORMED);
    x->fr[x->depth++] = (struct xframe){.end = end, .item = item, .implicit = implicit};
    return 0;
}

/* Start copying a value of len bytes (or dropping it). */
static void value(struct dcm_xcode *x, uint64_t len, bool drop)
{
    x->copy = len;
    x->drop = drop;
    x->st = len ? X_COPY : X_TAG;
    x->have = 0;
    x->need = 4;
}

/* (FFFE,xxxx): item, item delimiter, sequence delimiter (PS3.5 7.5). */
static int take_delim(struct dcm_xcode *x, uint16_t e, uint32_t len, struct wbuf *out)
{
    const struct xframe *top = x->depth ? &x->fr[x->depth - 1] : NULL;
    bool implicit = top && top->implicit;
    if (e == 0xE000) { /* an item, in a sequence */
        if (!top || top->item)
            return fail(x, ERR_MALFORMED);
        put_hdr(out, 0xFFFE, 0xE000, implicit ? len : UNDEF);
        TRY(push(x, len, true, implicit));
    } else if (e == 0xE00D || e == 0xE0DD) {
        bool item = e == 0xE00D;
        if (!top || top->item != item || top->end != NO_END || len != 0)
            return fail(x, ERR_MALFORMED);
        put_hdr(out, 0xFFFE, e, 0);
        x->depth--;
    } else {
        return fail(x, ERR_MALFORMED);
    }
    value(x, 0, false);
    return 0;
}

/* A whole element header in x->hdr. */
static int take_header(struct dcm_xcode *x, struct wbuf *out)
{
    uint16_t g = u16(x->hdr), e = u16(x->hdr + 2);
    if (g == 0xFFFE)
        return take_delim(x, e, u32(x->hdr + 4), out);
    uint32_t len;
    uint16_t vr = 0;
    if (implicit_here(x)) {
        len = u32(x->hdr + 4);
    } else {
        vr = (uint16_t)DCM_VR_CODE(x->hdr[4], x->hdr[5]);
        const struct dcm_vr_info *vi = dcm_vr_info(vr);
        len = (!vi || vi->long_len) ? u32(x->hdr + 8) : u16(x->hdr + 6);
    }
    bool implicit = implicit_here(x);
    if (len == UNDEF || vr == DCM_VR_SQ) {
        if (!implicit && vr != DCM_VR_SQ && vr != DCM_VR_UN)
            return fail(x, ERR_MALFORMED); /* e.g. encapsulated pixel data */
        put_hdr(out, g, e, implicit ? len : UNDEF);
        TRY(push(x, len, false, implicit || vr == DCM_VR_UN));
        value(x, 0, false);
        return 0;
    }
    bool drop = e == 0x0000 && !implicit; /* a group length: its value would be wrong */
    if (!drop)
        put_hdr(out, g, e, len);
    value(x, len, drop);
    return 0;
}

/* How long the header that starts with these bytes is. */
static uint8_t header_len(const struct dcm_xcode *x)
{
    if (implicit_here(x) || u16(x->hdr) == 0xFFFE)
        return 8;
    const struct dcm_vr_info *vi = dcm_vr_info((uint16_t)DCM_VR_CODE(x->hdr[4], x->hdr[5]));
    return (!vi || vi->long_len) ? 12 : 8;
}

int dcm_xcode_feed(struct dcm_xcode *x, const uint8_t *p, size_t n, struct wbuf *out)
{
    size_t i = 0;
    while (i < n) {
        if (x->st == X_ERR)
            return x->err;
        if (x->st == X_COPY) {
            size_t k = n - i < x->copy ? n - i : (size_t)x->copy;
            if (!x->drop)
                wbuf_put(out, p + i, k);
            i += k;
            x->pos += k;
            x->copy -= k;
            if (x->copy == 0)
                value(x, 0, false);
            continue;
        }
        if (x->have == 0) /* the start of a header: containers that end here are closed */
            TRY(close_ended(x, out));
        x->hdr[x->have++] = p[i++];
        x->pos++;
        if (x->st == X_TAG && x->have == 6) { /* the VR is in: the header's length is known */
            x->need = header_len(x);
            x->st = X_HDR;
        }
        if (x->st == X_HDR && x->have == x->need)
            TRY(take_header(x, out));
    }
    return out->err ? out->err : 0;
}

int dcm_xcode_finish(struct dcm_xcode *x, struct wbuf *out)
{
    if (x->st == X_ERR)
        return x->err;
    if (x->have != 0 || x->st == X_COPY)
        return fail(x, ERR_TRUNCATED);
    TRY(close_ended(x, out));
    if (x->depth != 0)
        return fail(x, ERR_TRUNCATED);
    return out->err ? out->err : 0;
}
