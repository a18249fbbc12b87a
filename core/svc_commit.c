/* svc_commit: the Storage Commitment Push Model SOP Class as SCP (PS3.4 Annex J): N-ACTION-RQ
 * (Action Type 1) answered at once, once the transaction is durable (commit_txn.h); the result
 * follows later as an N-EVENT-REPORT (commit_report.h). */
#include "svc_commit.h"

#include <stdlib.h>
#include <string.h>

#include "commit_ds.h"
#include "commit_txn.h"
#include "common/log.h"
#include "core_ctx.h"
#include "svc_store.h"

struct commit_op {
    struct svc_op base; /* first: the association's view */
    struct core_ctx *ctx;
    struct dimse_cmd req;
    struct pctx_info pctx;
    struct wbuf data;
    bool waiting; /* the store has the transaction; its answer frees op when gone */
    bool gone;
    struct assoc_who who;
    char calling[17], called[17];
    size_t n_refs;
    char uid[65];
};

static bool serves(const struct core_config *cfg, const char *abstract)
{
    (void)cfg;
    return strcmp(abstract, SOP_STORAGE_COMMITMENT) == 0;
}

static void log_action(const struct commit_op *op, uint16_t status, const char *comment)
{
    struct logb lb;
    if (!log_begin(&lb, status == 0 ? LOG_INFO : LOG_WARN, "n_action"))
        return;
    log_u64(&lb, "assoc", op->who.id);
    log_str(&lb, "calling_ae", op->calling);
    if (op->uid[0])
        log_str(&lb, "transaction_uid", op->uid);
    log_u64(&lb, "refs", op->n_refs);
    log_hex16(&lb, "status", status);
    if (comment)
        log_str(&lb, "why", comment);
    log_end(&lb);
}

static void free_op(struct commit_op *op)
{
    wbuf_cleanup(&op->data);
    free(op);
}

/* The N-ACTION-RSP (PS3.7 10.3.4): Action Type ID echoed. */
static void respond(struct commit_op *op, uint16_t status, const char *comment)
{
    struct assoc *a = op->base.a;
    log_action(op, status, comment);
    if (status != 0)
        core_count_failure(op->ctx, status);
    struct dimse_cmd rsp;
    dimse_rsp_init(&rsp, &op->req, status);
    rsp.action_type_id = op->req.action_type_id;
    rsp.has_action_type_id = op->req.has_action_type_id;
    if (comment && status != 0)
        dimse_set_comment(&rsp, comment);
    if (assoc_send_cmd(a, op->pctx.id, &rsp) < 0)
        return; /* closing: gone() has run */
    assoc_op_done(a, &op->base);
    if (status == 0)
        commit_kick(op->ctx, op->calling);
    free_op(op);
}

static void on_open(void *arg, uint16_t status, const char *comment)
{
    struct commit_op *op = arg;
    op->waiting = false;
    if (op->gone) { /* the association ended first: the transaction stands (it is durable) */
        log_action(op, status, comment ? comment : "association gone before the answer");
        free_op(op);
        return;
    }
    respond(op, status, comment);
}

static bool can_take(struct svc_op *base, size_t n)
{
    (void)base;
    (void)n;
    return true; /* bounded by the wbuf's cap */
}

static void data(struct svc_op *base, const uint8_t *p, size_t n)
{
    struct commit_op *op = (struct commit_op *)base;
    wbuf_put(&op->data, p, n);
}

static bool storage_class(const struct core_config *cfg, const char *cls)
{
    return services_serving(cfg, cls) == &svc_store;
}

static void data_end(struct svc_op *base)
{
    struct commit_op *op = (struct commit_op *)base;
    const struct core_config *cfg = assoc_cfg(base->a);
    assoc_pause(base->a); /* the next request waits for this response */
    if (op->data.err) {
        respond(op, 0x0213, "more references than this SCP accepts in one request");
        return;
    }
    enum dcm_ts ts;
    if (strcmp(op->pctx.ts->uid, TS_IMPLICIT_LE) == 0) {
        ts = DCM_TS_IMPLICIT_LE;
    } else if (strcmp(op->pctx.ts->uid, TS_EXPLICIT_LE) == 0) {
        ts = DCM_TS_EXPLICIT_LE;
    } else {
        respond(op, 0x0110, "transfer syntax not supported for Storage Commitment");
        return;
    }
    struct commit_txn t;
    memset(&t, 0, sizeof t);
    const char *why = NULL;
    int rc = commit_ds_parse_action(op->data.p, op->data.len, ts, cfg->commit.max_refs, &t, &why);
    wbuf_cleanup(&op->data);
    if (rc < 0) {
        respond(op, rc == COMMIT_DS_MALFORMED ? 0x0115 : 0x0213, why);
        return;
    }
    snprintf(op->uid, sizeof op->uid, "%s", t.uid);
    op->n_refs = t.n_refs;
    for (size_t i = 0; i < t.n_refs; i++) {
        if (!storage_class(cfg, t.refs[i].sop_class))
            t.refs[i].result = COMMIT_CLASS_NOT_SUPPORTED; /* final at once (0122H) */
    }
    snprintf(t.calling, sizeof t.calling, "%s", op->calling);
    snprintf(t.called, sizeof t.called, "%s", op->called);
    op->waiting = true;
    commit_open(op->ctx, &t, op->who.id, on_open, op); /* takes t */
}

static void gone(struct svc_op *base)
{
    struct commit_op *op = (struct commit_op *)base;
    if (op->waiting) {
        op->gone = true;
        return;
    }
    free_op(op);
}

static const struct svc_op_hooks hooks = {
    .can_take = can_take,
    .data = data,
    .data_end = data_end,
    .cancel = NULL,
    .gone = gone,
};

static void request(struct assoc *a, const struct dimse_request *rq, struct svc_op **out,
                    uint16_t *status, const char **comment)
{
    const struct dimse_cmd *c = rq->cmd;
    *out = NULL;
    if (strcmp(c->requested_sop_class, SOP_STORAGE_COMMITMENT) != 0) {
        *status = 0x0118; /* No such SOP Class */
        *comment = "Requested SOP Class is not Storage Commitment Push Model";
    } else if (strcmp(c->requested_sop_instance, SOP_STORAGE_COMMITMENT_INSTANCE) != 0) {
        *status = DIMSE_NO_SUCH_SOP_INSTANCE;
        *comment = "Requested SOP Instance is not the well-known instance";
    } else if (!c->has_action_type_id || c->action_type_id != 1) {
        *status = DIMSE_NO_SUCH_ACTION;
        *comment = "only Action Type ID 1 (Request Storage Commitment)";
    } else if (!rq->has_dataset) {
        *status = DIMSE_INVALID_ARGUMENT;
        *comment = "N-ACTION without Action Information";
    } else {
        struct commit_op *op = calloc(1, sizeof *op);
        if (!op) {
            *status = DIMSE_RESOURCE_LIMITATION;
            *comment = "out of memory";
            return;
        }
        const struct core_config *cfg = assoc_cfg(a);
        op->base.hooks = &hooks;
        op->ctx = assoc_ctx(a);
        op->req = *c;
        op->pctx = *rq->pctx;
        assoc_who(a, &op->who);
        snprintf(op->calling, sizeof op->calling, "%s", op->who.calling);
        snprintf(op->called, sizeof op->called, "%s", op->who.called);
        /* about 140 bytes per reference in Explicit VR, and room for the rest */
        wbuf_init(&op->data, (size_t)cfg->commit.max_refs * 192 + 65536);
        *out = &op->base;
        return;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "n_action")) {
        struct assoc_who who;
        assoc_who(a, &who);
        log_u64(&lb, "assoc", who.id);
        log_str(&lb, "calling_ae", who.calling);
        log_hex16(&lb, "status", *status);
        log_str(&lb, "why", *comment);
        log_end(&lb);
    }
}

const struct dimse_service svc_commit = {
    .name = "commit",
    .grant = GRANT_COMMIT,
    .commands = {DIMSE_N_ACTION_RQ, 0},
    .serves = serves,
    .uncompressed_only = true,
    .request = request,
};
