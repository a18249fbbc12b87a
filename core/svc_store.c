#include "svc_store.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/uid.h"
#include "core_audit.h"
#include "core_ctx.h"
#include "sop_registry.h"
#include "spool/spool_backend.h"
#include "store.h"

#define STORE_BUF (1024u * 1024u)

struct store_op {
    struct svc_op base; /* first: the association's view */
    struct store_obj *obj;
    struct dimse_cmd req;
    struct pctx_info pctx;
};

static bool serves(const struct core_config *cfg, const char *abstract)
{
    const struct sop_class *s = sop_registry_find(abstract);
    if (s)
        return !s->retired || cfg->accept_retired_sops;
    for (size_t i = 0; i < cfg->n_private_sops; i++) {
        if (strcmp(cfg->private_sops[i], abstract) == 0)
            return true;
    }
    return false;
}

static void on_room(void *arg)
{
    struct store_op *op = arg;
    assoc_resume(op->base.a);
}

static bool can_take(struct svc_op *base, size_t n)
{
    struct store_op *op = (struct store_op *)base;
    if (store_can_accept(op->obj, n))
        return true;
    store_on_room(op->obj, on_room, op);
    return false;
}

static void data(struct svc_op *base, const uint8_t *p, size_t n)
{
    struct store_op *op = (struct store_op *)base;
    store_write(op->obj, p, n);
}

static void log_store(const struct assoc *a, const struct dimse_cmd *req, uint16_t status,
                      const char *comment, const struct store_obj *o)
{
    struct assoc_who who;
    assoc_who(a, &who);
    struct logb lb;
    if (!log_begin(&lb, status == DIMSE_SUCCESS ? LOG_INFO : LOG_WARN, "c_store"))
        return;
    log_u64(&lb, "assoc", who.id);
    log_str(&lb, "calling_ae", who.calling);
    log_str(&lb, "sop_instance_uid", req->affected_sop_instance);
    log_str(&lb, "sop_class_uid", req->affected_sop_class);
    log_hex16(&lb, "status", status);
    if (comment)
        log_str(&lb, "why", comment);
    if (status == DIMSE_SUCCESS) {
        log_str(&lb, "spool_id", store_id(o));
        log_u64(&lb, "bytes", store_bytes(o));
        if (store_sha256_hex(o)[0])
            log_str(&lb, "sha256", store_sha256_hex(o));
        log_str(&lb, "crc64nvme", store_crc64_hex(o));
    }
    log_end(&lb);
}

static void on_done(void *arg, uint16_t status, const char *comment, const struct store_obj *o)
{
    struct store_op *op = arg;
    struct assoc *a = op->base.a;
    struct core_ctx *ctx = assoc_ctx(a);
    op->obj = NULL; /* freed by store right after this callback */
    if (status == DIMSE_SUCCESS) {
        assoc_count_object(a);
        metric_inc(ctx->m.objects);
        if (ctx->backend)
            backend_notify(ctx->backend);
        metric_add(ctx->m.bytes, store_bytes(o));
    }
    log_store(a, &op->req, status, comment, o);
    core_audit_stored(a, op->req.affected_sop_class, store_uids(o)->study, store_patient_id(o),
                      status, comment);
    struct dimse_request rq = {.cmd = &op->req, .pctx = &op->pctx, .has_dataset = true};
    if (assoc_respond(a, &rq, status, comment) < 0)
        return; /* the association is closing: gone() has freed op */
    assoc_op_done(a, &op->base);
    free(op);
}

static void data_end(struct svc_op *base)
{
    struct store_op *op = (struct store_op *)base;
    assoc_pause(base->a); /* synchronous: the next request waits for this response */
    store_end(op->obj, on_done, op); /* on_done may run at once (a failure) */
}

static void gone(struct svc_op *base)
{
    struct store_op *op = (struct store_op *)base;
    if (op->obj)
        store_abort(op->obj); /* never acknowledged: its partial file is removed */
    free(op);
}

static const struct svc_op_hooks hooks = {
    .can_take = can_take,
    .data = data,
    .data_end = data_end,
    .cancel = NULL,
    .gone = gone,
};

static void begin_store(struct assoc *a, const struct dimse_request *rq, struct svc_op **out,
                        uint16_t *status, const char **comment)
{
    struct core_ctx *ctx = assoc_ctx(a);
    const struct core_config *cfg = assoc_cfg(a);
    *out = NULL;
    if (!rq->has_dataset) {
        *status = DIMSE_MISTYPED_ARGUMENT;
        *comment = "C-STORE without a dataset";
        return;
    }
    if (strcmp(rq->cmd->affected_sop_class, rq->pctx->abstract) != 0) {
        *status = DIMSE_SOP_CLASS_NOT_SUPPORTED;
        *comment = "SOP class differs from the presentation context";
        return;
    }
    if (!uid_valid(rq->cmd->affected_sop_instance)) {
        *status = DIMSE_CANNOT_UNDERSTAND;
        *comment = "invalid Affected SOP Instance UID";
        return;
    }
    if (!spool_has_room(&ctx->spool)) {
        *status = DIMSE_OUT_OF_RESOURCES;
        *comment = "spool free space below the configured floor";
        return;
    }
    struct store_op *op = calloc(1, sizeof *op);
    if (!op) {
        *status = DIMSE_OUT_OF_RESOURCES;
        *comment = "out of memory";
        return;
    }
    op->base.hooks = &hooks;
    op->req = *rq->cmd;
    op->pctx = *rq->pctx;
    struct assoc_who who;
    assoc_who(a, &who);
    uint32_t max_pdu = cfg->max_pdu;
    struct store_params p = {
        .sop_class = rq->cmd->affected_sop_class,
        .sop_instance = rq->cmd->affected_sop_instance,
        .ts = rq->pctx->ts,
        .calling_ae = who.calling,
        .called_ae = who.called,
        .peer = who.peer,
        .cert_cn = who.cert_cn,
        .cert_fingerprint = who.cert_fp,
        .client_id = who.client_id,
        .assoc_id = who.id,
        /* two buffers of 1 MiB (or two PDUs): large writes, few hand-offs to the disk */
        .buf_cap = (size_t)max_pdu * 2 > STORE_BUF ? (size_t)max_pdu * 2 : STORE_BUF,
        .early_sync = cfg->fsync,
        .sha256 = cfg->spool_checksum == SPOOL_CHECKSUM_SHA256,
        .ack_via = cfg->ack != SPOOL_ACK_SPOOL ? ctx->backend : NULL,
    };
    int rc = store_begin(ctx->loop, &ctx->spool, ctx->committer, &p, &op->obj);
    if (rc < 0) {
        free(op);
        *status = DIMSE_OUT_OF_RESOURCES;
        *comment = "cannot create spool file";
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, "spool_open_failed")) {
            log_u64(&lb, "assoc", who.id);
            log_str(&lb, "err", err_str(rc));
            log_end(&lb);
        }
        return;
    }
    *out = &op->base;
}

static void request(struct assoc *a, const struct dimse_request *rq, struct svc_op **out,
                    uint16_t *status, const char **comment)
{
    begin_store(a, rq, out, status, comment);
    if (!*out) /* refused before a byte of the dataset: a failed instance of an unknown study */
        core_audit_stored(a, rq->cmd->affected_sop_class, NULL, NULL, *status, *comment);
}

const struct dimse_service svc_store = {
    .name = "store",
    .grant = GRANT_STORE,
    .commands = {DIMSE_C_STORE_RQ, 0},
    .serves = serves,
    .uncompressed_only = false,
    .request = request,
};
