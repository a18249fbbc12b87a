/* Tests for core/dsscan: the streaming walk that decides whether a whole dataset is well-formed
 * and takes its UIDs. Datasets are built here by a small encoder, or read from the synthetic
 * objects in data/dsscan (pydicom and DCMTK made them: make_objects.py). Every feed goes through a
 * heap copy of exactly the bytes fed (whole inputs sit against a PROT_NONE page), so ASan and
 * the guard page see any over-read. */
#include "dsscan.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "guard.h"

#define UNDEF 0xFFFFFFFFu
#define JUNK "bytes after the last element"

/* ---- a minimal dataset encoder (PS3.5 7.1) ---- */

struct enc {
    uint8_t *p;
    size_t len, cap;
    bool implicit;
    size_t cuts[64]; /* top-level element boundaries the test marked */
    size_t ncuts;
};

static struct enc enc_make(bool implicit)
{
    struct enc e;
    memset(&e, 0, sizeof(e));
    e.implicit = implicit;
    return e;
}

static void put(struct enc *e, const void *b, size_t n)
{
    if (e->len + n > e->cap) {
        size_t cap = e->cap ? e->cap : 256;
        while (cap < e->len + n)
            cap *= 2;
        e->p = realloc(e->p, cap);
        cr_assert_not_null(e->p);
        e->cap = cap;
    }
    if (n)
        memcpy(e->p + e->len, b, n);
    e->len += n;
}

/* n copies of byte b: garbage, or a run of zeros */
static void put_fill(struct enc *e, uint8_t b, size_t n)
{
    uint8_t chunk[256];
    memset(chunk, b, sizeof(chunk));
    for (size_t k; n > 0; n -= k) {
        k = n < sizeof(chunk) ? n : sizeof(chunk);
        put(e, chunk, k);
    }
}

static void mark(struct enc *e)
{
    cr_assert_lt(e->ncuts, ARRAY_LEN(e->cuts));
    e->cuts[e->ncuts++] = e->len;
}

static void put16(struct enc *e, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(e, b, 2);
}

static void put32(struct enc *e, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(e, b, 4);
}

static bool long_vr(const char *vr)
{
    static const char *const l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                    "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < ARRAY_LEN(l); i++) {
        if (vr[0] == l[i][0] && vr[1] == l[i][1])
            return true;
    }
    return false;
}

/* An element header; the caller puts the value. In implicit VR the VR is dropped. */
static void hdr(struct enc *e, uint16_t g, uint16_t el, const char *vr, uint32_t len)
{
    put16(e, g);
    put16(e, el);
    if (e->implicit) {
        put32(e, len);
    } else if (long_vr(vr)) {
        put(e, vr, 2);
        put16(e, 0);
        put32(e, len);
    } else {
        put(e, vr, 2);
        put16(e, (uint16_t)len);
    }
}

static void elem(struct enc *e, uint16_t g, uint16_t el, const char *vr, const void *v, size_t n)
{
    hdr(e, g, el, vr, (uint32_t)n);
    put(e, v, n);
}

/* A string value, padded to even length with pad (NUL for UI, space otherwise). */
static void str(struct enc *e, uint16_t g, uint16_t el, const char *vr, const char *s)
{
    size_t n = strlen(s);
    bool odd = n & 1;
    hdr(e, g, el, vr, (uint32_t)(n + odd));
    put(e, s, n);
    if (odd)
        put(e, vr[0] == 'U' && vr[1] == 'I' ? "\0" : " ", 1);
}

static void uid(struct enc *e, uint16_t g, uint16_t el, const char *s)
{
    str(e, g, el, "UI", s);
}

/* Item, item delimitation and sequence delimitation: no VR in any syntax (PS3.5 7.5). */
static void tag_len(struct enc *e, uint16_t el, uint32_t len)
{
    put16(e, 0xFFFE);
    put16(e, el);
    put32(e, len);
}
static void item(struct enc *e, uint32_t len)
{
    tag_len(e, 0xE000, len);
}
static void item_end(struct enc *e)
{
    tag_len(e, 0xE00D, 0);
}
static void seq_end(struct enc *e)
{
    tag_len(e, 0xE0DD, 0);
}

/* A defined-length item holding in's bytes, then frees in. */
static void item_of(struct enc *e, struct enc *in)
{
    item(e, (uint32_t)in->len);
    put(e, in->p, in->len);
    free(in->p);
}

#define SOP_CLASS "1.2.840.10008.5.1.4.1.1.2"
#define SOP_INST "1.2.826.0.1.3680043.8.498.1"
#define STUDY "1.2.826.0.1.3680043.8.498.2"
#define SERIES "1.2.826.0.1.3680043.8.498.3"

static void four_uids_from_study(struct enc *e)
{
    str(e, 0x0010, 0x0010, "PN", "Doe^Jane");
    uid(e, 0x0020, 0x000D, STUDY);
    uid(e, 0x0020, 0x000E, SERIES);
}

/* A realistic dataset: decoy UIDs inside sequences (undefined and defined length, SQ and UN)
 * before the real ones, nested tags above (0020,000E), then encapsulated pixel data. Every
 * top-level element boundary is marked. */
static struct enc build_rich(bool implicit)
{
    struct enc e = enc_make(implicit);
    mark(&e);
    str(&e, 0x0008, 0x0005, "CS", "ISO_IR 100");
    mark(&e);
    hdr(&e, 0x0008, 0x0006, "SQ", UNDEF); /* undefined-length sequence with decoys */
    item(&e, UNDEF);
    uid(&e, 0x0008, 0x0018, "9.9.9.1");
    uid(&e, 0x0020, 0x000D, "9.9.9.2");
    str(&e, 0x0040, 0xA040, "CS", "TEXT"); /* a nested tag > (0020,000E) */
    item_end(&e);
    {
        struct enc in = enc_make(implicit); /* defined-length item inside it */
        uid(&in, 0x0008, 0x0018, "9.9.9.3");
        item_of(&e, &in);
    }
    seq_end(&e);
    mark(&e);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    mark(&e);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    mark(&e);
    {
        struct enc in = enc_make(implicit); /* defined-length sequence, undefined item */
        item(&in, UNDEF);
        uid(&in, 0x0008, 0x0018, "9.9.9.4");
        item_end(&in);
        item(&in, 0); /* an empty item */
        hdr(&e, 0x0008, 0x1115, "SQ", (uint32_t)in.len);
        put(&e, in.p, in.len);
        free(in.p);
    }
    mark(&e);
    str(&e, 0x0009, 0x0010, "LO", "ACME 1.0");
    mark(&e);
    hdr(&e, 0x0009, 0x1001, "UN", UNDEF); /* UN of undefined length: implicit VR inside */
    {
        struct enc in = enc_make(true);
        item(&in, UNDEF);
        uid(&in, 0x0020, 0x000E, "9.9.9.5");
        hdr(&in, 0x0029, 0x1002, "SQ", UNDEF);
        item(&in, UNDEF);
        uid(&in, 0x0008, 0x0016, "9.9.9.6");
        item_end(&in);
        seq_end(&in);
        item_end(&in);
        seq_end(&in);
        put(&e, in.p, in.len);
        free(in.p);
    }
    mark(&e);
    str(&e, 0x0010, 0x0010, "PN", "Doe^Jane");
    mark(&e);
    uid(&e, 0x0020, 0x000D, STUDY);
    mark(&e);
    uid(&e, 0x0020, 0x000E, SERIES);
    mark(&e);
    static const uint8_t rows[2] = {0, 2};
    elem(&e, 0x0028, 0x0010, "US", rows, 2);
    mark(&e);
    if (!implicit) { /* PS3.5 A.4: encapsulation only in explicit VR */
        hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
        item(&e, 0);
        item(&e, 4);
        put(&e, "\xff\xd8\xff\xd9", 4);
        item(&e, 6);
        put(&e, "\xfe\xff\x00\xe0\x00\x00", 6); /* a fragment that looks like an item header */
        seq_end(&e);
    } else {
        elem(&e, 0x7FE0, 0x0010, "OW", "\x01\x00\x02\x00", 4);
    }
    mark(&e);
    return e;
}

/* The four UIDs and nothing else. */
static struct enc build_plain(bool implicit)
{
    struct enc e = enc_make(implicit);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    four_uids_from_study(&e);
    return e;
}

/* ---- feeding ---- */

struct verdict {
    int rc;
    char reason[DS_REASON_MAX + 8];
    uint64_t off;
    uint32_t glitches;
    struct ds_uids uids;
    bool final;
    enum ds_pixel pixel;
    char patient_id[DS_PATIENT_ID_MAX + 1];
};

/* Feed p[0..n) in chunks of chunk bytes (0 = whole, from a guard page copy; otherwise each chunk
 * from an exact-size heap copy), then finish. */
static struct verdict scan(enum ds_encoding enc, const uint8_t *p, size_t n, size_t chunk)
{
    struct ds_scan *s = ds_scan_new(enc);
    cr_assert_not_null(s);
    int rc = 0;
    if (chunk == 0) {
        const uint8_t *g = guard_copy(p, n);
        rc = ds_scan_feed(s, g, n);
        guard_free(g, n);
    } else {
        for (size_t off = 0; off < n && rc == 0; off += chunk) {
            size_t k = n - off < chunk ? n - off : chunk;
            uint8_t *c = malloc(k);
            cr_assert_not_null(c);
            memcpy(c, p + off, k);
            rc = ds_scan_feed(s, c, k);
            free(c);
        }
    }
    cr_assert(rc <= 0, "feed never returns 1");
    int frc = ds_scan_finish(s);
    if (rc < 0)
        cr_assert_eq(frc, rc, "finish repeats the feed's error");
    cr_assert_eq(ds_scan_finish(s), frc, "finish is idempotent");
    struct verdict v;
    memset(&v, 0, sizeof(v));
    v.rc = frc;
    const char *r = ds_scan_error(s);
    cr_assert_leq(strlen(r), DS_REASON_MAX, "reason fits an Error Comment: %s", r);
    cr_assert_eq(frc < 0, r[0] != '\0', "a reason exactly when it failed: %d '%s'", frc, r);
    snprintf(v.reason, sizeof(v.reason), "%s", r);
    v.off = ds_scan_error_offset(s);
    v.glitches = ds_scan_glitches(s);
    v.uids = *ds_scan_uids(s);
    v.final = ds_scan_uids_final(s);
    v.pixel = ds_scan_pixel(s);
    snprintf(v.patient_id, sizeof v.patient_id, "%s", ds_scan_patient_id(s));
    ds_scan_free(s);
    return v;
}

/* The verdict fed whole, checked against byte-by-byte and a few other chunkings. */
static struct verdict scan_all_ways(enum ds_encoding enc, const uint8_t *p, size_t n)
{
    struct verdict w = scan(enc, p, n, 0);
    static const size_t chunks[] = {1, 2, 3, 5, 8, 13, 64, 4096};
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++) {
        struct verdict c = scan(enc, p, n, chunks[i]);
        cr_assert_eq(c.rc, w.rc, "chunk %zu: %d vs %d", chunks[i], c.rc, w.rc);
        cr_assert_str_eq(c.reason, w.reason, "chunk %zu", chunks[i]);
        cr_assert_eq(c.off, w.off, "chunk %zu", chunks[i]);
        cr_assert_eq(c.glitches, w.glitches, "chunk %zu", chunks[i]);
        cr_assert_eq(memcmp(&c.uids, &w.uids, sizeof(c.uids)), 0, "chunk %zu", chunks[i]);
        cr_assert_str_eq(c.patient_id, w.patient_id, "chunk %zu", chunks[i]);
    }
    return w;
}

static void expect_ok(enum ds_encoding enc, const struct enc *e)
{
    struct verdict v = scan_all_ways(enc, e->p, e->len);
    cr_assert_eq(v.rc, 1, "got %d: %s at %llu", v.rc, v.reason, (unsigned long long)v.off);
}

static void expect_fail(enum ds_encoding enc, const struct enc *e, int rc, const char *reason)
{
    struct verdict v = scan_all_ways(enc, e->p, e->len);
    cr_assert_eq(v.rc, rc, "got %d (%s), want %d (%s)", v.rc, v.reason, rc, reason);
    cr_assert_str_eq(v.reason, reason);
}

static enum ds_encoding plain_enc(bool implicit)
{
    return implicit ? DS_IMPLICIT_LE : DS_EXPLICIT_LE;
}

static void assert_uids(const struct ds_uids *u, const char *cls, const char *inst,
                        const char *study, const char *series)
{
    cr_assert_str_eq(u->sop_class, cls);
    cr_assert_str_eq(u->sop_instance, inst);
    cr_assert_str_eq(u->study, study);
    cr_assert_str_eq(u->series, series);
}

static int feed_copy(struct ds_scan *s, const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    cr_assert_not_null(c);
    memcpy(c, p, n);
    int rc = ds_scan_feed(s, c, n);
    free(c);
    return rc;
}

/* ---- well-formed datasets ---- */

Test(dsscan, walks_plain_dataset_and_takes_four_uids_both_vr_encodings)
{
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc e = build_plain(implicit);
        struct verdict v = scan_all_ways(plain_enc(implicit), e.p, e.len);
        cr_assert_eq(v.rc, 1);
        assert_uids(&v.uids, SOP_CLASS, SOP_INST, STUDY, SERIES);
        cr_assert(v.final);
        cr_assert_eq(v.glitches, 0);
        free(e.p);
    }
}

Test(dsscan, walks_rich_dataset_ignoring_decoy_uids_in_sequences)
{
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc e = build_rich(implicit);
        struct verdict v = scan_all_ways(plain_enc(implicit), e.p, e.len);
        cr_assert_eq(v.rc, 1, "%s at %llu", v.reason, (unsigned long long)v.off);
        assert_uids(&v.uids, SOP_CLASS, SOP_INST, STUDY, SERIES);
        cr_assert_eq(v.glitches, 0);
        cr_assert_eq(v.pixel, implicit ? DS_PIXEL_NATIVE : DS_PIXEL_ENCAPSULATED);
        free(e.p);
    }
}

Test(dsscan, every_chunk_size_gives_the_same_verdict)
{
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc e = build_rich(implicit);
        for (size_t chunk = 1; chunk <= e.len; chunk++) {
            struct verdict v = scan(plain_enc(implicit), e.p, e.len, chunk);
            cr_assert_eq(v.rc, 1, "chunk %zu", chunk);
            assert_uids(&v.uids, SOP_CLASS, SOP_INST, STUDY, SERIES);
        }
        free(e.p);
    }
}

Test(dsscan, an_empty_dataset_is_well_formed)
{
    struct verdict v = scan(DS_EXPLICIT_LE, (const uint8_t *)"", 0, 0);
    cr_assert_eq(v.rc, 1);
    assert_uids(&v.uids, "", "", "", "");
    cr_assert(!v.final);
}

Test(dsscan, uids_are_final_once_the_top_level_passes_series)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    four_uids_from_study(&e);
    size_t stop = e.len + 4; /* the tag of (0028,0010) is enough */
    static const uint8_t rows[2] = {0, 2};
    elem(&e, 0x0028, 0x0010, "US", rows, 2);
    struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
    cr_assert_eq(feed_copy(s, e.p, stop - 1), 0);
    cr_assert(!ds_scan_uids_final(s));
    cr_assert_eq(feed_copy(s, e.p + stop - 1, e.len - stop + 1), 0);
    cr_assert(ds_scan_uids_final(s));
    assert_uids(ds_scan_uids(s), "", SOP_INST, STUDY, SERIES);
    cr_assert_eq(ds_scan_finish(s), 1);
    ds_scan_free(s);
    free(e.p);
}

Test(dsscan, long_form_vrs_including_sv_uv_are_skipped)
{
    struct enc e = enc_make(false);
    static const char *const vrs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SV", "UC", "UN",
                                      "UR", "UT", "UV"};
    for (size_t i = 0; i < ARRAY_LEN(vrs); i++)
        elem(&e, 0x0009, (uint16_t)(0x1000 + i), vrs[i], "\0\0\0\0\0\0\0\0", 8);
    hdr(&e, 0x0009, 0x1020, "SQ", 0);
    four_uids_from_study(&e);
    expect_ok(DS_EXPLICIT_LE, &e);
    free(e.p);
}

Test(dsscan, trailing_padding_and_group_lengths_are_elements_like_any_other)
{
    struct enc e = enc_make(false);
    static const uint8_t gl[4] = {10, 0, 0, 0};
    elem(&e, 0x0008, 0x0000, "UL", gl, 4);
    str(&e, 0x0008, 0x0060, "CS", "CT");
    elem(&e, 0x7FE0, 0x0010, "OW", "\0\0\0\0", 4);
    elem(&e, 0xFFFC, 0xFFFC, "OB", "\0\0\0\0\0\0", 6); /* PS3.10 7.2 trailing padding */
    expect_ok(DS_EXPLICIT_LE, &e);
    free(e.p);
}

Test(dsscan, skips_10mb_value_fed_in_chunks_without_buffering)
{
    static uint8_t zero[65536];
    const uint32_t big = 10u * 1024u * 1024u;
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc h = enc_make(implicit);
        uid(&h, 0x0008, 0x0016, SOP_CLASS);
        str(&h, 0x0009, 0x0010, "LO", "ACME");
        hdr(&h, 0x0009, 0x1010, "OB", big);
        struct enc t = enc_make(implicit);
        uid(&t, 0x0008, 0x0018, SOP_INST); /* out of order after (0009,1010): must be refused */
        struct ds_scan *s = ds_scan_new(plain_enc(implicit));
        cr_assert_eq(feed_copy(s, h.p, h.len), 0);
        for (uint32_t done = 0; done < big; done += sizeof(zero))
            cr_assert_eq(ds_scan_feed(s, zero, sizeof(zero)), 0);
        cr_assert_eq(feed_copy(s, t.p, t.len), ERR_MALFORMED);
        cr_assert_str_eq(ds_scan_error(s), "tags out of order");
        cr_assert_eq(ds_scan_error_offset(s), h.len + big);
        ds_scan_free(s);
        free(h.p);
        free(t.p);
    }
}

/* ---- glitches: tolerated and counted ---- */

Test(dsscan, odd_lengths_and_space_padded_uids_are_glitches_not_errors)
{
    struct enc e = enc_make(false);
    elem(&e, 0x0008, 0x0016, "UI", SOP_CLASS " ", sizeof(SOP_CLASS)); /* space pad */
    elem(&e, 0x0008, 0x0018, "UI", "1.2.3", 5);                        /* odd, unpadded */
    elem(&e, 0x0010, 0x0010, "PN", "Doe^J", 5);                        /* odd length */
    elem(&e, 0x0020, 0x000D, "UI", "1.2\0\0", 5);                      /* extra NULs */
    uid(&e, 0x0020, 0x000E, SERIES);
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1);
    assert_uids(&v.uids, SOP_CLASS, "1.2.3", "1.2", SERIES);
    cr_assert_eq(v.glitches, 4);
    struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
    cr_assert_eq(feed_copy(s, e.p, e.len), 0);
    cr_assert_str_eq(ds_scan_glitch(s), "UID padded with spaces", "the first one is kept");
    ds_scan_free(s);
    free(e.p);
}

Test(dsscan, reserved_bytes_vr_size_private_groups_and_ow_encapsulation_are_glitches)
{
    struct enc e = enc_make(false);
    elem(&e, 0x0001, 0x0010, "LO", "AB", 2); /* PS3.5 7.8.1: not to be used */
    put(&e, "\x09\x00\x10\x10OB\x01\x00\x02\x00\x00\x00\x00\x00", 14); /* reserved 0x0001 */
    elem(&e, 0x0028, 0x0010, "US", "\0\0\0\0\0\0", 6);                   /* fine: 3 values */
    elem(&e, 0x0028, 0x1050, "FD", "\0\0\0\0", 4);                       /* not a multiple of 8 */
    hdr(&e, 0x7FE0, 0x0010, "OW", UNDEF);                                /* A.4 says OB */
    item(&e, 6);                                                         /* BOT not 4n */
    put(&e, "\0\0\0\0\0\0", 6);
    item(&e, 3); /* odd fragment */
    put(&e, "abc", 3);
    seq_end(&e);
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1, "%s", v.reason);
    cr_assert_eq(v.glitches, 6);
    free(e.p);
}

/* ---- cuts ---- */

Test(dsscan, cut_at_every_offset_is_clean_only_between_top_level_elements)
{
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc e = build_rich(implicit);
        size_t next_cut = 0;
        for (size_t cut = 0; cut <= e.len; cut++) {
            bool boundary = next_cut < e.ncuts && e.cuts[next_cut] == cut;
            next_cut += boundary;
            struct verdict v = scan(plain_enc(implicit), e.p, cut, 0);
            if (boundary) {
                cr_assert_eq(v.rc, 1, "cut %zu: %s", cut, v.reason);
            } else {
                cr_assert(v.rc == ERR_TRUNCATED || v.rc == ERR_MALFORMED, "cut %zu gave %d",
                          cut, v.rc);
            }
            if (v.uids.series[0]) /* a UID only appears once it is complete */
                cr_assert_str_eq(v.uids.series, SERIES);
        }
        cr_assert_eq(next_cut, e.ncuts);
        free(e.p);
    }
}

Test(dsscan, truncations_say_where_the_data_ended)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    size_t b1 = e.len;
    hdr(&e, 0x0010, 0x1010, "SQ", UNDEF);
    item(&e, UNDEF);
    str(&e, 0x0010, 0x0010, "PN", "Doe^Jane");
    item_end(&e);
    seq_end(&e);
    size_t b2 = e.len;
    hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
    item(&e, 0);
    item(&e, 4);
    put(&e, "abcd", 4);
    seq_end(&e);
    struct {
        size_t cut;
        const char *why;
    } cases[] = {
        {b1 - 1, "dataset ends inside an element value"},
        {b1 + 3, "dataset ends inside an element header"},
        {b1 + 12, "dataset ends inside a sequence"},
        {b1 + 20, "dataset ends inside a sequence"},
        {b1 + 24, "dataset ends inside an element header"},
        {b2 - 8, "dataset ends inside a sequence"},
        {b2 + 12, "dataset ends inside encapsulated pixel data"},
        {e.len - 8, "dataset ends inside encapsulated pixel data"},
        {e.len - 10, "dataset ends inside an element value"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, cases[i].cut);
        cr_assert_eq(v.rc, ERR_TRUNCATED, "case %zu", i);
        cr_assert_str_eq(v.reason, cases[i].why, "case %zu", i);
    }
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0).rc, 1);
    free(e.p);
}

/* ---- trailing bytes: the motivating case ---- */

Test(dsscan, four_kib_of_ff_after_encapsulated_pixel_data_is_refused)
{
    struct enc e = build_rich(false);
    size_t valid = e.len;
    put_fill(&e, 0xFF, 4096);
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, ERR_MALFORMED);
    cr_assert_str_eq(v.reason, JUNK);
    cr_assert_eq(v.off, valid, "the offset is where the garbage starts");
    assert_uids(&v.uids, SOP_CLASS, SOP_INST, STUDY, SERIES);
    free(e.p);
}

Test(dsscan, any_bytes_after_the_last_element_are_refused_both_vr_encodings)
{
    static const struct {
        const char *bytes;
        size_t n;
    } junk[] = {{"\0", 1},      {"\0\0", 2}, {"\xff\xff\xff", 3}, {"\0\0\0\0\0\0\0\0", 8},
                {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12},
                {"\xe0\x7f\x10\x00OB\0\0\0\0\0\0", 12} /* Pixel Data again */};
    for (int implicit = 0; implicit <= 1; implicit++) {
        for (size_t i = 0; i < ARRAY_LEN(junk); i++) {
            struct enc e = build_rich(implicit);
            put(&e, junk[i].bytes, junk[i].n);
            expect_fail(plain_enc(implicit), &e, ERR_MALFORMED, JUNK);
            free(e.p);
        }
    }
}

Test(dsscan, garbage_after_a_dataset_without_pixel_data_is_refused_too)
{
    struct enc e = build_plain(false);
    put_fill(&e, 0xFF, 64);
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "invalid tag group FFFF");
    free(e.p);
    e = build_plain(true);
    put(&e, "\0\0\0\0\0\0\0\0", 8);
    expect_fail(DS_IMPLICIT_LE, &e, ERR_MALFORMED, "tags out of order");
    free(e.p);
}

/* ---- tag order and groups (PS3.5 7.1, PS3.10 7.1) ---- */

Test(dsscan, tags_out_of_order_or_repeated_are_refused_at_top_level_and_in_items)
{
    struct enc e = enc_make(false);
    str(&e, 0x0010, 0x0010, "PN", "A");
    str(&e, 0x0008, 0x0060, "CS", "CT");
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "tags out of order");
    free(e.p);
    e = enc_make(true);
    str(&e, 0x0010, 0x0010, "PN", "A");
    str(&e, 0x0010, 0x0010, "PN", "B");
    expect_fail(DS_IMPLICIT_LE, &e, ERR_MALFORMED, "element repeated");
    free(e.p);
    for (int defined = 0; defined <= 1; defined++) {
        e = enc_make(false);
        struct enc in = enc_make(false);
        str(&in, 0x0008, 0x0104, "LO", "x");
        str(&in, 0x0008, 0x0100, "SH", "y");
        if (defined) {
            hdr(&e, 0x0008, 0x1032, "SQ", (uint32_t)in.len + 8);
            item_of(&e, &in);
        } else {
            hdr(&e, 0x0008, 0x1032, "SQ", UNDEF);
            item(&e, UNDEF);
            put(&e, in.p, in.len);
            free(in.p);
        }
        expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "tags out of order");
        free(e.p);
    }
}

Test(dsscan, each_item_has_its_own_tag_order)
{
    struct enc e = enc_make(false);
    str(&e, 0x0008, 0x0060, "CS", "CT");
    hdr(&e, 0x0008, 0x1032, "SQ", UNDEF);
    for (int i = 0; i < 3; i++) {
        item(&e, UNDEF);
        str(&e, 0x0008, 0x0100, "SH", "y");
        str(&e, 0x0008, 0x0104, "LO", "x");
        item_end(&e);
    }
    seq_end(&e);
    str(&e, 0x0008, 0x1040, "LO", "after"); /* above the sequence's tag, below the items' */
    expect_ok(DS_EXPLICIT_LE, &e);
    free(e.p);
}

Test(dsscan, group_0002_in_the_dataset_is_refused)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0002, 0x0010, "1.2.840.10008.1.2.1");
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "group 0002 (file meta) inside the dataset");
    free(e.p);
}

/* ---- VRs and lengths (PS3.5 6.2, 7.1.1-7.1.3) ---- */

Test(dsscan, unknown_vr_is_malformed)
{
    static const char *const bad[] = {"ab", "ZZ", "XX", "\0\0", "U ", "OX", "sq"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct enc e = enc_make(false);
        put16(&e, 0x0008);
        put16(&e, 0x0060);
        put(&e, bad[i], 2);
        put16(&e, 2);
        put(&e, "CT", 2);
        expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "invalid VR");
        free(e.p);
    }
}

Test(dsscan, undefined_length_only_on_sq_un_and_pixel_data)
{
    static const char *const vrs[] = {"UT", "OB", "OW", "UC", "UR", "OF", "UV", "LO"};
    for (size_t i = 0; i < ARRAY_LEN(vrs); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x0009, 0x1001, vrs[i], UNDEF);
        if (strcmp(vrs[i], "LO") == 0) { /* a short-form VR cannot even say 0xFFFFFFFF */
            expect_fail(DS_EXPLICIT_LE, &e, ERR_TRUNCATED, "dataset ends inside an element value");
        } else {
            expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED,
                        "undefined length not allowed for this VR");
        }
        free(e.p);
    }
    struct enc e = enc_make(false);
    hdr(&e, 0x7FE0, 0x0010, "OF", UNDEF);
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "undefined length not allowed for this VR");
    free(e.p);
}

Test(dsscan, undefined_length_in_implicit_vr_is_a_sequence)
{
    struct enc e = enc_make(true);
    hdr(&e, 0x0009, 0x1001, "UN", UNDEF);
    item(&e, UNDEF);
    uid(&e, 0x0008, 0x0018, "9.9");
    item_end(&e);
    seq_end(&e);
    expect_ok(DS_IMPLICIT_LE, &e);
    free(e.p);
    e = enc_make(true); /* then its inside must be items */
    hdr(&e, 0x0009, 0x1001, "UN", UNDEF);
    str(&e, 0x0009, 0x1002, "LO", "ab");
    expect_fail(DS_IMPLICIT_LE, &e, ERR_MALFORMED, "element outside an item in a sequence");
    free(e.p);
}

Test(dsscan, every_length_field_at_zero_max_max_plus_one_and_undefined)
{
    /* element value in a defined-length item: room for exactly 8 bytes of value */
    static const uint32_t lens[] = {0, 8, 9, UNDEF};
    static const int want[] = {1, 1, ERR_MALFORMED, ERR_MALFORMED};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x0008, 0x1032, "SQ", 8 + 12 + 8);
        item(&e, 12 + 8);
        hdr(&e, 0x0009, 0x1010, "OB", lens[i]);
        uint8_t v[8] = {0};
        put(&e, v, lens[i] == 0 ? 0 : 8);
        if (lens[i] == 0) {
            hdr(&e, 0x0009, 0x1011, "SH", 0); /* fill the item with an 8-byte element */
        }
        struct verdict r = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
        cr_assert_eq(r.rc, want[i], "len %u: %s", lens[i], r.reason);
        free(e.p);
    }
    /* item length in a defined-length sequence of 16 bytes: 0, 8, 9, undefined */
    static const uint32_t ilens[] = {0, 8, 9, UNDEF};
    static const char *const iwhy[] = {"", "", "item past the end of its sequence",
                                       "sequence or item not delimited within its parent"};
    for (size_t i = 0; i < ARRAY_LEN(ilens); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x0008, 0x1032, "SQ", 16);
        item(&e, ilens[i]);
        if (ilens[i] == 0)
            item(&e, 0);
        else
            hdr(&e, 0x0008, 0x0100, "SH", 0);
        struct verdict r = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
        cr_assert_str_eq(r.reason, iwhy[i], "item len %u", ilens[i]);
        free(e.p);
    }
    /* sequence length around its 16 bytes of content: exact, one short, one long, max */
    static const uint32_t slens[] = {16, 15, 17, 0xFFFFFFFEu};
    static const char *const swhy[] = {"", "item past the end of its sequence",
                                       "dataset ends inside a sequence",
                                       "dataset ends inside a sequence"};
    for (size_t i = 0; i < ARRAY_LEN(slens); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x0008, 0x1032, "SQ", slens[i]);
        item(&e, 8);
        hdr(&e, 0x0008, 0x0100, "SH", 0);
        struct verdict r = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
        cr_assert_str_eq(r.reason, swhy[i], "seq len %u", slens[i]);
        free(e.p);
    }
    /* short-form value length 0xFFFF, then the data: waits and then is skipped */
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x0081, "ST", 0xFFFF);
    uint8_t *v = calloc(1, 0xFFFF);
    put(&e, v, 0xFFFF);
    free(v);
    four_uids_from_study(&e);
    struct verdict r = scan(DS_EXPLICIT_LE, e.p, e.len, 4096);
    cr_assert_eq(r.rc, 1);
    cr_assert_eq(r.glitches, 1, "odd length");
    free(e.p);
}

Test(dsscan, max_defined_length_waits_and_then_is_truncated)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0009, 0x1001, "OB", 0xFFFFFFFEu);
    put(&e, "abcd", 4);
    struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
    cr_assert_eq(feed_copy(s, e.p, e.len), 0);
    cr_assert_eq(ds_scan_finish(s), ERR_TRUNCATED);
    cr_assert_str_eq(ds_scan_error(s), "dataset ends inside an element value");
    ds_scan_free(s);
    free(e.p);
}

/* ---- top-level UIDs ---- */

Test(dsscan, uid_lengths_zero_64_65_66_ffff)
{
    const char *u64 = "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25";
    char exact[65];
    memcpy(exact, u64, 64);
    exact[64] = '\0';
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x0016, "UI", 0);
    elem(&e, 0x0008, 0x0018, "UI", exact, 65); /* 64 chars + NUL pad */
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1);
    cr_assert_str_eq(v.uids.sop_instance, exact);
    cr_assert_str_eq(v.uids.sop_class, "", "present but empty");
    free(e.p);
    e = enc_make(true);
    elem(&e, 0x0008, 0x0018, "UI", u64, 65); /* 65 characters */
    expect_fail(DS_IMPLICIT_LE, &e, ERR_MALFORMED, "identifying UID is not a valid UID");
    free(e.p);
    static const uint32_t lens[] = {66, 0xFFFF};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        e = enc_make(false);
        hdr(&e, 0x0008, 0x0018, "UI", lens[i]);
        expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "identifying UID too long or not a UID");
        free(e.p);
    }
    e = enc_make(true);
    hdr(&e, 0x0020, 0x000D, "UI", UNDEF);
    expect_fail(DS_IMPLICIT_LE, &e, ERR_MALFORMED, "identifying UID too long or not a UID");
    free(e.p);
    e = enc_make(false);
    hdr(&e, 0x0008, 0x0018, "SQ", 0);
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "identifying UID too long or not a UID");
    free(e.p);
}

Test(dsscan, uid_with_letters_or_bad_components_is_malformed)
{
    static const char *const bad[] = {"1.2.a", "1.02", "1..2", ".1", "1.", "1 2", "1.2\0x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        size_t n = strlen(bad[i]);
        if (i == ARRAY_LEN(bad) - 1)
            n = 5; /* an embedded NUL is not padding */
        struct enc e = enc_make(false);
        elem(&e, 0x0008, 0x0016, "UI", bad[i], n);
        expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "identifying UID is not a valid UID");
        free(e.p);
    }
}

/* ---- structure (PS3.5 7.5) ---- */

Test(dsscan, misplaced_items_and_delimiters_are_malformed)
{
    static const struct {
        int layout;
        const char *why;
    } cases[] = {
        {0, "item or delimiter outside a sequence"},
        {1, "item or delimiter outside a sequence"},
        {2, "item or delimiter outside a sequence"},
        {3, "sequence delimiter inside an item"},
        {4, "item delimiter outside an item"},
        {5, "item where an element was expected"},
        {6, "element outside an item in a sequence"},
        {7, "item delimiter in a defined-length item"},
        {8, "sequence delimiter in a defined-length sequence"},
        {9, "delimiter with a non-zero length"},
        {10, "delimiter with a non-zero length"},
        {11, "(FFFE,xxxx) tag that is not an item or delimiter"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        /* implicit VR cannot tell a defined-length sequence from a value: explicit only */
        int l = cases[i].layout;
        for (int implicit = 0; implicit <= (l == 7 || l == 8 ? 0 : 1); implicit++) {
            struct enc e = enc_make(implicit);
            str(&e, 0x0008, 0x0060, "CS", "CT");
            if (l == 0)
                item(&e, UNDEF);
            else if (l == 1)
                item_end(&e);
            else if (l == 2)
                seq_end(&e);
            else if (l == 7)
                hdr(&e, 0x0008, 0x1032, "SQ", 8 + 10 + 8);
            else if (l == 8)
                hdr(&e, 0x0008, 0x1032, "SQ", 8 + 8);
            else
                hdr(&e, 0x0008, 0x1032, "SQ", UNDEF);
            if (l == 3 || l == 5 || l == 10) {
                item(&e, UNDEF);
                if (l == 3)
                    seq_end(&e);
                else if (l == 5)
                    item(&e, UNDEF);
                else
                    tag_len(&e, 0xE00D, 4);
            } else if (l == 4) {
                item_end(&e);
            } else if (l == 6) {
                str(&e, 0x0008, 0x0100, "SH", "ab");
            } else if (l == 7) {
                item(&e, 10 + 8);
                str(&e, 0x0008, 0x0100, "SH", "ab");
                item_end(&e);
            } else if (l == 8) {
                item(&e, 0);
                seq_end(&e);
            } else if (l == 9) {
                tag_len(&e, 0xE0DD, UNDEF);
            } else if (l == 11) {
                tag_len(&e, 0x0001, 0);
            }
            expect_fail(plain_enc(implicit), &e, ERR_MALFORMED, cases[i].why);
            free(e.p);
        }
    }
}

Test(dsscan, element_past_the_end_of_its_defined_length_item_is_malformed)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x1032, "SQ", 8 + 10);
    item(&e, 10); /* room for 10 bytes; the element takes 12 */
    str(&e, 0x0008, 0x0100, "SH", "abcd");
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "element past the end of its item");
    free(e.p);
    e = enc_make(false); /* a header that straddles the end */
    hdr(&e, 0x0008, 0x1032, "SQ", 8 + 4);
    item(&e, 4);
    str(&e, 0x0008, 0x0100, "SH", "abcd");
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "element past the end of its item");
    free(e.p);
    e = enc_make(false); /* an undefined-length sequence in a defined-length item, unclosed */
    hdr(&e, 0x0008, 0x1032, "SQ", 8 + 20);
    item(&e, 20);
    hdr(&e, 0x0008, 0x1100, "SQ", UNDEF);
    item(&e, 0);
    seq_end(&e);
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED,
                "sequence or item not delimited within its parent");
    free(e.p);
}

Test(dsscan, defined_length_items_inside_undefined_ones_inside_defined_ones)
{
    struct enc leaf = enc_make(false);
    str(&leaf, 0x0008, 0x0100, "SH", "ab");
    struct enc mid = enc_make(false); /* undefined sequence holding a defined item */
    hdr(&mid, 0x0040, 0xA730, "SQ", UNDEF);
    item_of(&mid, &leaf);
    seq_end(&mid);
    struct enc outer = enc_make(false);
    item_of(&outer, &mid);
    struct enc e = enc_make(false);
    hdr(&e, 0x0040, 0xA730, "SQ", (uint32_t)outer.len);
    put(&e, outer.p, outer.len);
    free(outer.p);
    str(&e, 0x0040, 0xA731, "LO", "after");
    expect_ok(DS_EXPLICIT_LE, &e);
    free(e.p);
}

static struct enc build_nested(bool implicit, unsigned levels, bool defined)
{
    struct enc e = enc_make(implicit);
    if (defined) { /* explicit VR only: implicit defined-length values are opaque */
        struct enc in = enc_make(false);
        str(&in, 0x0008, 0x0100, "SH", "ab");
        for (unsigned i = 0; i < levels; i++) {
            struct enc sq = enc_make(false);
            hdr(&sq, 0x0040, 0xA730, "SQ", (uint32_t)in.len + 8);
            item_of(&sq, &in);
            in = sq;
        }
        put(&e, in.p, in.len);
        free(in.p);
    } else {
        for (unsigned i = 0; i < levels; i++) {
            hdr(&e, 0x0040, 0xA730, "SQ", UNDEF);
            item(&e, UNDEF);
        }
        for (unsigned i = 0; i < levels; i++) {
            item_end(&e);
            seq_end(&e);
        }
    }
    uid(&e, 0x0040, 0xA731, SOP_INST);
    return e;
}

Test(dsscan, nesting_to_max_depth_is_followed_one_more_is_a_limit)
{
    for (int defined = 0; defined <= 1; defined++) {
        for (int implicit = 0; implicit <= !defined; implicit++) {
            struct enc e = build_nested(implicit, DS_MAX_DEPTH, defined);
            expect_ok(plain_enc(implicit), &e);
            free(e.p);
            e = build_nested(implicit, DS_MAX_DEPTH + 1, defined);
            expect_fail(plain_enc(implicit), &e, ERR_LIMIT, "sequences nested too deep");
            free(e.p);
        }
    }
}

Test(dsscan, many_items_are_not_limited)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x1032, "SQ", UNDEF);
    for (int i = 0; i < 20000; i++) {
        item(&e, UNDEF);
        item_end(&e);
    }
    seq_end(&e);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0).rc, 1);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 7).rc, 1);
    free(e.p);
}

/* ---- encapsulated pixel data (PS3.5 A.4) ---- */

Test(dsscan, encapsulated_pixel_data_in_an_item_is_walked)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0088, 0x0200, "SQ", UNDEF); /* Icon Image Sequence */
    item(&e, UNDEF);
    hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
    item(&e, 0);
    item(&e, 6);
    put(&e, "\xfe\xff\x00\xe0\x00\x00", 6);
    seq_end(&e);
    item_end(&e);
    seq_end(&e);
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1, "%s", v.reason);
    cr_assert_eq(v.pixel, DS_PIXEL_NONE, "only the top-level Pixel Data counts");
    free(e.p);
}

Test(dsscan, encapsulation_errors_are_malformed)
{
    static const char *const why[] = {
        "pixel data fragment of undefined length",
        "encapsulated pixel data holds only items",
        "encapsulated pixel data without offset table item",
        "item delimiter outside an item",
    };
    for (size_t i = 0; i < ARRAY_LEN(why); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
        if (i == 0) {
            item(&e, UNDEF);
        } else if (i == 1) {
            item(&e, 0);
            elem(&e, 0x7FE0, 0x0020, "OB", "ab", 2);
        } else if (i == 2) {
            seq_end(&e);
        } else {
            item(&e, 0);
            item_end(&e);
        }
        expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, why[i]);
        free(e.p);
    }
}

Test(dsscan, encapsulated_pixel_data_without_its_delimiter)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
    item(&e, 0);
    item(&e, 4);
    put(&e, "abcd", 4);
    expect_fail(DS_EXPLICIT_LE, &e, ERR_TRUNCATED, "dataset ends inside encapsulated pixel data");
    elem(&e, 0xFFFC, 0xFFFC, "OB", "\0\0", 2); /* the next element comes instead */
    expect_fail(DS_EXPLICIT_LE, &e, ERR_MALFORMED, "encapsulated pixel data holds only items");
    free(e.p);
}

Test(dsscan, fragment_lengths_zero_max_and_undefined)
{
    static const uint32_t lens[] = {0, 0xFFFFFFFEu, UNDEF};
    static const int want[] = {1, ERR_TRUNCATED, ERR_MALFORMED};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
        item(&e, 0);
        item(&e, lens[i]);
        if (lens[i] == 0)
            seq_end(&e);
        cr_assert_eq(scan_all_ways(DS_EXPLICIT_LE, e.p, e.len).rc, want[i], "len %u", lens[i]);
        free(e.p);
    }
}

/* ---- deflate (PS3.5 A.5) ---- */

/* Raw deflate (windowBits -15) of p[0..n), as PS3.5 A.5 has it. */
static struct enc deflate_of(const uint8_t *p, size_t n)
{
    static uint8_t out[65536];
    struct enc d = enc_make(false);
    z_stream z;
    memset(&z, 0, sizeof(z));
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)p; /* zlib reads only */
    z.avail_in = (uInt)n;
    for (;;) {
        z.next_out = out;
        z.avail_out = sizeof(out);
        int rc = deflate(&z, Z_FINISH);
        cr_assert(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
        put(&d, out, sizeof(out) - z.avail_out);
        if (rc == Z_STREAM_END)
            break;
    }
    deflateEnd(&z);
    return d;
}

Test(dsscan, deflated_dataset_is_walked_in_any_chunking)
{
    struct enc e = build_rich(false);
    struct enc d = deflate_of(e.p, e.len);
    struct verdict v = scan_all_ways(DS_DEFLATED_LE, d.p, d.len);
    cr_assert_eq(v.rc, 1, "%s", v.reason);
    assert_uids(&v.uids, SOP_CLASS, SOP_INST, STUDY, SERIES);
    free(e.p);
    free(d.p);
}

Test(dsscan, deflated_plaintext_errors_are_the_plain_ones)
{
    struct enc e = build_rich(false);
    size_t valid = e.len;
    put_fill(&e, 0xFF, 4096);
    static const struct {
        size_t cut; /* bytes short of the valid dataset; SIZE_MAX: the garbage too */
        int rc;
        const char *why;
    } cases[] = {
        {SIZE_MAX, ERR_MALFORMED, JUNK},
        {3, ERR_TRUNCATED, "dataset ends inside an element header"},
        {8, ERR_TRUNCATED, "dataset ends inside encapsulated pixel data"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t n = cases[i].cut == SIZE_MAX ? e.len : valid - cases[i].cut;
        struct enc d = deflate_of(e.p, n);
        struct verdict v = scan_all_ways(DS_DEFLATED_LE, d.p, d.len);
        cr_assert_eq(v.rc, cases[i].rc, "case %zu", i);
        cr_assert_str_eq(v.reason, cases[i].why);
        free(d.p);
    }
    free(e.p);
}

Test(dsscan, deflate_stream_cut_anywhere_is_truncated)
{
    struct enc e = build_rich(false);
    struct enc d = deflate_of(e.p, e.len);
    for (size_t cut = 0; cut < d.len; cut++) {
        struct verdict v = scan(DS_DEFLATED_LE, d.p, cut, 1 + cut % 5);
        cr_assert_eq(v.rc, ERR_TRUNCATED, "cut %zu", cut);
        cr_assert_str_eq(v.reason, "deflate stream ends early");
    }
    free(e.p);
    free(d.p);
}

Test(dsscan, after_the_deflate_stream_a_nul_pad_or_a_gzip_trailer_and_nothing_else)
{
    struct enc e = build_plain(false);
    struct enc d = deflate_of(e.p, e.len);
    size_t n = d.len;
    uLong crc = crc32(0, e.p, (uInt)e.len);
    uint8_t gz[9]; /* RFC 1952 trailer: CRC-32 and length, little-endian; then a NUL pad */
    for (int i = 0; i < 4; i++) {
        gz[i] = (uint8_t)(crc >> (8 * i));
        gz[4 + i] = (uint8_t)(e.len >> (8 * i));
    }
    gz[8] = 0;
    static const struct {
        const char *b;
        size_t n;
        int rc;
        uint32_t glitches;
    } tails[] = {
        {"", 0, 1, 0},
        {"\0", 1, 1, 0},
        {"GZIP", 8, 1, 1},
        {"GZIP", 9, 1, 1},
        {"\0\0", 2, ERR_MALFORMED, 0},
        {"x", 1, ERR_MALFORMED, 0},
        {"\0garbage", 8, ERR_MALFORMED, 0},
        {"\xff\xff\xff\xff", 4, ERR_MALFORMED, 0},
        {"\0\0\0\0\0\0\0\0\0\0", 10, ERR_MALFORMED, 0},
        {"BADCRC", 8, ERR_MALFORMED, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(tails); i++) {
        d.len = n;
        if (strcmp(tails[i].b, "GZIP") == 0) {
            put(&d, gz, tails[i].n);
        } else if (strcmp(tails[i].b, "BADCRC") == 0) {
            gz[0] ^= 1;
            put(&d, gz, 8);
            gz[0] ^= 1;
        } else {
            put(&d, tails[i].b, tails[i].n);
        }
        struct verdict v = scan_all_ways(DS_DEFLATED_LE, d.p, d.len);
        cr_assert_eq(v.rc, tails[i].rc, "tail %zu: %s", i, v.reason);
        cr_assert_eq(v.glitches, tails[i].glitches, "tail %zu", i);
        if (v.rc < 0)
            cr_assert_str_eq(v.reason, "bytes after the end of the deflate stream");
    }
    /* more than a trailer's worth is refused as it arrives, without waiting for the end */
    d.len = n;
    put_fill(&d, 0xFF, 4096);
    struct ds_scan *s = ds_scan_new(DS_DEFLATED_LE);
    cr_assert_eq(feed_copy(s, d.p, d.len), ERR_MALFORMED);
    ds_scan_free(s);
    free(e.p);
    free(d.p);
}

Test(dsscan, corrupt_deflate_is_malformed)
{
    static const uint8_t bad[] = {0xFF, 0xFF, 0xFF, 0xFF}; /* BTYPE 11 is reserved (RFC 1951) */
    struct verdict v = scan(DS_DEFLATED_LE, bad, sizeof(bad), 1);
    cr_assert_eq(v.rc, ERR_MALFORMED);
    cr_assert_str_eq(v.reason, "bad deflate stream");
    static const uint8_t stored_bad[] = {0x01, 0x04, 0x00, 0x00, 0x00}; /* NLEN != ~LEN */
    cr_assert_eq(scan(DS_DEFLATED_LE, stored_bad, sizeof(stored_bad), 0).rc, ERR_MALFORMED);
    struct enc e = build_rich(false);
    struct enc d = deflate_of(e.p, e.len);
    for (size_t at = 0; at < d.len; at += 7) { /* flip a byte: any verdict, same every way */
        d.p[at] ^= 0x5A;
        (void)scan_all_ways(DS_DEFLATED_LE, d.p, d.len);
        d.p[at] ^= 0x5A;
    }
    free(e.p);
    free(d.p);
}

/* A deflate stream of p[0..n) then k MiB of zeros, cheaply: after a full flush the compressor
 * starts afresh (zlib's manual), so one compressed MiB of zeros can be repeated k times. */
static struct enc bomb_of(const uint8_t *p, size_t n, size_t k)
{
    static uint8_t zeros[1 << 20];
    static uint8_t out[1 << 20];
    struct enc d = enc_make(false);
    z_stream z;
    memset(&z, 0, sizeof(z));
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_RLE), Z_OK);
    const uint8_t *in[3] = {p, zeros, NULL};
    size_t len[3] = {n, sizeof(zeros), 0};
    for (int step = 0; step < 3; step++) {
        z.next_in = (Bytef *)(uintptr_t)in[step]; /* zlib reads only */
        z.avail_in = (uInt)len[step];
        z.next_out = out;
        z.avail_out = sizeof(out);
        int rc = deflate(&z, step < 2 ? Z_FULL_FLUSH : Z_FINISH);
        cr_assert(rc == (step < 2 ? Z_OK : Z_STREAM_END) && z.avail_in == 0 && z.avail_out > 0);
        size_t got = sizeof(out) - z.avail_out;
        for (size_t i = 0; i < (step == 1 ? k : 1); i++)
            put(&d, out, got);
    }
    deflateEnd(&z);
    return d;
}

Test(dsscan, deflate_bomb_is_refused_past_the_cap)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    hdr(&e, 0x0009, 0x1001, "OB", 0xFFFFFFF0u);
    size_t mib = (size_t)(DS_INFLATE_CAP >> 20); /* header bytes + the cap > the cap */
    struct enc d = bomb_of(e.p, e.len, mib);
    cr_assert_lt(d.len, DS_INFLATE_CAP / 1000, "a small stream on the wire: %zu", d.len);
    struct ds_scan *s = ds_scan_new(DS_DEFLATED_LE);
    int rc = 0;
    for (size_t off = 0; off < d.len && rc == 0; off += 65536) {
        size_t k = d.len - off < 65536 ? d.len - off : 65536;
        rc = feed_copy(s, d.p + off, k);
    }
    cr_assert_eq(rc, ERR_LIMIT);
    cr_assert_str_eq(ds_scan_error(s), "inflated dataset larger than allowed");
    assert_uids(ds_scan_uids(s), SOP_CLASS, "", "", "");
    ds_scan_free(s);
    free(d.p);
    free(e.p);
}

Test(dsscan, inflate_cap_is_exact_and_settable_before_the_first_feed)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    hdr(&e, 0x0009, 0x1001, "OB", 8u << 20);
    struct enc d = bomb_of(e.p, e.len, 8); /* exactly e.len + 8 MiB of plaintext */
    uint64_t total = e.len + (8u << 20);
    static const struct {
        uint64_t cap;
        int rc;
    } cases[] = {{0, 1}, {1, ERR_LIMIT}, {8u << 20, ERR_LIMIT}, {0, 1}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t cap = i == 3 ? total : cases[i].cap;
        int want = i == 2 ? ERR_LIMIT : cases[i].rc;
        for (size_t chunk = 1; chunk <= 65536; chunk *= 16) {
            struct ds_scan *s = ds_scan_new(DS_DEFLATED_LE);
            ds_scan_set_inflate_cap(s, cap);
            int rc = 0;
            for (size_t off = 0; off < d.len && rc == 0; off += chunk) {
                size_t k = d.len - off < chunk ? d.len - off : chunk;
                rc = feed_copy(s, d.p + off, k);
            }
            ds_scan_set_inflate_cap(s, 1); /* too late: ignored */
            rc = rc < 0 ? rc : ds_scan_finish(s);
            cr_assert_eq(rc, want, "case %zu chunk %zu: %s", i, chunk, ds_scan_error(s));
            ds_scan_free(s);
        }
    }
    free(e.p);
    free(d.p);
}

/* ---- real objects (pydicom, DCMTK): data/dsscan ---- */

struct object {
    char name[128];
    char ts[80];
    char inst[80], study[80], series[80];
    uint8_t *file;
    size_t file_len;
    const uint8_t *ds; /* the dataset: after the preamble and the File Meta group */
    size_t ds_len;
    enum ds_encoding enc;
};

static char *data_path(const char *name, char *out, size_t cap)
{
    char src[4096];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(out, cap, "%s/data/dsscan/%s", dirname(src), name);
    return out;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    uint8_t *p = malloc((size_t)n + 1);
    cr_assert_not_null(p);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Load index.txt and every file in it; returns the count. */
static size_t load_objects(struct object *objs, size_t cap)
{
    char path[4200];
    FILE *f = fopen(data_path("index.txt", path, sizeof(path)), "r");
    cr_assert_not_null(f);
    size_t n = 0;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        cr_assert_lt(n, cap);
        struct object *o = &objs[n];
        /* test data we generated: fixed-width fields, no user input */
        char *save = NULL;
        const char *fields[5];
        char *t = strtok_r(line, " \n", &save);
        for (int i = 0; i < 5; i++, t = strtok_r(NULL, " \n", &save)) {
            cr_assert_not_null(t);
            fields[i] = t;
        }
        snprintf(o->name, sizeof(o->name), "%s", fields[0]);
        snprintf(o->ts, sizeof(o->ts), "%s", fields[1]);
        snprintf(o->inst, sizeof(o->inst), "%s", fields[2]);
        snprintf(o->study, sizeof(o->study), "%s", fields[3]);
        snprintf(o->series, sizeof(o->series), "%s", fields[4]);
        o->file = slurp(data_path(o->name, path, sizeof(path)), &o->file_len);
        /* PS3.10 7.1: 128-byte preamble, "DICM", then (0002,0000) UL whose value is the group's
         * remaining length */
        cr_assert_gt(o->file_len, 144);
        cr_assert_eq(memcmp(o->file + 128, "DICM\x02\x00\x00\x00UL\x04\x00", 12), 0);
        const uint8_t *g = o->file + 140;
        uint32_t glen = (uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16 |
                        (uint32_t)g[3] << 24;
        cr_assert_lt(144 + (size_t)glen, o->file_len);
        o->ds = o->file + 144 + glen;
        o->ds_len = o->file_len - 144 - glen;
        o->enc = strcmp(o->ts, "1.2.840.10008.1.2") == 0        ? DS_IMPLICIT_LE
                 : strcmp(o->ts, "1.2.840.10008.1.2.1.99") == 0 ? DS_DEFLATED_LE
                                                                : DS_EXPLICIT_LE;
        n++;
    }
    fclose(f);
    cr_assert_gt(n, 8);
    return n;
}

static void free_objects(struct object *objs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(objs[i].file);
}

Test(dsscan, real_objects_are_well_formed_with_their_uids)
{
    struct object objs[32];
    size_t n = load_objects(objs, ARRAY_LEN(objs));
    for (size_t i = 0; i < n; i++) {
        const struct object *o = &objs[i];
        const uint8_t *p = o->ds;
        size_t len = o->ds_len;
        for (size_t chunk = 0; chunk <= len; chunk += chunk < 16 ? 1 : 97) {
            struct verdict v = scan(o->enc, p, len, chunk);
            cr_assert_eq(v.rc, 1, "%s chunk %zu: %s at %llu", o->name, chunk, v.reason,
                         (unsigned long long)v.off);
            assert_uids(&v.uids, v.uids.sop_class, o->inst, o->study, o->series);
            cr_assert_str_eq(v.uids.sop_class, strstr(o->name, "sr_") == o->name
                                                   ? "1.2.840.10008.5.1.4.1.1.88.33"
                                                   : "1.2.840.10008.5.1.4.1.1.2");
        }
        struct verdict v = scan(o->enc, p, len, 0);
        bool encapsulated = strstr(o->name, "rle") || strstr(o->name, "jpeg");
        if (strstr(o->name, "sr_") != o->name)
            cr_assert_eq(v.pixel, encapsulated ? DS_PIXEL_ENCAPSULATED : DS_PIXEL_NATIVE, "%s",
                         o->name);
    }
    free_objects(objs, n);
}

Test(dsscan, real_objects_cut_anywhere_are_refused_or_a_shorter_dataset)
{
    struct object objs[32];
    size_t n = load_objects(objs, ARRAY_LEN(objs));
    for (size_t i = 0; i < n; i++) {
        const struct object *o = &objs[i];
        const uint8_t *p = o->ds;
        size_t len = o->ds_len;
        enum ds_encoding enc = o->enc;
        size_t clean = 0;
        for (size_t cut = 0; cut < len; cut++) {
            struct verdict v = scan(enc, p, cut, 0);
            cr_assert(v.rc == 1 || v.rc == ERR_TRUNCATED || v.rc == ERR_MALFORMED, "%s cut %zu",
                      o->name, cut);
            if (enc == DS_DEFLATED_LE && cut + 1 < len)
                cr_assert_eq(v.rc, ERR_TRUNCATED, "%s cut %zu", o->name, cut);
            clean += v.rc == 1;
        }
        if (enc != DS_DEFLATED_LE)
            cr_assert_gt(clean, 5, "%s: cuts between top-level elements", o->name);
        /* and the last element never ends early: no clean cut in its last 8 bytes */
        for (size_t cut = len - 8; enc != DS_DEFLATED_LE && cut < len; cut++)
            cr_assert_neq(scan(enc, p, cut, 0).rc, 1, "%s cut %zu", o->name, cut);
    }
    free_objects(objs, n);
}

Test(dsscan, real_objects_with_4kib_of_ff_appended_are_refused)
{
    struct object objs[32];
    size_t n = load_objects(objs, ARRAY_LEN(objs));
    for (size_t i = 0; i < n; i++) {
        const struct object *o = &objs[i];
        struct enc e = enc_make(false);
        put(&e, o->ds, o->ds_len);
        put_fill(&e, 0xFF, 4096);
        struct verdict v = scan_all_ways(o->enc, e.p, e.len);
        cr_assert_eq(v.rc, ERR_MALFORMED, "%s", o->name);
        if (o->enc == DS_DEFLATED_LE)
            cr_assert_str_eq(v.reason, "bytes after the end of the deflate stream", "%s", o->name);
        else if (strstr(o->name, "sr_") != o->name)
            cr_assert_str_eq(v.reason, JUNK, "%s", o->name);
        free(e.p);
    }
    free_objects(objs, n);
}

/* ---- lifecycle ---- */

Test(dsscan, error_state_is_sticky)
{
    struct enc e = enc_make(false);
    put(&e, "\x08\x00\x60\x00zz\x02\x00", 8);
    struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
    cr_assert_eq(feed_copy(s, e.p, e.len), ERR_MALFORMED);
    struct enc g = build_plain(false);
    cr_assert_eq(feed_copy(s, g.p, g.len), ERR_MALFORMED);
    cr_assert_eq(ds_scan_finish(s), ERR_MALFORMED);
    cr_assert_str_eq(ds_scan_error(s), "invalid VR");
    cr_assert_eq(ds_scan_error_offset(s), 0);
    ds_scan_free(s);
    free(e.p);
    free(g.p);
}

Test(dsscan, new_refuses_unknown_encoding_and_free_takes_null)
{
    cr_assert_null(ds_scan_new((enum ds_encoding)7));
    ds_scan_free(NULL);
}

/* ---- ds_uid_valid ---- */

Test(dsscan, uid_valid_accepts_well_formed_uids)
{
    cr_assert(ds_uid_valid("1"));
    cr_assert(ds_uid_valid("0"));
    cr_assert(ds_uid_valid("1.2.840.10008.1.2.1"));
    cr_assert(ds_uid_valid("1.0.1"));
    cr_assert(ds_uid_valid("2.25.329800735698586629295641978511506172918"));
    char u64[65];
    memset(u64, '1', 64);
    u64[1] = '.';
    u64[64] = '\0';
    cr_assert(ds_uid_valid(u64));
}

Test(dsscan, uid_valid_refuses_malformed_uids)
{
    static const char *const bad[] = {"",   ".",    "1.",  ".1",  "1..2", "01",  "1.00",
                                      "1.2a", "1 2", "-1", "1.2 ", "1,2", "a", "1.2.\n"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        cr_assert(!ds_uid_valid(bad[i]), "%s", bad[i]);
    char u65[66];
    memset(u65, '1', 65);
    u65[1] = '.';
    u65[65] = '\0';
    cr_assert(!ds_uid_valid(u65));
}

/* ---- the Patient ID, for the audit trail ---- */

/* The plain dataset with (0010,0020) written as vr with the raw value v[0..n) (even length), and a
 * decoy Patient ID inside Other Patient IDs Sequence (0010,1002) after it. */
static struct enc build_with_patient(bool implicit, const char *vr, const void *v, size_t n)
{
    struct enc e = enc_make(implicit);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    str(&e, 0x0010, 0x0010, "PN", "Doe^Jane");
    elem(&e, 0x0010, 0x0020, vr, v, n);
    hdr(&e, 0x0010, 0x1002, "SQ", UNDEF);
    item(&e, UNDEF);
    str(&e, 0x0010, 0x0020, "LO", "DECOY-ID");
    item_end(&e);
    seq_end(&e);
    uid(&e, 0x0020, 0x000D, STUDY);
    uid(&e, 0x0020, 0x000E, SERIES);
    return e;
}

Test(dsscan, takes_the_top_level_patient_id_trimmed_in_any_chunking)
{
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc e = build_with_patient(implicit, "LO", " PAT-0042 ", 10);
        struct verdict v = scan_all_ways(plain_enc(implicit), e.p, e.len);
        cr_assert_eq(v.rc, 1);
        cr_assert_str_eq(v.patient_id, "PAT-0042", "implicit %d", implicit);
        assert_uids(&v.uids, SOP_CLASS, SOP_INST, STUDY, SERIES);
        free(e.p);
    }
}

Test(dsscan, a_patient_id_only_inside_a_sequence_is_not_taken)
{
    struct enc e = build_with_patient(false, "LO", "", 0);
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1);
    cr_assert_str_eq(v.patient_id, "");
    free(e.p);
}

Test(dsscan, patient_id_of_64_bytes_is_taken_65_and_more_are_skipped_not_refused)
{
    char val[80];
    memset(val, 'A', sizeof val);
    for (size_t n = 62; n <= 70; n += 2) { /* even lengths: 64 fits, 66 does not */
        struct enc e = build_with_patient(false, "LO", val, n);
        struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
        cr_assert_eq(v.rc, 1, "length %zu", n);
        cr_assert_eq(strlen(v.patient_id), n <= DS_PATIENT_ID_MAX ? n : 0, "length %zu", n);
        free(e.p);
    }
    /* 65 bytes, odd: a glitch, and still not taken */
    struct enc e = build_with_patient(true, "LO", val, 65);
    struct verdict v = scan_all_ways(DS_IMPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1);
    cr_assert_str_eq(v.patient_id, "");
    free(e.p);
}

Test(dsscan, implausible_patient_id_values_stay_unknown_and_the_dataset_is_fine)
{
    static const struct {
        const char *v;
        size_t n;
    } bad[] = {{"AB\\CD ", 6}, {"AB\nCD ", 6}, {"AB\x7f""CD ", 6}, {"    ", 4}, {"\0\0", 2}};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct enc e = build_with_patient(false, "LO", bad[i].v, bad[i].n);
        struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
        cr_assert_eq(v.rc, 1, "case %zu", i);
        cr_assert_str_eq(v.patient_id, "", "case %zu", i);
        free(e.p);
    }
    /* ESC (ISO 2022 code extensions) and 8-bit bytes are kept as they are */
    struct enc e = build_with_patient(false, "LO", "\x1b$B\xc3\xa9", 6);
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1);
    cr_assert_str_eq(v.patient_id, "\x1b$B\xc3\xa9");
    free(e.p);
}

Test(dsscan, patient_id_as_a_sequence_or_undefined_length_is_walked_not_taken)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    hdr(&e, 0x0010, 0x0020, "SQ", UNDEF);
    item(&e, UNDEF);
    str(&e, 0x0010, 0x0020, "LO", "INNER");
    item_end(&e);
    seq_end(&e);
    uid(&e, 0x0020, 0x000D, STUDY);
    uid(&e, 0x0020, 0x000E, SERIES);
    struct verdict v = scan_all_ways(DS_EXPLICIT_LE, e.p, e.len);
    cr_assert_eq(v.rc, 1);
    cr_assert_str_eq(v.patient_id, "");
    free(e.p);
}

Test(dsscan, deflated_datasets_give_the_patient_id_too)
{
    struct enc e = build_with_patient(false, "LO", "PAT-7 ", 6);
    struct enc d = deflate_of(e.p, e.len);
    struct verdict v = scan_all_ways(DS_DEFLATED_LE, d.p, d.len);
    cr_assert_eq(v.rc, 1);
    cr_assert_str_eq(v.patient_id, "PAT-7");
    free(e.p);
    free(d.p);
}
