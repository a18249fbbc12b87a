/* The file backend's read index, first step: the attributes C-FIND returns, taken from a stored
 * Part-10 file's head (every top-level element before Pixel Data that the Q/R dictionary places
 * at a level, PS3.4 C.6.1.1 and C.6.2.1), text turned into UTF-8, split by level. The file is
 * ours (the store wrote its File Meta Information) but its dataset came from a client: it is
 * walked through bounded readers and a failure only leaves the attributes out. */
#include "file_backend_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define ZLIB_CONST
#include <zlib.h>

#include "common/dcm_charset.h"
#include "common/dcm_dict.h"
#include "common/dcm_ds.h"
#include "common/rd.h"

#define FX_DEPTH 16u
#define FX_SMALL (64u * 1024u)

#define TAG_CHARSET DCM_TAG(0x0008, 0x0005)
#define TAG_MODALITY DCM_TAG(0x0008, 0x0060)
#define TAG_PATIENT_ID DCM_TAG(0x0010, 0x0020)
#define TAG_PIXEL DCM_TAG(0x7FE0, 0x0010)
#define TAG_ITEM DCM_TAG(0xFFFE, 0xE000)
#define TAG_ITEM_END DCM_TAG(0xFFFE, 0xE00D)
#define TAG_SEQ_END DCM_TAG(0xFFFE, 0xE0DD)
#define UNDEF 0xFFFFFFFFu

void fx_attrs_init(struct fx_attrs *a)
{
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < FX_LEVELS; i++)
        wbuf_init(&a->blob[i], FX_BLOB_MAX);
}

void fx_attrs_cleanup(struct fx_attrs *a)
{
    for (size_t i = 0; i < FX_LEVELS; i++)
        wbuf_cleanup(&a->blob[i]);
}

/* One element header at r (PS3.5 7.1): tag, VR (explicit) and value length. */
static int read_hdr(struct rd *r, bool implicit, uint32_t *tag, uint16_t *vr, uint32_t *len)
{
    uint16_t g, e;
    TRY(rd_u16le(r, &g));
    TRY(rd_u16le(r, &e));
    *tag = DCM_TAG(g, e);
    *vr = 0;
    if (implicit || g == 0xFFFE) {
        *vr = implicit && g != 0xFFFE ? dcm_dict_vr(*tag) : 0;
        return rd_u32le(r, len);
    }
    uint8_t a, b;
    TRY(rd_u8(r, &a));
    TRY(rd_u8(r, &b));
    *vr = (uint16_t)DCM_VR_CODE(a, b);
    const struct dcm_vr_info *vi = dcm_vr_info(*vr);
    if (!vi || vi->long_len) { /* an unknown VR is read as having the long form (PS3.5 7.1.2) */
        TRY(rd_skip(r, 2));
        return rd_u32le(r, len);
    }
    uint16_t l16;
    TRY(rd_u16le(r, &l16));
    *len = l16;
    return 0;
}

static int skip_items(struct rd *r, bool implicit, unsigned depth);

/* Skip the value of an element whose header was just read. */
static int skip_value(struct rd *r, bool implicit, uint16_t vr, uint32_t len, unsigned depth)
{
    if (len != UNDEF)
        return rd_skip(r, len);
    if (depth >= FX_DEPTH)
        return ERR_LIMIT;
    /* undefined length: a sequence; explicit UN holds items in Implicit VR (PS3.5 6.2.2) */
    return skip_items(r, implicit || vr == DCM_VR_UN, depth + 1);
}

/* Items up to the sequence delimiter (PS3.5 7.5). */
static int skip_items(struct rd *r, bool implicit, unsigned depth)
{
    for (;;) {
        uint32_t tag, len;
        uint16_t vr;
        TRY(read_hdr(r, true, &tag, &vr, &len));
        if (tag == TAG_SEQ_END)
            return 0;
        if (tag != TAG_ITEM)
            return ERR_MALFORMED;
        if (len != UNDEF) {
            TRY(rd_skip(r, len));
            continue;
        }
        for (;;) { /* an item of undefined length: elements up to the item delimiter */
            TRY(read_hdr(r, implicit, &tag, &vr, &len));
            if (tag == TAG_ITEM_END)
                break;
            TRY(skip_value(r, implicit, vr, len, depth));
        }
    }
}

/* Which blob an attribute of this tag goes to, or -1 when it is not indexed. */
static int level_of(uint32_t tag)
{
    const struct dcm_dict_entry *d = dcm_dict_find(tag);
    if (!d || d->level == DCM_DL_NONE)
        return -1;
    switch (d->level) {
    case DCM_DL_PATIENT:
    case DCM_DL_STUDY:
        return FX_STUDY;
    case DCM_DL_SERIES:
        return FX_SERIES;
    default:
        return FX_IMAGE;
    }
}

/* The indexed elements of the dataset head p[0..n), copied as encoded into sel. */
static void select_elements(const uint8_t *p, size_t n, bool implicit, struct wbuf *sel)
{
    struct rd r = rd_make(p, n);
    while (rd_left(&r) > 0) {
        size_t start = r.pos;
        uint32_t tag, len;
        uint16_t vr;
        if (read_hdr(&r, implicit, &tag, &vr, &len) < 0 || tag >= TAG_PIXEL)
            return;
        if (skip_value(&r, implicit, vr, len, 0) < 0)
            return; /* the head ends inside this element, or it is not readable: stop here */
        if (tag == TAG_CHARSET || level_of(tag) >= 0)
            wbuf_put(sel, p + start, r.pos - start);
    }
}

static int copy_elem(struct dcm_ds *out, struct dcm_item *dst, const struct dcm_elem *e,
                     enum dcm_charset cs, bool cs_ok, struct wbuf *tmp);

static int copy_items(struct dcm_ds *out, struct dcm_item *dst, const struct dcm_elem *e,
                      enum dcm_charset cs, bool cs_ok, struct wbuf *tmp)
{
    struct dcm_elem *seq;
    TRY(dcm_ds_add_seq(out, dst, dcm_elem_tag(e), &seq));
    for (const struct dcm_item *it = dcm_elem_first_item(e); it; it = dcm_item_next(it)) {
        struct dcm_item *ni;
        TRY(dcm_ds_add_item(out, seq, &ni));
        for (const struct dcm_elem *c = dcm_item_first(it); c; c = dcm_elem_next(c))
            TRY(copy_elem(out, ni, c, cs, cs_ok, tmp));
    }
    return 0;
}

/* e into dst, its text in UTF-8; text of a character set we cannot read is left out. */
static int copy_elem(struct dcm_ds *out, struct dcm_item *dst, const struct dcm_elem *e,
                     enum dcm_charset cs, bool cs_ok, struct wbuf *tmp)
{
    if (dcm_elem_is_seq(e))
        return copy_items(out, dst, e, cs, cs_ok, tmp);
    uint16_t vr = dcm_elem_vr(e);
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    struct slice raw = dcm_elem_raw(e);
    if (!vi || !vi->charset || cs == DCM_CS_UTF8)
        return dcm_ds_add_raw(out, dst, dcm_elem_tag(e), vr, raw.p, raw.len);
    if (!cs_ok)
        return 0;
    wbuf_reset(tmp);
    if (dcm_charset_to_utf8(cs, raw.p, raw.len, tmp) < 0)
        return 0; /* a value that does not decode is not indexed */
    return dcm_ds_add_raw(out, dst, dcm_elem_tag(e), vr, tmp->p, tmp->len);
}

static void copy_cstr(const struct dcm_item *it, uint32_t tag, char *out, size_t cap)
{
    struct slice s;
    out[0] = '\0';
    if (dcm_item_str(it, tag, &s) == 0 && s.len < cap) {
        memcpy(out, s.p, s.len);
        out[s.len] = '\0';
    }
}

int fx_extract_head(const uint8_t *p, size_t n, bool implicit, struct fx_attrs *out)
{
    struct wbuf sel, tmp;
    wbuf_init(&sel, n + 16);
    wbuf_init(&tmp, FX_BLOB_MAX);
    select_elements(p, n, implicit, &sel);
    struct dcm_ds *in = NULL, *lv[FX_LEVELS] = {0};
    struct dcm_limits lim = DCM_LIMITS_DEFAULT;
    int rc = sel.err;
    if (rc == 0)
        rc = dcm_ds_parse(sel.p, sel.len, implicit ? DCM_TS_IMPLICIT_LE : DCM_TS_EXPLICIT_LE,
                          &lim, &in);
    enum dcm_charset cs = DCM_CS_DEFAULT;
    bool cs_ok = rc == 0 && dcm_charset_of(dcm_ds_root(in), &cs) == 0;
    for (size_t i = 0; rc == 0 && i < FX_LEVELS; i++) {
        lv[i] = dcm_ds_new(&lim);
        if (!lv[i])
            rc = ERR_NOMEM;
    }
    for (const struct dcm_elem *e = rc == 0 ? dcm_item_first(dcm_ds_root(in)) : NULL;
         e && rc == 0; e = dcm_elem_next(e)) {
        int l = level_of(dcm_elem_tag(e));
        if (l >= 0)
            rc = copy_elem(lv[l], dcm_ds_root_mut(lv[l]), e, cs, cs_ok, &tmp);
    }
    for (size_t i = 0; rc == 0 && i < FX_LEVELS; i++) {
        wbuf_reset(&out->blob[i]);
        rc = dcm_ds_write(lv[i], DCM_TS_EXPLICIT_LE, &out->blob[i]);
    }
    if (rc == 0) {
        copy_cstr(dcm_ds_root(lv[FX_SERIES]), TAG_MODALITY, out->modality, sizeof out->modality);
        copy_cstr(dcm_ds_root(lv[FX_STUDY]), TAG_PATIENT_ID, out->patient_id,
                  sizeof out->patient_id);
    } else {
        for (size_t i = 0; i < FX_LEVELS; i++)
            wbuf_reset(&out->blob[i]);
    }
    for (size_t i = 0; i < FX_LEVELS; i++)
        dcm_ds_free(lv[i]);
    dcm_ds_free(in);
    wbuf_cleanup(&sel);
    wbuf_cleanup(&tmp);
    return rc;
}

/* The File Meta Information (PS3.10 7.1): the transfer syntax and where the dataset begins. */
static int read_meta(const uint8_t *p, size_t n, char ts[65], size_t *ds_off)
{
    if (n < 132 || memcmp(p + 128, "DICM", 4) != 0)
        return ERR_MALFORMED;
    struct rd r = rd_make(p, n);
    TRY(rd_skip(&r, 132));
    ts[0] = '\0';
    while (rd_left(&r) >= 8 && r.p[r.pos] == 0x02 && r.p[r.pos + 1] == 0x00) {
        uint32_t tag, len;
        uint16_t vr;
        TRY(read_hdr(&r, false, &tag, &vr, &len));
        struct slice v;
        TRY(rd_slice(&r, len, &v));
        if (tag == DCM_TAG(0x0002, 0x0010)) {
            size_t k = v.len;
            while (k > 0 && (v.p[k - 1] == '\0' || v.p[k - 1] == ' '))
                k--;
            if (k == 0 || k > 64)
                return ERR_MALFORMED;
            memcpy(ts, v.p, k);
            ts[k] = '\0';
        }
    }
    if (!ts[0])
        return ERR_MALFORMED;
    *ds_off = r.pos;
    return 0;
}

/* Deflated Explicit VR LE (PS3.5 A.5): inflate the head of the dataset into out (cap bytes). */
static size_t inflate_head(const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
        return 0;
    z.next_in = p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int zr = inflate(&z, Z_SYNC_FLUSH);
    size_t got = (zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR) ? cap - z.avail_out : 0;
    inflateEnd(&z);
    return got;
}

static int read_prefix(int fd, uint8_t *buf, size_t cap, size_t *got)
{
    *got = 0;
    while (*got < cap) {
        ssize_t k = pread(fd, buf + *got, cap - *got, (off_t)*got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            break;
        *got += (size_t)k;
    }
    return 0;
}

int fx_extract_file(const char *path, struct fx_attrs *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t *buf = malloc(FX_HEAD_MAX);
    uint8_t *infl = NULL;
    size_t got = 0, off = 0;
    int rc = buf ? read_prefix(fd, buf, FX_SMALL, &got) : ERR_NOMEM;
    if (rc == 0 && got == FX_SMALL) /* a larger head: read up to the cap */
        rc = read_prefix(fd, buf, FX_HEAD_MAX, &got);
    close(fd);
    if (rc == 0)
        rc = read_meta(buf, got, out->ts, &off);
    if (rc == 0) {
        const uint8_t *ds = buf + off;
        size_t n = got - off;
        bool implicit = strcmp(out->ts, "1.2.840.10008.1.2") == 0;
        if (strcmp(out->ts, "1.2.840.10008.1.2.1.99") == 0) {
            infl = malloc(FX_HEAD_MAX);
            n = infl ? inflate_head(ds, n, infl, FX_HEAD_MAX) : 0;
            ds = infl;
        } else if (strcmp(out->ts, "1.2.840.10008.1.2.2") == 0) {
            n = 0; /* big endian (retired, never accepted by the store): no attributes */
        }
        out->dataset_offset = off;
        rc = n ? fx_extract_head(ds, n, implicit, out) : 0;
        if (rc < 0)
            rc = 0; /* unreadable attributes: the instance is indexed by its UIDs only */
    }
    free(infl);
    free(buf);
    return rc;
}
