/* Tests for common/dcm_xcode: Explicit VR Little Endian to Implicit VR Little Endian, streaming
 * (PS3.5 7.1.2, 7.1.3, 7.5): headers rewritten, defined-length sequences and items turned into
 * undefined ones with delimiters, group lengths dropped, explicit UN sequences copied, the same
 * output whatever the chunking, and the refusals. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/dcm_ds.h"
#include "common/dcm_xcode.h"

struct buf {
    uint8_t p[8192];
    size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
    cr_assert_leq(b->n + n, sizeof b->p);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void u16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, x, 2);
}

static void u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

/* An explicit element header: the short form (2-byte length) or the long one. */
static void ex(struct buf *b, uint16_t g, uint16_t e, const char *vr, uint32_t len)
{
    u16(b, g);
    u16(b, e);
    put(b, vr, 2);
    bool lng = strchr("OB OD OF OL OV OW SQ UC UN UR UT SV UV", vr[0]) &&
               strstr("OB OD OF OL OV OW SQ UC UN UR UT SV UV", vr);
    if (lng) {
        u16(b, 0);
        u32(b, len);
    } else {
        u16(b, (uint16_t)len);
    }
}

static void im(struct buf *b, uint16_t g, uint16_t e, uint32_t len)
{
    u16(b, g);
    u16(b, e);
    u32(b, len);
}

/* Transcode in chunks of `step` bytes (0: all at once). */
static int xcode(const struct buf *in, size_t step, struct wbuf *out)
{
    struct dcm_xcode *x = dcm_xcode_new();
    cr_assert_not_null(x);
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < in->n;) {
        size_t k = step && step < in->n - off ? step : in->n - off;
        rc = dcm_xcode_feed(x, in->p + off, k, out);
        off += k;
    }
    if (rc == 0)
        rc = dcm_xcode_finish(x, out);
    dcm_xcode_free(x);
    return rc;
}

Test(dcm_xcode, flat_elements_lose_their_vr_and_keep_their_values)
{
    struct buf in = {0}, want = {0};
    ex(&in, 0x0008, 0x0060, "CS", 2);
    put(&in, "CT", 2);
    ex(&in, 0x0009, 0x1001, "UT", 4); /* a long VR, private */
    put(&in, "abcd", 4);
    ex(&in, 0x7FE0, 0x0010, "OW", 4);
    put(&in, "\x01\x02\x03\x04", 4);
    im(&want, 0x0008, 0x0060, 2);
    put(&want, "CT", 2);
    im(&want, 0x0009, 0x1001, 4);
    put(&want, "abcd", 4);
    im(&want, 0x7FE0, 0x0010, 4);
    put(&want, "\x01\x02\x03\x04", 4);
    struct wbuf out;
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&in, 0, &out), 0);
    cr_assert_eq(out.len, want.n);
    cr_assert_eq(memcmp(out.p, want.p, want.n), 0);
    wbuf_cleanup(&out);
}

/* (0008,1115) a defined-length SQ holding one defined-length item with a UT (long header). */
static void nested(struct buf *in)
{
    ex(in, 0x0008, 0x0005, "CS", 10);
    put(in, "ISO_IR 100", 10);
    ex(in, 0x0008, 0x1115, "SQ", 8 + 12 + 6);
    im(in, 0xFFFE, 0xE000, 12 + 6);
    ex(in, 0x0008, 0x1030, "UT", 6);
    put(in, "STUDY ", 6);
    ex(in, 0x0010, 0x0010, "PN", 4);
    put(in, "A^B ", 4);
}

Test(dcm_xcode, defined_sequences_become_undefined_with_delimiters)
{
    struct buf in = {0}, want = {0};
    nested(&in);
    im(&want, 0x0008, 0x0005, 10);
    put(&want, "ISO_IR 100", 10);
    im(&want, 0x0008, 0x1115, 0xFFFFFFFF);
    im(&want, 0xFFFE, 0xE000, 0xFFFFFFFF);
    im(&want, 0x0008, 0x1030, 6);
    put(&want, "STUDY ", 6);
    im(&want, 0xFFFE, 0xE00D, 0);
    im(&want, 0xFFFE, 0xE0DD, 0);
    im(&want, 0x0010, 0x0010, 4);
    put(&want, "A^B ", 4);
    struct wbuf out;
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&in, 0, &out), 0);
    cr_assert_eq(out.len, want.n, "%zu vs %zu", out.len, want.n);
    cr_assert_eq(memcmp(out.p, want.p, want.n), 0);
    /* and it reads back as the same dataset */
    struct dcm_ds *a, *b;
    cr_assert_eq(dcm_ds_parse(in.p, in.n, DCM_TS_EXPLICIT_LE, NULL, &a), 0);
    cr_assert_eq(dcm_ds_parse(out.p, out.len, DCM_TS_IMPLICIT_LE, NULL, &b), 0);
    cr_assert_eq(dcm_item_count(dcm_ds_root(a)), dcm_item_count(dcm_ds_root(b)));
    const struct dcm_elem *sa = dcm_item_find(dcm_ds_root(a), DCM_TAG(0x0008, 0x1115));
    const struct dcm_elem *sb = dcm_item_find(dcm_ds_root(b), DCM_TAG(0x0008, 0x1115));
    cr_assert(dcm_elem_is_seq(sa) && dcm_elem_is_seq(sb));
    cr_assert_eq(dcm_elem_nitems(sb), 1);
    dcm_ds_free(a);
    dcm_ds_free(b);
    wbuf_cleanup(&out);
}

Test(dcm_xcode, any_chunking_gives_the_same_bytes)
{
    struct buf in = {0};
    nested(&in);
    ex(&in, 0x0009, 0x0010, "LO", 4); /* private creator */
    put(&in, "TEST", 4);
    ex(&in, 0x0009, 0x1010, "UN", 0xFFFFFFFF); /* explicit UN: implicit items inside */
    im(&in, 0xFFFE, 0xE000, 10);
    im(&in, 0x0010, 0x0020, 2);
    put(&in, "ID", 2);
    im(&in, 0xFFFE, 0xE0DD, 0);
    struct wbuf whole, part;
    wbuf_init(&whole, 1 << 16);
    cr_assert_eq(xcode(&in, 0, &whole), 0);
    for (size_t step = 1; step < in.n; step++) {
        wbuf_init(&part, 1 << 16);
        cr_assert_eq(xcode(&in, step, &part), 0, "step %zu", step);
        cr_assert_eq(part.len, whole.len, "step %zu", step);
        cr_assert_eq(memcmp(part.p, whole.p, whole.len), 0, "step %zu", step);
        wbuf_cleanup(&part);
    }
    /* the UN's implicit items are copied: its last 18 bytes are the input's */
    cr_assert_eq(memcmp(whole.p + whole.len - 18, in.p + in.n - 18, 18), 0);
    wbuf_cleanup(&whole);
}

Test(dcm_xcode, group_lengths_are_dropped)
{
    struct buf in = {0};
    ex(&in, 0x0008, 0x0000, "UL", 4);
    u32(&in, 10);
    ex(&in, 0x0008, 0x0060, "CS", 2);
    put(&in, "MR", 2);
    struct wbuf out;
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&in, 0, &out), 0);
    cr_assert_eq(out.len, 10);
    cr_assert_eq(out.p[2], 0x60);
    wbuf_cleanup(&out);
}

Test(dcm_xcode, refuses_undefined_length_outside_sq_and_un)
{
    struct buf in = {0};
    ex(&in, 0x7FE0, 0x0010, "OB", 0xFFFFFFFF); /* encapsulated: not Explicit VR LE */
    im(&in, 0xFFFE, 0xE000, 0);
    struct wbuf out;
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&in, 0, &out), ERR_MALFORMED);
    wbuf_cleanup(&out);
}

Test(dcm_xcode, refuses_truncation_stray_delimiters_and_overruns)
{
    struct wbuf out;
    struct buf t = {0};
    ex(&t, 0x0008, 0x0060, "CS", 4);
    put(&t, "CT", 2); /* two bytes short */
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&t, 0, &out), ERR_TRUNCATED);
    wbuf_cleanup(&out);

    struct buf d = {0};
    im(&d, 0xFFFE, 0xE00D, 0); /* closes nothing */
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&d, 0, &out), ERR_MALFORMED);
    wbuf_cleanup(&out);

    struct buf o = {0}; /* an item of 4 bytes holding an element of 10 */
    ex(&o, 0x0008, 0x1115, "SQ", 8 + 4);
    im(&o, 0xFFFE, 0xE000, 4);
    ex(&o, 0x0008, 0x0060, "CS", 2);
    put(&o, "CT", 2);
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&o, 0, &out), ERR_MALFORMED);
    wbuf_cleanup(&out);

    struct buf open_sq = {0}; /* an undefined-length sequence never closed */
    ex(&open_sq, 0x0008, 0x1115, "SQ", 0xFFFFFFFF);
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&open_sq, 0, &out), ERR_TRUNCATED);
    wbuf_cleanup(&out);
}

Test(dcm_xcode, caps_nesting)
{
    struct buf in = {0};
    for (unsigned i = 0; i <= DCM_XCODE_DEPTH / 2; i++) {
        ex(&in, 0x0008, 0x1115, "SQ", 0xFFFFFFFF);
        im(&in, 0xFFFE, 0xE000, 0xFFFFFFFF);
    }
    struct wbuf out;
    wbuf_init(&out, 1 << 16);
    cr_assert_eq(xcode(&in, 0, &out), ERR_LIMIT);
    wbuf_cleanup(&out);
}
