/* Tests for common/dcm_query: C-FIND / C-GET / C-MOVE identifiers normalised into a query, for
 * the Patient Root and Study Root models (PS3.4 C.6.1, C.6.2): levels, key types, matching
 * types (C.2.2.2), the hierarchical rules and what makes a request relational (C.4.1.2),
 * retrieve identifiers (C.4.2.1.4.1), character sets and combined date-time ranges. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/dcm_query.h"

#define T(g, e) DCM_TAG(0x##g, 0x##e)
#define SQ_EMPTY ((const char *)1) /* a sequence key without items */
#define SQ_ITEM0 ((const char *)2) /* a sequence key with one empty item */

struct kv {
    uint32_t tag;
    uint16_t vr;
    const char *v; /* raw value bytes, NUL-terminated here */
};

static struct dcm_ds *ident(const struct kv *kv, size_t n)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    cr_assert_not_null(ds);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    for (size_t i = 0; i < n; i++) {
        if (kv[i].vr == DCM_VR_SQ) {
            struct dcm_elem *seq = NULL;
            struct dcm_item *it = NULL;
            cr_assert_eq(dcm_ds_add_seq(ds, r, kv[i].tag, &seq), 0);
            if (kv[i].v == SQ_ITEM0)
                cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);
            continue;
        }
        cr_assert_eq(dcm_ds_add_raw(ds, r, kv[i].tag, kv[i].vr, kv[i].v, strlen(kv[i].v)), 0,
                     "add %08x", kv[i].tag);
    }
    return ds;
}

static int run(const struct kv *kv, size_t n, enum dcm_qr_model model, enum dcm_qr_op op,
               struct dcm_query **q, struct dcm_query_error *err)
{
    struct dcm_ds *ds = ident(kv, n);
    struct dcm_query_opts o = {model, op, false, 0, 0};
    int rc = dcm_query_parse(ds, &o, q, err);
    dcm_ds_free(ds); /* the query must not need it any more */
    return rc;
}

#define RUN(kv, model, op, q, err)                                                                 \
    run((kv), sizeof(kv) / sizeof((kv)[0]), (model), (op), (q), (err))

static void expect_err(const struct kv *kv, size_t n, enum dcm_qr_model model, enum dcm_qr_op op,
                       int rc, enum dcm_qerr reason, uint32_t tag)
{
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(run(kv, n, model, op, &q, &err), rc);
    cr_assert_null(q);
    cr_assert_eq(err.reason, reason, "reason %d, want %d", err.reason, reason);
    cr_assert_eq(err.tag, tag, "tag %08x, want %08x", err.tag, tag);
    cr_assert(err.comment && err.comment[0], "an Error Comment");
}

#define ERR(kv, model, op, rc, reason, tag)                                                        \
    expect_err((kv), sizeof(kv) / sizeof((kv)[0]), (model), (op), (rc), (reason), (tag))

static bool text_is(struct slice s, const char *want)
{
    return slice_eq_str(s, want);
}

Test(dcm_query, study_root_study_level_keys_and_matching_types)
{
    struct kv kv[] = {
        {T(0008, 0020), DCM_VR_DA, "20200101-20201231"},
        {T(0008, 0030), DCM_VR_TM, ""},
        {T(0008, 0050), DCM_VR_SH, "A1 "},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0008, 0061), DCM_VR_CS, "CT\\MR "},
        {T(0010, 0010), DCM_VR_PN, "Doe*"},
        {T(0010, 0020), DCM_VR_LO, ""},
        {T(0020, 000D), DCM_VR_UI, ""},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(kv, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    cr_assert_eq(err.reason, DCM_QERR_NONE);
    cr_assert_eq(dcm_query_level(q), DCM_QL_STUDY);
    cr_assert_eq(dcm_query_nkeys(q), 7, "every key but the level is a return key");
    const struct dcm_qkey *k = dcm_query_find(q, T(0008, 0020));
    cr_assert_eq(k->type, DCM_MT_RANGE);
    cr_assert(text_is(k->values[0].lo, "20200101"));
    cr_assert(text_is(k->values[0].hi, "20201231"));
    cr_assert_lt(k->values[0].span.lo, k->values[0].span.hi);
    cr_assert_eq(dcm_query_find(q, T(0008, 0030))->type, DCM_MT_UNIVERSAL);
    k = dcm_query_find(q, T(0008, 0050));
    cr_assert_eq(k->type, DCM_MT_SINGLE);
    cr_assert(text_is(k->values[0].text, "A1"));
    k = dcm_query_find(q, T(0008, 0061));
    cr_assert_eq(k->type, DCM_MT_MULTI);
    cr_assert_eq(k->nvalues, 2);
    cr_assert(text_is(k->values[1].text, "MR"));
    k = dcm_query_find(q, T(0010, 0010));
    cr_assert_eq(k->type, DCM_MT_WILDCARD);
    cr_assert_eq(k->level, DCM_QL_STUDY, "patient attributes are study attributes (C.3.2)");
    cr_assert_eq(k->role, DCM_DK_REQUIRED);
    cr_assert_eq(dcm_query_find(q, T(0010, 0020))->role, DCM_DK_REQUIRED);
    k = dcm_query_find(q, T(0020, 000D));
    cr_assert_eq(k->role, DCM_DK_UNIQUE);
    cr_assert_eq(k->type, DCM_MT_UNIVERSAL);
    cr_assert_null(dcm_query_find(q, T(0008, 0052)));
    uint32_t prev = 0;
    for (size_t i = 0; i < dcm_query_nkeys(q); i++) {
        cr_assert_gt(dcm_query_key(q, i)->tag, prev, "ascending");
        prev = dcm_query_key(q, i)->tag;
    }
    cr_assert_null(dcm_query_key(q, 7));
    dcm_query_free(q);
}

Test(dcm_query, patient_root_patient_level)
{
    struct kv kv[] = {
        {T(0008, 0052), DCM_VR_CS, "PATIENT "},
        {T(0010, 0010), DCM_VR_PN, "Doe^J*"},
        {T(0010, 0020), DCM_VR_LO, "12*"}, /* tolerated: wild card in Patient ID */
        {T(0010, 0030), DCM_VR_DA, ""},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(kv, DCM_QR_PATIENT_ROOT, DCM_QOP_FIND, &q, &err), 0);
    cr_assert_eq(dcm_query_level(q), DCM_QL_PATIENT);
    cr_assert_eq(dcm_query_find(q, T(0010, 0020))->role, DCM_DK_UNIQUE);
    cr_assert_eq(dcm_query_find(q, T(0010, 0020))->type, DCM_MT_WILDCARD);
    dcm_query_free(q);
    /* PATIENT is not a level of the Study Root model */
    ERR(kv, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_BAD_LEVEL, T(0008, 0052));
}

/* C.4.1.2.1: the unique keys of the levels above, single values; no matching on their other
 * keys. Anything else is a relational query, which we do not support. */
Test(dcm_query, patient_root_study_level_needs_a_single_patient_id)
{
    struct kv ok[] = {
        {T(0008, 0020), DCM_VR_DA, "20200101"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_PN, ""}, /* tolerated: an upper-level return key */
        {T(0010, 0020), DCM_VR_LO, "PID1"},
        {T(0020, 000D), DCM_VR_UI, ""},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(ok, DCM_QR_PATIENT_ROOT, DCM_QOP_FIND, &q, &err), 0);
    cr_assert_eq(dcm_query_find(q, T(0010, 0010))->level, DCM_QL_PATIENT);
    dcm_query_free(q);
    struct kv no_pid[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0020, 000D), DCM_VR_UI, ""},
    };
    ERR(no_pid, DCM_QR_PATIENT_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL,
        T(0010, 0020));
    const char *bad_pids[] = {"", "PID*", "PID1\\PID2"};
    for (size_t i = 0; i < 3; i++) {
        struct kv kv[] = {
            {T(0008, 0052), DCM_VR_CS, "STUDY "},
            {T(0010, 0020), DCM_VR_LO, bad_pids[i]},
        };
        ERR(kv, DCM_QR_PATIENT_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL,
            T(0010, 0020));
    }
    struct kv upper_match[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_PN, "Doe*"},
        {T(0010, 0020), DCM_VR_LO, "PID1"},
    };
    ERR(upper_match, DCM_QR_PATIENT_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL,
        T(0010, 0010));
    /* the same key is a study key in Study Root: fine there */
    cr_assert_eq(RUN(upper_match, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    dcm_query_free(q);
}

Test(dcm_query, series_and_image_levels_need_the_upper_uids)
{
    struct kv series[] = {
        {T(0008, 0052), DCM_VR_CS, "SERIES"},
        {T(0008, 0060), DCM_VR_CS, "CT"},
        {T(0020, 000D), DCM_VR_UI, "1.2.3"},
        {T(0020, 000E), DCM_VR_UI, ""},
        {T(0020, 0011), DCM_VR_IS, ""},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(series, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    cr_assert_eq(dcm_query_find(q, T(0008, 0060))->type, DCM_MT_SINGLE);
    cr_assert_eq(dcm_query_find(q, T(0020, 000D))->level, DCM_QL_STUDY);
    dcm_query_free(q);
    /* in Patient Root the patient is above too */
    ERR(series, DCM_QR_PATIENT_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL,
        T(0010, 0020));
    struct kv list[] = {
        {T(0008, 0052), DCM_VR_CS, "SERIES"},
        {T(0020, 000D), DCM_VR_UI, "1.2.3\\1.2.4"},
    };
    ERR(list, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL,
        T(0020, 000D));
    struct kv image[] = {
        {T(0008, 0018), DCM_VR_UI, "1.2.3.4.1\\1.2.3.4.2\0"},
        {T(0008, 0052), DCM_VR_CS, "IMAGE "},
        {T(0020, 000D), DCM_VR_UI, "1.2.3"},
        {T(0020, 000E), DCM_VR_UI, "1.2.3.4"},
        {T(0020, 0013), DCM_VR_IS, "7 "},
    };
    cr_assert_eq(RUN(image, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    const struct dcm_qkey *k = dcm_query_find(q, T(0008, 0018));
    cr_assert_eq(k->type, DCM_MT_UID_LIST);
    cr_assert_eq(k->nvalues, 2);
    cr_assert(text_is(k->values[1].text, "1.2.3.4.2"));
    cr_assert(text_is(dcm_query_find(q, T(0020, 0013))->values[0].text, "7"));
    dcm_query_free(q);
    struct kv no_series[] = {
        {T(0008, 0052), DCM_VR_CS, "IMAGE "},
        {T(0020, 000D), DCM_VR_UI, "1.2.3"},
    };
    ERR(no_series, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL,
        T(0020, 000E));
}

Test(dcm_query, level_must_be_present_and_valid)
{
    struct kv none[] = {{T(0010, 0010), DCM_VR_PN, ""}};
    ERR(none, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_NO_LEVEL, T(0008, 0052));
    struct kv empty[] = {{T(0008, 0052), DCM_VR_CS, "  "}};
    ERR(empty, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_NO_LEVEL, T(0008, 0052));
    const char *bad[] = {"study", "STUDIES", "STUDY\\SERIES", "FRAME"};
    for (size_t i = 0; i < 4; i++) {
        struct kv kv[] = {{T(0008, 0052), DCM_VR_CS, bad[i]}};
        ERR(kv, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_BAD_LEVEL,
            T(0008, 0052));
    }
    struct kv view[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0008, 0053), DCM_VR_CS, "CLASSIC "},
    };
    ERR(view, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_VIEW, T(0008, 0053));
}

Test(dcm_query, matching_below_the_level_is_refused_but_an_empty_key_is_returned)
{
    struct kv kv[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0008, 0060), DCM_VR_CS, "CT"},
    };
    ERR(kv, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_KEY_LEVEL, T(0008, 0060));
    struct kv ok[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0008, 0060), DCM_VR_CS, ""},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(ok, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    cr_assert_eq(dcm_query_nkeys(q), 1);
    dcm_query_free(q);
}

static const struct dcm_qkey *one_key(uint16_t vr, const char *v, struct dcm_query **q, int *rc)
{
    struct kv kv[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0011, 0000), 0, NULL}, /* placeholder, replaced below */
    };
    /* an unknown public attribute: an optional key of the level, with the VR given */
    kv[1].tag = vr == DCM_VR_DA ? T(0008, 0020)
              : vr == DCM_VR_TM ? T(0008, 0030)
              : vr == DCM_VR_UI ? T(0020, 000D)
              : T(0009, 0000) | 0;
    if (kv[1].tag == T(0009, 0000))
        kv[1].tag = vr == DCM_VR_DT ? T(0018, 9074) : vr == DCM_VR_PN ? T(0010, 0010)
                  : vr == DCM_VR_IS ? T(0020, 1206) : T(0008, 1030);
    kv[1].vr = vr;
    kv[1].v = v;
    struct dcm_query_error err;
    *rc = RUN(kv, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, q, &err);
    if (*rc < 0)
        return NULL;
    return dcm_query_find(*q, kv[1].tag);
}

Test(dcm_query, range_forms_and_their_bounds)
{
    struct {
        uint16_t vr;
        const char *v;
        int rc;
        enum dcm_match_type type;
        bool open_lo, open_hi;
    } cases[] = {
        {DCM_VR_DA, "20200101", 0, DCM_MT_SINGLE, false, false},
        {DCM_VR_DA, "20200101-20201231", 0, DCM_MT_RANGE, false, false},
        {DCM_VR_DA, "-20200101", 0, DCM_MT_RANGE, true, false},
        {DCM_VR_DA, "20200101-", 0, DCM_MT_RANGE, false, true},
        {DCM_VR_DA, "20200101-20200101", 0, DCM_MT_RANGE, false, false},
        {DCM_VR_DA, "20200102-20200101", ERR_MALFORMED, 0, 0, 0},
        {DCM_VR_DA, "-", ERR_MALFORMED, 0, 0, 0},
        {DCM_VR_DA, "2020-01-01", ERR_MALFORMED, 0, 0, 0},
        {DCM_VR_DA, "2020*", ERR_MALFORMED, 0, 0, 0},
        {DCM_VR_DA, "20201301", ERR_MALFORMED, 0, 0, 0},
        {DCM_VR_TM, "1000-1800", 0, DCM_MT_RANGE, false, false},
        {DCM_VR_TM, "10-1030", 0, DCM_MT_RANGE, false, false},
        {DCM_VR_TM, "2200-0200", ERR_MALFORMED, 0, 0, 0}, /* across midnight */
        {DCM_VR_TM, "2230", 0, DCM_MT_SINGLE, false, false},
        {DCM_VR_DT, "20200101-20200102", 0, DCM_MT_RANGE, false, false},
        {DCM_VR_DT, "20200101120000+0100-", 0, DCM_MT_RANGE, false, true},
        {DCM_VR_DT, "20200101120000-0500", ERR_MALFORMED, 0, 0, 0}, /* C.2.2.2.1.3 note 3 */
        {DCM_VR_DT, "2020", 0, DCM_MT_SINGLE, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dcm_query *q = NULL;
        int rc;
        const struct dcm_qkey *k = one_key(cases[i].vr, cases[i].v, &q, &rc);
        cr_assert_eq(rc, cases[i].rc, "case %zu (%s): %d", i, cases[i].v, rc);
        if (rc == 0) {
            cr_assert_eq(k->type, cases[i].type, "case %zu", i);
            cr_assert_eq(k->values[0].span.lo == INT64_MIN, cases[i].open_lo, "case %zu", i);
            cr_assert_eq(k->values[0].span.hi == INT64_MAX, cases[i].open_hi, "case %zu", i);
            cr_assert_leq(k->values[0].span.lo, k->values[0].span.hi);
        }
        dcm_query_free(q);
    }
}

Test(dcm_query, wildcards_uids_and_universal)
{
    struct {
        uint16_t vr;
        const char *v;
        int rc;
        enum dcm_match_type type;
    } cases[] = {
        {DCM_VR_PN, "*", 0, DCM_MT_UNIVERSAL}, /* C.2.2.2.4 note 1 */
        {DCM_VR_PN, "**", 0, DCM_MT_WILDCARD},
        {DCM_VR_PN, "D?e", 0, DCM_MT_WILDCARD},
        {DCM_VR_PN, "   ", 0, DCM_MT_UNIVERSAL},
        {DCM_VR_LO, "Head*\\Chest", 0, DCM_MT_MULTI},
        {DCM_VR_LO, "Head\\*", 0, DCM_MT_UNIVERSAL},
        {DCM_VR_UI, "1.2.3", 0, DCM_MT_SINGLE},
        {DCM_VR_UI, "1.2.3\\1.2.4", 0, DCM_MT_UID_LIST},
        {DCM_VR_UI, "1.2.*", ERR_MALFORMED, 0},
        {DCM_VR_UI, "1.2.03", ERR_MALFORMED, 0},
        {DCM_VR_IS, "12", 0, DCM_MT_SINGLE},
        {DCM_VR_IS, "1*", ERR_MALFORMED, 0}, /* no wild card for IS */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dcm_query *q = NULL;
        int rc;
        const struct dcm_qkey *k = one_key(cases[i].vr, cases[i].v, &q, &rc);
        cr_assert_eq(rc, cases[i].rc, "case %zu (%s): %d", i, cases[i].v, rc);
        if (rc == 0)
            cr_assert_eq(k->type, cases[i].type, "case %zu (%s): %d", i, cases[i].v, k->type);
        dcm_query_free(q);
    }
}

Test(dcm_query, values_are_decoded_to_utf8_from_the_declared_set)
{
    struct kv kv[] = {
        {T(0008, 0005), DCM_VR_CS, "ISO_IR 100"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_PN, "M\xfcller*"},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(kv, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    cr_assert_eq(dcm_query_charset(q), DCM_CS_LATIN1);
    cr_assert(dcm_query_has_charset(q));
    cr_assert(text_is(dcm_query_find(q, T(0010, 0010))->values[0].text, "M\xc3\xbcller*"));
    dcm_query_free(q);
    struct kv ext[] = {
        {T(0008, 0005), DCM_VR_CS, "\\ISO 2022 IR 87"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
    };
    ERR(ext, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_CHARSET, T(0008, 0005));
    struct kv esc[] = {
        {T(0008, 0005), DCM_VR_CS, "ISO_IR 100"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_PN, "\x1b$B"},
    };
    ERR(esc, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_UNSUPPORTED, DCM_QERR_CHARSET, T(0010, 0010));
    struct kv high[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_PN, "M\xfcller"},
    };
    ERR(high, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_BAD_VALUE, T(0010, 0010));
    struct kv cs_high[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY\xfc"},
    };
    ERR(cs_high, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_BAD_LEVEL,
        T(0008, 0052));
}

static struct dcm_ds *with_seq(int items, bool empty_item)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, T(0008, 0052), DCM_VR_CS, "STUDY"), 0);
    struct dcm_elem *seq = NULL;
    cr_assert_eq(dcm_ds_add_seq(ds, r, T(0008, 1032), &seq), 0);
    for (int i = 0; i < items; i++) {
        struct dcm_item *it = NULL;
        cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);
        if (empty_item)
            continue;
        cr_assert_eq(dcm_ds_add_cstr(ds, it, T(0008, 0100), DCM_VR_SH, "T-1"), 0);
        cr_assert_eq(dcm_ds_add_raw(ds, it, T(0008, 0102), DCM_VR_SH, "", 0), 0);
    }
    return ds;
}

Test(dcm_query, sequence_keys)
{
    struct dcm_query_opts o = {DCM_QR_STUDY_ROOT, DCM_QOP_FIND, false, 0, 0};
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    struct {
        int items;
        bool empty;
        enum dcm_match_type type;
    } ok[] = {{0, false, DCM_MT_UNIVERSAL}, {1, true, DCM_MT_UNIVERSAL},
              {1, false, DCM_MT_SEQUENCE}};
    for (int i = 0; i < 3; i++) {
        struct dcm_ds *ds = with_seq(ok[i].items, ok[i].empty);
        cr_assert_eq(dcm_query_parse(ds, &o, &q, &err), 0);
        const struct dcm_qkey *k = dcm_query_find(q, T(0008, 1032));
        cr_assert_eq(k->type, ok[i].type, "case %d", i);
        if (k->type == DCM_MT_SEQUENCE) {
            cr_assert_eq(dcm_query_nkeys(k->item), 2);
            cr_assert_eq(dcm_query_find(k->item, T(0008, 0100))->type, DCM_MT_SINGLE);
            cr_assert_eq(dcm_query_find(k->item, T(0008, 0102))->type, DCM_MT_UNIVERSAL);
            cr_assert_eq(dcm_query_level(k->item), 0);
        }
        dcm_query_free(q);
        dcm_ds_free(ds);
    }
    struct dcm_ds *ds = with_seq(2, false); /* C.2.2.2.6: a single item */
    cr_assert_eq(dcm_query_parse(ds, &o, &q, &err), ERR_MALFORMED);
    cr_assert_eq(err.reason, DCM_QERR_SEQ);
    cr_assert_eq(err.tag, T(0008, 1032));
    dcm_ds_free(ds);
}

Test(dcm_query, private_group_length_and_return_only_attributes)
{
    struct kv kv[] = {
        {T(0008, 0000), DCM_VR_UL, "\x10\x01\x02\x03"},
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0008, 0054), DCM_VR_AE, "SOMEAE"},
        {T(0009, 0010), DCM_VR_LO, "ACME"},
        {T(0009, 1001), DCM_VR_LO, "secret*"},
        {T(0088, 0130), DCM_VR_SH, ""},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(kv, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    cr_assert_eq(dcm_query_nkeys(q), 2);
    const struct dcm_qkey *k = dcm_query_find(q, T(0008, 0054));
    cr_assert_eq(k->role, DCM_DK_RETURN);
    cr_assert_eq(k->type, DCM_MT_UNIVERSAL, "returned, never matched");
    cr_assert_null(dcm_query_find(q, T(0009, 1001)));
    dcm_query_free(q);
}

Test(dcm_query, too_many_keys_is_err_limit)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, T(0008, 0052), DCM_VR_CS, "STUDY"), 0);
    for (uint16_t e = 0x1000; e < 0x1010; e++)
        cr_assert_eq(dcm_ds_add_raw(ds, r, DCM_TAG(0x0030, e), DCM_VR_LO, "", 0), 0);
    struct dcm_query_opts o = {DCM_QR_STUDY_ROOT, DCM_QOP_FIND, false, 16, 0};
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(dcm_query_parse(ds, &o, &q, &err), 0);
    dcm_query_free(q);
    o.max_keys = 15;
    cr_assert_eq(dcm_query_parse(ds, &o, &q, &err), ERR_LIMIT);
    cr_assert_eq(err.reason, DCM_QERR_LIMIT);
    o.max_keys = 0;
    o.max_bytes = 256; /* the query's own memory */
    int rc = dcm_query_parse(ds, &o, &q, &err);
    cr_assert_eq(rc, ERR_LIMIT, "%d", rc);
    cr_assert_eq(err.reason, DCM_QERR_LIMIT);
    dcm_ds_free(ds);
}

/* C.4.2.1.4.1 / C.4.2.2.1: retrieve identifiers. */
Test(dcm_query, retrieve_identifiers_keep_the_unique_keys)
{
    struct kv study[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_PN, "Doe"}, /* tolerated, ignored */
        {T(0020, 000D), DCM_VR_UI, "1.2.3\\1.2.4"},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(study, DCM_QR_STUDY_ROOT, DCM_QOP_RETRIEVE, &q, &err), 0);
    cr_assert_eq(dcm_query_nkeys(q), 1);
    cr_assert_eq(dcm_query_key(q, 0)->type, DCM_MT_UID_LIST);
    dcm_query_free(q);
    struct kv image[] = {
        {T(0008, 0018), DCM_VR_UI, "1.2.3.4.5\\1.2.3.4.6"},
        {T(0008, 0052), DCM_VR_CS, "IMAGE "},
        {T(0010, 0020), DCM_VR_LO, "PID"},
        {T(0020, 000D), DCM_VR_UI, "1.2.3"},
        {T(0020, 000E), DCM_VR_UI, "1.2.3.4"},
    };
    cr_assert_eq(RUN(image, DCM_QR_PATIENT_ROOT, DCM_QOP_RETRIEVE, &q, &err), 0);
    cr_assert_eq(dcm_query_nkeys(q), 4);
    dcm_query_free(q);
    cr_assert_eq(RUN(image, DCM_QR_STUDY_ROOT, DCM_QOP_RETRIEVE, &q, &err), 0);
    cr_assert_eq(dcm_query_nkeys(q), 3, "Patient ID is not a unique key in Study Root");
    dcm_query_free(q);
    struct kv missing[] = {{T(0008, 0052), DCM_VR_CS, "STUDY "}, {T(0020, 000D), DCM_VR_UI, ""}};
    ERR(missing, DCM_QR_STUDY_ROOT, DCM_QOP_RETRIEVE, ERR_MALFORMED, DCM_QERR_MISSING_UNIQUE,
        T(0020, 000D));
    struct kv pid_list[] = {{T(0008, 0052), DCM_VR_CS, "PATIENT "},
                            {T(0010, 0020), DCM_VR_LO, "A\\B"}};
    ERR(pid_list, DCM_QR_PATIENT_ROOT, DCM_QOP_RETRIEVE, ERR_MALFORMED, DCM_QERR_BAD_VALUE,
        T(0010, 0020));
    struct kv pid_wild[] = {{T(0008, 0052), DCM_VR_CS, "PATIENT "},
                            {T(0010, 0020), DCM_VR_LO, "A*"}};
    ERR(pid_wild, DCM_QR_PATIENT_ROOT, DCM_QOP_RETRIEVE, ERR_MALFORMED, DCM_QERR_BAD_VALUE,
        T(0010, 0020));
    struct kv relational[] = {{T(0008, 0052), DCM_VR_CS, "SERIES"},
                              {T(0020, 000E), DCM_VR_UI, "1.2.3.4"}};
    ERR(relational, DCM_QR_STUDY_ROOT, DCM_QOP_RETRIEVE, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL,
        T(0020, 000D));
}

/* C.2.2.2.5.4 note: "20060705-20060707" with "1000-1800" is one period, July 5 10:00 to
 * July 7 18:00, when combined matching was negotiated. */
Test(dcm_query, combined_date_time_ranges)
{
    struct dcm_span d5, d7, t10, t18;
    cr_assert_eq(dcm_da_parse((const uint8_t *)"20060705", 8, &d5), 0);
    cr_assert_eq(dcm_da_parse((const uint8_t *)"20060707", 8, &d7), 0);
    cr_assert_eq(dcm_tm_parse((const uint8_t *)"1000", 4, &t10), 0);
    cr_assert_eq(dcm_tm_parse((const uint8_t *)"1800", 4, &t18), 0);
    struct {
        const char *da, *tm;
        bool combined;
        int64_t lo, hi;
    } cases[] = {
        {"20060705-20060707", "1000-1800", true, d5.lo + t10.lo, d7.lo + t18.hi},
        {"-20060707", "-1800", true, INT64_MIN, d7.lo + t18.hi},
        {"20060705-", "1000-", true, d5.lo + t10.lo, INT64_MAX},
        {"20060705-20060707", "1000-", false, 0, 0},
        {"20060705", "1000-1800", false, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kv kv[] = {
            {T(0008, 0020), DCM_VR_DA, cases[i].da},
            {T(0008, 0030), DCM_VR_TM, cases[i].tm},
            {T(0008, 0052), DCM_VR_CS, "STUDY "},
        };
        for (int negotiated = 0; negotiated < 2; negotiated++) {
            struct dcm_ds *ds = ident(kv, 3);
            struct dcm_query_opts o = {DCM_QR_STUDY_ROOT, DCM_QOP_FIND, negotiated, 0, 0};
            struct dcm_query *q = NULL;
            struct dcm_query_error err;
            cr_assert_eq(dcm_query_parse(ds, &o, &q, &err), 0);
            const struct dcm_qkey *da = dcm_query_find(q, T(0008, 0020));
            const struct dcm_qkey *tm = dcm_query_find(q, T(0008, 0030));
            bool want = negotiated && cases[i].combined;
            cr_assert_eq(da->partner == T(0008, 0030), want, "case %zu/%d", i, negotiated);
            cr_assert_eq(tm->partner == T(0008, 0020), want, "case %zu/%d", i, negotiated);
            if (want) {
                cr_assert_eq(da->combined.lo, cases[i].lo, "case %zu", i);
                cr_assert_eq(da->combined.hi, cases[i].hi, "case %zu", i);
            }
            dcm_query_free(q);
            dcm_ds_free(ds);
        }
    }
}

/* An identifier as DCMTK's findscu sends it: Implicit VR bytes through dcm_ds_parse. */
Test(dcm_query, implicit_vr_identifier_end_to_end)
{
    static const uint8_t bytes[] = {
        0x08, 0x00, 0x20, 0x00, 0x12, 0x00, 0x00, 0x00, '2', '0', '2', '0', '0', '1', '0', '1',
        '-', '2', '0', '2', '0', '1', '2', '3', '1', ' ',                       /* StudyDate */
        0x08, 0x00, 0x52, 0x00, 0x06, 0x00, 0x00, 0x00, 'S', 'T', 'U', 'D', 'Y', ' ', /* Level */
        0x08, 0x00, 0x01, 0x02, 0x06, 0x00, 0x00, 0x00, '+', '0', '1', '0', '0', ' ', /* TZ */
        0x10, 0x00, 0x10, 0x00, 0x04, 0x00, 0x00, 0x00, 'D', 'o', 'e', '*',   /* PatientName */
        0x20, 0x00, 0x0D, 0x00, 0x00, 0x00, 0x00, 0x00,                       /* StudyUID */
    };
    struct dcm_ds *ds = NULL;
    cr_assert_eq(dcm_ds_parse(bytes, sizeof(bytes), DCM_TS_IMPLICIT_LE, NULL, &ds), 0);
    struct dcm_query_opts o = {DCM_QR_STUDY_ROOT, DCM_QOP_FIND, false, 0, 0};
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(dcm_query_parse(ds, &o, &q, &err), 0);
    dcm_ds_free(ds);
    cr_assert_eq(dcm_query_nkeys(q), 3);
    cr_assert_eq(dcm_query_find(q, T(0008, 0020))->vr, DCM_VR_DA);
    cr_assert_eq(dcm_query_find(q, T(0008, 0020))->type, DCM_MT_RANGE);
    cr_assert_eq(dcm_query_find(q, T(0010, 0010))->type, DCM_MT_WILDCARD);
    struct slice tz;
    cr_assert(dcm_query_timezone(q, &tz));
    cr_assert(text_is(tz, "+0100"));
    cr_assert_str_eq(dcm_query_level_name(dcm_query_level(q)), "STUDY");
    dcm_query_free(q);
}

/* PS3.5 6.2: a standard attribute carries its dictionary VR; UN is read as that VR. */
Test(dcm_query, key_vrs_follow_the_dictionary)
{
    struct kv un[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_UN, "Doe* "},
    };
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    cr_assert_eq(RUN(un, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    const struct dcm_qkey *k = dcm_query_find(q, T(0010, 0010));
    cr_assert_eq(k->vr, DCM_VR_PN);
    cr_assert_eq(k->type, DCM_MT_WILDCARD);
    cr_assert(text_is(k->values[0].text, "Doe*"));
    dcm_query_free(q);
    struct kv wrong[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0010, 0010), DCM_VR_LO, "Doe"},
    };
    ERR(wrong, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_BAD_VALUE, T(0010, 0010));
    struct kv seq_for_lo[] = {
        {T(0008, 0052), DCM_VR_CS, "STUDY "},
        {T(0008, 1030), DCM_VR_SQ, SQ_ITEM0},
    };
    ERR(seq_for_lo, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, ERR_MALFORMED, DCM_QERR_BAD_VALUE,
        T(0008, 1030));
    struct kv odd_us[] = {
        {T(0008, 0052), DCM_VR_CS, "IMAGE "},
        {T(0020, 000D), DCM_VR_UI, "1.2"},
        {T(0020, 000E), DCM_VR_UI, "1.2.3"},
        {T(0028, 0010), DCM_VR_UN, "\x01\x02\x03\x04\x05\x06"},
    };
    cr_assert_eq(RUN(odd_us, DCM_QR_STUDY_ROOT, DCM_QOP_FIND, &q, &err), 0);
    k = dcm_query_find(q, T(0028, 0010));
    cr_assert_eq(k->vr, DCM_VR_US);
    cr_assert_eq(k->type, DCM_MT_MULTI);
    cr_assert_eq(k->nvalues, 3);
    dcm_query_free(q);
}
