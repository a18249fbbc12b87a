#include "commit_ds.h"

#include <stdlib.h>
#include <string.h>

#include "common/uid.h"

/* A UI value of it by tag into out (65 bytes), checked. */
static bool get_uid(const struct dcm_item *it, uint32_t tag, char out[65])
{
    const struct dcm_elem *e = dcm_item_find(it, tag);
    if (!e || dcm_elem_vm(e) != 1 || dcm_elem_cstr(e, 0, out, 65) < 0)
        return false;
    return uid_valid(out);
}

static struct dcm_limits limits_for(size_t refs)
{
    /* an item and two UIDs per reference, about 150 bytes of tree each, and some slack */
    struct dcm_limits lim = {refs * 400 + 65536, refs * 4 + 64, 4};
    return lim;
}

int commit_ds_parse_action(const uint8_t *p, size_t n, enum dcm_ts ts, size_t max_refs,
                           struct commit_txn *t, const char **why)
{
    *why = NULL;
    struct dcm_limits lim = limits_for(max_refs + 1);
    struct dcm_ds *ds = NULL;
    int rc = dcm_ds_parse(p, n, ts, &lim, &ds);
    if (rc == ERR_NOMEM) {
        *why = "out of memory";
        return COMMIT_DS_NOMEM;
    }
    if (rc == ERR_LIMIT) {
        *why = "more references than this SCP accepts in one request";
        return COMMIT_DS_TOO_MANY;
    }
    if (rc < 0) {
        *why = "Action Information is not a valid dataset";
        return COMMIT_DS_MALFORMED;
    }
    const struct dcm_item *root = dcm_ds_root(ds);
    const struct dcm_elem *seq = dcm_item_find(root, TAG_REFERENCED_SOP_SEQ);
    int out = 0;
    if (!get_uid(root, TAG_TRANSACTION_UID, t->uid)) {
        *why = "Transaction UID (0008,1195) missing or invalid";
        out = COMMIT_DS_MALFORMED;
    } else if (!seq || !dcm_elem_is_seq(seq) || dcm_elem_nitems(seq) == 0) {
        *why = "Referenced SOP Sequence (0008,1199) missing or empty";
        out = COMMIT_DS_MALFORMED;
    } else if (dcm_elem_nitems(seq) > max_refs) {
        *why = "more references than this SCP accepts in one request";
        out = COMMIT_DS_TOO_MANY;
    }
    if (out < 0) {
        dcm_ds_free(ds);
        return out;
    }
    size_t count = dcm_elem_nitems(seq);
    t->refs = calloc(count, sizeof *t->refs);
    if (!t->refs) {
        dcm_ds_free(ds);
        *why = "out of memory";
        return COMMIT_DS_NOMEM;
    }
    t->n_refs = 0;
    for (const struct dcm_item *it = dcm_elem_first_item(seq); it; it = dcm_item_next(it)) {
        struct commit_ref *r = &t->refs[t->n_refs];
        if (!get_uid(it, TAG_REFERENCED_SOP_CLASS, r->sop_class) ||
            !get_uid(it, TAG_REFERENCED_SOP_INSTANCE, r->sop_instance)) {
            *why = "a Referenced SOP Sequence item lacks a valid (0008,1150) or (0008,1155)";
            out = COMMIT_DS_MALFORMED;
            break;
        }
        r->result = COMMIT_PENDING;
        t->n_refs++;
    }
    dcm_ds_free(ds);
    if (out < 0)
        commit_txn_cleanup(t);
    return out;
}

static int add_ref(struct dcm_ds *ds, struct dcm_elem *seq, const struct commit_ref *r,
                   bool failed)
{
    struct dcm_item *it;
    TRY(dcm_ds_add_item(ds, seq, &it));
    TRY(dcm_ds_add_cstr(ds, it, TAG_REFERENCED_SOP_CLASS, DCM_VR_UI, r->sop_class));
    TRY(dcm_ds_add_cstr(ds, it, TAG_REFERENCED_SOP_INSTANCE, DCM_VR_UI, r->sop_instance));
    if (failed)
        TRY(dcm_ds_add_u16(ds, it, TAG_FAILURE_REASON, r->result));
    return 0;
}

static int build(struct dcm_ds *ds, const struct commit_txn *t)
{
    struct dcm_item *root = dcm_ds_root_mut(ds);
    TRY(dcm_ds_add_cstr(ds, root, TAG_TRANSACTION_UID, DCM_VR_UI, t->uid));
    size_t ok = 0;
    for (size_t i = 0; i < t->n_refs; i++)
        ok += t->refs[i].result == COMMIT_OK;
    struct dcm_elem *refs = NULL, *failed = NULL;
    if (ok > 0)
        TRY(dcm_ds_add_seq(ds, root, TAG_REFERENCED_SOP_SEQ, &refs));
    if (ok < t->n_refs)
        TRY(dcm_ds_add_seq(ds, root, TAG_FAILED_SOP_SEQ, &failed));
    for (size_t i = 0; i < t->n_refs; i++) {
        const struct commit_ref *r = &t->refs[i];
        bool is_ok = r->result == COMMIT_OK;
        TRY(add_ref(ds, is_ok ? refs : failed, r, !is_ok));
    }
    return 0;
}

int commit_ds_event(const struct commit_txn *t, enum dcm_ts ts, struct wbuf *out)
{
    struct dcm_limits lim = limits_for(t->n_refs);
    struct dcm_ds *ds = dcm_ds_new(&lim);
    if (!ds)
        return ERR_NOMEM;
    int rc = build(ds, t);
    if (rc == 0)
        rc = dcm_ds_write(ds, ts, out);
    dcm_ds_free(ds);
    return rc;
}
