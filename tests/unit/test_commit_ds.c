/* commit_ds (the N-ACTION and N-EVENT-REPORT datasets of PS3.4 J.3) and spool/commit_rec (the
 * transaction record every store keeps). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit_ds.h"
#include "spool/commit_rec.h"

/* An Action Information dataset built with dcm_ds: uid (NULL: absent), n references. */
static struct wbuf action(const char *uid, size_t n, enum dcm_ts ts, bool bad_item)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *root = dcm_ds_root_mut(ds);
    if (uid)
        cr_assert_eq(dcm_ds_add_cstr(ds, root, TAG_TRANSACTION_UID, DCM_VR_UI, uid), 0);
    struct dcm_elem *seq;
    cr_assert_eq(dcm_ds_add_seq(ds, root, TAG_REFERENCED_SOP_SEQ, &seq), 0);
    for (size_t i = 0; i < n; i++) {
        struct dcm_item *it;
        char inst[64];
        snprintf(inst, sizeof inst, "1.2.3.%zu", i + 1);
        cr_assert_eq(dcm_ds_add_item(ds, seq, &it), 0);
        cr_assert_eq(dcm_ds_add_cstr(ds, it, TAG_REFERENCED_SOP_CLASS, DCM_VR_UI,
                                     "1.2.840.10008.5.1.4.1.1.2"), 0);
        if (!(bad_item && i == n - 1))
            cr_assert_eq(dcm_ds_add_cstr(ds, it, TAG_REFERENCED_SOP_INSTANCE, DCM_VR_UI, inst), 0);
    }
    struct wbuf b;
    wbuf_init(&b, 1u << 20);
    cr_assert_eq(dcm_ds_write(ds, ts, &b), 0);
    dcm_ds_free(ds);
    return b;
}

Test(commit_ds, parses_an_action_in_both_syntaxes)
{
    for (int ts = 0; ts < 2; ts++) {
        struct wbuf b = action("2.25.77", 3, (enum dcm_ts)ts, false);
        struct commit_txn t;
        memset(&t, 0, sizeof t);
        const char *why = NULL;
        cr_assert_eq(commit_ds_parse_action(b.p, b.len, (enum dcm_ts)ts, 10, &t, &why), 0);
        cr_assert_str_eq(t.uid, "2.25.77");
        cr_assert_eq(t.n_refs, 3);
        cr_assert_str_eq(t.refs[2].sop_instance, "1.2.3.3");
        cr_assert_eq(t.refs[0].result, COMMIT_PENDING);
        commit_txn_cleanup(&t);
        wbuf_cleanup(&b);
    }
}

Test(commit_ds, refuses_what_is_not_a_request)
{
    struct commit_txn t;
    const char *why;
    struct wbuf b = action(NULL, 2, DCM_TS_EXPLICIT_LE, false);
    memset(&t, 0, sizeof t);
    cr_assert_eq(commit_ds_parse_action(b.p, b.len, DCM_TS_EXPLICIT_LE, 10, &t, &why),
                 COMMIT_DS_MALFORMED);
    cr_assert_not_null(why);
    wbuf_cleanup(&b);
    b = action("2.25.1", 2, DCM_TS_EXPLICIT_LE, true);
    cr_assert_eq(commit_ds_parse_action(b.p, b.len, DCM_TS_EXPLICIT_LE, 10, &t, &why),
                 COMMIT_DS_MALFORMED);
    cr_assert_null(t.refs);
    wbuf_cleanup(&b);
    b = action("2.25.1", 0, DCM_TS_EXPLICIT_LE, false);
    cr_assert_eq(commit_ds_parse_action(b.p, b.len, DCM_TS_EXPLICIT_LE, 10, &t, &why),
                 COMMIT_DS_MALFORMED);
    wbuf_cleanup(&b);
    b = action("2.25.1", 11, DCM_TS_EXPLICIT_LE, false);
    cr_assert_eq(commit_ds_parse_action(b.p, b.len, DCM_TS_EXPLICIT_LE, 10, &t, &why),
                 COMMIT_DS_TOO_MANY);
    /* a cut at every offset is refused, never read past */
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, b.p, n);
        int rc = commit_ds_parse_action(cut, n, DCM_TS_EXPLICIT_LE, 100, &t, &why);
        cr_assert_lt(rc, 0, "cut at %zu parsed", n);
        free(cut);
    }
    wbuf_cleanup(&b);
}

Test(commit_ds, event_report_lists_committed_and_failed)
{
    struct commit_ref refs[3] = {
        {"1.2.840.10008.5.1.4.1.1.2", "1.2.3.1", COMMIT_OK},
        {"1.2.840.10008.5.1.4.1.1.2", "1.2.3.2", COMMIT_NO_SUCH_INSTANCE},
        {"1.2.840.10008.5.1.4.1.1.2", "1.2.3.3", COMMIT_OK},
    };
    struct commit_txn t = {.uid = "2.25.9", .event = 2, .n_refs = 3, .refs = refs};
    struct wbuf b;
    wbuf_init(&b, 1u << 16);
    cr_assert_eq(commit_ds_event(&t, DCM_TS_IMPLICIT_LE, &b), 0);
    struct dcm_ds *ds;
    cr_assert_eq(dcm_ds_parse(b.p, b.len, DCM_TS_IMPLICIT_LE, NULL, &ds), 0);
    const struct dcm_item *root = dcm_ds_root(ds);
    const struct dcm_elem *ok = dcm_item_find(root, TAG_REFERENCED_SOP_SEQ);
    const struct dcm_elem *bad = dcm_item_find(root, TAG_FAILED_SOP_SEQ);
    cr_assert(ok && bad);
    cr_assert_eq(dcm_elem_nitems(ok), 2);
    cr_assert_eq(dcm_elem_nitems(bad), 1);
    uint64_t reason;
    const struct dcm_elem *fr = dcm_item_find(dcm_elem_first_item(bad), TAG_FAILURE_REASON);
    cr_assert_eq(dcm_elem_uint(fr, 0, &reason), 0);
    cr_assert_eq(reason, 0x0112);
    dcm_ds_free(ds);
    /* all committed: no Failed SOP Sequence at all */
    refs[1].result = COMMIT_OK;
    wbuf_reset(&b);
    cr_assert_eq(commit_ds_event(&t, DCM_TS_EXPLICIT_LE, &b), 0);
    cr_assert_eq(dcm_ds_parse(b.p, b.len, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    cr_assert_null(dcm_item_find(dcm_ds_root(ds), TAG_FAILED_SOP_SEQ));
    dcm_ds_free(ds);
    wbuf_cleanup(&b);
}

Test(commit_rec, round_trips_and_refuses_tampering)
{
    struct commit_ref refs[2] = {{"1.2.840.10008.5.1.4.1.1.2", "1.2.3.1", COMMIT_PENDING},
                                 {"1.2.840.10008.5.1.4.1.1.4", "1.2.3.2", COMMIT_CLASS_CONFLICT}};
    struct commit_txn t = {.uid = "2.25.5", .calling = "CT1", .called = "CORE",
                           .created_ms = 1000, .deadline_ms = 2000, .point = COPY_IMPORTED,
                           .state = COMMIT_DECIDED, .event = 2, .n_refs = 2, .refs = refs};
    char *s;
    size_t n;
    cr_assert_eq(commit_rec_encode(&t, true, &s, &n), 0);
    struct commit_txn u;
    cr_assert_eq(commit_rec_decode(s, n, &u), 0);
    cr_assert_str_eq(u.uid, "2.25.5");
    cr_assert_eq(u.point, COPY_IMPORTED);
    cr_assert_eq(u.state, COMMIT_DECIDED);
    cr_assert_eq(u.n_refs, 2);
    cr_assert_str_eq(u.refs[1].sop_class, "1.2.840.10008.5.1.4.1.1.4");
    cr_assert_eq(u.refs[1].result, COMMIT_CLASS_CONFLICT);
    commit_txn_cleanup(&u);
    /* a class index out of range, a bad UID, a torn record */
    char *bad = strdup(s);
    char *p = strstr(bad, "[1,");
    cr_assert_not_null(p);
    p[1] = '7';
    cr_assert_eq(commit_rec_decode(bad, strlen(bad), &u), ERR_MALFORMED);
    free(bad);
    cr_assert_lt(commit_rec_decode(s, n / 2, &u), 0);
    free(s);
    cr_assert_eq(commit_iso_to_ms("1970-01-01T00:00:01.250Z"), 1250);
    cr_assert_eq(commit_iso_to_ms("1970-01-01 00:00:01.250Z"), 0);
}
