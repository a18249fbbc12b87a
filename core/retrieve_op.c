/* A C-GET or C-MOVE request from its identifier to its final response (retrieve.h): the
 * identifier parsed, the client's scope resolved and held against the studies it names, the
 * instances planned, the sub-operations run (retrieve.c) on the target the kind opens (svc_get:
 * the requestor's own association; svc_move: a sub-association), pending responses with the
 * counts after each, C-CANCEL, and the final status (PS3.4 C.4.2.1.5, C.4.3.1.4). */
#include "retrieve.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core_ctx.h"

#define TAG_FAILED_LIST DCM_TAG(0x0008, 0x0058)

static void op_free(struct retrieve_op *op)
{
    qr_op_cleanup(&op->qr);
    retrieve_list_free(&op->list);
    free(op);
}

/* Free op when nothing holds it any more: true when it was freed. */
static bool try_free(struct retrieve_op *op)
{
    if (op->qr.busy || op->holds || !(op->qr.gone || op->qr.ended))
        return false;
    op_free(op);
    return true;
}

void retrieve_op_unhold(struct retrieve_op *op)
{
    op->holds--;
    try_free(op);
}

/* The one place where the audit record of a retrieve (DICOM "Begin Transferring DICOM
 * Instances" / "DICOM Instances Transferred", PS3.15 A.5.3.3-4) has everything: who
 * (assoc_who), the destination (C-MOVE: op->qr.req.move_destination), the instances planned
 * (op->list: study, series, SOP Instance and class UIDs), the counts and the final status. */
static void retrieve_audit(const struct retrieve_op *op, uint16_t status)
{
    struct assoc_who who;
    assoc_who(op->qr.base.a, &who);
    struct logb lb;
    if (!log_begin(&lb, status == DIMSE_SUCCESS ? LOG_INFO : LOG_WARN, op->kind->event))
        return;
    log_u64(&lb, "assoc", who.id);
    log_str(&lb, "calling_ae", who.calling);
    if (who.client_id[0])
        log_str(&lb, "client_id", who.client_id);
    if (op->qr.req.move_destination[0])
        log_str(&lb, "destination", op->qr.req.move_destination);
    if (op->qr.q)
        log_str(&lb, "level", dcm_query_level_name(dcm_query_level(op->qr.q)));
    size_t studies = 0;
    for (size_t i = 0; i < op->list.n; i++)
        studies += i == 0 || strcmp(op->list.v[i].study, op->list.v[i - 1].study) != 0;
    if (op->list.n)
        log_str(&lb, "study_instance_uid", op->list.v[0].study);
    log_u64(&lb, "studies", studies);
    log_u64(&lb, "instances", op->list.n);
    log_u64(&lb, "completed", op->c.completed);
    log_u64(&lb, "failed", op->c.failed);
    log_u64(&lb, "warning", op->c.warning);
    log_hex16(&lb, "status", status);
    log_end(&lb);
}

/* The final response, with the Failed SOP Instance UID List when there is one. */
static void final(struct retrieve_op *op, const struct qr_fail *fail, const char *failed,
                  bool counts)
{
    struct qr_op *q = &op->qr;
    if (q->ended)
        return;
    q->ended = true;
    uint16_t status = fail->status;
    retrieve_audit(op, status);
    struct assoc *a = q->base.a;
    struct dcm_ds *ds = NULL;
    if (failed && failed[0] && (ds = dcm_ds_new(NULL)) &&
        dcm_ds_add_cstr(ds, dcm_ds_root_mut(ds), TAG_FAILED_LIST, DCM_VR_UI, failed) < 0) {
        dcm_ds_free(ds);
        ds = NULL;
    }
    q->busy++;
    int rc = qr_respond(a, &q->req, q->pctx.id, q->pctx.ts, fail, counts ? &op->c : NULL,
                        status == DIMSE_CANCEL, ds);
    if (rc < 0 && !q->gone) /* the list could not be encoded: the status alone */
        rc = qr_respond(a, &q->req, q->pctx.id, q->pctx.ts, fail, counts ? &op->c : NULL,
                        status == DIMSE_CANCEL, NULL);
    q->busy--;
    dcm_ds_free(ds);
    if (!q->gone)
        assoc_op_done(a, &q->base);
    try_free(op);
}

void retrieve_op_finish(struct retrieve_op *op, uint16_t status, const char *comment)
{
    struct qr_fail f = {status, comment, 0};
    if (status == DIMSE_CANCEL)
        op->c.remaining = (uint16_t)(op->list.n - op->c.completed - op->c.failed - op->c.warning);
    final(op, &f, NULL, op->list.n > 0 || status == DIMSE_SUCCESS);
}

void retrieve_op_fail_all(struct retrieve_op *op, const char *why)
{
    struct wbuf failed;
    wbuf_init(&failed, 65000);
    for (size_t i = 0; i < op->list.n; i++) {
        if (failed.len + strlen(op->list.v[i].sop) + 2 > 65000)
            break;
        wbuf_printf(&failed, "%s%s", i ? "\\" : "", op->list.v[i].sop);
    }
    wbuf_u8(&failed, 0);
    op->c = (struct qr_counts){.failed = (uint16_t)op->list.n};
    struct qr_fail f = {DIMSE_RETRIEVE_OUT_OF_RESOURCES, why, 0}; /* A702 */
    final(op, &f, failed.len > 1 && !failed.err ? (const char *)failed.p : NULL, true);
    wbuf_cleanup(&failed);
}

/* ---- the sub-operations ------------------------------------------------------------------- */

static void on_progress(void *arg, const struct qr_counts *c)
{
    struct retrieve_op *op = arg;
    op->c = *c;
    struct qr_fail f = {DIMSE_PENDING, NULL, 0};
    struct qr_op *q = &op->qr;
    q->busy++;
    (void)!qr_respond(q->base.a, &q->req, q->pctx.id, q->pctx.ts, &f, c, true, NULL);
    q->busy--; /* a failure closed the association: its gone hook stopped the run */
    try_free(op);
}

static void on_run_done(void *arg, const struct qr_counts *c, enum retrieve_end how)
{
    struct retrieve_op *op = arg;
    op->c = *c;
    const char *failed = retrieve_run_failed(op->run);
    op->run = NULL;
    if (op->kind->run_done)
        op->kind->run_done(op);
    struct qr_fail f = {retrieve_final_status(c, how),
                        how == RETRIEVE_LOST ? "the destination association ended"
                        : c->failed          ? "some sub-operations failed: see the failed list"
                                             : NULL,
                        0};
    final(op, &f, failed, true);
}

void retrieve_op_run(struct retrieve_op *op, struct assoc *target, bool move)
{
    struct assoc_who who;
    assoc_who(op->qr.base.a, &who);
    struct retrieve_params p = {.target = target, .ops = op->qr.ops, .impl = op->qr.impl,
                                .scope = &op->qr.scope->s, .list = &op->list,
                                .move_originator = move ? who.calling : NULL,
                                .requestor = move ? op->qr.base.a : NULL,
                                .move_originator_id = op->qr.req.message_id};
    struct retrieve_cbs cbs = {.progress = on_progress, .done = on_run_done, .arg = op};
    if (retrieve_run_start(&p, &cbs, &op->run) < 0) {
        op->run = NULL;
        retrieve_op_finish(op, DIMSE_RETRIEVE_OUT_OF_RESOURCES, "out of memory");
    }
}

/* ---- identifier, scope, plan -------------------------------------------------------------- */

static void on_plan(void *arg, int err, const char *why)
{
    struct retrieve_op *op = arg;
    op->plan = NULL;
    if (err == ERR_LIMIT) /* PS3.4 C.4.3.1.4: refused, unable to calculate number of matches */
        retrieve_op_finish(op, DIMSE_RETRIEVE_OUT_OF_RESOURCES_N, why);
    else if (err < 0)
        retrieve_op_finish(op, QR_ST_ARCHIVE, why ? why : "the archive could not be searched");
    else if (op->list.n == 0)
        retrieve_op_finish(op, DIMSE_SUCCESS, NULL); /* nothing matched: nothing to send */
    else
        op->kind->planned(op);
}

static void start(struct qr_op *qop)
{
    struct retrieve_op *op = (struct retrieve_op *)qop;
    if (!retrieve_in_scope(qop->q, qop->scope)) {
        retrieve_op_finish(op, DIMSE_NOT_AUTHORIZED, "a study named is outside the read scope");
        return;
    }
    int rc = retrieve_plan_start(qop->ops, qop->impl, qop->q, qop->scope, &op->list, on_plan, op,
                                 &op->plan);
    if (rc == 1)
        retrieve_op_finish(op, DIMSE_SUCCESS, NULL);
    else if (rc < 0)
        retrieve_op_finish(op, QR_ST_ARCHIVE,
                           rc == ERR_WRONG_STATE ? "the archive index is being rebuilt: try again"
                                                 : "the archive could not be searched");
}

static void finish_early(struct qr_op *qop, const struct qr_fail *f)
{
    final((struct retrieve_op *)qop, f, NULL, false);
}

static void cancel(struct svc_op *base)
{
    struct retrieve_op *op = (struct retrieve_op *)base;
    if (op->qr.ended || op->qr.cancelled || qr_op_cancel_early(&op->qr))
        return;
    if (op->run) {
        retrieve_run_cancel(op->run); /* the final response comes from on_run_done */
    } else if (op->plan) {
        retrieve_plan_cancel(op->plan);
        op->plan = NULL;
        retrieve_op_finish(op, DIMSE_CANCEL, NULL);
    } else if (op->kind->cancel) {
        op->kind->cancel(op); /* e.g. still connecting to the destination */
    }
}

static void gone(struct svc_op *base)
{
    struct retrieve_op *op = (struct retrieve_op *)base;
    qr_op_gone(&op->qr);
    retrieve_run_stop(op->run);
    op->run = NULL;
    retrieve_plan_cancel(op->plan);
    op->plan = NULL;
    if (op->kind->gone)
        op->kind->gone(op);
    try_free(op);
}

static const struct svc_op_hooks hooks = {
    .data = qr_op_data,
    .data_end = qr_op_data_end,
    .cancel = cancel,
    .gone = gone,
};

static const struct qr_op_kind qr_kind = {
    .qop = DCM_QOP_RETRIEVE,
    .start = start,
    .finish = finish_early,
};

void retrieve_op_init(struct retrieve_op *op, const struct retrieve_kind *kind,
                      struct assoc *a, const struct dimse_request *rq, enum dcm_qr_model model)
{
    op->kind = kind;
    qr_op_init(&op->qr, &qr_kind, &hooks, a, rq, model);
}
