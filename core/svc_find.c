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
    struct svc_op base; /* first: the association's view */
    struct dimse_cmd req;
    struct pctx_info pctx;
    enum dcm_qr_model model;
    struct qr_ident ident;
    struct dcm_query *q;
    bool optional_unsupported; /* keys the archive does not know: pending responses say FF01 */
    struct qr_scope *scope;
    struct qr_scope_req *scope_req;
    const struct backend_read_ops *ops;
    void *impl;
    struct backend_read_op *search;
    uint32_t matches;
    int busy;
    bool cancelled, gone, ended, room_wait;
};

static bool serves(const struct core_config *cfg, const char *abstract)
{
    (void)cfg;
    return qr_model(abstract, QR_FIND, NULL);
}

static void op_free(struct find_op *op)
{
    dcm_query_free(op->q);
    qr_scope_free(op->scope);
    qr_ident_cleanup(&op->ident);
    free(op);
}

/* The association's end ran while op was on the stack: free it once the stack unwinds. */
static bool release_if_gone(struct find_op *op)
{
    if (!op->gone)
        return false;
    if (op->busy == 0)
        op_free(op);
    return true;
}

/* The one place where a query's audit record (DICOM "Query", PS3.15 A.5.3.13) has everything:
 * who asked (assoc_who), the identifier as sent (op->ident) and parsed (op->q), the model, how
 * many matches were returned and the final status. No value of the identifier is logged here. */
static void find_audit(const struct find_op *op, uint16_t status)
{
    struct assoc_who who;
    assoc_who(op->base.a, &who);
    struct logb lb;
    if (!log_begin(&lb, status == DIMSE_SUCCESS ? LOG_INFO : LOG_WARN, "c_find"))
        return;
    log_u64(&lb, "assoc", who.id);
    log_str(&lb, "calling_ae", who.calling);
    if (who.client_id[0])
        log_str(&lb, "client_id", who.client_id);
    log_str(&lb, "model", op->model == DCM_QR_PATIENT_ROOT ? "patient" : "study");
    if (op->q)
        log_str(&lb, "level", dcm_query_level_name(dcm_query_level(op->q)));
    log_str(&lb, "scope", grants_scope_name(who.grants.scope));
    log_u64(&lb, "matches", op->matches);
    log_hex16(&lb, "status", status);
    log_end(&lb);
}

/* The final response; op is freed (now or, if the association ended meanwhile, when the stack
 * unwinds). */
static void finish(struct find_op *op, uint16_t status, const char *comment, uint32_t tag)
{
    if (op->ended)
        return;
    op->ended = true;
    find_audit(op, status);
    struct assoc *a = op->base.a;
    struct qr_fail f = {status, comment, tag};
    op->busy++;
    int rc = qr_respond(a, &op->req, op->pctx.id, op->pctx.ts, &f, NULL, false, NULL);
    op->busy--;
    if (release_if_gone(op))
        return;
    if (rc < 0) /* only an encoding failure of ours can land here: nothing more to say */
        assoc_abort(a, "cannot send the C-FIND response");
    assoc_op_done(a, &op->base);
    if (!release_if_gone(op))
        op_free(op);
}

static void on_room(void *arg)
{
    struct find_op *op = arg;
    op->room_wait = false;
    if (op->search)
        op->ops->resume(op->search);
}

/* One candidate: in scope, matching, answered as a pending response. 1: wait for room. */
static int take(struct find_op *op, const struct dcm_ds *cand)
{
    struct assoc *a = op->base.a;
    const struct dcm_item *root = dcm_ds_root(cand);
    if (dcm_query_level(op->q) != DCM_QL_PATIENT) { /* the scope, again: invariant 6 */
        char study[65];
        const struct dcm_elem *e = dcm_item_find(root, TAG_STUDY);
        if (!e || dcm_elem_cstr(e, 0, study, sizeof study) < 0 || !qr_scope_has(op->scope, study))
            return 0;
    }
    struct dcm_match_opts mo = {.flags = DCM_MATCH_PN_ICASE,
                                .retrieve_ae = assoc_cfg(a)->ae_title};
    if (dcm_charset_of(root, &mo.cand_cs) < 0 || !dcm_match(op->q, root, &mo))
        return 0;
    struct dcm_ds *rsp = NULL;
    if (dcm_match_response(op->q, root, &mo, NULL, &rsp) < 0)
        return 0; /* a candidate we cannot express: left out */
    struct qr_fail f = {op->optional_unsupported ? DIMSE_PENDING_WARNING : DIMSE_PENDING, NULL, 0};
    int rc = qr_respond(a, &op->req, op->pctx.id, op->pctx.ts, &f, NULL, false, rsp);
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
    if (op->cancelled || op->ended)
        return 0;
    op->busy++;
    int r = take(op, cand);
    op->busy--;
    if (release_if_gone(op))
        return -1;
    return r;
}

static void on_done(void *arg, int err, const char *why)
{
    struct find_op *op = arg;
    op->search = NULL;
    if (err == 0)
        finish(op, DIMSE_SUCCESS, NULL, 0);
    else if (err == ERR_LIMIT) /* PS3.4 C.4.1.1.4: refused, out of resources; never silent */
        finish(op, DIMSE_FIND_OUT_OF_RESOURCES,
               why ? why : "more matches than the archive returns: narrow the query", 0);
    else
        finish(op, QR_ST_ARCHIVE, why ? why : "the archive could not be searched", 0);
}

static void start_search(struct find_op *op)
{
    if (op->scope->s.scope == GRANT_SCOPE_NONE) {
        finish(op, DIMSE_NOT_AUTHORIZED, "no read scope: this client may not read", 0);
        return;
    }
    struct backend_search_cbs cbs = {.result = on_result, .done = on_done, .arg = op};
    int rc = op->ops->search(op->impl, op->q, &op->scope->s, &cbs, &op->search);
    if (rc < 0) {
        op->search = NULL;
        finish(op, QR_ST_ARCHIVE,
               rc == ERR_WRONG_STATE ? "the archive index is being rebuilt: try again"
                                     : "the archive could not be searched",
               0);
    }
}

static void on_scope(void *arg, int err, struct qr_scope *scope)
{
    struct find_op *op = arg;
    op->scope_req = NULL;
    op->scope = scope;
    if (op->cancelled)
        finish(op, DIMSE_CANCEL, NULL, 0);
    else if (err < 0)
        finish(op, QR_ST_ARCHIVE, "the client's read scope could not be resolved", 0);
    else
        start_search(op);
}

static void data(struct svc_op *base, const uint8_t *p, size_t n)
{
    qr_ident_put(&((struct find_op *)base)->ident, p, n);
}

static void data_end(struct svc_op *base)
{
    struct find_op *op = (struct find_op *)base;
    struct qr_fail f;
    if (qr_parse(&op->ident, &op->pctx, op->model, DCM_QOP_FIND, &op->q, &f) < 0) {
        finish(op, f.status, f.comment, f.tag);
        return;
    }
    for (size_t i = 0; i < dcm_query_nkeys(op->q); i++) {
        if (!dcm_dict_find(dcm_query_key(op->q, i)->tag))
            op->optional_unsupported = true; /* returned empty: C.4.1.1.4 FF01 */
    }
    int rc = qr_scope_resolve(base->a, &op->scope, on_scope, op, &op->scope_req);
    if (rc < 0)
        finish(op, QR_ST_ARCHIVE, "the archive cannot be searched", 0);
    else if (rc == 0)
        start_search(op);
}

static void cancel(struct svc_op *base)
{
    struct find_op *op = (struct find_op *)base;
    if (op->ended || op->cancelled)
        return;
    op->cancelled = true;
    if (op->scope_req)
        return; /* on_scope answers */
    if (op->search) {
        op->ops->cancel(op->search);
        op->search = NULL;
        if (op->room_wait)
            assoc_on_out_room(base->a, NULL, NULL);
        finish(op, DIMSE_CANCEL, NULL, 0); /* PS3.4 C.4.1.2.3: matching terminated */
    }
}

static void gone(struct svc_op *base)
{
    struct find_op *op = (struct find_op *)base;
    op->gone = true;
    if (op->search)
        op->ops->cancel(op->search);
    op->search = NULL;
    if (op->room_wait)
        assoc_on_out_room(base->a, NULL, NULL);
    qr_scope_abandon(op->scope_req);
    op->scope_req = NULL;
    if (op->busy == 0)
        op_free(op);
}

static const struct svc_op_hooks hooks = {
    .data = data,
    .data_end = data_end,
    .cancel = cancel,
    .gone = gone,
};

static void request(struct assoc *a, const struct dimse_request *rq, struct svc_op **out,
                    uint16_t *status, const char **comment)
{
    *out = NULL;
    enum dcm_qr_model model;
    void *impl;
    const struct backend_read_ops *ops = qr_backend(a, &impl);
    if (!rq->has_dataset) {
        *status = DIMSE_DATASET_MISMATCH;
        *comment = "C-FIND without an identifier";
    } else if (strcmp(rq->cmd->affected_sop_class, rq->pctx->abstract) != 0 ||
               !qr_model(rq->pctx->abstract, QR_FIND, &model)) {
        *status = DIMSE_SOP_CLASS_NOT_SUPPORTED;
        *comment = "SOP class differs from the presentation context";
    } else if (!ops) {
        *status = QR_ST_ARCHIVE;
        *comment = "this archive's backend cannot be searched";
    } else {
        struct find_op *op = calloc(1, sizeof *op);
        if (!op) {
            *status = DIMSE_FIND_OUT_OF_RESOURCES;
            *comment = "out of memory";
            return;
        }
        op->base.hooks = &hooks;
        op->req = *rq->cmd;
        op->pctx = *rq->pctx;
        op->model = model;
        op->ops = ops;
        op->impl = impl;
        qr_ident_init(&op->ident);
        *out = &op->base;
    }
}

const struct dimse_service svc_find = {
    .name = "find",
    .grant = GRANT_FIND,
    .commands = {DIMSE_C_FIND_RQ, 0},
    .serves = serves,
    .uncompressed_only = true,
    .request = request,
};
