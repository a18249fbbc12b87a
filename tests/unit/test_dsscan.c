/* Tests for core/dsscan: the streaming UID scanner. Datasets are built here by a small encoder;
 * every feed goes through a heap copy of exactly the bytes fed, so ASan sees any over-read. */
#include "dsscan.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define UNDEF 0xFFFFFFFFu

/* ---- a minimal dataset encoder (PS3.5 7.1) ---- */

struct enc {
    uint8_t *p;
    size_t len, cap;
    bool implicit;
};

static struct enc enc_make(bool implicit)
{
    struct enc e = {NULL, 0, 0, implicit};
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
    size_t n = 0;
    while (s[n])
        n++;
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
 * before the real ones, nested tags above (0020,000E), then pixel data after the UIDs. */
static struct enc build_rich(bool implicit)
{
    struct enc e = enc_make(implicit);
    str(&e, 0x0008, 0x0005, "CS", "ISO_IR 100");
    hdr(&e, 0x0008, 0x0006, "SQ", UNDEF); /* undefined-length sequence with decoys */
    item(&e, UNDEF);
    uid(&e, 0x0008, 0x0018, "9.9.9.1");
    uid(&e, 0x0020, 0x000D, "9.9.9.2");
    str(&e, 0x0040, 0xA040, "CS", "TEXT"); /* a nested tag > (0020,000E) must not end the scan */
    item_end(&e);
    {
        struct enc in = enc_make(implicit); /* defined-length item inside it */
        uid(&in, 0x0008, 0x0018, "9.9.9.3");
        item(&e, (uint32_t)in.len);
        put(&e, in.p, in.len);
        free(in.p);
    }
    seq_end(&e);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    {
        struct enc in = enc_make(implicit); /* defined-length sequence */
        item(&in, UNDEF);
        uid(&in, 0x0008, 0x0018, "9.9.9.4");
        item_end(&in);
        hdr(&e, 0x0008, 0x1115, "SQ", (uint32_t)in.len);
        put(&e, in.p, in.len);
        free(in.p);
    }
    str(&e, 0x0009, 0x0010, "LO", "ACME 1.0");
    hdr(&e, 0x0009, 0x1001, "UN", UNDEF); /* UN of undefined length: implicit VR inside */
    {
        struct enc in = enc_make(true);
        item(&in, UNDEF);
        uid(&in, 0x0020, 0x000E, "9.9.9.5");
        hdr(&in, 0x0009, 0x1002, "SQ", UNDEF);
        item(&in, UNDEF);
        uid(&in, 0x0008, 0x0016, "9.9.9.6");
        item_end(&in);
        seq_end(&in);
        item_end(&in);
        seq_end(&in);
        put(&e, in.p, in.len);
        free(in.p);
    }
    four_uids_from_study(&e);
    static const uint8_t rows[2] = {0, 2};
    elem(&e, 0x0028, 0x0010, "US", rows, 2);
    hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
    item(&e, 0);
    item(&e, 4);
    put(&e, "\xff\xd8\xff\xd9", 4);
    seq_end(&e);
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

/* Feed p[0..n) in chunks of chunk bytes (0 = whole), each from an exact-size heap copy, then
 * finish if the scan still wants bytes. Returns the final result; *u gets the UIDs. */
static int scan(enum ds_encoding enc, const uint8_t *p, size_t n, size_t chunk, struct ds_uids *u)
{
    struct ds_scan *s = ds_scan_new(enc);
    cr_assert_not_null(s);
    if (chunk == 0)
        chunk = n ? n : 1;
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        uint8_t *c = malloc(k);
        cr_assert_not_null(c);
        memcpy(c, p + off, k);
        rc = ds_scan_feed(s, c, k);
        free(c);
    }
    if (rc == 0)
        rc = ds_scan_finish(s);
    if (u)
        *u = *ds_scan_uids(s);
    ds_scan_free(s);
    return rc;
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

/* ---- plain datasets ---- */

Test(dsscan, takes_four_top_level_uids_implicit_vr)
{
    struct enc e = build_plain(true);
    struct ds_uids u;
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, SOP_CLASS, SOP_INST, STUDY, SERIES);
    free(e.p);
}

Test(dsscan, takes_four_top_level_uids_explicit_vr)
{
    struct enc e = build_plain(false);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, SOP_CLASS, SOP_INST, STUDY, SERIES);
    free(e.p);
}

Test(dsscan, ends_as_soon_as_the_fourth_uid_is_complete)
{
    struct enc e = build_plain(false);
    struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
    cr_assert_eq(feed_copy(s, e.p, e.len - 1), 0);
    cr_assert_eq(feed_copy(s, e.p + e.len - 1, 1), 1);
    cr_assert_eq(feed_copy(s, "garbage!", 8), 1, "later bytes are ignored");
    cr_assert_eq(ds_scan_finish(s), 1);
    ds_scan_free(s);
    free(e.p);
}

Test(dsscan, ignores_decoy_uids_inside_sequences_and_un_implicit)
{
    struct enc e = build_rich(true);
    struct ds_uids u;
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, SOP_CLASS, SOP_INST, STUDY, SERIES);
    free(e.p);
}

Test(dsscan, ignores_decoy_uids_inside_sequences_and_un_explicit)
{
    struct enc e = build_rich(false);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, SOP_CLASS, SOP_INST, STUDY, SERIES);
    free(e.p);
}

Test(dsscan, ends_at_first_top_level_tag_after_series_uid_before_pixel_data)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0018, SOP_INST); /* no SOP Class: the four are never all found */
    four_uids_from_study(&e);
    size_t stop = e.len + 4;            /* the tag of (0028,0010) is enough */
    static const uint8_t rows[2] = {0, 2};
    elem(&e, 0x0028, 0x0010, "US", rows, 2);
    hdr(&e, 0x7FE0, 0x0010, "OB", 0xFFFFFFF0u); /* huge pixel data never reached */
    struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
    cr_assert_eq(feed_copy(s, e.p, stop - 1), 0);
    cr_assert_eq(feed_copy(s, e.p + stop - 1, 1), 1);
    assert_uids(ds_scan_uids(s), "", SOP_INST, STUDY, SERIES);
    cr_assert_eq(feed_copy(s, e.p + stop, e.len - stop), 1);
    ds_scan_free(s);
    free(e.p);
}

Test(dsscan, skips_group_0002_elements_without_taking_uids)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0002, 0x0002, "1.2.3.4");
    uid(&e, 0x0002, 0x0003, "1.2.3.5");
    uid(&e, 0x0002, 0x0010, "1.2.840.10008.1.2.1");
    str(&e, 0x0008, 0x0060, "CS", "CT");
    four_uids_from_study(&e);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, "", "", STUDY, SERIES);
    free(e.p);
}

Test(dsscan, clean_end_with_uids_missing_finishes_with_1)
{
    struct enc e = enc_make(true);
    str(&e, 0x0008, 0x0060, "CS", "MR");
    uid(&e, 0x0008, 0x0018, SOP_INST);
    struct ds_uids u;
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, "", SOP_INST, "", "");
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, 0, 0, &u), 1, "an empty dataset ends cleanly");
    free(e.p);
}

Test(dsscan, accepts_odd_lengths_and_space_padded_uids)
{
    struct enc e = enc_make(false);
    elem(&e, 0x0008, 0x0016, "UI", SOP_CLASS " ", sizeof(SOP_CLASS)); /* space pad */
    elem(&e, 0x0008, 0x0018, "UI", "1.2.3", 5);                        /* odd, unpadded */
    elem(&e, 0x0010, 0x0010, "PN", "Doe^J", 5);                        /* odd length */
    elem(&e, 0x0020, 0x000D, "UI", "1.2\0\0", 5);                      /* extra NULs */
    uid(&e, 0x0020, 0x000E, SERIES);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, SOP_CLASS, "1.2.3", "1.2", SERIES);
    free(e.p);
}

Test(dsscan, long_form_vrs_including_sv_uv_are_skipped)
{
    struct enc e = enc_make(false);
    static const char *const vrs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SV", "UC", "UN",
                                      "UR", "UT", "UV", "SQ"};
    for (size_t i = 0; i < ARRAY_LEN(vrs); i++)
        elem(&e, 0x0009, (uint16_t)(0x1000 + i), vrs[i], "\0\0\0\0\0\0\0\0", 8);
    four_uids_from_study(&e);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, "", "", STUDY, SERIES);
    free(e.p);
}

/* ---- big values and chunking ---- */

Test(dsscan, skips_10mb_private_value_fed_in_chunks_without_buffering)
{
    static uint8_t zero[65536];
    const uint32_t big = 10u * 1024u * 1024u;
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc h = enc_make(implicit);
        uid(&h, 0x0008, 0x0016, SOP_CLASS);
        str(&h, 0x0009, 0x0010, "LO", "ACME");
        hdr(&h, 0x0009, 0x1010, "OB", big);
        struct enc t = enc_make(implicit);
        uid(&t, 0x0008, 0x0018, SOP_INST);
        four_uids_from_study(&t);
        struct ds_scan *s = ds_scan_new(implicit ? DS_IMPLICIT_LE : DS_EXPLICIT_LE);
        cr_assert_eq(feed_copy(s, h.p, h.len), 0);
        for (uint32_t done = 0; done < big; done += sizeof(zero))
            cr_assert_eq(ds_scan_feed(s, zero, sizeof(zero)), 0);
        cr_assert_eq(feed_copy(s, t.p, t.len), 1);
        assert_uids(ds_scan_uids(s), SOP_CLASS, SOP_INST, STUDY, SERIES);
        ds_scan_free(s);
        free(h.p);
        free(t.p);
    }
}

Test(dsscan, every_chunk_size_gives_the_same_result)
{
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc e = build_rich(implicit);
        enum ds_encoding enc = implicit ? DS_IMPLICIT_LE : DS_EXPLICIT_LE;
        for (size_t chunk = 1; chunk <= e.len; chunk++) {
            struct ds_uids u;
            cr_assert_eq(scan(enc, e.p, e.len, chunk, &u), 1, "chunk %zu", chunk);
            assert_uids(&u, SOP_CLASS, SOP_INST, STUDY, SERIES);
        }
        free(e.p);
    }
}

Test(dsscan, irregular_chunkings_give_the_same_result)
{
    struct enc e = build_rich(false);
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
        int rc = 0;
        for (size_t off = 0; off < e.len && rc == 0;) {
            x = x * 1103515245u + 12345u;
            size_t k = 1 + (x >> 16) % 40;
            if (k > e.len - off)
                k = e.len - off;
            rc = feed_copy(s, e.p + off, k);
            off += k;
        }
        cr_assert_eq(rc, 1);
        assert_uids(ds_scan_uids(s), SOP_CLASS, SOP_INST, STUDY, SERIES);
        ds_scan_free(s);
    }
    free(e.p);
}

Test(dsscan, cut_at_every_offset_gives_truncated_or_clean_end)
{
    for (int implicit = 0; implicit <= 1; implicit++) {
        struct enc e = build_rich(implicit);
        enum ds_encoding enc = implicit ? DS_IMPLICIT_LE : DS_EXPLICIT_LE;
        struct ds_uids full;
        cr_assert_eq(scan(enc, e.p, e.len, 0, &full), 1);
        size_t ones = 0;
        for (size_t cut = 0; cut <= e.len; cut++) {
            struct ds_uids u;
            int rc = scan(enc, e.p, cut, 0, &u);
            cr_assert(rc == 1 || rc == ERR_TRUNCATED, "cut %zu gave %d", cut, rc);
            ones += rc == 1;
            if (u.series[0]) /* the last UID only appears once it is complete */
                cr_assert_str_eq(u.series, SERIES);
        }
        cr_assert_gt(ones, 2, "clean ends between top-level elements");
        free(e.p);
    }
}

Test(dsscan, cut_between_top_level_elements_is_clean_inside_is_truncated)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    size_t b1 = e.len;
    str(&e, 0x0010, 0x0010, "PN", "Doe^Jane");
    size_t b2 = e.len;
    hdr(&e, 0x0010, 0x1010, "SQ", UNDEF);
    item(&e, UNDEF);
    item_end(&e);
    seq_end(&e);
    size_t b3 = e.len;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, b1, 0, NULL), 1);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, b2, 0, NULL), 1);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, b3, 0, NULL), 1);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, b1 - 1, 0, NULL), ERR_TRUNCATED, "mid UID value");
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, b1 + 3, 0, NULL), ERR_TRUNCATED, "mid header");
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, b2 - 2, 0, NULL), ERR_TRUNCATED, "mid skipped value");
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, b3 - 8, 0, NULL), ERR_TRUNCATED, "open sequence");
    free(e.p);
}

/* ---- length fields ---- */

Test(dsscan, zero_length_uid_is_present_but_empty)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x0016, "UI", 0);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    four_uids_from_study(&e);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    assert_uids(&u, "", SOP_INST, STUDY, SERIES);
    free(e.p);
}

Test(dsscan, zero_length_values_of_other_elements_are_fine)
{
    struct enc e = enc_make(true);
    hdr(&e, 0x0008, 0x0020, "DA", 0);
    hdr(&e, 0x0009, 0x1001, "SQ", 0);
    four_uids_from_study(&e);
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, NULL), 1);
    free(e.p);
}

Test(dsscan, uid_length_ffff_or_66_is_refused_at_its_header)
{
    static const uint32_t lens[] = {66, 0xFFFF};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x0008, 0x0018, "UI", lens[i]);
        cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
        free(e.p);
    }
}

Test(dsscan, uid_of_64_chars_with_pad_is_taken)
{
    const char *u64 = "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25";
    char exact[65];
    memcpy(exact, u64, 64);
    exact[64] = '\0';
    struct enc e = enc_make(false);
    elem(&e, 0x0008, 0x0018, "UI", exact, 65); /* 64 chars + NUL pad = 65 */
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    cr_assert_str_eq(u.sop_instance, exact);
    free(e.p);
}

Test(dsscan, uid_of_65_chars_is_malformed)
{
    const char *u65 = "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25";
    struct enc e = enc_make(true);
    elem(&e, 0x0008, 0x0018, "UI", u65, 65);
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

Test(dsscan, undefined_length_on_non_sequence_explicit_vr_is_malformed)
{
    static const char *const vrs[] = {"UT", "OB", "OW", "UC", "UR", "OF", "UV"};
    for (size_t i = 0; i < ARRAY_LEN(vrs); i++) {
        struct enc e = enc_make(false);
        hdr(&e, 0x0009, 0x1001, vrs[i], UNDEF);
        cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED, "%s", vrs[i]);
        free(e.p);
    }
}

Test(dsscan, undefined_length_uid_is_malformed_in_implicit_vr)
{
    struct enc e = enc_make(true);
    hdr(&e, 0x0020, 0x000D, "UI", UNDEF);
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
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
    uid(&e, 0x0008, 0x0018, SOP_INST);
    struct ds_uids u;
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, &u), 1);
    cr_assert_str_eq(u.sop_instance, SOP_INST);
    free(e.p);
}

Test(dsscan, sequence_uid_is_malformed)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x0018, "SQ", 0);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

Test(dsscan, length_ffff_on_short_form_value_is_skipped)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x0081, "ST", 0xFFFF);
    uint8_t *v = calloc(1, 0xFFFF);
    put(&e, v, 0xFFFF);
    free(v);
    four_uids_from_study(&e);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 4096, &u), 1);
    assert_uids(&u, "", "", STUDY, SERIES);
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
    ds_scan_free(s);
    free(e.p);
}

Test(dsscan, delimiters_with_nonzero_length_are_malformed)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x1115, "SQ", UNDEF);
    item(&e, UNDEF);
    tag_len(&e, 0xE00D, 4);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
    e = enc_make(false);
    hdr(&e, 0x0008, 0x1115, "SQ", UNDEF);
    tag_len(&e, 0xE0DD, 0xFFFFFFFFu);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

/* ---- structure errors ---- */

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
        cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 1, NULL), ERR_MALFORMED, "vr %zu", i);
        free(e.p);
    }
}

Test(dsscan, uid_with_letters_or_bad_components_is_malformed)
{
    static const char *const bad[] = {"1.2.a", "1.02", "1..2", ".1", "1.", "1 2", "1.2\0x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        size_t n = 0;
        while (bad[i][n])
            n++;
        if (i == ARRAY_LEN(bad) - 1)
            n = 5; /* an embedded NUL is not padding */
        struct enc e = enc_make(false);
        elem(&e, 0x0008, 0x0016, "UI", bad[i], n);
        cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED, "%s", bad[i]);
        free(e.p);
    }
}

Test(dsscan, duplicate_top_level_uid_is_malformed)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    uid(&e, 0x0008, 0x0018, "1.2.3");
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

Test(dsscan, non_item_element_directly_in_sequence_is_malformed)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0008, 0x1115, "SQ", UNDEF);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

Test(dsscan, misplaced_delimiters_are_malformed)
{
    struct enc e = enc_make(true);
    hdr(&e, 0x0008, 0x1115, "SQ", UNDEF);
    item(&e, UNDEF);
    seq_end(&e); /* sequence delimiter while an item is open */
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
    e = enc_make(true);
    hdr(&e, 0x0008, 0x1115, "SQ", UNDEF);
    item_end(&e); /* item delimiter with no open item */
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
    e = enc_make(true);
    hdr(&e, 0x0008, 0x1115, "SQ", UNDEF);
    item(&e, UNDEF);
    item(&e, UNDEF); /* item inside an item, not inside a sequence */
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

Test(dsscan, encapsulated_pixel_data_in_an_item_is_followed)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0009, 0x1001, "SQ", UNDEF);
    item(&e, UNDEF);
    hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
    item(&e, 0);
    item(&e, 6);
    put(&e, "\xfe\xff\x00\xe0\x00\x00", 6); /* a fragment that looks like an item header */
    seq_end(&e);
    item_end(&e);
    seq_end(&e);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    cr_assert_str_eq(u.sop_instance, SOP_INST);
    free(e.p);
}

Test(dsscan, undefined_length_pixel_fragment_is_malformed)
{
    struct enc e = enc_make(false);
    hdr(&e, 0x0009, 0x1001, "SQ", UNDEF);
    item(&e, UNDEF);
    hdr(&e, 0x7FE0, 0x0010, "OB", UNDEF);
    item(&e, UNDEF);
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

static struct enc build_nested(bool implicit, unsigned levels)
{
    struct enc e = enc_make(implicit);
    for (unsigned i = 0; i < levels; i++) {
        hdr(&e, 0x0009, 0x1010, "SQ", UNDEF);
        item(&e, UNDEF);
    }
    for (unsigned i = 0; i < levels; i++) {
        item_end(&e);
        seq_end(&e);
    }
    uid(&e, 0x0008, 0x0018, SOP_INST);
    return e;
}

Test(dsscan, nesting_to_max_depth_is_followed)
{
    struct enc e = build_nested(false, DS_MAX_DEPTH);
    struct ds_uids u;
    cr_assert_eq(scan(DS_EXPLICIT_LE, e.p, e.len, 0, &u), 1);
    cr_assert_str_eq(u.sop_instance, SOP_INST);
    free(e.p);
}

Test(dsscan, nesting_deeper_than_max_depth_is_malformed)
{
    struct enc e = build_nested(true, DS_MAX_DEPTH + 1);
    cr_assert_eq(scan(DS_IMPLICIT_LE, e.p, e.len, 0, NULL), ERR_MALFORMED);
    free(e.p);
}

Test(dsscan, error_state_is_sticky)
{
    struct enc e = enc_make(false);
    put(&e, "\x08\x00\x60\x00zz\x02\x00", 8);
    struct ds_scan *s = ds_scan_new(DS_EXPLICIT_LE);
    cr_assert_eq(feed_copy(s, e.p, e.len), ERR_MALFORMED);
    struct enc g = build_plain(false);
    cr_assert_eq(feed_copy(s, g.p, g.len), ERR_MALFORMED);
    cr_assert_eq(ds_scan_finish(s), ERR_MALFORMED);
    ds_scan_free(s);
    free(e.p);
    free(g.p);
}

Test(dsscan, new_refuses_unknown_encoding_and_free_takes_null)
{
    cr_assert_null(ds_scan_new((enum ds_encoding)7));
    ds_scan_free(NULL);
}

/* ---- deflate ---- */

/* Raw deflate (windowBits -15) of p[0..n), followed by zeros zeros. */
static struct enc deflate_of(const uint8_t *p, size_t n, size_t zeros)
{
    static uint8_t zbuf[65536];
    static uint8_t out[65536];
    struct enc d = enc_make(false);
    z_stream z;
    memset(&z, 0, sizeof(z));
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)p; /* zlib reads only */
    z.avail_in = (uInt)n;
    for (;;) {
        bool last = z.avail_in == 0 && zeros == 0;
        if (z.avail_in == 0 && zeros > 0) {
            size_t k = zeros < sizeof(zbuf) ? zeros : sizeof(zbuf);
            z.next_in = zbuf;
            z.avail_in = (uInt)k;
            zeros -= k;
        }
        z.next_out = out;
        z.avail_out = sizeof(out);
        int rc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
        cr_assert(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
        put(&d, out, sizeof(out) - z.avail_out);
        if (rc == Z_STREAM_END)
            break;
    }
    deflateEnd(&z);
    return d;
}

Test(dsscan, deflated_dataset_fed_in_small_chunks)
{
    struct enc e = build_rich(false);
    struct enc d = deflate_of(e.p, e.len, 0);
    for (size_t chunk = 1; chunk <= 9; chunk += 4) {
        struct ds_uids u;
        cr_assert_eq(scan(DS_DEFLATED_LE, d.p, d.len, chunk, &u), 1);
        assert_uids(&u, SOP_CLASS, SOP_INST, STUDY, SERIES);
    }
    free(e.p);
    free(d.p);
}

Test(dsscan, deflated_skip_of_10mb_value_inflates_through_it)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    hdr(&e, 0x0009, 0x1001, "OB", 10u * 1024u * 1024u);
    struct enc t = enc_make(false);
    uid(&t, 0x0008, 0x0018, SOP_INST);
    four_uids_from_study(&t);
    struct enc all = enc_make(false);
    put(&all, e.p, e.len);
    uint8_t *z = calloc(1, 10u * 1024u * 1024u);
    put(&all, z, 10u * 1024u * 1024u);
    free(z);
    put(&all, t.p, t.len);
    struct enc d = deflate_of(all.p, all.len, 0);
    cr_assert_lt(d.len, 64 * 1024);
    struct ds_uids u;
    cr_assert_eq(scan(DS_DEFLATED_LE, d.p, d.len, 1000, &u), 1);
    assert_uids(&u, SOP_CLASS, SOP_INST, STUDY, SERIES);
    free(e.p);
    free(t.p);
    free(all.p);
    free(d.p);
}

Test(dsscan, deflate_bomb_stops_at_cap_with_uids_so_far)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0016, SOP_CLASS);
    hdr(&e, 0x0009, 0x1001, "OB", 0xFFFFFFF0u);
    struct enc d = deflate_of(e.p, e.len, (size_t)65 * 1024 * 1024);
    struct ds_scan *s = ds_scan_new(DS_DEFLATED_LE);
    int rc = 0;
    size_t off = 0;
    for (; off < d.len && rc == 0; off += 4096) {
        size_t k = d.len - off < 4096 ? d.len - off : 4096;
        rc = feed_copy(s, d.p + off, k);
    }
    cr_assert_eq(rc, 1);
    cr_assert_lt(off, d.len, "stopped before the compressed stream ended");
    assert_uids(ds_scan_uids(s), SOP_CLASS, "", "", "");
    ds_scan_free(s);
    free(e.p);
    free(d.p);
}

Test(dsscan, corrupt_deflate_is_malformed)
{
    static const uint8_t bad[] = {0xFF, 0xFF, 0xFF, 0xFF}; /* BTYPE 11 is reserved (RFC 1951) */
    cr_assert_eq(scan(DS_DEFLATED_LE, bad, sizeof(bad), 1, NULL), ERR_MALFORMED);
    /* a stored block whose NLEN is not the complement of LEN */
    static const uint8_t stored_bad[] = {0x01, 0x04, 0x00, 0x00, 0x00};
    cr_assert_eq(scan(DS_DEFLATED_LE, stored_bad, sizeof(stored_bad), 0, NULL), ERR_MALFORMED);
    /* a valid stream with one byte flipped in the middle of its first block */
    struct enc e = build_rich(false);
    struct enc d = deflate_of(e.p, e.len, 0);
    d.p[d.len / 2] ^= 0x5A;
    int rc = scan(DS_DEFLATED_LE, d.p, d.len, 7, NULL);
    cr_assert(rc == ERR_MALFORMED || rc == ERR_TRUNCATED || rc == 1, "got %d", rc);
    free(e.p);
    free(d.p);
}

Test(dsscan, truncated_deflate_stream_is_truncated)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0018, SOP_INST); /* not all four: the scan needs the whole stream */
    struct enc d = deflate_of(e.p, e.len, 0);
    for (size_t cut = 0; cut < d.len; cut++) {
        int rc = scan(DS_DEFLATED_LE, d.p, cut, 1, NULL);
        cr_assert_eq(rc, ERR_TRUNCATED, "cut %zu", cut);
    }
    struct ds_uids u;
    cr_assert_eq(scan(DS_DEFLATED_LE, d.p, d.len, 1, &u), 1);
    cr_assert_str_eq(u.sop_instance, SOP_INST);
    free(e.p);
    free(d.p);
}

Test(dsscan, bytes_after_deflate_stream_end_are_ignored)
{
    struct enc e = enc_make(false);
    uid(&e, 0x0008, 0x0018, SOP_INST);
    struct enc d = deflate_of(e.p, e.len, 0);
    put(&d, "\0garbage", 8);
    struct ds_uids u;
    cr_assert_eq(scan(DS_DEFLATED_LE, d.p, d.len, 3, &u), 1);
    cr_assert_str_eq(u.sop_instance, SOP_INST);
    free(e.p);
    free(d.p);
}

Test(dsscan, deflated_malformed_plaintext_is_malformed)
{
    struct enc e = enc_make(false);
    put(&e, "\x08\x00\x60\x00zz\x02\x00", 8);
    struct enc d = deflate_of(e.p, e.len, 0);
    cr_assert_eq(scan(DS_DEFLATED_LE, d.p, d.len, 2, NULL), ERR_MALFORMED);
    free(e.p);
    free(d.p);
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
