/* Tests for common/dcm_match: PS3.4 C.2.2.2 matching of candidate entities against a query, with
 * tables taken from the standard's own examples where it gives them (C.2.2.2.1.3 notes,
 * C.2.2.2.4, C.2.2.2.5.4 note, C.2.2.2.6, C.2.2.3), and the response identifier of
 * C.4.1.1.3.2. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/dcm_match.h"

#define T(g, e) DCM_TAG(0x##g, 0x##e)

struct kv {
    uint32_t tag;
    uint16_t vr;
    const char *v;
};

static struct dcm_ds *mk(const struct kv *kv, size_t n)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    cr_assert_not_null(ds);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(dcm_ds_add_raw(ds, dcm_ds_root_mut(ds), kv[i].tag, kv[i].vr, kv[i].v,
                                    strlen(kv[i].v)),
                     0, "%08x", kv[i].tag);
    return ds;
}

static struct dcm_query *query(const struct kv *kv, size_t n, bool combined)
{
    struct dcm_ds *ds = mk(kv, n);
    struct dcm_query_opts o = {DCM_QR_STUDY_ROOT, DCM_QOP_FIND, combined, 0, 0};
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    int rc = dcm_query_parse(ds, &o, &q, &err);
    cr_assert_eq(rc, 0, "query: %d (reason %d)", rc, err.reason);
    dcm_ds_free(ds);
    return q;
}

/* One key at STUDY level (or the given level) against one candidate value. */
static bool match1(uint32_t tag, uint16_t vr, const char *key, const char *cand, unsigned flags,
                   enum dcm_charset qcs, enum dcm_charset ccs)
{
    struct kv qkv[3];
    size_t n = 0;
    if (qcs == DCM_CS_LATIN1)
        qkv[n++] = (struct kv){T(0008, 0005), DCM_VR_CS, "ISO_IR 100"};
    qkv[n++] = (struct kv){T(0008, 0052), DCM_VR_CS, "STUDY "};
    qkv[n++] = (struct kv){tag, vr, key};
    struct dcm_query *q = query(qkv, n, false);
    struct dcm_ds *c = dcm_ds_new(NULL);
    if (cand)
        cr_assert_eq(dcm_ds_add_raw(c, dcm_ds_root_mut(c), tag, vr, cand, strlen(cand)), 0);
    struct dcm_match_opts o = {flags, ccs, NULL};
    bool m = dcm_match(q, dcm_ds_root(c), &o);
    dcm_ds_free(c);
    dcm_query_free(q);
    return m;
}

struct row {
    uint32_t tag;
    uint16_t vr;
    const char *key, *cand; /* cand NULL: the candidate lacks the attribute */
    bool want;
};

static void table(const struct row *rows, size_t n, unsigned flags)
{
    for (size_t i = 0; i < n; i++) {
        bool got = match1(rows[i].tag, rows[i].vr, rows[i].key, rows[i].cand, flags,
                          DCM_CS_DEFAULT, DCM_CS_UTF8);
        cr_assert_eq(got, rows[i].want, "row %zu: key '%s' cand '%s'", i, rows[i].key,
                     rows[i].cand ? rows[i].cand : "(absent)");
    }
}

#define PN T(0010, 0010)
#define PID T(0010, 0020)
#define ACC T(0008, 0050)
#define SUID T(0020, 000D)
#define SDATE T(0008, 0020)
#define STIME T(0008, 0030)
#define MODS T(0008, 0061)
#define DESC T(0008, 1030)
#define NSER T(0020, 1206)
#define DTT T(0018, 9074) /* a DT attribute the dictionary does not know: a study key here */

/* C.2.2.2.1: exact, case-sensitive, after the VR's insignificant padding. */
Test(dcm_match, single_value_matching)
{
    static const struct row rows[] = {
        {ACC, DCM_VR_SH, "A1", "A1", true},
        {ACC, DCM_VR_SH, "A1", "  A1  ", true}, /* SH: leading and trailing spaces */
        {ACC, DCM_VR_SH, "A1", "a1", false},
        {ACC, DCM_VR_SH, "A1", "A12", false},
        {ACC, DCM_VR_SH, "A1", "A", false},
        {PN, DCM_VR_PN, "Doe^John", "Doe^John ", true},
        {PN, DCM_VR_PN, "Doe^John", "DOE^JOHN", false}, /* literal, case-sensitive */
        {PN, DCM_VR_PN, "Doe^John", " Doe^John", false}, /* PN: leading spaces count */
        /* C.2.2.2.1.1 note: components are not matched separately */
        {PN, DCM_VR_PN, "Wang^XiaoDong", "Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1",
         false},
        {PN, DCM_VR_PN, "a", "\xc3\xa0", false}, /* not accent-insensitive */
        {SUID, DCM_VR_UI, "1.2.3", "1.2.3\0", true},
        {SUID, DCM_VR_UI, "1.2.3", "1.2.30", false},
        {DESC, DCM_VR_LO, "Head", "Head", true},
        {DESC, DCM_VR_LO, "Head", "HEAD", false},
        {NSER, DCM_VR_IS, "12", " 12 ", true},
        {NSER, DCM_VR_IS, "12", "012", false}, /* compared as text */
    };
    table(rows, sizeof(rows) / sizeof(rows[0]), 0);
}

Test(dcm_match, pn_case_insensitivity_is_a_choice)
{
    cr_assert(match1(PN, DCM_VR_PN, "Doe^John", "DOE^JOHN", DCM_MATCH_PN_ICASE, DCM_CS_DEFAULT,
                     DCM_CS_UTF8));
    cr_assert(match1(PN, DCM_VR_PN, "doe*", "DOE^JOHN", DCM_MATCH_PN_ICASE, DCM_CS_DEFAULT,
                     DCM_CS_UTF8));
    /* only PN: an LO stays case-sensitive */
    cr_assert(!match1(DESC, DCM_VR_LO, "head", "HEAD", DCM_MATCH_PN_ICASE, DCM_CS_DEFAULT,
                      DCM_CS_UTF8));
}

/* C.2.2.2.4: '*' any run (also none), '?' exactly one character. */
Test(dcm_match, wild_card_matching)
{
    static const struct row rows[] = {
        {PN, DCM_VR_PN, "HA*", "HALL", true},
        {PN, DCM_VR_PN, "HA*", "HA", true},
        {PN, DCM_VR_PN, "HA*", "HXA", false},
        {PN, DCM_VR_PN, "M?NROE", "MONROE", true},
        {PN, DCM_VR_PN, "M?NROE", "MNROE", false},
        {PN, DCM_VR_PN, "M?NROE", "MOONROE", false},
        {PN, DCM_VR_PN, "*son", "Johnson", true},
        {PN, DCM_VR_PN, "*son", "Johnsons", false},
        {PN, DCM_VR_PN, "a*b*c", "aXbYc", true},
        {PN, DCM_VR_PN, "a*b*c", "abc", true},
        {PN, DCM_VR_PN, "a*b*c", "aXbY", false},
        {PN, DCM_VR_PN, "*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        {PN, DCM_VR_PN, "?", "\xc3\xa9", true},   /* one character, two bytes */
        {PN, DCM_VR_PN, "??", "\xc3\xa9", false},
        {PN, DCM_VR_PN, "*Wang^XiaoDong*",
         "Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1", true}, /* C.2.2.2.1.1 note */
        {PN, DCM_VR_PN, "ha*", "HALL", false}, /* case-sensitive by default */
        {PN, DCM_VR_PN, "**", "", false},      /* an empty candidate matches only universal */
        {PN, DCM_VR_PN, "*", NULL, true},      /* "*" is universal (note 1) */
        {MODS, DCM_VR_CS, "C?", "CT", true},   /* wild cards in CS too */
        {DESC, DCM_VR_LO, "*Chest*", "CT Chest w/o", true},
    };
    table(rows, sizeof(rows) / sizeof(rows[0]), 0);
}

/* C.2.2.2.5 and C.2.2.2.1.3 notes: dates and times by meaning. */
Test(dcm_match, range_and_date_time_matching)
{
    static const struct row rows[] = {
        {SDATE, DCM_VR_DA, "20200101-20201231", "20200101", true},
        {SDATE, DCM_VR_DA, "20200101-20201231", "20201231", true},
        {SDATE, DCM_VR_DA, "20200101-20201231", "20191231", false},
        {SDATE, DCM_VR_DA, "20200101-20201231", "20210101", false},
        {SDATE, DCM_VR_DA, "-20200101", "19000101", true},
        {SDATE, DCM_VR_DA, "-20200101", "20200102", false},
        {SDATE, DCM_VR_DA, "20200101-", "29991231", true},
        {SDATE, DCM_VR_DA, "20200101-", "20191231", false},
        {SDATE, DCM_VR_DA, "20200101", "20200101", true},
        {SDATE, DCM_VR_DA, "20200101", "20200102", false},
        {SDATE, DCM_VR_DA, "20200101-", "2020.01.05", false}, /* unreadable candidate */
        {STIME, DCM_VR_TM, "2230", "223000", true},            /* C.2.2.2.1.3 note 1 */
        {STIME, DCM_VR_TM, "2230", "223059.999", true},
        {STIME, DCM_VR_TM, "2230", "2231", false},
        {STIME, DCM_VR_TM, "1000-1800", "1000", true},
        {STIME, DCM_VR_TM, "1000-1800", "180059", true}, /* "1800" is the whole minute */
        {STIME, DCM_VR_TM, "1000-1800", "1801", false},
        {STIME, DCM_VR_TM, "1000-1800", "0959", false},
        {STIME, DCM_VR_TM, "-0800", "000000", true},
        {STIME, DCM_VR_TM, "-1000", "100059.999999", true}, /* bounds are included */
        {STIME, DCM_VR_TM, "-1000", "100100.000000", false},
        {STIME, DCM_VR_TM, "1000-", "100000.000000", true},
        {STIME, DCM_VR_TM, "1000-", "095959.999999", false},
        {STIME, DCM_VR_TM, "2200-", "235959.999999", true},
        /* C.2.2.2.1.3 note 1: DT by meaning, offsets taken into account */
        {DTT, DCM_VR_DT, "19980128103000", "19980128103000.0000", true},
        {DTT, DCM_VR_DT, "19980128103000", "19980128073000-0300", true},
        {DTT, DCM_VR_DT, "19980128103000", "19980128103000+0100", false},
        {DTT, DCM_VR_DT, "19980128-19980129", "19980129235959", true},
        {DTT, DCM_VR_DT, "19980128-19980129", "19980130", false},
        {DTT, DCM_VR_DT, "1998", "19980615", true},
        {DTT, DCM_VR_DT, "19980128120000+0100-", "19980128110000", true}, /* 11:00 UTC */
        {DTT, DCM_VR_DT, "19980128120000+0100-", "19980128105959", false},
    };
    table(rows, sizeof(rows) / sizeof(rows[0]), 0);
}

/* C.2.2.2.2 UID lists; C.2.2.3 any value of a multi-valued candidate. */
Test(dcm_match, lists_and_multiple_values)
{
    static const struct row rows[] = {
        {SUID, DCM_VR_UI, "1.2.3\\1.2.4", "1.2.4", true},
        {SUID, DCM_VR_UI, "1.2.3\\1.2.4", "1.2.5", false},
        {MODS, DCM_VR_CS, "MR", "CT\\MR", true},
        {MODS, DCM_VR_CS, "PT", "CT\\MR", false},
        {MODS, DCM_VR_CS, "M*", "CT\\MR", true},
        /* without Multiple Value Matching negotiated, several key values: any (not all) */
        {MODS, DCM_VR_CS, "CT\\PT", "CT", true},
        {MODS, DCM_VR_CS, "US\\PT", "CT\\MR", false},
    };
    table(rows, sizeof(rows) / sizeof(rows[0]), 0);
}

/* An absent or empty candidate value: no match except universal, unless C.2.2.1.2 is asked. */
Test(dcm_match, empty_candidate_values)
{
    static const struct row strict[] = {
        {ACC, DCM_VR_SH, "A1", NULL, false},
        {ACC, DCM_VR_SH, "A1", "", false},
        {ACC, DCM_VR_SH, "A1", "   ", false},
        {ACC, DCM_VR_SH, "A*", NULL, false},
        {SDATE, DCM_VR_DA, "20200101-", "", false},
        {ACC, DCM_VR_SH, "", NULL, true},
        {ACC, DCM_VR_SH, "*", "", true},
    };
    table(strict, sizeof(strict) / sizeof(strict[0]), 0);
    static const struct row unknown[] = {
        {ACC, DCM_VR_SH, "A1", NULL, true},
        {ACC, DCM_VR_SH, "A1", "", true},
        {SDATE, DCM_VR_DA, "20200101-", "", true},
        {ACC, DCM_VR_SH, "A1", "B2", false},
    };
    table(unknown, sizeof(unknown) / sizeof(unknown[0]), DCM_MATCH_UNKNOWN_MATCHES);
}

Test(dcm_match, text_compares_across_character_sets)
{
    /* request in ISO_IR 100, candidates in UTF-8 and in ISO_IR 100 */
    cr_assert(match1(PN, DCM_VR_PN, "M\xfcller", "M\xc3\xbcller", 0, DCM_CS_LATIN1,
                     DCM_CS_UTF8));
    cr_assert(match1(PN, DCM_VR_PN, "M\xfcller", "M\xfcller", 0, DCM_CS_LATIN1, DCM_CS_LATIN1));
    cr_assert(match1(PN, DCM_VR_PN, "M?ller", "M\xfcller", 0, DCM_CS_LATIN1, DCM_CS_LATIN1));
    cr_assert(!match1(PN, DCM_VR_PN, "Muller", "M\xc3\xbcller", 0, DCM_CS_DEFAULT,
                      DCM_CS_UTF8));
    /* a candidate that is not valid in its set does not match */
    cr_assert(!match1(PN, DCM_VR_PN, "M*", "M\xfcller", 0, DCM_CS_DEFAULT, DCM_CS_UTF8));
}

/* C.2.2.2.5.4 note: with combined matching, July 5 10:00 to July 7 18:00 is one period. */
Test(dcm_match, combined_date_time_example_of_the_standard)
{
    struct kv qkv[] = {
        {SDATE, DCM_VR_DA, "20060705-20060707"},
        {STIME, DCM_VR_TM, "1000-1800"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
    };
    struct {
        const char *da, *tm; /* tm NULL: absent */
        bool combined, separate;
    } rows[] = {
        {"20060705", "0930", false, false},
        {"20060705", "1000", true, true},
        {"20060706", "0300", true, false}, /* the middle day, before 10:00 */
        {"20060706", "2300", true, false},
        {"20060707", "1800", true, true},
        {"20060707", "1801", false, false},
        {"20060708", "1200", false, false},
        {"20060706", NULL, true, false}, /* no time: the whole day */
    };
    for (int combined = 0; combined < 2; combined++) {
        struct dcm_query *q = query(qkv, 3, combined);
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            struct kv c[] = {{SDATE, DCM_VR_DA, rows[i].da}, {STIME, DCM_VR_TM, rows[i].tm}};
            struct dcm_ds *cand = mk(c, rows[i].tm ? 2 : 1);
            struct dcm_match_opts o = {0, DCM_CS_UTF8, NULL};
            bool want = combined ? rows[i].combined : rows[i].separate;
            cr_assert_eq(dcm_match(q, dcm_ds_root(cand), &o), want, "row %zu combined %d", i,
                         combined);
            dcm_ds_free(cand);
        }
        dcm_query_free(q);
    }
}

/* Candidate Procedure Code Sequence with two items (T-1, SRT) and (T-2, LN). */
static struct dcm_ds *cand_with_codes(void)
{
    struct kv base[] = {
        {T(0008, 0050), DCM_VR_SH, "ACC9"},
        {T(0008, 1030), DCM_VR_LO, "CT HEAD"},
        {T(0010, 0010), DCM_VR_PN, "Doe^Jane"},
        {T(0010, 0020), DCM_VR_LO, "PID9"},
        {T(0010, 0040), DCM_VR_CS, "F"},
        {T(0020, 000D), DCM_VR_UI, "1.2.3.9"},
    };
    struct dcm_ds *ds = mk(base, sizeof(base) / sizeof(base[0]));
    struct dcm_elem *seq = NULL;
    cr_assert_eq(dcm_ds_add_seq(ds, dcm_ds_root_mut(ds), T(0008, 1032), &seq), 0);
    const char *codes[2][2] = {{"T-1", "SRT"}, {"T-2", "LN"}};
    for (int i = 0; i < 2; i++) {
        struct dcm_item *it = NULL;
        cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);
        cr_assert_eq(dcm_ds_add_cstr(ds, it, T(0008, 0100), DCM_VR_SH, codes[i][0]), 0);
        cr_assert_eq(dcm_ds_add_cstr(ds, it, T(0008, 0102), DCM_VR_SH, codes[i][1]), 0);
        cr_assert_eq(dcm_ds_add_cstr(ds, it, T(0008, 0104), DCM_VR_LO, "meaning"), 0);
    }
    return ds;
}

static struct dcm_query *seq_query(const char *value, const char *scheme)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, T(0008, 0052), DCM_VR_CS, "STUDY"), 0);
    struct dcm_elem *seq = NULL;
    struct dcm_item *it = NULL;
    cr_assert_eq(dcm_ds_add_seq(ds, r, T(0008, 1032), &seq), 0);
    if (value) {
        cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);
        cr_assert_eq(dcm_ds_add_raw(ds, it, T(0008, 0100), DCM_VR_SH, value, strlen(value)), 0);
        cr_assert_eq(dcm_ds_add_raw(ds, it, T(0008, 0102), DCM_VR_SH, scheme, strlen(scheme)),
                     0);
    }
    cr_assert_eq(dcm_ds_add_raw(ds, r, T(0020, 000D), DCM_VR_UI, "", 0), 0);
    struct dcm_query_opts o = {DCM_QR_STUDY_ROOT, DCM_QOP_FIND, false, 0, 0};
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(dcm_query_parse(ds, &o, &q, &err), 0);
    dcm_ds_free(ds);
    return q;
}

/* C.2.2.2.6: all item keys must match within one item. */
Test(dcm_match, sequence_matching)
{
    struct dcm_ds *cand = cand_with_codes();
    struct dcm_match_opts o = {0, DCM_CS_UTF8, NULL};
    struct {
        const char *value, *scheme;
        bool want;
    } rows[] = {
        {"T-2", "", true}, {"T-2", "LN", true}, {"T-1", "LN", false},
        {"T-3", "", false}, {"T-*", "SRT", true}, {NULL, NULL, true},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct dcm_query *q = seq_query(rows[i].value, rows[i].scheme);
        cr_assert_eq(dcm_match(q, dcm_ds_root(cand), &o), rows[i].want, "row %zu", i);
        dcm_query_free(q);
    }
    struct dcm_ds *none = dcm_ds_new(NULL);
    struct dcm_query *q = seq_query("T-2", "");
    cr_assert(!dcm_match(q, dcm_ds_root(none), &o), "no sequence: no match");
    dcm_query_free(q);
    q = seq_query("", "");
    cr_assert(dcm_match(q, dcm_ds_root(none), &o), "return-only item keys filter nothing");
    dcm_query_free(q);
    dcm_ds_free(none);
    dcm_ds_free(cand);
}

/* ---- the response identifier (C.4.1.1.3.2) ---- */

static void expect_value(const struct dcm_item *it, uint32_t tag, const char *want)
{
    const struct dcm_elem *e = dcm_item_find(it, tag);
    cr_assert_not_null(e, "%08x missing", tag);
    struct slice s = dcm_elem_raw(e);
    const uint8_t *p = s.p;
    size_t n = s.len;
    dcm_vr_strip(dcm_elem_vr(e), &p, &n);
    cr_assert(n == strlen(want) && memcmp(p, want, n) == 0, "%08x: '%.*s' want '%s'", tag,
              (int)n, p, want);
}

static void expect_tags(const struct dcm_item *it, const uint32_t *tags, size_t n)
{
    size_t i = 0;
    for (const struct dcm_elem *e = dcm_item_first(it); e; e = dcm_elem_next(e), i++) {
        cr_assert_lt(i, n, "extra attribute %08x", dcm_elem_tag(e));
        cr_assert_eq(dcm_elem_tag(e), tags[i], "attribute %zu: %08x want %08x", i,
                     dcm_elem_tag(e), tags[i]);
    }
    cr_assert_eq(i, n);
}

Test(dcm_match, response_holds_exactly_the_requested_keys)
{
    struct kv qkv[] = {
        {T(0008, 0020), DCM_VR_DA, ""},
        {T(0008, 0050), DCM_VR_SH, "ACC*"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0008, 0054), DCM_VR_AE, ""},
        {T(0010, 0010), DCM_VR_PN, ""},
        {T(0020, 000D), DCM_VR_UI, ""},
        {T(0020, 1206), DCM_VR_IS, ""},
    };
    struct dcm_query *q = query(qkv, sizeof(qkv) / sizeof(qkv[0]), false);
    struct dcm_ds *cand = cand_with_codes();
    struct dcm_match_opts o = {0, DCM_CS_UTF8, "DICOM_CORE"};
    cr_assert(dcm_match(q, dcm_ds_root(cand), &o));
    struct dcm_ds *rsp = NULL;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    const struct dcm_item *r = dcm_ds_root(rsp);
    uint32_t want[] = {T(0008, 0020), T(0008, 0050), T(0008, 0052), T(0008, 0054),
                       T(0010, 0010), T(0020, 000D), T(0020, 1206)};
    expect_tags(r, want, sizeof(want) / sizeof(want[0]));
    expect_value(r, T(0008, 0020), ""); /* the candidate has no date: zero length */
    expect_value(r, T(0008, 0050), "ACC9");
    expect_value(r, T(0008, 0052), "STUDY");
    expect_value(r, T(0008, 0054), "DICOM_CORE");
    expect_value(r, T(0010, 0010), "Doe^Jane");
    expect_value(r, T(0020, 000D), "1.2.3.9");
    /* it encodes, and reads back, in both syntaxes */
    for (int ts = 0; ts < 2; ts++) {
        struct wbuf w;
        wbuf_init(&w, 1 << 16);
        cr_assert_eq(dcm_ds_write(rsp, (enum dcm_ts)ts, &w), 0);
        struct dcm_ds *back = NULL;
        cr_assert_eq(dcm_ds_parse(w.p, w.len, (enum dcm_ts)ts, NULL, &back), 0);
        expect_tags(dcm_ds_root(back), want, sizeof(want) / sizeof(want[0]));
        dcm_ds_free(back);
        wbuf_cleanup(&w);
    }
    dcm_ds_free(rsp);
    /* without our Retrieve AE Title, the candidate's (absent here: zero length) */
    o.retrieve_ae = NULL;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    expect_value(dcm_ds_root(rsp), T(0008, 0054), "");
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    dcm_query_free(q);
}

Test(dcm_match, response_sequences_whole_or_only_the_matching_items)
{
    struct dcm_ds *cand = cand_with_codes();
    struct dcm_match_opts o = {0, DCM_CS_UTF8, NULL};
    /* universal: the whole sequence, every attribute of its items */
    struct dcm_query *q = seq_query(NULL, NULL);
    struct dcm_ds *rsp = NULL;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    const struct dcm_elem *s = dcm_item_find(dcm_ds_root(rsp), T(0008, 1032));
    cr_assert_eq(dcm_elem_nitems(s), 2);
    cr_assert_eq(dcm_item_count(dcm_elem_first_item(s)), 3);
    dcm_ds_free(rsp);
    dcm_query_free(q);
    /* item keys: the matching items, with the requested item keys only */
    q = seq_query("T-*", "LN");
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    s = dcm_item_find(dcm_ds_root(rsp), T(0008, 1032));
    cr_assert_eq(dcm_elem_nitems(s), 1);
    const struct dcm_item *it = dcm_elem_first_item(s);
    uint32_t want[] = {T(0008, 0100), T(0008, 0102)};
    expect_tags(it, want, 2);
    expect_value(it, T(0008, 0100), "T-2");
    dcm_ds_free(rsp);
    dcm_query_free(q);
    /* return-only item keys: every item, with those keys only */
    q = seq_query("", "");
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    s = dcm_item_find(dcm_ds_root(rsp), T(0008, 1032));
    cr_assert_eq(dcm_elem_nitems(s), 2);
    expect_tags(dcm_item_next(dcm_elem_first_item(s)), want, 2);
    dcm_ds_free(rsp);
    dcm_query_free(q);
    dcm_ds_free(cand);
}

/* Text goes out in the request's set when it fits, else in ISO_IR 192. */
Test(dcm_match, response_character_set)
{
    struct kv qkv[] = {
        {T(0008, 0005), DCM_VR_CS, "ISO_IR 100"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_PN, ""},
    };
    struct dcm_query *q = query(qkv, 3, false);
    struct dcm_match_opts o = {0, DCM_CS_UTF8, NULL};
    struct kv c1[] = {{T(0010, 0010), DCM_VR_PN, "M\xc3\xbcller^Ren\xc3\xa9"}};
    struct dcm_ds *cand = mk(c1, 1);
    struct dcm_ds *rsp = NULL;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    expect_value(dcm_ds_root(rsp), T(0008, 0005), "ISO_IR 100");
    expect_value(dcm_ds_root(rsp), T(0010, 0010), "M\xfcller^Ren\xe9");
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    struct kv c2[] = {{T(0010, 0010), DCM_VR_PN, "Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f"}};
    cand = mk(c2, 1);
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    expect_value(dcm_ds_root(rsp), T(0008, 0005), "ISO_IR 192");
    expect_value(dcm_ds_root(rsp), T(0010, 0010), "Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f");
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    dcm_query_free(q);
    /* default repertoire, ASCII candidate: no Specific Character Set at all */
    struct kv q2[] = {{T(0008, 0052), DCM_VR_CS, "STUDY "}, {T(0010, 0010), DCM_VR_PN, ""}};
    q = query(q2, 2, false);
    struct kv c3[] = {{T(0010, 0010), DCM_VR_PN, "Doe"}};
    cand = mk(c3, 1);
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    cr_assert_null(dcm_item_find(dcm_ds_root(rsp), T(0008, 0005)));
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    /* a candidate whose text is not valid in its set is an error, not a silent blank */
    struct kv c4[] = {{T(0010, 0010), DCM_VR_PN, "M\xfcller"}};
    cand = mk(c4, 1);
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), ERR_MALFORMED);
    cr_assert_null(rsp);
    dcm_ds_free(cand);
    dcm_query_free(q);
}

/* C.4.1.3.1.1: the unique keys of the levels above come back, from the request if need be; the
 * timezone only when the candidate has one. */
Test(dcm_match, response_upper_unique_keys_and_timezone)
{
    struct kv qkv[] = {
        {T(0008, 0052), DCM_VR_CS, "SERIES"},
        {T(0008, 0060), DCM_VR_CS, ""},
        {T(0008, 0201), DCM_VR_SH, "+0100"},
        {T(0020, 000D), DCM_VR_UI, "1.2.3"},
        {T(0020, 000E), DCM_VR_UI, ""},
    };
    struct dcm_query *q = query(qkv, sizeof(qkv) / sizeof(qkv[0]), false);
    struct kv c[] = {{T(0008, 0060), DCM_VR_CS, "CT"}, {T(0020, 000E), DCM_VR_UI, "1.2.3.4"}};
    struct dcm_ds *cand = mk(c, 2);
    struct dcm_match_opts o = {DCM_MATCH_UNKNOWN_MATCHES, DCM_CS_UTF8, NULL};
    cr_assert(dcm_match(q, dcm_ds_root(cand), &o));
    o.flags = 0;
    cr_assert(!dcm_match(q, dcm_ds_root(cand), &o), "the study UID must be in the candidate");
    struct dcm_ds *rsp = NULL;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    uint32_t want[] = {T(0008, 0052), T(0008, 0060), T(0020, 000D), T(0020, 000E)};
    expect_tags(dcm_ds_root(rsp), want, 4);
    expect_value(dcm_ds_root(rsp), T(0020, 000D), "1.2.3");
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    struct kv c2[] = {{T(0008, 0201), DCM_VR_SH, "-0500"}, {T(0020, 000D), DCM_VR_UI, "1.2.3"}};
    cand = mk(c2, 2);
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    expect_value(dcm_ds_root(rsp), T(0008, 0201), "-0500");
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    dcm_query_free(q);
}

Test(dcm_match, response_respects_its_limits)
{
    struct kv qkv[] = {{T(0008, 0052), DCM_VR_CS, "STUDY "}, {T(0010, 0010), DCM_VR_PN, ""}};
    struct dcm_query *q = query(qkv, 2, false);
    struct kv c[] = {{T(0010, 0010), DCM_VR_PN, "Doe"}};
    struct dcm_ds *cand = mk(c, 1);
    struct dcm_match_opts o = {0, DCM_CS_UTF8, NULL};
    struct dcm_limits lim = {1u << 20, 1, 4};
    struct dcm_ds *rsp = NULL;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, &lim, &rsp), ERR_LIMIT);
    o.retrieve_ae = "   ";
    lim.max_elems = 10;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, &lim, &rsp), ERR_MALFORMED);
    dcm_ds_free(cand);
    dcm_query_free(q);
}

/* A candidate that says UN (an intermediary did not know the tag) is read with the key's VR;
 * one of the wrong shape counts as absent. */
Test(dcm_match, candidate_vrs_are_read_as_the_key_says)
{
    struct kv qkv[] = {{T(0008, 0052), DCM_VR_CS, "STUDY "}, {T(0010, 0010), DCM_VR_PN, "Doe*"}};
    struct dcm_query *q = query(qkv, 2, false);
    struct kv c[] = {{T(0010, 0010), DCM_VR_UN, "Doe^Jane"}};
    struct dcm_ds *cand = mk(c, 1);
    struct dcm_match_opts o = {0, DCM_CS_UTF8, NULL};
    cr_assert(dcm_match(q, dcm_ds_root(cand), &o));
    struct dcm_ds *rsp = NULL;
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    cr_assert_eq(dcm_elem_vr(dcm_item_find(dcm_ds_root(rsp), T(0010, 0010))), DCM_VR_PN);
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    cand = dcm_ds_new(NULL);
    struct dcm_elem *seq = NULL;
    cr_assert_eq(dcm_ds_add_seq(cand, dcm_ds_root_mut(cand), T(0010, 0010), &seq), 0);
    cr_assert(!dcm_match(q, dcm_ds_root(cand), &o));
    cr_assert_eq(dcm_match_response(q, dcm_ds_root(cand), &o, NULL, &rsp), 0);
    const struct dcm_elem *pn = dcm_item_find(dcm_ds_root(rsp), T(0010, 0010));
    cr_assert(!dcm_elem_is_seq(pn));
    cr_assert_eq(dcm_elem_raw(pn).len, 0);
    struct wbuf w;
    wbuf_init(&w, 4096);
    cr_assert_eq(dcm_ds_write(rsp, DCM_TS_IMPLICIT_LE, &w), 0);
    wbuf_cleanup(&w);
    dcm_ds_free(rsp);
    dcm_ds_free(cand);
    dcm_query_free(q);
}
