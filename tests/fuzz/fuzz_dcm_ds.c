/* libFuzzer target for common/dcm_ds.
 * Input: byte 0 picks the syntax (bit 0: Explicit VR LE), the rest is the dataset. A dataset
 * that parses is read through every accessor, written in the same syntax, parsed again, and must
 * give the same tree; writing that tree again must give the same bytes. It is also written in
 * the other syntax (which may fail, e.g. an SQ whose tag the dictionary calls LO, but must not
 * misbehave). */
#include <stdlib.h>
#include <string.h>

#include "common/dcm_ds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const struct dcm_item *it)
{
    for (const struct dcm_elem *e = dcm_item_first(it); e; e = dcm_elem_next(e)) {
        if (dcm_item_find(it, dcm_elem_tag(e)) != e)
            __builtin_trap();
        size_t vm = dcm_elem_vm(e);
        for (size_t i = 0; i <= vm && i < 64; i++) {
            struct slice s;
            uint64_t u;
            int64_t v;
            char buf[80];
            int rc = dcm_elem_str(e, i, &s);
            if (rc == 0 && (i >= vm || s.len > dcm_elem_raw(e).len))
                __builtin_trap();
            (void)dcm_elem_cstr(e, i, buf, sizeof buf);
            (void)dcm_elem_uint(e, i, &u);
            (void)dcm_elem_int(e, i, &v);
        }
        size_t n = 0;
        for (const struct dcm_item *c = dcm_elem_first_item(e); c; c = dcm_item_next(c)) {
            touch(c);
            n++;
        }
        if (n != dcm_elem_nitems(e))
            __builtin_trap();
    }
}

static bool same_item(const struct dcm_item *a, const struct dcm_item *b)
{
    if (dcm_item_count(a) != dcm_item_count(b))
        return false;
    const struct dcm_elem *x = dcm_item_first(a), *y = dcm_item_first(b);
    for (; x && y; x = dcm_elem_next(x), y = dcm_elem_next(y)) {
        struct slice vx = dcm_elem_raw(x), vy = dcm_elem_raw(y);
        if (dcm_elem_tag(x) != dcm_elem_tag(y) || dcm_elem_vr(x) != dcm_elem_vr(y) ||
            dcm_elem_is_seq(x) != dcm_elem_is_seq(y) || vx.len != vy.len ||
            (vx.len && memcmp(vx.p, vy.p, vx.len) != 0) ||
            dcm_elem_nitems(x) != dcm_elem_nitems(y))
            return false;
        const struct dcm_item *ix = dcm_elem_first_item(x), *iy = dcm_elem_first_item(y);
        for (; ix && iy; ix = dcm_item_next(ix), iy = dcm_item_next(iy)) {
            if (!same_item(ix, iy))
                return false;
        }
        if (ix || iy)
            return false;
    }
    return !x && !y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum dcm_ts ts = (data[0] & 1) ? DCM_TS_EXPLICIT_LE : DCM_TS_IMPLICIT_LE;
    struct dcm_limits lim = {16u << 20, 1u << 16, 16};
    struct dcm_ds *a = NULL, *b = NULL;
    uint8_t *copy = malloc(size - 1 ? size - 1 : 1); /* exact size: ASan sees any over-read */
    if (!copy)
        abort();
    memcpy(copy, data + 1, size - 1);
    int rc = dcm_ds_parse(copy, size - 1, ts, &lim, &a);
    free(copy);
    if (rc < 0) {
        if (a || (rc != ERR_TRUNCATED && rc != ERR_MALFORMED && rc != ERR_LIMIT))
            __builtin_trap();
        return 0;
    }
    touch(dcm_ds_root(a));
    struct wbuf w1, w2, other;
    wbuf_init(&w1, 64u << 20);
    wbuf_init(&w2, 64u << 20);
    wbuf_init(&other, 64u << 20);
    if (dcm_ds_write(a, ts, &w1) != 0)
        __builtin_trap(); /* whatever parsed can be written */
    if (dcm_ds_parse(w1.p, w1.len, ts, &lim, &b) != 0)
        __builtin_trap(); /* and read back */
    if (!same_item(dcm_ds_root(a), dcm_ds_root(b)))
        __builtin_trap(); /* as the same tree */
    if (dcm_ds_write(b, ts, &w2) != 0 || w1.len != w2.len ||
        (w1.len && memcmp(w1.p, w2.p, w1.len) != 0))
        __builtin_trap(); /* and the writer is a fixed point */
    enum dcm_ts ots = ts == DCM_TS_IMPLICIT_LE ? DCM_TS_EXPLICIT_LE : DCM_TS_IMPLICIT_LE;
    if (dcm_ds_write(a, ots, &other) == 0) {
        struct dcm_ds *c = NULL;
        if (dcm_ds_parse(other.p, other.len, ots, &lim, &c) == 0)
            touch(dcm_ds_root(c));
        dcm_ds_free(c);
    }
    wbuf_cleanup(&w1);
    wbuf_cleanup(&w2);
    wbuf_cleanup(&other);
    dcm_ds_free(a);
    dcm_ds_free(b);
    return 0;
}
