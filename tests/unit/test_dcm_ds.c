/* Tests for common/dcm_ds: the dataset element tree. Inputs are built byte by byte here, with
 * an encoder independent of the module's writer, and parsed from guard pages (STYLE.md §10):
 * the valid cases, a cut at every byte offset, every length field at 0 / max / max+1 /
 * undefined, oversized counts and depths, trailing garbage and each rule of PS3.5 the parser
 * enforces. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dcm_ds.h"
#include "guard.h"

/* ---- a byte builder (PS3.5 7.1.2, 7.5) ---- */

struct tb {
    uint8_t *p;
    size_t n, cap;
};

static void tb_put(struct tb *t, const void *b, size_t n)
{
    if (t->n + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n + n)
            cap *= 2;
        t->p = realloc(t->p, cap);
        cr_assert_not_null(t->p);
        t->cap = cap;
    }
    if (n)
        memcpy(t->p + t->n, b, n);
    t->n += n;
}

static void tb_u16(struct tb *t, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    tb_put(t, b, 2);
}

static void tb_u32(struct tb *t, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    tb_put(t, b, 4);
}

static bool long_vr(const char *vr)
{
    static const char *const l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                    "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++) {
        if (memcmp(vr, l[i], 2) == 0)
            return true;
    }
    return false;
}

/* Explicit VR header with a given length field. */
static void ex_hdr(struct tb *t, uint16_t g, uint16_t e, const char *vr, uint32_t len)
{
    tb_u16(t, g);
    tb_u16(t, e);
    tb_put(t, vr, 2);
    if (long_vr(vr)) {
        tb_u16(t, 0);
        tb_u32(t, len);
    } else {
        tb_u16(t, (uint16_t)len);
    }
}

static void ex(struct tb *t, uint16_t g, uint16_t e, const char *vr, const char *v, size_t n)
{
    ex_hdr(t, g, e, vr, (uint32_t)n);
    tb_put(t, v, n);
}

static void im_hdr(struct tb *t, uint16_t g, uint16_t e, uint32_t len)
{
    tb_u16(t, g);
    tb_u16(t, e);
    tb_u32(t, len);
}

static void im(struct tb *t, uint16_t g, uint16_t e, const char *v, size_t n)
{
    im_hdr(t, g, e, (uint32_t)n);
    tb_put(t, v, n);
}

static void tag_len(struct tb *t, uint16_t g, uint16_t e, uint32_t len)
{
    im_hdr(t, g, e, len); /* items and delimiters look the same in both syntaxes */
}

#define UNDEF 0xFFFFFFFFu
#define ITEM(t, len) tag_len((t), 0xFFFE, 0xE000, (len))
#define ITEM_END(t) tag_len((t), 0xFFFE, 0xE00D, 0)
#define SEQ_END(t) tag_len((t), 0xFFFE, 0xE0DD, 0)
#define S(x) (x), (sizeof(x) - 1)

static int parse(const struct tb *t, enum dcm_ts ts, const struct dcm_limits *lim,
                 struct dcm_ds **out)
{
    const uint8_t *g = guard_copy(t->p, t->n);
    int rc = dcm_ds_parse(g, t->n, ts, lim, out);
    guard_free(g, t->n);
    return rc;
}

static void expect_str(const struct dcm_item *it, uint32_t tag, size_t idx, const char *want)
{
    const struct dcm_elem *e = dcm_item_find(it, tag);
    cr_assert_not_null(e, "tag %08x missing", tag);
    struct slice s;
    cr_assert_eq(dcm_elem_str(e, idx, &s), 0, "tag %08x value %zu", tag, idx);
    cr_assert(slice_eq_str(s, want), "tag %08x: got '%.*s' want '%s'", tag, (int)s.len, s.p,
              want);
}

/* The sample identifier, explicit VR, with the offsets where each top-level element ends. */
static struct tb sample_explicit(size_t *ends, size_t *nends)
{
    struct tb t = {0};
    size_t k = 0;
    ex(&t, 0x0008, 0x0005, "CS", S("ISO_IR 100"));
    ends[k++] = t.n;
    ex(&t, 0x0008, 0x0052, "CS", S("STUDY "));
    ends[k++] = t.n;
    ex_hdr(&t, 0x0008, 0x1032, "SQ", UNDEF); /* undefined sequence, undefined item */
    ITEM(&t, UNDEF);
    ex(&t, 0x0008, 0x0100, "SH", S("X1"));
    ex(&t, 0x0008, 0x0102, "SH", S("L "));
    ITEM_END(&t);
    SEQ_END(&t);
    ends[k++] = t.n;
    ex(&t, 0x0010, 0x0010, "PN", S("Doe^J "));
    ends[k++] = t.n;
    ex(&t, 0x0020, 0x000D, "UI", "1.2.3\0", 6);
    ends[k++] = t.n;
    ex(&t, 0x0020, 0x1206, "IS", "", 0);
    ends[k++] = t.n;
    ex(&t, 0x0028, 0x0010, "US", "\x00\x02", 2);
    ends[k++] = t.n;
    ex_hdr(&t, 0x0040, 0xA043, "SQ", 8 + 10); /* defined sequence, defined item */
    ITEM(&t, 10);
    ex(&t, 0x0008, 0x0100, "SH", S("AB"));
    ends[k++] = t.n;
    *nends = k;
    return t;
}

static void check_sample(const struct dcm_ds *ds, bool implicit)
{
    const struct dcm_item *r = dcm_ds_root(ds);
    cr_assert_eq(dcm_item_count(r), 8);
    expect_str(r, DCM_TAG(0x0008, 0x0005), 0, "ISO_IR 100");
    expect_str(r, DCM_TAG(0x0008, 0x0052), 0, "STUDY");
    expect_str(r, DCM_TAG(0x0010, 0x0010), 0, "Doe^J");
    expect_str(r, DCM_TAG(0x0020, 0x000D), 0, "1.2.3");
    cr_assert_eq(dcm_elem_vr(dcm_item_find(r, DCM_TAG(0x0010, 0x0010))), DCM_VR_PN);
    const struct dcm_elem *is = dcm_item_find(r, DCM_TAG(0x0020, 0x1206));
    cr_assert_eq(dcm_elem_vm(is), 0);
    uint64_t u;
    cr_assert_eq(dcm_elem_uint(dcm_item_find(r, DCM_TAG(0x0028, 0x0010)), 0, &u), 0);
    cr_assert_eq(u, 512);
    const struct dcm_elem *sq = dcm_item_find(r, DCM_TAG(0x0008, 0x1032));
    cr_assert(dcm_elem_is_seq(sq));
    cr_assert_eq(dcm_elem_nitems(sq), 1);
    const struct dcm_item *it = dcm_elem_first_item(sq);
    cr_assert_eq(dcm_item_count(it), 2);
    expect_str(it, DCM_TAG(0x0008, 0x0102), 0, "L");
    cr_assert_null(dcm_item_next(it));
    sq = dcm_item_find(r, DCM_TAG(0x0040, 0xA043));
    cr_assert_eq(dcm_elem_nitems(sq), 1);
    expect_str(dcm_elem_first_item(sq), DCM_TAG(0x0008, 0x0100), 0, "AB");
    (void)implicit;
}

Test(dcm_ds, parses_an_explicit_identifier_into_a_tree)
{
    size_t ends[16], n;
    struct tb t = sample_explicit(ends, &n);
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    check_sample(ds, false);
    dcm_ds_free(ds);
    free(t.p);
}

/* The same dataset in Implicit VR: VRs come from the dictionary; unknown tags are UN. */
static struct tb sample_implicit(void)
{
    struct tb t = {0};
    im(&t, 0x0008, 0x0005, S("ISO_IR 100"));
    im(&t, 0x0008, 0x0052, S("STUDY "));
    im_hdr(&t, 0x0008, 0x1032, UNDEF);
    ITEM(&t, UNDEF);
    im(&t, 0x0008, 0x0100, S("X1"));
    im(&t, 0x0008, 0x0102, S("L "));
    ITEM_END(&t);
    SEQ_END(&t);
    im(&t, 0x0009, 0x0010, S("ACME 1.0"));   /* private creator: LO */
    im(&t, 0x0009, 0x1001, "\x01\x02", 2);  /* private element: UN */
    im(&t, 0x0010, 0x0010, S("Doe^J "));
    im(&t, 0x0020, 0x000D, "1.2.3\0", 6);
    im(&t, 0x0020, 0x1206, "", 0);
    im(&t, 0x0028, 0x0010, "\x00\x02", 2);
    im_hdr(&t, 0x0040, 0xA043, 8 + 10);
    ITEM(&t, 10);
    im(&t, 0x0008, 0x0100, S("AB"));
    return t;
}

Test(dcm_ds, parses_implicit_vr_with_the_dictionarys_vrs)
{
    struct tb t = sample_implicit();
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_IMPLICIT_LE, NULL, &ds), 0);
    const struct dcm_item *r = dcm_ds_root(ds);
    cr_assert_eq(dcm_item_count(r), 10);
    cr_assert_eq(dcm_elem_vr(dcm_item_find(r, DCM_TAG(0x0009, 0x0010))), DCM_VR_LO);
    cr_assert_eq(dcm_elem_vr(dcm_item_find(r, DCM_TAG(0x0009, 0x1001))), DCM_VR_UN);
    cr_assert_eq(dcm_elem_vr(dcm_item_find(r, DCM_TAG(0x0020, 0x000D))), DCM_VR_UI);
    cr_assert_eq(dcm_elem_vr(dcm_item_find(r, DCM_TAG(0x0028, 0x0010))), DCM_VR_US);
    expect_str(r, DCM_TAG(0x0010, 0x0010), 0, "Doe^J");
    cr_assert_eq(dcm_elem_nitems(dcm_item_find(r, DCM_TAG(0x0040, 0xA043))), 1);
    dcm_ds_free(ds);
    free(t.p);
}

static void write_ok(const struct dcm_ds *ds, enum dcm_ts ts, struct wbuf *w)
{
    wbuf_init(w, 1u << 24);
    cr_assert_eq(dcm_ds_write(ds, ts, w), 0);
}

/* Undefined lengths and even values everywhere: the writer gives back the very same bytes. */
Test(dcm_ds, writes_back_the_bytes_it_parsed)
{
    struct tb t = {0};
    ex(&t, 0x0008, 0x0052, "CS", S("STUDY "));
    ex_hdr(&t, 0x0008, 0x1032, "SQ", UNDEF);
    ITEM(&t, UNDEF);
    ex(&t, 0x0008, 0x0100, "SH", S("X1"));
    ITEM_END(&t);
    ITEM(&t, UNDEF);
    ITEM_END(&t);
    SEQ_END(&t);
    ex(&t, 0x0010, 0x0010, "PN", S("Doe^J "));
    ex(&t, 0x0010, 0x21B0, "LT", S("line1\nline2 "));
    ex_hdr(&t, 0x0029, 0x1010, "UT", 4);
    tb_put(&t, "abcd", 4);
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    struct wbuf w;
    write_ok(ds, DCM_TS_EXPLICIT_LE, &w);
    cr_assert_eq(w.len, t.n);
    cr_assert_arr_eq(w.p, t.p, t.n);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
    free(t.p);
}

/* Defined lengths come back undefined, and the tree is unchanged, in both syntaxes. */
Test(dcm_ds, write_then_parse_gives_the_same_tree)
{
    size_t ends[16], n;
    struct tb te = sample_explicit(ends, &n);
    struct tb ti = sample_implicit();
    struct tb *ins[2] = {&ti, &te};
    for (int ts = 0; ts < 2; ts++) {
        struct dcm_ds *a = NULL, *b = NULL;
        cr_assert_eq(parse(ins[ts], (enum dcm_ts)ts, NULL, &a), 0);
        struct wbuf w;
        write_ok(a, (enum dcm_ts)ts, &w);
        cr_assert_eq(dcm_ds_parse(w.p, w.len, (enum dcm_ts)ts, NULL, &b), 0);
        if (ts == 1)
            check_sample(b, false);
        struct wbuf w2;
        write_ok(b, (enum dcm_ts)ts, &w2);
        cr_assert_eq(w.len, w2.len);
        cr_assert_arr_eq(w.p, w2.p, w.len);
        wbuf_cleanup(&w);
        wbuf_cleanup(&w2);
        dcm_ds_free(a);
        dcm_ds_free(b);
    }
    free(te.p);
    free(ti.p);
}

/* PS3.5 6.2.2: an explicit UN of undefined length is a sequence whose items are Implicit VR. */
Test(dcm_ds, explicit_un_of_undefined_length_is_a_sequence_in_implicit_vr)
{
    struct tb t = {0};
    ex_hdr(&t, 0x0008, 0x1199, "UN", UNDEF);
    ITEM(&t, UNDEF);
    im(&t, 0x0008, 0x1150, S("1.2.840.10008.5.1.4.1.1.2\0"));
    im(&t, 0x0008, 0x1155, S("1.2.3.4 "));
    ITEM_END(&t);
    SEQ_END(&t);
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    const struct dcm_elem *sq = dcm_item_find(dcm_ds_root(ds), DCM_TAG(0x0008, 0x1199));
    cr_assert(dcm_elem_is_seq(sq));
    cr_assert_eq(dcm_elem_vr(sq), DCM_VR_SQ);
    const struct dcm_item *it = dcm_elem_first_item(sq);
    cr_assert_eq(dcm_elem_vr(dcm_item_find(it, DCM_TAG(0x0008, 0x1155))), DCM_VR_UI);
    expect_str(it, DCM_TAG(0x0008, 0x1150), 0, "1.2.840.10008.5.1.4.1.1.2");
    dcm_ds_free(ds);
    free(t.p);
}

/* In Implicit VR an unknown tag of undefined length is read as a sequence (PS3.5 A.1). */
Test(dcm_ds, implicit_unknown_tag_of_undefined_length_is_a_sequence)
{
    struct tb t = {0};
    im_hdr(&t, 0x0009, 0x1002, UNDEF);
    ITEM(&t, UNDEF);
    im(&t, 0x0010, 0x0020, S("ID1 "));
    ITEM_END(&t);
    SEQ_END(&t);
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_IMPLICIT_LE, NULL, &ds), 0);
    const struct dcm_elem *sq = dcm_item_find(dcm_ds_root(ds), DCM_TAG(0x0009, 0x1002));
    cr_assert(dcm_elem_is_seq(sq));
    dcm_ds_free(ds);
    free(t.p);
}

/* STYLE.md §10: a cut at every offset is an error, except at a top-level element boundary,
 * where it is the dataset of the elements before it. */
Test(dcm_ds, every_cut_is_an_error_or_a_shorter_dataset)
{
    size_t ends[16], nends;
    struct tb t = sample_explicit(ends, &nends);
    for (size_t cut = 0; cut < t.n; cut++) {
        struct tb c = {t.p, cut, cut};
        struct dcm_ds *ds = NULL;
        int rc = parse(&c, DCM_TS_EXPLICIT_LE, NULL, &ds);
        size_t k = 0;
        bool boundary = cut == 0;
        for (; k < nends; k++) {
            if (ends[k] == cut)
                boundary = true;
            if (ends[k] >= cut)
                break;
        }
        if (boundary) {
            cr_assert_eq(rc, 0, "cut at %zu", cut);
            cr_assert_eq(dcm_item_count(dcm_ds_root(ds)), cut == 0 ? 0 : k + 1);
            dcm_ds_free(ds);
        } else {
            cr_assert(rc == ERR_TRUNCATED || rc == ERR_MALFORMED, "cut at %zu: %d", cut, rc);
            cr_assert_null(ds);
        }
    }
    free(t.p);
}

/* One element as the whole dataset, its length field set to 0, the value's length, one more,
 * and the largest value the field holds. */
Test(dcm_ds, every_length_field_at_0_max_max_plus_1_and_all_ones)
{
    struct {
        const char *vr;
        uint32_t len;
        int want;
    } cases[] = {
        {"LO", 0, ERR_TRUNCATED},         /* the 4 value bytes become a cut header */
        {"LO", 4, 0},                     /* the real length */
        {"LO", 5, ERR_MALFORMED},         /* odd */
        {"LO", 6, ERR_TRUNCATED},         /* even, past the end */
        {"LO", 0xFFFF, ERR_MALFORMED},    /* 2-byte maximum: odd */
        {"UT", 0, ERR_TRUNCATED},
        {"UT", 4, 0},
        {"UT", 6, ERR_TRUNCATED},
        {"UT", 0xFFFFFFFE, ERR_TRUNCATED},
        {"UT", UNDEF, ERR_MALFORMED},     /* undefined length on a non-sequence */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tb t = {0};
        ex_hdr(&t, 0x0010, 0x4000, cases[i].vr, cases[i].len);
        tb_put(&t, "ABCD", 4);
        struct dcm_ds *ds = NULL;
        int rc = parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds);
        cr_assert_eq(rc, cases[i].want, "case %zu: %d", i, rc);
        dcm_ds_free(ds);
        free(t.p);
    }
    /* implicit: the 32-bit length field */
    uint32_t lens[] = {0, 4, 5, 6, 0xFFFFFFFE, UNDEF};
    int want[] = {ERR_TRUNCATED, 0, ERR_MALFORMED, ERR_TRUNCATED, ERR_TRUNCATED, ERR_MALFORMED};
    for (size_t i = 0; i < 6; i++) {
        struct tb t = {0};
        im_hdr(&t, 0x0010, 0x0020, lens[i]); /* Patient ID: LO */
        tb_put(&t, "ABCD", 4);
        struct dcm_ds *ds = NULL;
        cr_assert_eq(parse(&t, DCM_TS_IMPLICIT_LE, NULL, &ds), want[i], "implicit case %zu", i);
        dcm_ds_free(ds);
        free(t.p);
    }
}

/* The lengths of a sequence and of an item: 0, exact, one more, undefined without its end. */
Test(dcm_ds, sequence_and_item_lengths_are_checked_against_their_content)
{
    /* item content: (0008,0100) SH "AB" = 10 bytes; item = 8 + 10 */
    struct {
        uint32_t seq, item;
        bool seq_end, item_end;
        int want;
    } cases[] = {
        {18, 10, false, false, 0},
        {0, 10, false, false, ERR_MALFORMED},   /* empty sequence, then an item at top level */
        {19, 10, false, false, ERR_MALFORMED},  /* odd */
        {20, 10, false, false, ERR_TRUNCATED},  /* past the end */
        {18, 0, false, false, ERR_MALFORMED},   /* empty item, then an element inside the SQ */
        {18, 12, false, false, ERR_MALFORMED},  /* item longer than its sequence */
        {UNDEF, 10, false, false, ERR_TRUNCATED}, /* no sequence delimiter */
        {UNDEF, 10, true, false, 0},
        {UNDEF, UNDEF, true, false, ERR_MALFORMED}, /* item delimiter missing: SEQ_END inside */
        {UNDEF, UNDEF, false, false, ERR_TRUNCATED},
        {UNDEF, UNDEF, true, true, 0},
        {18, UNDEF, false, false, ERR_MALFORMED}, /* undefined item cut by its sequence */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tb t = {0};
        ex_hdr(&t, 0x0008, 0x1032, "SQ", cases[i].seq);
        ITEM(&t, cases[i].item);
        ex(&t, 0x0008, 0x0100, "SH", S("AB"));
        if (cases[i].item_end)
            ITEM_END(&t);
        if (cases[i].seq_end)
            SEQ_END(&t);
        struct dcm_ds *ds = NULL;
        int rc = parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds);
        cr_assert_eq(rc, cases[i].want, "case %zu: %d", i, rc);
        dcm_ds_free(ds);
        free(t.p);
    }
}

Test(dcm_ds, trailing_garbage_is_refused)
{
    size_t ends[16], n;
    const char *tails[] = {"\x00", "\x00\x00\x00\x00", "\xFE\xFF\x0D\xE0\x00\x00\x00\x00",
                           "\x08\x00\x20\x00"};
    size_t tlen[] = {1, 4, 8, 4};
    for (size_t i = 0; i < 4; i++) {
        struct tb t = sample_explicit(ends, &n);
        tb_put(&t, tails[i], tlen[i]);
        struct dcm_ds *ds = NULL;
        int rc = parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds);
        cr_assert(rc == ERR_TRUNCATED || rc == ERR_MALFORMED, "tail %zu: %d", i, rc);
        free(t.p);
    }
}

Test(dcm_ds, element_count_over_the_cap_is_err_limit)
{
    struct tb t = {0};
    for (uint16_t e = 1; e <= 100; e++)
        ex(&t, 0x0011, e, "SH", S("AB"));
    struct dcm_limits lim = {1u << 20, 100, 4};
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, &lim, &ds), 0);
    dcm_ds_free(ds);
    lim.max_elems = 99;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, &lim, &ds), ERR_LIMIT);
    lim.max_elems = 100;
    lim.max_bytes = t.n; /* the copy fits, the nodes do not */
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, &lim, &ds), ERR_LIMIT);
    free(t.p);
}

static struct tb nested(unsigned depth)
{
    struct tb t = {0};
    for (unsigned d = 0; d < depth; d++) {
        ex_hdr(&t, 0x0040, 0xA043, "SQ", UNDEF);
        ITEM(&t, UNDEF);
    }
    ex(&t, 0x0008, 0x0100, "SH", S("AB"));
    for (unsigned d = 0; d < depth; d++) {
        ITEM_END(&t);
        SEQ_END(&t);
    }
    return t;
}

Test(dcm_ds, nesting_deeper_than_the_cap_is_err_limit)
{
    struct dcm_limits lim = {1u << 22, 100000, 5};
    struct dcm_ds *ds = NULL;
    struct tb t = nested(5);
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, &lim, &ds), 0);
    dcm_ds_free(ds);
    free(t.p);
    t = nested(6);
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, &lim, &ds), ERR_LIMIT);
    free(t.p);
    t = nested(20000); /* far deeper than any stack would take if we did not stop */
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds), ERR_LIMIT);
    lim.max_depth = 1000; /* clamped to DCM_MAX_DEPTH_HARD */
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, &lim, &ds), ERR_LIMIT);
    free(t.p);
}

static int parse1(void (*build)(struct tb *), enum dcm_ts ts)
{
    struct tb t = {0};
    build(&t);
    struct dcm_ds *ds = NULL;
    int rc = parse(&t, ts, NULL, &ds);
    dcm_ds_free(ds);
    free(t.p);
    return rc;
}

static void b_descending(struct tb *t)
{
    ex(t, 0x0010, 0x0020, "LO", S("ID"));
    ex(t, 0x0010, 0x0010, "PN", S("AB"));
}
static void b_duplicate(struct tb *t)
{
    ex(t, 0x0010, 0x0020, "LO", S("ID"));
    ex(t, 0x0010, 0x0020, "LO", S("ID"));
}
static void b_descending_in_item(struct tb *t)
{
    ex_hdr(t, 0x0008, 0x1032, "SQ", UNDEF);
    ITEM(t, UNDEF);
    ex(t, 0x0008, 0x0102, "SH", S("L "));
    ex(t, 0x0008, 0x0100, "SH", S("X1"));
    ITEM_END(t);
    SEQ_END(t);
}
static void b_meta(struct tb *t)
{
    ex(t, 0x0002, 0x0010, "UI", S("1.2.840.10008.1.2.1\0"));
}
static void b_command(struct tb *t)
{
    ex(t, 0x0000, 0x0100, "US", "\x20\x00", 2);
}
static void b_odd(struct tb *t)
{
    ex(t, 0x0010, 0x0020, "LO", S("ID1"));
}
static void b_undef_lo(struct tb *t)
{
    ex_hdr(t, 0x0010, 0x0020, "LO", 0xFFFF);
}
static void b_undef_ob(struct tb *t)
{
    ex_hdr(t, 0x7FE0, 0x0010, "OB", UNDEF);
    ITEM(t, 0);
    SEQ_END(t);
}
static void b_item_top(struct tb *t)
{
    ITEM(t, 0);
}
static void b_seq_end_top(struct tb *t)
{
    SEQ_END(t);
}
static void b_item_end_top(struct tb *t)
{
    ITEM_END(t);
}
static void b_seq_end_in_defined(struct tb *t)
{
    ex_hdr(t, 0x0008, 0x1032, "SQ", 8);
    SEQ_END(t);
}
static void b_item_end_in_defined(struct tb *t)
{
    ex_hdr(t, 0x0008, 0x1032, "SQ", 16);
    ITEM(t, 8);
    ITEM_END(t);
}
static void b_delim_with_length(struct tb *t)
{
    ex_hdr(t, 0x0008, 0x1032, "SQ", UNDEF);
    tag_len(t, 0xFFFE, 0xE0DD, 2);
    tb_put(t, "AB", 2);
}
static void b_element_in_seq(struct tb *t)
{
    ex_hdr(t, 0x0008, 0x1032, "SQ", UNDEF);
    ex(t, 0x0008, 0x0100, "SH", S("X1"));
}
static void b_bad_vr(struct tb *t)
{
    ex(t, 0x0010, 0x0020, "ZZ", S("ID"));
}
static void b_lower_vr(struct tb *t)
{
    ex(t, 0x0010, 0x0020, "lo", S("ID"));
}
static void b_ul_2(struct tb *t)
{
    ex(t, 0x0008, 0x0000, "UL", "\x01\x00", 2);
}
static void b_fd_4(struct tb *t)
{
    ex(t, 0x0018, 0x9087, "FD", "\x01\x00\x00\x00", 4);
}
static void b_group_ffff(struct tb *t)
{
    ex(t, 0xFFFF, 0x0010, "LO", S("ID"));
}
static void b_fffe_other(struct tb *t)
{
    tag_len(t, 0xFFFE, 0x0010, 0);
}

Test(dcm_ds, refuses_what_ps3_5_forbids)
{
    struct {
        void (*build)(struct tb *);
        const char *what;
    } bad[] = {
        {b_descending, "descending tags"},
        {b_duplicate, "a tag twice"},
        {b_descending_in_item, "descending tags in an item"},
        {b_meta, "group 0002 in a dataset"},
        {b_command, "group 0000 in a dataset"},
        {b_odd, "an odd length"},
        {b_undef_lo, "0xFFFF on a 2-byte length (odd)"},
        {b_undef_ob, "undefined length on OB (encapsulated pixel data)"},
        {b_item_top, "an item at top level"},
        {b_seq_end_top, "a sequence delimiter at top level"},
        {b_item_end_top, "an item delimiter at top level"},
        {b_seq_end_in_defined, "a sequence delimiter in a defined-length sequence"},
        {b_item_end_in_defined, "an item delimiter in a defined-length item"},
        {b_delim_with_length, "a delimiter with a non-zero length"},
        {b_element_in_seq, "an element directly in a sequence"},
        {b_bad_vr, "an unknown VR"},
        {b_lower_vr, "a lower-case VR"},
        {b_ul_2, "UL of 2 bytes"},
        {b_fd_4, "FD of 4 bytes"},
        {b_group_ffff, "group FFFF"},
        {b_fffe_other, "an unknown FFFE tag"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse1(bad[i].build, DCM_TS_EXPLICIT_LE), ERR_MALFORMED, "%s", bad[i].what);
}

static void b_im_undef_known(struct tb *t)
{
    im_hdr(t, 0x0010, 0x0010, UNDEF); /* PN */
}
static void b_im_undef_creator(struct tb *t)
{
    im_hdr(t, 0x0009, 0x0010, UNDEF); /* private creator: LO */
}

Test(dcm_ds, implicit_undefined_length_only_on_sequences_and_unknown_tags)
{
    cr_assert_eq(parse1(b_im_undef_known, DCM_TS_IMPLICIT_LE), ERR_MALFORMED);
    cr_assert_eq(parse1(b_im_undef_creator, DCM_TS_IMPLICIT_LE), ERR_MALFORMED);
}

Test(dcm_ds, empty_input_is_an_empty_dataset)
{
    struct tb t = {0};
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_IMPLICIT_LE, NULL, &ds), 0);
    cr_assert_eq(dcm_item_count(dcm_ds_root(ds)), 0);
    cr_assert_null(dcm_item_first(dcm_ds_root(ds)));
    dcm_ds_free(ds);
}

/* ---- accessors ---- */

Test(dcm_ds, values_split_on_backslash_and_lose_their_padding)
{
    struct tb t = {0};
    ex(&t, 0x0008, 0x0054, "AE", S("  AE1 "));
    ex(&t, 0x0008, 0x0061, "CS", S("CT\\MR "));
    ex(&t, 0x0008, 0x0062, "UI", "1.2\\1.3\0", 8);
    ex(&t, 0x0010, 0x0020, "LO", S(" ID7  "));
    ex(&t, 0x0010, 0x4000, "LT", S("  a\\b "));
    ex(&t, 0x0020, 0x0010, "SH", S("    "));
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    const struct dcm_item *r = dcm_ds_root(ds);
    expect_str(r, DCM_TAG(0x0008, 0x0054), 0, "AE1");
    cr_assert_eq(dcm_elem_vm(dcm_item_find(r, DCM_TAG(0x0008, 0x0061))), 2);
    expect_str(r, DCM_TAG(0x0008, 0x0061), 0, "CT");
    expect_str(r, DCM_TAG(0x0008, 0x0061), 1, "MR");
    expect_str(r, DCM_TAG(0x0008, 0x0062), 1, "1.3");
    expect_str(r, DCM_TAG(0x0010, 0x0020), 0, "ID7");
    cr_assert_eq(dcm_elem_vm(dcm_item_find(r, DCM_TAG(0x0010, 0x4000))), 1);
    expect_str(r, DCM_TAG(0x0010, 0x4000), 0, "  a\\b"); /* LT: leading spaces count */
    const struct dcm_elem *sh = dcm_item_find(r, DCM_TAG(0x0020, 0x0010));
    cr_assert_eq(dcm_elem_vm(sh), 0);
    struct slice s;
    cr_assert_eq(dcm_elem_str(sh, 0, &s), ERR_NOTFOUND);
    cr_assert_eq(dcm_item_str(r, DCM_TAG(0x0020, 0x0010), &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_eq(dcm_item_str(r, DCM_TAG(0x0020, 0x0011), &s), ERR_NOTFOUND);
    char buf[4];
    cr_assert_eq(dcm_elem_cstr(dcm_item_find(r, DCM_TAG(0x0008, 0x0054)), 0, buf, 4), 0);
    cr_assert_str_eq(buf, "AE1");
    cr_assert_eq(dcm_elem_cstr(dcm_item_find(r, DCM_TAG(0x0010, 0x0020)), 0, buf, 3),
                 ERR_LIMIT);
    dcm_ds_free(ds);
    free(t.p);
}

Test(dcm_ds, numbers_read_from_binary_and_integer_string_vrs)
{
    struct tb t = {0};
    ex(&t, 0x0008, 0x1197, "US", "\x10\x01\x00\x80", 4);
    ex(&t, 0x0018, 0x0088, "SS", "\xFE\xFF", 2);
    ex(&t, 0x0020, 0x0011, "IS", S("+12 "));
    ex(&t, 0x0020, 0x0012, "IS", S("-5"));
    ex(&t, 0x0020, 0x0013, "IS", S("1x"));
    ex(&t, 0x0028, 0x0008, "UL", "\xFF\xFF\xFF\xFF", 4);
    ex(&t, 0x0028, 0x0100, "SL", "\x00\x00\x00\x80", 4);
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    const struct dcm_item *r = dcm_ds_root(ds);
    uint64_t u;
    int64_t s;
    const struct dcm_elem *us = dcm_item_find(r, DCM_TAG(0x0008, 0x1197));
    cr_assert_eq(dcm_elem_vm(us), 2);
    cr_assert_eq(dcm_elem_uint(us, 0, &u), 0);
    cr_assert_eq(u, 0x0110);
    cr_assert_eq(dcm_elem_uint(us, 1, &u), 0);
    cr_assert_eq(u, 0x8000);
    cr_assert_eq(dcm_elem_uint(us, 2, &u), ERR_NOTFOUND);
    cr_assert_eq(dcm_elem_int(dcm_item_find(r, DCM_TAG(0x0018, 0x0088)), 0, &s), 0);
    cr_assert_eq(s, -2);
    cr_assert_eq(dcm_elem_uint(dcm_item_find(r, DCM_TAG(0x0018, 0x0088)), 0, &u), ERR_MISMATCH);
    cr_assert_eq(dcm_elem_uint(dcm_item_find(r, DCM_TAG(0x0020, 0x0011)), 0, &u), 0);
    cr_assert_eq(u, 12);
    cr_assert_eq(dcm_elem_int(dcm_item_find(r, DCM_TAG(0x0020, 0x0012)), 0, &s), 0);
    cr_assert_eq(s, -5);
    cr_assert_eq(dcm_elem_int(dcm_item_find(r, DCM_TAG(0x0020, 0x0013)), 0, &s), ERR_MALFORMED);
    cr_assert_eq(dcm_elem_uint(dcm_item_find(r, DCM_TAG(0x0028, 0x0008)), 0, &u), 0);
    cr_assert_eq(u, 0xFFFFFFFFu);
    cr_assert_eq(dcm_elem_int(dcm_item_find(r, DCM_TAG(0x0028, 0x0100)), 0, &s), 0);
    cr_assert_eq(s, INT32_MIN);
    struct slice sl;
    cr_assert_eq(dcm_elem_str(us, 0, &sl), ERR_MISMATCH);
    dcm_ds_free(ds);
    free(t.p);
}

/* ---- building and writing ---- */

Test(dcm_ds, builder_keeps_ascending_order_and_refuses_duplicates)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0020, 0x000D), DCM_VR_UI, "1.2.3"), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0008, 0x0052), DCM_VR_CS, "STUDY"), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0010, 0x0010), DCM_VR_PN, "Doe^J"), 0);
    cr_assert_eq(dcm_ds_add_u16(ds, r, DCM_TAG(0x0008, 0x1197), 0x0112), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0010, 0x0010), DCM_VR_PN, "X"), ERR_MALFORMED);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0002, 0x0010), DCM_VR_UI, "1.2"),
                 ERR_MALFORMED);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0xFFFE, 0xE000), DCM_VR_UI, "1.2"),
                 ERR_MALFORMED);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0010, 0x0011), 0x5A5A, "1"), ERR_UNSUPPORTED);
    uint32_t want[] = {DCM_TAG(0x0008, 0x0052), DCM_TAG(0x0008, 0x1197), DCM_TAG(0x0010, 0x0010),
                       DCM_TAG(0x0020, 0x000D)};
    size_t i = 0;
    for (const struct dcm_elem *e = dcm_item_first(r); e; e = dcm_elem_next(e))
        cr_assert_eq(dcm_elem_tag(e), want[i++]);
    cr_assert_eq(i, 4);
    dcm_ds_free(ds);
}

/* PS3.5 6.2: what each VR accepts when we write it. */
Test(dcm_ds, builder_validates_values_per_vr)
{
    static const char s64[] = "0123456789012345678901234567890123456789012345678901234567890123";
    char big[1100];
    memset(big, 'x', sizeof(big));
    struct {
        uint16_t vr;
        const char *v;
        size_t n; /* 0: strlen */
        bool ok;
    } cases[] = {
        {DCM_VR_AE, "STORESCP", 0, true},
        {DCM_VR_AE, "0123456789ABCDEF", 0, true},
        {DCM_VR_AE, "0123456789ABCDEFG", 0, false}, /* 17 */
        {DCM_VR_AE, "    ", 0, false},              /* only spaces */
        {DCM_VR_AE, "A\\B", 0, true},                /* two values */
        {DCM_VR_CS, "ORIGINAL\\PRIMARY", 0, true},
        {DCM_VR_CS, "lower", 0, false},
        {DCM_VR_CS, "0123456789ABCDEFG", 0, false},
        {DCM_VR_CS, "A-B", 0, false},
        {DCM_VR_DA, "20200229", 0, true},
        {DCM_VR_DA, "20190229", 0, false},
        {DCM_VR_DA, "20200230", 0, false},
        {DCM_VR_DA, "2020010", 0, false},
        {DCM_VR_DA, "2020.01.01", 0, false},
        {DCM_VR_TM, "235960", 0, true},
        {DCM_VR_TM, "2400", 0, false},
        {DCM_VR_TM, "1230.5", 0, false},
        {DCM_VR_TM, "123000.123456", 0, true},
        {DCM_VR_TM, "123000.1234567", 0, false},
        {DCM_VR_TM, "12:30:00", 0, false},
        {DCM_VR_DT, "2020", 0, true},
        {DCM_VR_DT, "20201301", 0, false},
        {DCM_VR_DT, "20200101120000.5+0100", 0, true},
        {DCM_VR_DT, "20200101120000-0500", 0, true},
        {DCM_VR_DT, "20200101120000+1500", 0, false},
        {DCM_VR_UI, "1.2.840.10008.1.2.1", 0, true},
        {DCM_VR_UI, "1.02", 0, false},
        {DCM_VR_UI, "1..2", 0, false},
        {DCM_VR_UI, "1.2.", 0, false},
        {DCM_VR_UI, s64, 64, false}, /* digits only is fine, but 64 "0..." has a leading 0 */
        {DCM_VR_UI, "1.2\\1.3", 0, true},
        {DCM_VR_IS, "2147483647", 0, true},
        {DCM_VR_IS, "2147483648", 0, false},
        {DCM_VR_IS, "-2147483648", 0, true},
        {DCM_VR_IS, " 12 ", 0, true},
        {DCM_VR_IS, "1.0", 0, false},
        {DCM_VR_DS, "1.5e3", 0, true},
        {DCM_VR_DS, "-.5", 0, true},
        {DCM_VR_DS, ".", 0, false},
        {DCM_VR_DS, "abc", 0, false},
        {DCM_VR_AS, "030Y", 0, true},
        {DCM_VR_AS, "30Y", 0, false},
        {DCM_VR_AS, "030X", 0, false},
        {DCM_VR_SH, "0123456789ABCDEF", 0, true},
        {DCM_VR_SH, "0123456789ABCDEFG", 0, false},
        {DCM_VR_SH, "a\nb", 0, false},
        {DCM_VR_LO, s64, 64, true},
        {DCM_VR_LO, big, 65, false},
        {DCM_VR_LO, "caf\xc3\xa9", 0, true},
        {DCM_VR_LO, "esc\x1b(B", 0, false},
        {DCM_VR_PN, "Doe^John^M^Dr^Jr", 0, true},
        {DCM_VR_PN, "A^B^C^D^E^F", 0, false},
        {DCM_VR_PN, "A=B=C", 0, true},
        {DCM_VR_PN, "A=B=C=D", 0, false},
        {DCM_VR_PN, big, 64, true},
        {DCM_VR_PN, big, 65, false},
        {DCM_VR_LT, "line1\r\nline2\tx\\y", 0, true},
        {DCM_VR_ST, big, 1024, true},
        {DCM_VR_ST, big, 1025, false},
        {DCM_VR_UR, "http://x/y", 0, true},
        {DCM_VR_UR, " http://x", 0, false},
        {DCM_VR_UT, big, 1100, true},
        {DCM_VR_UC, "a\\b", 0, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dcm_ds *ds = dcm_ds_new(NULL);
        size_t n = cases[i].n ? cases[i].n : strlen(cases[i].v);
        int rc = dcm_ds_add_str(ds, dcm_ds_root_mut(ds), DCM_TAG(0x0011, 0x1010), cases[i].vr,
                                cases[i].v, n);
        cr_assert_eq(rc == 0, cases[i].ok, "case %zu (%.20s): %d", i, cases[i].v, rc);
        if (!cases[i].ok)
            cr_assert_eq(rc, ERR_MALFORMED);
        dcm_ds_free(ds);
    }
}

/* 64 characters of two bytes each: too long for LO unless the dataset declares UTF-8. */
Test(dcm_ds, characters_count_as_code_points_under_iso_ir_192)
{
    char v[128];
    for (int i = 0; i < 64; i++) {
        v[2 * i] = (char)0xC3;
        v[2 * i + 1] = (char)0xA9;
    }
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_str(ds, r, DCM_TAG(0x0010, 0x0020), DCM_VR_LO, v, 128),
                 ERR_MALFORMED);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0008, 0x0005), DCM_VR_CS, "ISO_IR 192"), 0);
    cr_assert_eq(dcm_ds_add_str(ds, r, DCM_TAG(0x0010, 0x0020), DCM_VR_LO, v, 128), 0);
    dcm_ds_free(ds);
}

Test(dcm_ds, writer_pads_per_vr_and_picks_the_header_form)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0008, 0x0016), DCM_VR_UI, "1.2.3"), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0008, 0x0052), DCM_VR_CS, "IMAGE"), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0008, 0x0119), DCM_VR_UC, "abc"), 0);
    cr_assert_eq(dcm_ds_add_raw(ds, r, DCM_TAG(0x0009, 0x1001), DCM_VR_OB, "\x01", 1), 0);
    struct wbuf w;
    write_ok(ds, DCM_TS_EXPLICIT_LE, &w);
    static const uint8_t want[] = {
        0x08, 0x00, 0x16, 0x00, 'U', 'I', 6, 0, '1', '.', '2', '.', '3', 0x00,
        0x08, 0x00, 0x52, 0x00, 'C', 'S', 6, 0, 'I', 'M', 'A', 'G', 'E', ' ',
        0x08, 0x00, 0x19, 0x01, 'U', 'C', 0, 0, 4, 0, 0, 0, 'a', 'b', 'c', ' ',
        0x09, 0x00, 0x01, 0x10, 'O', 'B', 0, 0, 2, 0, 0, 0, 0x01, 0x00,
    };
    cr_assert_eq(w.len, sizeof(want));
    cr_assert_arr_eq(w.p, want, sizeof(want));
    wbuf_reset(&w);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_IMPLICIT_LE, &w), 0);
    static const uint8_t want_im[] = {0x08, 0x00, 0x16, 0x00, 6, 0, 0, 0,
                                      '1',  '.',  '2',  '.',  '3', 0x00};
    cr_assert_arr_eq(w.p, want_im, sizeof(want_im));
    cr_assert_eq(w.len, 14 + 14 + 12 + 10);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
}

/* PS3.5 7.1.2: a 2-byte length field holds at most 0xFFFE once padded to even. */
Test(dcm_ds, a_value_too_long_for_a_two_byte_length_fails_to_write)
{
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_raw(ds, r, DCM_TAG(0x0010, 0x0020), DCM_VR_LO, big, 0xFFFE), 0);
    struct wbuf w;
    write_ok(ds, DCM_TS_EXPLICIT_LE, &w);
    cr_assert_eq(w.len, 8 + 0xFFFE);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
    ds = dcm_ds_new(NULL);
    r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_raw(ds, r, DCM_TAG(0x0010, 0x0020), DCM_VR_LO, big, 0xFFFF), 0);
    wbuf_init(&w, 1u << 20);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_EXPLICIT_LE, &w), ERR_LIMIT);
    wbuf_cleanup(&w);
    /* Implicit VR has a 32-bit length: the same element is fine */
    wbuf_init(&w, 1u << 20);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_IMPLICIT_LE, &w), ERR_LIMIT, "still LO: refused");
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
    ds = dcm_ds_new(NULL);
    r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_raw(ds, r, DCM_TAG(0x0010, 0x21B0), DCM_VR_UT, big, 70000), 0);
    wbuf_init(&w, 1u << 20);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_EXPLICIT_LE, &w), 0);
    cr_assert_eq(w.len, 12 + 70000);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
    free(big);
}

Test(dcm_ds, writer_reports_the_output_cap)
{
    size_t ends[16], n;
    struct tb t = sample_explicit(ends, &n);
    struct dcm_ds *ds = NULL;
    cr_assert_eq(parse(&t, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    struct wbuf w;
    wbuf_init(&w, 16);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_EXPLICIT_LE, &w), ERR_LIMIT);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
    free(t.p);
}

/* Storage Commitment's shape (PS3.4 J.3.2): a sequence of items built and read back. */
Test(dcm_ds, sequences_build_copy_and_read_back)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    struct dcm_elem *seq = NULL;
    cr_assert_eq(dcm_ds_add_cstr(ds, r, DCM_TAG(0x0008, 0x1195), DCM_VR_UI, "1.2.3.4"), 0);
    cr_assert_eq(dcm_ds_add_seq(ds, r, DCM_TAG(0x0008, 0x1199), &seq), 0);
    for (int i = 0; i < 3; i++) {
        struct dcm_item *it = NULL;
        char uid[32];
        snprintf(uid, sizeof uid, "1.2.3.%d", i + 1);
        cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);
        cr_assert_eq(dcm_ds_add_cstr(ds, it, DCM_TAG(0x0008, 0x1155), DCM_VR_UI, uid), 0);
        cr_assert_eq(dcm_ds_add_cstr(ds, it, DCM_TAG(0x0008, 0x1150), DCM_VR_UI,
                                     "1.2.840.10008.5.1.4.1.1.2"),
                     0);
    }
    struct dcm_ds *copy = dcm_ds_new(NULL);
    cr_assert_eq(dcm_ds_copy_elem(copy, dcm_ds_root_mut(copy),
                                  dcm_item_find(dcm_ds_root(ds), DCM_TAG(0x0008, 0x1199))),
                 0);
    for (int ts = 0; ts < 2; ts++) {
        struct wbuf w;
        write_ok(copy, (enum dcm_ts)ts, &w);
        struct dcm_ds *back = NULL;
        cr_assert_eq(dcm_ds_parse(w.p, w.len, (enum dcm_ts)ts, NULL, &back), 0);
        const struct dcm_elem *s = dcm_item_find(dcm_ds_root(back), DCM_TAG(0x0008, 0x1199));
        cr_assert_eq(dcm_elem_nitems(s), 3);
        int i = 0;
        for (const struct dcm_item *it = dcm_elem_first_item(s); it; it = dcm_item_next(it)) {
            char want[32];
            snprintf(want, sizeof want, "1.2.3.%d", ++i);
            expect_str(it, DCM_TAG(0x0008, 0x1155), 0, want);
        }
        dcm_ds_free(back);
        wbuf_cleanup(&w);
    }
    dcm_ds_free(copy);
    dcm_ds_free(ds);
}

Test(dcm_ds, builder_stops_at_the_depth_and_element_caps)
{
    struct dcm_limits lim = {1u << 20, 5, 2};
    struct dcm_ds *ds = dcm_ds_new(&lim);
    struct dcm_item *it = dcm_ds_root_mut(ds);
    struct dcm_elem *seq = NULL;
    cr_assert_eq(dcm_ds_add_seq(ds, it, DCM_TAG(0x0040, 0xA043), &seq), 0); /* 1 */
    cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);                         /* 2: depth 1 */
    cr_assert_eq(dcm_ds_add_seq(ds, it, DCM_TAG(0x0040, 0xA043), &seq), 0); /* 3 */
    cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);                         /* 4: depth 2 */
    cr_assert_eq(dcm_ds_add_seq(ds, it, DCM_TAG(0x0040, 0xA043), &seq), ERR_LIMIT);
    cr_assert_eq(dcm_ds_add_cstr(ds, it, DCM_TAG(0x0008, 0x0100), DCM_VR_SH, "A"), 0); /* 5 */
    cr_assert_eq(dcm_ds_add_cstr(ds, it, DCM_TAG(0x0008, 0x0102), DCM_VR_SH, "B"), ERR_LIMIT);
    struct dcm_elem *notseq = NULL;
    (void)notseq;
    dcm_ds_free(ds);
}

/* A sequence under a tag the dictionary calls LO (or a value under an SQ tag) is fine in
 * Explicit VR but cannot be written in Implicit VR: no reader could parse it back. */
Test(dcm_ds, implicit_vr_refuses_what_the_dictionary_contradicts)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    struct dcm_elem *seq = NULL;
    cr_assert_eq(dcm_ds_add_seq(ds, r, DCM_TAG(0x0008, 0x1030), &seq), 0); /* LO */
    struct wbuf w;
    write_ok(ds, DCM_TS_EXPLICIT_LE, &w);
    wbuf_reset(&w);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_IMPLICIT_LE, &w), ERR_UNSUPPORTED);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
    ds = dcm_ds_new(NULL);
    r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_raw(ds, r, DCM_TAG(0x0008, 0x1032), DCM_VR_LO, "AB", 2), 0); /* SQ */
    wbuf_init(&w, 1024);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_IMPLICIT_LE, &w), ERR_UNSUPPORTED);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
    /* unknown and private tags may hold sequences in Implicit VR */
    ds = dcm_ds_new(NULL);
    r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_seq(ds, r, DCM_TAG(0x0009, 0x1010), &seq), 0);
    write_ok(ds, DCM_TS_IMPLICIT_LE, &w);
    wbuf_cleanup(&w);
    dcm_ds_free(ds);
}
