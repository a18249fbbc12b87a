/* aws_read: search. The query is planned (aws_read_query.c), the scope's credentials obtained,
 * and the QIDO-RS search run; each answer becomes a candidate with the unique keys of the
 * levels above filled in from the query's path, is dropped when its study is outside the scope
 * (our filter, before the core's), deduplicated by Patient ID at the PATIENT level (answered
 * from the study search), and handed to the core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_read_int.h"
#include "common/log.h"
#include "common/strmap.h"

#define TAG_PATIENT_ID 0x00100020u
#define TAG_STUDY 0x0020000Du
#define TAG_SERIES 0x0020000Eu

struct search_op {
    struct aws_read_op head; /* first: the op the core holds */
    struct aws_read *r;
    struct backend_search_cbs cbs;
    struct read_scope scope;
    struct read_plan plan;
    struct rcreds_lease *lease;
    struct dw_op *dw;
    struct strmap patients; /* PATIENT level: the Patient IDs handed on */
    struct http_defer defer;
    bool cancelled, in_cb, scoped;
    uint64_t given, outside;
};

static void search_free(struct search_op *op)
{
    struct aws_read *r = op->r;
    http_client_undefer(r->http, &op->defer);
    aws_read_creds_release(op->lease);
    read_plan_cleanup(&op->plan);
    read_scope_free(&op->scope);
    strmap_free(&op->patients);
    free(op);
    r->live--;
}

static void search_end(struct search_op *op, int err, const char *why)
{
    struct logb b;
    if (log_begin(&b, err ? LOG_WARN : LOG_DEBUG, err ? "aws_read_search_failed"
                                                      : "aws_read_search")) {
        log_str(&b, "client_id", op->scope.client_id);
        log_str(&b, "level", dcm_query_level_name(op->plan.level));
        log_u64(&b, "results", op->given);
        log_u64(&b, "outside_scope", op->outside);
        log_bool(&b, "scoped_credentials", op->scoped);
        if (err)
            log_str(&b, "why", why);
        log_end(&b);
    }
    op->cbs.done(op->cbs.arg, err, why);
    search_free(op);
}

/* The candidate's value of tag, or NULL. */
static const char *cand_str(const struct dcm_item *root, uint32_t tag, char *buf, size_t cap)
{
    const struct dcm_elem *e = dcm_item_find(root, tag);
    if (!e || dcm_elem_cstr(e, 0, buf, cap) < 0)
        return NULL;
    return buf;
}

/* Fill in an upper level's unique key the answer left out (it is implied by the path). */
static int fill(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const char *v)
{
    struct dcm_item *root = dcm_ds_root_mut(ds);
    if (!v || !v[0] || dcm_item_find(root, tag))
        return 0;
    return dcm_ds_add_cstr(ds, root, tag, vr, v);
}

static int on_result(void *arg, struct dcm_ds *ds)
{
    struct search_op *op = arg;
    const struct read_plan *p = &op->plan;
    int rc = fill(ds, TAG_STUDY, DCM_VR_UI, p->study);
    if (rc == 0)
        rc = fill(ds, TAG_SERIES, DCM_VR_UI, p->series);
    if (rc == 0 && p->patient_root)
        rc = fill(ds, TAG_PATIENT_ID, DCM_VR_LO, p->patient_id);
    if (rc < 0)
        return 0; /* a candidate we cannot complete is not given (counted below) */
    const struct dcm_item *root = dcm_ds_root(ds);
    char study[AWS_READ_UID_MAX], pid[72];
    if (!read_scope_has(&op->scope, cand_str(root, TAG_STUDY, study, sizeof study))) {
        op->outside++;
        return 0;
    }
    if (p->level == DCM_QL_PATIENT) {
        const char *id = cand_str(root, TAG_PATIENT_ID, pid, sizeof pid);
        if (!id)
            id = "";
        if (strmap_get(&op->patients, id))
            return 0;
        if (strmap_put(&op->patients, id, NULL) < 0)
            return ERR_NOMEM;
    }
    op->given++;
    op->in_cb = true;
    rc = op->cbs.result(op->cbs.arg, ds);
    op->in_cb = false;
    if (op->cancelled) { /* the core cancelled inside its callback: dw ends itself */
        search_free(op);
        return -1;
    }
    return rc;
}

static void on_search_done(void *arg, int err, const struct http_result *res, const char *why)
{
    struct search_op *op = arg;
    op->dw = NULL;
    search_end(op, err ? aws_read_map_err(err, res) : 0, why);
}

static void on_creds(void *arg, int err, struct creds_provider *p, bool scoped, const char *why)
{
    struct search_op *op = arg;
    if (err < 0) {
        search_end(op, aws_read_map_err(err, NULL), why);
        return;
    }
    op->scoped = scoped;
    struct dw_search_cbs cbs = {.result = on_result, .done = on_search_done, .arg = op};
    int rc = dw_search(op->r->dw, p, &op->plan.qido, &cbs, &op->dw);
    if (rc < 0)
        search_end(op, aws_read_map_err(rc, NULL), "the QIDO-RS search could not be made");
}

static void on_nothing(void *arg)
{
    search_end(arg, 0, ""); /* nothing in scope can match: no request */
}

int aws_read_search(void *impl, const struct dcm_query *q, const struct backend_read_scope *scope,
                    const struct backend_search_cbs *cbs, struct backend_read_op **out)
{
    struct aws_read *r = impl;
    *out = NULL;
    if (r->closing)
        return ERR_WRONG_STATE;
    if (!scope || scope->scope == GRANT_SCOPE_NONE)
        return -EACCES;
    struct search_op *op = calloc(1, sizeof *op);
    if (!op)
        return ERR_NOMEM;
    op->head.kind = READ_SEARCH;
    op->r = r;
    op->cbs = *cbs;
    r->live++;
    int rc = read_scope_copy(scope, &op->scope);
    if (rc == 0)
        rc = read_plan_make(q, &op->scope, &op->plan);
    if (rc == 0 && op->plan.empty) {
        op->defer.cb = on_nothing;
        op->defer.arg = op;
        http_client_defer(r->http, &op->defer);
    } else if (rc == 0) {
        rc = aws_read_creds_acquire(r, &op->scope, op->plan.qido.level == DW_STUDIES, on_creds,
                                    op, &op->lease);
    }
    if (rc < 0) {
        search_free(op);
        return rc;
    }
    *out = (struct backend_read_op *)op;
    return 0;
}

void aws_read_search_resume(struct aws_read_op *h)
{
    struct search_op *op = (struct search_op *)h;
    if (op->dw)
        dw_resume(op->dw);
}

void aws_read_search_cancel(struct aws_read_op *h)
{
    struct search_op *op = (struct search_op *)h;
    if (op->cancelled)
        return;
    op->cancelled = true;
    if (op->dw)
        dw_cancel(op->dw); /* no callback of it follows */
    if (op->in_cb)
        return; /* on_result frees op when the core's callback returns */
    search_free(op);
}
