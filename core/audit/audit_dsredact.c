#include "audit_dsredact.h"

#include <string.h>

#include "audit_hash.h"
#include "common/rd.h"

#define TAG_ITEM 0xFFFEE000u
#define TAG_ITEM_END 0xFFFEE00Du
#define TAG_SEQ_END 0xFFFEE0DDu
#define UNDEFINED 0xFFFFFFFFu

struct redactor {
    bool explicit_vr;
    const uint8_t *key;
    size_t klen;
    struct wbuf *out;
};

/* PS3.5 7.1.2: the VRs with a 2-byte reserved field and a 32-bit length. */
static bool long_vr(const uint8_t vr[2])
{
    static const char *const l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                    "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++) {
        if (vr[0] == (uint8_t)l[i][0] && vr[1] == (uint8_t)l[i][1])
            return true;
    }
    return false;
}

static void put_tag(struct wbuf *b, uint32_t tag)
{
    wbuf_u16le(b, (uint16_t)(tag >> 16));
    wbuf_u16le(b, (uint16_t)tag);
}

static void put_header(struct redactor *r, uint32_t tag, const uint8_t vr[2], uint32_t len)
{
    put_tag(r->out, tag);
    if (r->explicit_vr) {
        wbuf_put(r->out, vr, 2);
        if (long_vr(vr)) {
            wbuf_u16le(r->out, 0);
            wbuf_u32le(r->out, len);
        } else {
            wbuf_u16le(r->out, (uint16_t)len);
        }
    } else {
        wbuf_u32le(r->out, len);
    }
}

static int dataset(struct redactor *r, struct rd *in, unsigned depth, bool in_item_undef);

/* The items of a sequence value (defined length: all of *in; undefined: up to the delimiter). */
static int sequence(struct redactor *r, struct rd *in, unsigned depth, bool undefined)
{
    if (depth >= AUDIT_DS_MAX_DEPTH)
        return ERR_LIMIT;
    for (;;) {
        if (!undefined && rd_left(in) == 0)
            break;
        uint16_t g, e;
        uint32_t len;
        TRY(rd_u16le(in, &g));
        TRY(rd_u16le(in, &e));
        TRY(rd_u32le(in, &len));
        uint32_t tag = (uint32_t)g << 16 | e;
        if (tag == TAG_SEQ_END && undefined)
            break;
        if (tag != TAG_ITEM)
            return ERR_MALFORMED;
        put_tag(r->out, TAG_ITEM);
        wbuf_u32le(r->out, UNDEFINED);
        if (len == UNDEFINED) {
            TRY(dataset(r, in, depth + 1, true));
        } else {
            struct rd item;
            TRY(rd_sub(in, len, &item));
            TRY(dataset(r, &item, depth + 1, false));
        }
        put_tag(r->out, TAG_ITEM_END);
        wbuf_u32le(r->out, 0);
    }
    put_tag(r->out, TAG_SEQ_END);
    wbuf_u32le(r->out, 0);
    return 0;
}

static bool starts_with_item(const struct rd *v)
{
    const uint8_t *p = rd_cur(v);
    return rd_left(v) >= 8 && p[0] == 0xFE && p[1] == 0xFF && p[2] == 0x00 && p[3] == 0xE0;
}

static int element(struct redactor *r, struct rd *in, uint32_t tag, unsigned depth)
{
    uint8_t vr[2] = {'U', 'N'};
    uint32_t len;
    if (r->explicit_vr) {
        TRY(rd_copy(in, vr, 2));
        if (vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z')
            return ERR_MALFORMED;
        if (long_vr(vr)) {
            TRY(rd_skip(in, 2));
            TRY(rd_u32le(in, &len));
        } else {
            uint16_t l16;
            TRY(rd_u16le(in, &l16));
            len = l16;
        }
    } else {
        TRY(rd_u32le(in, &len));
    }
    bool undefined = len == UNDEFINED;
    struct rd val = {0};
    if (!undefined)
        TRY(rd_sub(in, len, &val));
    bool is_sq = (r->explicit_vr && vr[0] == 'S' && vr[1] == 'Q') ||
                 (!r->explicit_vr && (undefined || starts_with_item(&val)));
    if (undefined && r->explicit_vr && !is_sq && !(vr[0] == 'U' && vr[1] == 'N'))
        return ERR_MALFORMED; /* encapsulated pixel data has no place in an identifier */
    bool patient = (tag >> 16) == 0x0010;
    bool group_len = (tag & 0xFFFFu) == 0;

    if (is_sq || undefined) {
        /* copy (or, in the Patient group, parse and drop) the items either way, so that a
         * malformed nested dataset is refused whatever its group */
        struct wbuf scratch, *keep = r->out;
        wbuf_init(&scratch, AUDIT_DS_MAX_INPUT * 2);
        if (patient || group_len)
            r->out = &scratch;
        else
            put_header(r, tag, (const uint8_t *)"SQ", UNDEFINED);
        int rc = sequence(r, undefined ? in : &val, depth, undefined);
        r->out = keep;
        wbuf_cleanup(&scratch);
        TRY(rc);
        if (patient && !group_len) {
            put_header(r, tag, (const uint8_t *)"SQ", 0); /* an empty sequence */
        }
        return 0;
    }
    if (group_len)
        return 0;
    if (!patient) {
        put_header(r, tag, vr, len);
        wbuf_put(r->out, rd_cur(&val), rd_left(&val));
        return 0;
    }
    char hex[65];
    size_t plen = 0;
    if (tag == 0x00100020u && r->klen) {
        const uint8_t *v = rd_cur(&val);
        size_t vn = rd_left(&val);
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\0'))
            vn--;
        if (vn > 0) {
            TRY(audit_hmac_hex(r->key, r->klen, v, vn, hex));
            plen = 64; /* fits VR LO (64 characters), even length */
        }
    }
    put_header(r, tag, vr, (uint32_t)plen);
    wbuf_put(r->out, hex, plen);
    return 0;
}

static int dataset(struct redactor *r, struct rd *in, unsigned depth, bool in_item_undef)
{
    uint32_t last = 0;
    bool first = true;
    for (;;) {
        if (rd_left(in) == 0) {
            if (in_item_undef)
                return ERR_TRUNCATED;
            return 0;
        }
        uint16_t g, e;
        TRY(rd_u16le(in, &g));
        TRY(rd_u16le(in, &e));
        uint32_t tag = (uint32_t)g << 16 | e;
        if (tag == TAG_ITEM_END) {
            uint32_t len;
            TRY(rd_u32le(in, &len));
            return in_item_undef ? 0 : ERR_MALFORMED;
        }
        if (g == 0xFFFE || (!first && tag <= last))
            return ERR_MALFORMED; /* PS3.5 7.1: ascending tags, no stray delimiters */
        first = false;
        last = tag;
        TRY(element(r, in, tag, depth));
    }
}

int audit_ds_redact(const uint8_t *ds, size_t n, bool explicit_vr, const uint8_t *key, size_t klen,
                    struct wbuf *out)
{
    if (n > AUDIT_DS_MAX_INPUT)
        return ERR_LIMIT;
    if (out->err)
        return out->err;
    size_t start = out->len;
    struct redactor r = {
        .explicit_vr = explicit_vr, .key = key, .klen = key ? klen : 0, .out = out};
    struct rd in = rd_make(ds, n);
    int rc = dataset(&r, &in, 0, false);
    if (rc == 0 && out->err)
        rc = out->err;
    if (rc < 0) {
        out->len = start;
        out->err = 0;
    }
    return rc;
}
