/* svc_find: the Query/Retrieve FIND SOP classes as SCP (PS3.4 C.4.1), Patient Root and Study
 * Root: the identifier parsed (qr.c, common/dcm_query), candidates from the backend's search
 * matched again here (common/dcm_match) and sent as pending responses as they arrive, each with
 * exactly the requested keys in the requested character set, every one inside the client's read
 * scope. C-CANCEL stops the search (FE00); the backend's cap is told with A700; a peer that
 * does not read pauses the search (assoc_on_out_room). */
#include "svc_find.h"

#include <stdlib.h>
#include <string.h>

#include "common/dcm_match.h"
#include "common/log.h"
#include "core_ctx.h"
#include "qr.h"

#define TAG_STUDY DCM_TAG(0x0020, 0x000D)

struct find_op {
    struct qr_op qr; /* first: the association's view, the identifier, the scope */
    bool optional_unsupported; /* keys the archive does not know: pending responses say FF01 */
    struct backend_read_op *search;
    uint32_t matches;
    bool room_wait;
};

static bool serves(const struct core_config *cfg, const char *abstract)
{
    (void)cfg;
    return qr_model(abstract, QR_FIND, NULL);
}

static void op_free(struct find_op *op)
{
    qr_op_cleanup(&op->qr);
    free(op);
}

/* The association's end ran while op was on the stack: free it once the stack unwinds. */
static bool release_if_gone(struct find_op *op)
{
    if (!op->qr.gone)
        return false;
    if (op->qr.busy == 0)
        op_free(op);
    return true;
}

/* The one place where a query's audit record (DICOM "Query", PS3.15 A.5.3.13) has everything:
 * who asked (assoc_who), the identifier as sent (op->qr.ident) and parsed (op->qr.q), the model, how
 * many matches were returned and the final status. No value of the identifier is logged here. */
static void find_audit(const struct find_op *op, uint16_t status)
{
    struct assoc_who who;
    assoc_who(op->qr.base.a, &who);
    struct logb lb;
    if (!log_begin(&lb, status == DIMSE_SUCCESS ? LOG_INFO : LOG_WARN, "c_find"))
        return;
    log_u64(&lb, "assoc", who.id);
    log_str(&lb, "calling_ae", who.calling);
    if (who.client_id[0])
        log_str(&lb, "client_id", who.client_id);
    log_str(&lb, "model", op->qr.model == DCM_QR_PATIENT_ROOT ? "patient" : "study");
    if (op->qr.q)
        log_str(&lb, "level", dcm_query_level_name(dcm_query_level(op->qr.q)));
    log_str(&lb, "scope", grants_scope_name(who.grants.scope));
    log_u64(&lb, "matches", op->matches);
    log_hex16(&lb, "status", status);
    log_end(&lb);
}

/* The final response; op is freed (now or, if the association ended meanwhile, when the stack
 * unwinds). */
static void final(struct qr_op *qop, const struct qr_fail *f)
{
    struct find_op *op = (struct find_op *)qop;
    if (qop->ended)
        return;
    qop->ended = true;
    find_audit(op, f->status);
    qr_op_audit_query(qop, f->status);
    struct assoc *a = qop->base.a;
    qop->busy++;
    (void)!qr_respond(a, &qop->req, qop->pctx.id, qop->pctx.ts, f, NULL, false, NULL);
    qop->busy--; /* a failure closed the association: its gone hook has run */
    if (release_if_gone(op))
        return;
    assoc_op_done(a, &qop->base);
    op_free(op);
}

static void finish(struct find_op *op, uint16_t status, const char *comment)
{
    struct qr_fail f = {status, comment, 0};
    final(&op->qr, &f);
}

static void on_room(void *arg)
{
    struct find_op *op = arg;
    op->room_wait = false;
    if (op->search)
        op->qr.ops->resume(op->search);
}

/* One candidate: in scope, matching, answered as a pending response. 1: wait for room. */
static int take(struct find_op *op, const struct dcm_ds *cand)
{
    struct qr_op *q = &op->qr;
    struct assoc *a = q->base.a;
    const struct dcm_item *root = dcm_ds_root(cand);
    if (dcm_query_level(q->q) != DCM_QL_PATIENT) { /* the scope, again: invariant 6 */
        char study[65];
        const struct dcm_elem *e = dcm_item_find(root, TAG_STUDY);
        if (!e || dcm_elem_cstr(e, 0, study, sizeof study) < 0 || !qr_scope_has(q->scope, study))
            return 0;
    }
    struct dcm_match_opts mo = {.flags = DCM_MATCH_PN_ICASE,
                                .retrieve_ae = assoc_cfg(a)->ae_title};
    if (dcm_charset_of(root, &mo.cand_cs) < 0 || !dcm_match(q->q, root, &mo))
        return 0;
    struct dcm_ds *rsp = NULL;
    if (dcm_match_response(q->q, root, &mo, NULL, &rsp) < 0)
        return 0; /* a candidate we cannot express: left out */
    struct qr_fail f = {op->optional_unsupported ? DIMSE_PENDING_WARNING : DIMSE_PENDING, NULL, 0};
    int rc = qr_respond(a, &q->req, q->pctx.id, q->pctx.ts, &f, NULL, false, rsp);
    dcm_ds_free(rsp);
    if (rc < 0)
        return assoc_is_closing(a) ? -1 : 0;
    op->matches++;
    if (assoc_out_queued(a) > ASSOC_OUT_HIGH) { /* the peer is not reading: pause the search */
        op->room_wait = true;
        assoc_on_out_room(a, on_room, op);
        return 1;
    }
    return 0;
}

static int on_result(void *arg, const struct dcm_ds *cand)
{
    struct find_op *op = arg;
    if (op->qr.cancelled || op->qr.ended)
        return 0;
    op->qr.busy++;
    int r = take(op, cand);
    op->qr.busy--;
    if (release_if_gone(op))
        return -1;
    return r;
}

static void on_done(void *arg, int err, const char *why)
{
    struct find_op *op = arg;
    op->search = NULL;
    if (err == 0)
        finish(op, DIMSE_SUCCESS, NULL);
    else if (err == ERR_LIMIT) /* PS3.4 C.4.1.1.4: refused, out of resources; never silent */
        finish(op, DIMSE_FIND_OUT_OF_RESOURCES,
               why ? why : "more matches than the archive returns: narrow the query");
    else
        finish(op, QR_ST_ARCHIVE, why ? why : "the archive could not be searched");
}

static void start(struct qr_op *qop)
{
    struct find_op *op = (struct find_op *)qop;
    for (size_t i = 0; i < dcm_query_nkeys(qop->q); i++) {
        if (!dcm_dict_find(dcm_query_key(qop->q, i)->tag))
            op->optional_unsupported = true; /* returned empty: C.4.1.1.4 FF01 */
    }
    struct backend_search_cbs cbs = {.result = on_result, .done = on_done, .arg = op};
    int rc = qop->ops->search(qop->impl, qop->q, &qop->scope->s, &cbs, &op->search);
    if (rc < 0) {
        op->search = NULL;
        finish(op, QR_ST_ARCHIVE,
               rc == ERR_WRONG_STATE ? "the archive index is being rebuilt: try again"
                                     : "the archive could not be searched");
    }
}

static void cancel(struct svc_op *base)
{
    struct find_op *op = (struct find_op *)base;
    if (op->qr.ended || op->qr.cancelled || qr_op_cancel_early(&op->qr))
        return;
    if (op->search) {
        op->qr.ops->cancel(op->search);
        op->search = NULL;
        if (op->room_wait)
            assoc_on_out_room(base->a, NULL, NULL);
        finish(op, DIMSE_CANCEL, NULL); /* PS3.4 C.4.1.2.3: matching terminated */
    }
}

static void gone(struct svc_op *base)
{
    struct find_op *op = (struct find_op *)base;
    qr_op_gone(&op->qr);
    if (op->search)
        op->qr.ops->cancel(op->search);
    op->search = NULL;
    if (op->room_wait)
        assoc_on_out_room(base->a, NULL, NULL);
    if (op->qr.busy == 0)
        op_free(op);
}

static const struct svc_op_hooks hooks = {
    .data = qr_op_data,
    .data_end = qr_op_data_end,
    .cancel = cancel,
    .gone = gone,
};

static const struct qr_op_kind kind = {.qop = DCM_QOP_FIND, .start = start, .finish = final};

static void request(struct assoc *a, const struct dimse_request *rq, struct svc_op **out,
                    uint16_t *status, const char **comment)
{
    *out = NULL;
    enum dcm_qr_model model;
    if (qr_op_check(a, rq, QR_FIND, &model, status, comment) < 0)
        return;
    struct find_op *op = calloc(1, sizeof *op);
    if (!op) {
        *status = DIMSE_FIND_OUT_OF_RESOURCES;
        *comment = "out of memory";
        return;
    }
    qr_op_init(&op->qr, &kind, &hooks, a, rq, model);
    *out = &op->qr.base;
}

const struct dimse_service svc_find = {
    .name = "find",
    .grant = GRANT_FIND,
    .commands = {DIMSE_C_FIND_RQ, 0},
    .serves = serves,
    .uncompressed_only = true,
    .request = request,
};
