/* dcm_ds: parsing and writing Implicit / Explicit VR Little Endian datasets (PS3.5 7.1, 7.5,
 * A.1, A.2). The rules enforced are listed in dcm_ds.h. */
#include <string.h>

#include "dcm_ds.h"
#include "dcm_ds_int.h"

#define UNDEF 0xFFFFFFFFu
#define TAG_ITEM DCM_TAG(0xFFFE, 0xE000)
#define TAG_ITEM_DELIM DCM_TAG(0xFFFE, 0xE00D)
#define TAG_SEQ_DELIM DCM_TAG(0xFFFE, 0xE0DD)

struct parser {
    struct dcm_ds *ds;
};

static int parse_elements(struct parser *ps, struct rd *r, bool implicit, struct dcm_item *it,
                          bool undef_item);

static int rd_tag(struct rd *r, uint32_t *tag)
{
    uint16_t g, e;
    TRY(rd_u16le(r, &g));
    TRY(rd_u16le(r, &e));
    *tag = DCM_TAG(g, e);
    return 0;
}

/* Inside a container of defined length, running out of bytes means its length lied. */
static int inner(int rc)
{
    return rc == ERR_TRUNCATED ? ERR_MALFORMED : rc;
}

/* The items of seq until its end: the sequence delimiter (undef) or the end of r (defined). */
static int parse_items(struct parser *ps, struct rd *r, bool implicit, struct dcm_elem *seq,
                       bool undef)
{
    for (;;) {
        if (rd_left(r) == 0)
            return undef ? ERR_TRUNCATED : 0;
        uint32_t tag, len;
        TRY(rd_tag(r, &tag));
        TRY(rd_u32le(r, &len));
        if (tag == TAG_SEQ_DELIM) {
            if (!undef || len != 0)
                return ERR_MALFORMED; /* PS3.5 7.5.2: only closes an undefined length */
            return 0;
        }
        if (tag != TAG_ITEM)
            return ERR_MALFORMED;
        int err = 0;
        struct dcm_item *it = dcm_ds_new_item(ps->ds, seq, &err);
        if (!it)
            return err;
        if (len == UNDEF) {
            TRY(parse_elements(ps, r, implicit, it, true));
            continue;
        }
        struct rd sub;
        if (len % 2 != 0)
            return ERR_MALFORMED;
        TRY(rd_sub(r, len, &sub));
        TRY(inner(parse_elements(ps, &sub, implicit, it, false)));
    }
}

/* Elements into it until the item delimiter (undef_item) or the end of r. */
static int parse_elements(struct parser *ps, struct rd *r, bool implicit, struct dcm_item *it,
                          bool undef_item)
{
    uint32_t prev = 0;
    bool first = true;
    for (;;) {
        if (rd_left(r) == 0)
            return undef_item ? ERR_TRUNCATED : 0;
        uint32_t tag, len;
        uint16_t vr;
        TRY(rd_tag(r, &tag));
        if (tag == TAG_ITEM_DELIM) {
            TRY(rd_u32le(r, &len));
            if (!undef_item || len != 0)
                return ERR_MALFORMED; /* PS3.5 7.5.2 */
            return 0;
        }
        uint16_t group = DCM_TAG_GROUP(tag);
        if (group < 0x0008 || group == 0xFFFE || group == 0xFFFF)
            return ERR_MALFORMED;
        if (!first && tag <= prev)
            return ERR_MALFORMED; /* PS3.5 7.1: ascending, each tag once */
        first = false;
        prev = tag;
        const struct dcm_vr_info *vi;
        if (implicit) {
            vr = dcm_dict_vr(tag);
            vi = dcm_vr_info(vr);
            TRY(rd_u32le(r, &len));
        } else {
            uint8_t a, b;
            TRY(rd_u8(r, &a));
            TRY(rd_u8(r, &b));
            vr = (uint16_t)(a << 8 | b);
            vi = dcm_vr_info(vr);
            if (!vi)
                return ERR_MALFORMED;
            if (vi->long_len) {
                TRY(rd_skip(r, 2)); /* reserved (PS3.5 7.1.2) */
                TRY(rd_u32le(r, &len));
            } else {
                uint16_t l16;
                TRY(rd_u16le(r, &l16));
                len = l16;
            }
        }
        bool items_implicit = implicit;
        bool undef = len == UNDEF;
        if (undef) {
            /* PS3.5 7.1.2, 6.2.2: only SQ and UN (then Implicit VR inside) may be undefined */
            if (vr == DCM_VR_UN) {
                items_implicit = true;
                vr = DCM_VR_SQ;
                vi = dcm_vr_info(vr);
            } else if (vr != DCM_VR_SQ) {
                return ERR_MALFORMED;
            }
        } else if (len % 2 != 0) {
            return ERR_MALFORMED; /* PS3.5 7.1.1 */
        }
        int err = 0;
        struct dcm_elem *e = dcm_ds_new_elem(ps->ds, tag, vr, &err);
        if (!e)
            return err;
        TRY(dcm_ds_link(it, e));
        if (vr == DCM_VR_SQ) {
            if (it->depth + 1 > ps->ds->lim.max_depth)
                return ERR_LIMIT;
            if (undef) {
                TRY(parse_items(ps, r, items_implicit, e, true));
            } else {
                struct rd sub;
                TRY(rd_sub(r, len, &sub));
                TRY(inner(parse_items(ps, &sub, items_implicit, e, false)));
            }
            continue;
        }
        if (len % vi->unit != 0)
            return ERR_MALFORMED;
        TRY(rd_slice(r, len, &e->val));
    }
}

int dcm_ds_parse(const uint8_t *p, size_t n, enum dcm_ts ts, const struct dcm_limits *lim,
                 struct dcm_ds **out)
{
    *out = NULL;
    struct dcm_ds *ds = dcm_ds_new(lim);
    if (!ds)
        return ERR_NOMEM;
    /* one copy of the input: every value is a slice of it */
    const uint8_t *copy = dcm_arena_dup(&ds->arena, p, n);
    if (!copy) {
        int rc = ds->arena.err;
        dcm_ds_free(ds);
        return rc;
    }
    struct parser ps = {ds};
    struct rd r = rd_make(copy, n);
    int rc = parse_elements(&ps, &r, ts == DCM_TS_IMPLICIT_LE, &ds->root, false);
    if (rc < 0) {
        dcm_ds_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

/* ---- writing ---- */

static void put_tag(struct wbuf *w, uint32_t tag)
{
    wbuf_u16le(w, DCM_TAG_GROUP(tag));
    wbuf_u16le(w, DCM_TAG_ELEM(tag));
}

static int write_item(const struct dcm_item *it, bool implicit, struct wbuf *w);

static int write_elem(const struct dcm_elem *e, bool implicit, struct wbuf *w)
{
    const struct dcm_vr_info *vi = dcm_vr_info(e->vr);
    if (!vi)
        return ERR_UNSUPPORTED; /* the builder and parser never store one */
    size_t len = e->seq ? UNDEF : e->val.len + (e->val.len & 1);
    if (!e->seq && len > (vi->long_len ? 0xFFFFFFFEu : 0xFFFEu))
        return ERR_LIMIT; /* PS3.5 7.1.2: does not fit the length field */
    if (implicit && dcm_dict_seq_conflict(e->tag, e->seq))
        return ERR_UNSUPPORTED; /* a reader would take it for what the dictionary says */
    put_tag(w, e->tag);
    if (implicit) {
        wbuf_u32le(w, (uint32_t)len);
    } else {
        wbuf_u8(w, (uint8_t)(e->vr >> 8));
        wbuf_u8(w, (uint8_t)e->vr);
        if (vi->long_len) {
            wbuf_u16le(w, 0);
            wbuf_u32le(w, (uint32_t)len);
        } else {
            wbuf_u16le(w, (uint16_t)len);
        }
    }
    if (!e->seq) {
        wbuf_put(w, e->val.p, e->val.len);
        if (e->val.len & 1)
            wbuf_u8(w, vi->pad); /* PS3.5 6.2: NUL for UI and binary, space for text */
        return w->err;
    }
    for (const struct dcm_item *it = e->items; it; it = it->next) {
        put_tag(w, TAG_ITEM);
        wbuf_u32le(w, UNDEF);
        TRY(write_item(it, implicit, w));
        put_tag(w, TAG_ITEM_DELIM);
        wbuf_u32le(w, 0);
    }
    put_tag(w, TAG_SEQ_DELIM);
    wbuf_u32le(w, 0);
    return w->err;
}

static int write_item(const struct dcm_item *it, bool implicit, struct wbuf *w)
{
    for (const struct dcm_elem *e = it->first; e; e = e->next)
        TRY(write_elem(e, implicit, w));
    return w->err;
}

int dcm_ds_write(const struct dcm_ds *ds, enum dcm_ts ts, struct wbuf *out)
{
    if (out->err)
        return out->err;
    return write_item(&ds->root, ts == DCM_TS_IMPLICIT_LE, out);
}
