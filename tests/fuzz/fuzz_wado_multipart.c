/* libFuzzer target for the WADO-RS readers (forwarder/aws/mpart.h, p10meta.h) and the
 * Content-Type parameter reader. The input: byte 0 picks the piece size, then a body read as a
 * multipart/related body with boundary "bnd" whose parts go through the File Meta reader, as
 * dicomweb_wado.c chains them. The same body is read again whole; both readings must hand on
 * exactly the same bytes and events (the readers keep state across pieces correctly), every
 * data slice must lie in the input or the reader's own buffer, and no reader may loop. */
#include <stdlib.h>
#include <string.h>

#include "forwarder/aws/mpart.h"
#include "forwarder/aws/p10meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
    uint8_t *bytes;
    size_t len, cap;
    unsigned events;
    int err;
};

static void put(struct out *o, const uint8_t *p, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = (o->len + n) * 2;
        uint8_t *b = realloc(o->bytes, cap);
        if (!b)
            abort();
        o->bytes = b;
        o->cap = cap;
    }
    memcpy(o->bytes + o->len, p, n);
    o->len += n;
}

/* Read body in pieces of step bytes. */
static void read_all(const uint8_t *body, size_t n, size_t step, struct out *o)
{
    struct mpart m;
    struct p10meta *meta = malloc(sizeof *meta);
    if (!meta || mpart_init(&m, "bnd", 4) < 0)
        abort();
    p10meta_init(meta);
    memset(o, 0, sizeof *o);
    bool part_failed = false;
    size_t off = 0;
    while (off < n && o->err == 0) {
        size_t piece = n - off < step ? n - off : step;
        uint8_t *p = malloc(piece); /* exact size: ASan sees any over-read */
        if (!p)
            abort();
        memcpy(p, body + off, piece);
        size_t used = 0;
        for (unsigned guard = 0; o->err == 0; guard++) {
            if (guard > 4 * piece + 64)
                __builtin_trap(); /* a reader that does not progress */
            struct mpart_ev ev;
            int k = mpart_next(&m, p + used, piece - used, &ev);
            if (k < 0) {
                o->err = k;
                break;
            }
            used += (size_t)k;
            if (used > piece)
                __builtin_trap();
            if (ev.type == MPART_EV_HEAD) {
                o->events = o->events * 31 + 1;
                p10meta_init(meta);
                part_failed = false;
            } else if (ev.type == MPART_EV_DATA && !part_failed) {
                bool in_input = ev.data >= p && ev.data + ev.len <= p + piece;
                bool in_reader = ev.data >= m.out && ev.data + ev.len <= m.out + sizeof m.out;
                if (!in_input && !in_reader)
                    __builtin_trap();
                size_t t = 0;
                for (;;) {
                    struct p10meta_ev pe;
                    int r = p10meta_next(meta, ev.data + t, ev.len - t, &pe);
                    if (r < 0) {
                        o->events = o->events * 31 + 7;
                        part_failed = true; /* not Part-10: the next part may be */
                        break;
                    }
                    t += (size_t)r;
                    if (pe.type == P10META_EV_META)
                        o->events = o->events * 31 + 3;
                    else if (pe.type == P10META_EV_DATA)
                        put(o, pe.data, pe.len);
                    else if (t >= ev.len)
                        break;
                }
            } else if (ev.type == MPART_EV_DATA) {
                bool in_input = ev.data >= p && ev.data + ev.len <= p + piece;
                bool in_reader = ev.data >= m.out && ev.data + ev.len <= m.out + sizeof m.out;
                if (!in_input && !in_reader)
                    __builtin_trap();
            } else if (ev.type == MPART_EV_END) {
                o->events = o->events * 31 + 5;
            } else if (ev.type == MPART_EV_CLOSE) {
                o->events = o->events * 31 + 9;
            } else if (used == piece) {
                break;
            }
        }
        free(p);
        off += piece;
    }
    free(meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 19 + 1;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    struct out a, b;
    read_all(body, n, step, &a);
    read_all(body, n, n ? n : 1, &b);
    /* an error may come at another point, but what was handed on before it must agree */
    if (a.err == 0 && b.err == 0 &&
        (a.len != b.len || a.events != b.events || (a.len && memcmp(a.bytes, b.bytes, a.len))))
        __builtin_trap();
    if ((a.err == 0) != (b.err == 0))
        __builtin_trap();
    free(a.bytes);
    free(b.bytes);
    /* the header parameter reader on the same bytes as text */
    char *ct = malloc(n + 1);
    if (!ct)
        return 0;
    memcpy(ct, body, n);
    ct[n] = '\0';
    char out[MPART_BOUNDARY_MAX + 1];
    if (mpart_boundary(ct, out, sizeof out) == 0 && strlen(out) > MPART_BOUNDARY_MAX)
        __builtin_trap();
    free(ct);
    return 0;
}
