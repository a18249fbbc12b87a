#include "qr.h"

#include <stdlib.h>
#include <string.h>

#include "core_audit.h"
#include "core_ctx.h"
#include "spool/spool_backend.h"

bool qr_model(const char *abstract, enum qr_kind kind, enum dcm_qr_model *model)
{
    static const struct {
        const char *uid;
        enum qr_kind kind;
        enum dcm_qr_model model;
    } classes[] = {
        {QR_PATIENT_FIND, QR_FIND, DCM_QR_PATIENT_ROOT}, {QR_STUDY_FIND, QR_FIND, DCM_QR_STUDY_ROOT},
        {QR_PATIENT_MOVE, QR_MOVE, DCM_QR_PATIENT_ROOT}, {QR_STUDY_MOVE, QR_MOVE, DCM_QR_STUDY_ROOT},
        {QR_PATIENT_GET, QR_GET, DCM_QR_PATIENT_ROOT},   {QR_STUDY_GET, QR_GET, DCM_QR_STUDY_ROOT},
    };
    for (size_t i = 0; i < ARRAY_LEN(classes); i++) {
        if (classes[i].kind == kind && strcmp(classes[i].uid, abstract) == 0) {
            if (model)
                *model = classes[i].model;
            return true;
        }
    }
    return false;
}

const struct backend_read_ops *qr_backend(struct assoc *a, void **impl)
{
    struct core_ctx *ctx = assoc_ctx(a);
    const struct backend_read_ops *ops = ctx->backend ? backend_read(ctx->backend) : NULL;
    *impl = ops ? backend_impl(ctx->backend) : NULL;
    return ops;
}

/* ---- the identifier ----------------------------------------------------------------------- */

void qr_ident_init(struct qr_ident *id)
{
    wbuf_init(&id->buf, QR_IDENT_MAX);
    id->too_large = false;
}

void qr_ident_put(struct qr_ident *id, const uint8_t *p, size_t n)
{
    if (id->too_large || n > QR_IDENT_MAX - id->buf.len) {
        id->too_large = true;
        return;
    }
    wbuf_put(&id->buf, p, n);
    if (id->buf.err)
        id->too_large = true;
}

void qr_ident_cleanup(struct qr_ident *id)
{
    wbuf_cleanup(&id->buf);
}

int qr_parse(const struct qr_ident *id, const struct pctx_info *pctx, enum dcm_qr_model model,
             enum dcm_qr_op op, struct dcm_query **q, struct qr_fail *f)
{
    *q = NULL;
    *f = (struct qr_fail){0};
    if (id->too_large) {
        *f = (struct qr_fail){QR_ST_TOO_LARGE, "identifier too large", 0};
        return ERR_LIMIT;
    }
    struct dcm_ds *ds = NULL;
    enum dcm_ts ts = pctx->ts->enc == DS_IMPLICIT_LE ? DCM_TS_IMPLICIT_LE : DCM_TS_EXPLICIT_LE;
    int rc = dcm_ds_parse(id->buf.p ? id->buf.p : (const uint8_t *)"", id->buf.len, ts, NULL,
                          &ds);
    if (rc < 0) {
        *f = rc == ERR_LIMIT || rc == ERR_NOMEM
                 ? (struct qr_fail){QR_ST_TOO_LARGE, "identifier too large or too deep", 0}
                 : (struct qr_fail){DIMSE_DATASET_MISMATCH, "identifier is not a valid dataset",
                                    0};
        return rc;
    }
    struct dcm_query_opts o = {.model = model, .op = op};
    struct dcm_query_error qe;
    rc = dcm_query_parse(ds, &o, q, &qe);
    dcm_ds_free(ds);
    if (rc == 0)
        return 0;
    uint16_t st = DIMSE_DATASET_MISMATCH;
    switch (qe.reason) {
    case DCM_QERR_RELATIONAL: st = QR_ST_RELATIONAL; break;
    case DCM_QERR_CHARSET: st = QR_ST_CHARSET; break;
    case DCM_QERR_LIMIT: st = QR_ST_TOO_LARGE; break;
    default: st = rc == ERR_NOMEM ? DIMSE_OUT_OF_RESOURCES : DIMSE_DATASET_MISMATCH; break;
    }
    *f = (struct qr_fail){st, qe.comment ? qe.comment : "identifier not understood", qe.tag};
    return rc;
}

/* ---- the scope ---------------------------------------------------------------------------- */

struct qr_scope_req {
    qr_scope_cb cb;
    void *arg;
    struct qr_scope *scope;
    bool abandoned;
};

static struct qr_scope *scope_new(enum grant_scope g, const char *owner)
{
    struct qr_scope *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->owner, sizeof s->owner, "%s", owner);
    s->s.scope = g;
    s->s.client_id = s->owner;
    return s;
}

void qr_scope_free(struct qr_scope *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->studies[i]);
    free(s->studies);
    strmap_free(&s->set);
    free(s);
}

bool qr_scope_has(const struct qr_scope *s, const char *study)
{
    if (s->s.scope == GRANT_SCOPE_ALL)
        return true;
    return s->s.scope != GRANT_SCOPE_NONE && strmap_get(&s->set, study) != NULL;
}

static void on_studies(void *arg, int err, const char *const *studies, size_t n)
{
    struct qr_scope_req *r = arg;
    struct qr_scope *s = r->scope;
    r->scope = NULL;
    if (err == 0 && n && !(s->studies = calloc(n, sizeof *s->studies)))
        err = ERR_NOMEM;
    for (size_t i = 0; err == 0 && i < n; i++) {
        if (!(s->studies[i] = strdup(studies[i])) || strmap_put(&s->set, studies[i], NULL) < 0)
            err = ERR_NOMEM;
        s->n = i + 1;
    }
    s->s.studies = (const char *const *)s->studies;
    s->s.n_studies = s->n;
    if (err < 0 || r->abandoned) {
        qr_scope_free(s);
        s = NULL;
    }
    if (!r->abandoned)
        r->cb(r->arg, err, s);
    free(r);
}

int qr_scope_resolve(struct assoc *a, struct qr_scope **now, qr_scope_cb cb, void *arg,
                     struct qr_scope_req **req)
{
    struct assoc_who who;
    assoc_who(a, &who);
    char owner[BACKEND_OWNER_MAX];
    backend_read_owner(who.client_id, who.calling, owner, sizeof owner);
    *now = NULL;
    *req = NULL;
    void *impl;
    const struct backend_read_ops *ops = qr_backend(a, &impl);
    if (!ops)
        return ERR_UNSUPPORTED;
    struct qr_scope *s = scope_new(who.grants.scope, owner);
    if (!s)
        return ERR_NOMEM;
    if (who.grants.scope == GRANT_SCOPE_ALL || who.grants.scope == GRANT_SCOPE_NONE) {
        *now = s;
        return 0;
    }
    struct qr_scope_req *r = calloc(1, sizeof *r);
    if (!r) {
        qr_scope_free(s);
        return ERR_NOMEM;
    }
    *r = (struct qr_scope_req){.cb = cb, .arg = arg, .scope = s};
    int rc = ops->scope_studies(impl, owner, who.grants.scope, on_studies, r);
    if (rc < 0) {
        qr_scope_free(s);
        free(r);
        return rc;
    }
    *req = r;
    return 1;
}

void qr_scope_abandon(struct qr_scope_req *req)
{
    if (req)
        req->abandoned = true;
}

/* ---- responses ---------------------------------------------------------------------------- */

int qr_respond(struct assoc *a, const struct dimse_cmd *req, uint8_t pctx,
               const struct ts_info *ts, const struct qr_fail *f, const struct qr_counts *counts,
               bool with_remaining, const struct dcm_ds *ds)
{
    struct dimse_cmd rsp;
    dimse_rsp_init(&rsp, req, f->status);
    bool failure = (f->status & 0xF000) == 0xA000 || (f->status & 0xF000) == 0xC000 ||
                   f->status == DIMSE_NOT_AUTHORIZED;
    if (failure)
        core_count_failure(assoc_ctx(a), f->status);
    if (f->comment && (failure || (f->status & 0xF000) == 0xB000))
        dimse_set_comment(&rsp, f->comment);
    if (f->tag) {
        rsp.offending_element = f->tag;
        rsp.has_offending_element = true;
    }
    if (counts) {
        rsp.remaining = counts->remaining;
        rsp.has_remaining = with_remaining;
        rsp.completed = counts->completed;
        rsp.failed = counts->failed;
        rsp.warning = counts->warning;
        rsp.has_completed = rsp.has_failed = rsp.has_warning = true;
    }
    struct wbuf b;
    wbuf_init(&b, 16u << 20);
    if (ds) {
        enum dcm_ts t = ts->enc == DS_IMPLICIT_LE ? DCM_TS_IMPLICIT_LE : DCM_TS_EXPLICIT_LE;
        int wr = dcm_ds_write(ds, t, &b);
        if (wr < 0) { /* nothing sent: the association goes on */
            wbuf_cleanup(&b);
            return wr;
        }
        rsp.data_set_type = 0x0000;
    }
    int rc = assoc_send_cmd(a, pctx, &rsp);
    if (rc == 0 && rsp.data_set_type == 0x0000)
        rc = assoc_send_data(a, pctx, b.p, b.len, true);
    wbuf_cleanup(&b);
    return rc;
}

/* ---- a Q/R request up to its search ------------------------------------------------------- */

int qr_op_check(struct assoc *a, const struct dimse_request *rq, enum qr_kind kind,
                enum dcm_qr_model *model, uint16_t *status, const char **comment)
{
    void *impl;
    if (!rq->has_dataset) {
        *status = DIMSE_DATASET_MISMATCH;
        *comment = "request without an identifier";
    } else if (strcmp(rq->cmd->affected_sop_class, rq->pctx->abstract) != 0 ||
               !qr_model(rq->pctx->abstract, kind, model)) {
        *status = DIMSE_SOP_CLASS_NOT_SUPPORTED;
        *comment = "SOP class differs from the presentation context";
    } else if (!qr_backend(a, &impl)) {
        *status = QR_ST_ARCHIVE;
        *comment = "this archive's backend cannot be read";
    } else {
        return 0;
    }
    return ERR_UNSUPPORTED;
}

void qr_op_init(struct qr_op *op, const struct qr_op_kind *kind, const struct svc_op_hooks *hooks,
                struct assoc *a, const struct dimse_request *rq, enum dcm_qr_model model)
{
    op->base.hooks = hooks;
    op->kind = kind;
    op->req = *rq->cmd;
    op->pctx = *rq->pctx;
    op->model = model;
    op->ops = qr_backend(a, &op->impl);
    qr_ident_init(&op->ident);
}

void qr_op_cleanup(struct qr_op *op)
{
    dcm_query_free(op->q);
    op->q = NULL;
    qr_scope_free(op->scope);
    op->scope = NULL;
    qr_ident_cleanup(&op->ident);
}

void qr_op_audit_query(const struct qr_op *op, uint16_t status)
{
    struct dcm_ds *ds = NULL; /* the identifier as sent, when it is a dataset */
    enum dcm_ts ts = op->pctx.ts->enc == DS_IMPLICIT_LE ? DCM_TS_IMPLICIT_LE : DCM_TS_EXPLICIT_LE;
    if (op->ident.buf.p && !op->ident.too_large &&
        dcm_ds_parse(op->ident.buf.p, op->ident.buf.len, ts, NULL, &ds) < 0)
        ds = NULL;
    core_audit_query(op->base.a, op->req.affected_sop_class, ds, status);
    dcm_ds_free(ds);
}

static void fail(struct qr_op *op, uint16_t status, const char *comment)
{
    struct qr_fail f = {status, comment, 0};
    op->kind->finish(op, &f);
}

/* The scope is known: refused, or go. */
static void scoped(struct qr_op *op)
{
    if (op->cancelled) /* PS3.4 C.4.1.2.3, C.4.2.3.1: cancelled before anything was done */
        fail(op, DIMSE_CANCEL, NULL);
    else if (op->scope->s.scope == GRANT_SCOPE_NONE)
        fail(op, DIMSE_NOT_AUTHORIZED, "no read scope: this client may not read");
    else
        op->kind->start(op);
}

static void on_scope(void *arg, int err, struct qr_scope *scope)
{
    struct qr_op *op = arg;
    op->scope_req = NULL;
    op->scope = scope;
    if (err < 0)
        fail(op, QR_ST_ARCHIVE, "the client's read scope could not be resolved");
    else
        scoped(op);
}

void qr_op_data(struct svc_op *base, const uint8_t *p, size_t n)
{
    qr_ident_put(&((struct qr_op *)base)->ident, p, n);
}

void qr_op_data_end(struct svc_op *base)
{
    struct qr_op *op = (struct qr_op *)base;
    struct qr_fail f;
    if (qr_parse(&op->ident, &op->pctx, op->model, op->kind->qop, &op->q, &f) < 0) {
        op->kind->finish(op, &f);
        return;
    }
    int rc = qr_scope_resolve(base->a, &op->scope, on_scope, op, &op->scope_req);
    if (rc < 0)
        fail(op, QR_ST_ARCHIVE, "the archive cannot be read");
    else if (rc == 0)
        scoped(op);
}

bool qr_op_cancel_early(struct qr_op *op)
{
    op->cancelled = true;
    return op->scope_req != NULL; /* on_scope answers FE00 */
}

void qr_op_gone(struct qr_op *op)
{
    op->gone = true;
    qr_scope_abandon(op->scope_req);
    op->scope_req = NULL;
}
