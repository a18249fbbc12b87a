/* dsscan_deflate: the dataset walk's front: its API, and deflated datasets (PS3.5 A.5) inflated
 * in bounded windows into the walker (dsscan.c). */
#include "dsscan_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/uid.h"

/* Bytes after the end of the deflate stream are kept (up to 9) and judged at the end, by
 * tail_ok(); more than that cannot be anything we accept. */
static int after_deflate(struct ds_scan *s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s->z_trail == sizeof(s->z_tail))
            return dsscan_fail(s, ERR_MALFORMED, "bytes after the end of the deflate stream");
        s->z_tail[s->z_trail++] = p[i];
    }
    return 0;
}

/* What may follow the deflate stream: nothing, or one NUL pad (PS3.5 A.5); or -- a glitch --
 * a gzip trailer (CRC-32 and length of the plaintext, RFC 1952) that some encoders leave, then
 * perhaps the pad. DCMTK and pydicom ignore whatever follows the stream; we take only these. */
static bool tail_ok(struct ds_scan *s)
{
    const uint8_t *t = s->z_tail;
    size_t n = s->z_trail;
    if (n > 0 && n != 8 && t[n - 1] == 0)
        n--; /* the pad */
    if (n == 0)
        return true;
    if (n != 8 || dsscan_le32(t) != s->z_crc || dsscan_le32(t + 4) != (uint32_t)s->inflated)
        return false;
    dsscan_glitch(s, "gzip trailer after the deflate stream");
    return true;
}

/* Inflate the next compressed bytes and walk the plaintext. The plaintext that zlib produces
 * before any error is the same whatever the chunking, and it is walked before zlib's verdict
 * is looked at, so the result does not depend on the chunking. */
static int scan_deflated(struct ds_scan *s, const uint8_t *p, size_t n)
{
    if (s->z_end)
        return after_deflate(s, p, n);
    /* z_stream counts in uInt; feed in pieces so a huge n cannot wrap it. */
    while (n > 0) {
        uInt piece = n > 0x40000000u ? 0x40000000u : (uInt)n;
        s->z.next_in = p;
        s->z.avail_in = piece;
        for (;;) {
            s->z.next_out = s->zout;
            s->z.avail_out = DS_INFLATE_CHUNK;
            int zrc = inflate(&s->z, Z_NO_FLUSH);
            size_t got = DS_INFLATE_CHUNK - s->z.avail_out;
            bool capped = got > s->inflate_cap - s->inflated;
            if (capped)
                got = (size_t)(s->inflate_cap - s->inflated);
            s->inflated += got;
            s->z_crc = (uint32_t)crc32(s->z_crc, s->zout, (uInt)got);
            int rc = dsscan_plain(s, s->zout, got);
            if (rc < 0)
                return rc;
            if (capped)
                return dsscan_fail(s, ERR_LIMIT, "inflated dataset larger than allowed");
            if (zrc == Z_STREAM_END) {
                s->z_end = true;
                rc = dsscan_end_of_plain(s);
                if (rc < 0)
                    return rc;
                size_t used = piece - s->z.avail_in;
                return after_deflate(s, p + used, n - used);
            }
            if (zrc == Z_MEM_ERROR)
                return dsscan_fail(s, ERR_NOMEM, "out of memory");
            if (zrc != Z_OK && zrc != Z_BUF_ERROR)
                return dsscan_fail(s, ERR_MALFORMED, "bad deflate stream");
            if (s->z.avail_out != 0 || zrc == Z_BUF_ERROR)
                break; /* input used up (or no progress possible) and no output pending */
        }
        p += piece;
        n -= piece;
    }
    return 0;
}

struct ds_scan *ds_scan_new(enum ds_encoding enc)
{
    if (enc != DS_IMPLICIT_LE && enc != DS_EXPLICIT_LE && enc != DS_DEFLATED_LE)
        return NULL;
    struct ds_scan *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->top_implicit = enc == DS_IMPLICIT_LE;
    s->inflate_cap = DS_INFLATE_CAP;
    s->reason = "";
    s->glitch = "";
    (void)dsscan_next_header(s);
    if (enc == DS_DEFLATED_LE) {
        s->deflated = true;
        s->zout = malloc(DS_INFLATE_CHUNK);
        if (!s->zout)
            goto fail;
        /* PS3.5 A.5: raw deflate (RFC 1951), no zlib header */
        if (inflateInit2(&s->z, -15) != Z_OK)
            goto fail;
        s->z_ready = true;
    }
    return s;
fail:
    FREE_NULL(s->zout);
    free(s);
    return NULL;
}

void ds_scan_free(struct ds_scan *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->patient_id, sizeof s->patient_id); /* the audit trail's, and only there */
    OPENSSL_cleanse(s->uid_buf, sizeof s->uid_buf);
    if (s->z_ready)
        (void)inflateEnd(&s->z);
    FREE_NULL(s->zout);
    free(s);
}

void ds_scan_set_inflate_cap(struct ds_scan *s, uint64_t cap)
{
    if (s->inflated == 0 && s->z.total_in == 0)
        s->inflate_cap = cap ? cap : DS_INFLATE_CAP;
}

int ds_scan_feed(struct ds_scan *s, const uint8_t *p, size_t n)
{
    if (s->st == ST_ERR)
        return s->err;
    if (n == 0)
        return 0;
    return s->deflated ? scan_deflated(s, p, n) : dsscan_plain(s, p, n);
}

int ds_scan_finish(struct ds_scan *s)
{
    if (s->st == ST_ERR)
        return s->err;
    if (s->deflated) {
        s->hdr_pos = s->pos;
        if (!s->z_end)
            return dsscan_fail(s, ERR_TRUNCATED, "deflate stream ends early");
        if (!s->z_judged && !tail_ok(s))
            return dsscan_fail(s, ERR_MALFORMED, "bytes after the end of the deflate stream");
        s->z_judged = true; /* finish is idempotent: count the glitch once */
        return 1; /* the plaintext's end was judged when the stream ended */
    }
    return dsscan_end_of_plain(s);
}

const char *ds_scan_error(const struct ds_scan *s)
{
    return s->st == ST_ERR ? s->reason : "";
}

uint64_t ds_scan_error_offset(const struct ds_scan *s)
{
    return s->st == ST_ERR ? s->err_pos : 0;
}

uint32_t ds_scan_glitches(const struct ds_scan *s)
{
    return s->glitches;
}

const char *ds_scan_glitch(const struct ds_scan *s)
{
    return s->glitch;
}

const struct ds_uids *ds_scan_uids(const struct ds_scan *s)
{
    return &s->uids;
}

const char *ds_scan_patient_id(const struct ds_scan *s)
{
    return s->patient_id;
}

bool ds_scan_uids_final(const struct ds_scan *s)
{
    return s->uids_final;
}

enum ds_pixel ds_scan_pixel(const struct ds_scan *s)
{
    return (enum ds_pixel)s->pixel;
}

bool ds_uid_valid(const char *s)
{
    return uid_valid(s);
}
