#include "commit_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assoc.h"
#include "commit_ds.h"
#include "common/log.h"
#include "core_audit.h"
#include "dimse_service.h"

struct attempt {
    struct core_ctx *ctx;
    commit_report_cb cb;
    void *arg;
    struct commit_txn t; /* a copy: the report is built from it when a context is there */
    enum commit_report_path path;
    struct assoc *a; /* while the association lives and the attempt uses it */
    uint16_t msg_id;
    uint64_t started;
    bool finished;
    bool starting;  /* commit_report_send is on the stack: no callback yet */
    int start_err;
    int refs; /* the timer, the response waiter, the outbound association's end */
    uv_timer_t timer;
};

static void unref(struct attempt *at)
{
    if (--at->refs > 0)
        return;
    commit_txn_cleanup(&at->t);
    free(at);
}

static void on_timer_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void finish(struct attempt *at, int err, uint16_t status)
{
    if (at->finished)
        return;
    at->finished = true;
    uv_timer_stop(&at->timer);
    uv_close((uv_handle_t *)&at->timer, on_timer_closed);
    struct logb lb;
    if (log_begin(&lb, err ? LOG_WARN : LOG_INFO,
                  err ? "commit_report_failed" : "commit_report_answered")) {
        log_str(&lb, "transaction_uid", at->t.uid);
        log_str(&lb, "calling_ae", at->t.calling);
        log_str(&lb, "path", at->path == COMMIT_PATH_SAME ? "same" : "new");
        if (err)
            log_str(&lb, "err", err_str(err));
        else
            log_hex16(&lb, "status", status);
        log_u64(&lb, "ms", uv_now(at->ctx->loop) - at->started);
        log_end(&lb);
    }
    if (at->starting) {
        at->start_err = err ? err : ERR_IO;
        return;
    }
    at->cb(at->arg, err, at->path, status);
}

static void on_timeout(uv_timer_t *t)
{
    struct attempt *at = t->data;
    if (at->a) /* no answer in time: the waiter (or the end) reports the failure */
        assoc_abort(at->a, "no N-EVENT-REPORT-RSP in time");
    finish(at, ERR_IO, 0);
}

/* The audit trail's Storage Commitment message for a report the modality answered on a. */
static void audit_report(struct attempt *at, struct assoc *a)
{
    struct core_audit_commit_ref *refs = calloc(at->t.n_refs ? at->t.n_refs : 1, sizeof *refs);
    if (!refs)
        return; /* the library counts what it could not queue; nothing to do here */
    for (size_t i = 0; i < at->t.n_refs; i++)
        refs[i] = (struct core_audit_commit_ref){.sop_class = at->t.refs[i].sop_class,
                                                 .sop_instance = at->t.refs[i].sop_instance,
                                                 .committed = at->t.refs[i].result == COMMIT_OK};
    core_audit_commitment(a, at->t.uid, refs, at->t.n_refs,
                          at->t.event == 1 ? NULL : "not at the commit point");
    free(refs);
}

static void on_rsp(void *arg, const struct dimse_cmd *rsp)
{
    struct attempt *at = arg;
    struct assoc *a = at->a;
    if (rsp && a && rsp->command_field == DIMSE_N_EVENT_REPORT_RSP && rsp->has_status)
        audit_report(at, a);
    if (rsp && (rsp->command_field != DIMSE_N_EVENT_REPORT_RSP || !rsp->has_status)) {
        finish(at, ERR_UNEXPECTED, 0);
        if (a)
            assoc_abort(a, "not an N-EVENT-REPORT-RSP");
    } else {
        finish(at, rsp ? 0 : ERR_IO, rsp ? rsp->status : 0);
        if (rsp && a && at->path == COMMIT_PATH_NEW)
            assoc_release(a);
    }
    if (at->path == COMMIT_PATH_SAME || !rsp)
        at->a = NULL;
    unref(at);
}

static int send_on(struct attempt *at, struct assoc *a, const struct pctx_info *pc)
{
    enum dcm_ts ts;
    if (strcmp(pc->ts->uid, TS_IMPLICIT_LE) == 0)
        ts = DCM_TS_IMPLICIT_LE;
    else if (strcmp(pc->ts->uid, TS_EXPLICIT_LE) == 0)
        ts = DCM_TS_EXPLICIT_LE;
    else
        return ERR_UNSUPPORTED;
    struct wbuf ds;
    wbuf_init(&ds, at->t.n_refs * 200 + 4096);
    int rc = commit_ds_event(&at->t, ts, &ds);
    if (rc < 0) {
        wbuf_cleanup(&ds);
        return rc;
    }
    struct dimse_cmd c;
    memset(&c, 0, sizeof c);
    c.command_field = DIMSE_N_EVENT_REPORT_RQ;
    c.has_command_field = true;
    c.message_id = at->msg_id = assoc_next_msg_id(a);
    c.has_message_id = true;
    c.data_set_type = 0x0000; /* a dataset follows */
    c.has_data_set_type = true;
    c.event_type_id = at->t.event;
    c.has_event_type_id = true;
    snprintf(c.affected_sop_class, sizeof c.affected_sop_class, "%s", SOP_STORAGE_COMMITMENT);
    snprintf(c.affected_sop_instance, sizeof c.affected_sop_instance, "%s",
             SOP_STORAGE_COMMITMENT_INSTANCE);
    rc = assoc_send_cmd(a, pc->id, &c);
    if (rc == 0)
        rc = assoc_send_data(a, pc->id, ds.p, ds.len, true);
    wbuf_cleanup(&ds);
    if (rc == 0)
        rc = assoc_expect_rsp(a, at->msg_id, on_rsp, at);
    if (rc < 0)
        return rc;
    at->a = a;
    at->refs++;
    struct assoc_who who;
    assoc_who(a, &who);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "commit_report_sent")) {
        log_str(&lb, "transaction_uid", at->t.uid);
        log_u64(&lb, "assoc", who.id);
        log_str(&lb, "calling_ae", at->t.calling);
        log_str(&lb, "path", at->path == COMMIT_PATH_SAME ? "same" : "new");
        log_u64(&lb, "event_type", at->t.event);
        log_u64(&lb, "refs", at->t.n_refs);
        log_end(&lb);
    }
    return 0;
}

/* ---- a new association ------------------------------------------------------------------------ */

static void out_ready(void *arg, struct assoc *a)
{
    struct attempt *at = arg;
    struct pctx_info pc;
    if (at->finished) {
        assoc_release(a);
        return;
    }
    if (assoc_find_pctx(a, SOP_STORAGE_COMMITMENT, false, &pc) < 0) {
        finish(at, ERR_UNSUPPORTED, 0); /* context or the SCP role refused */
        assoc_release(a);
        return;
    }
    int rc = send_on(at, a, &pc);
    if (rc < 0) {
        finish(at, rc, 0);
        assoc_abort(a, "cannot send the N-EVENT-REPORT");
    }
}

static void out_ended(void *arg, int err, const char *why)
{
    struct attempt *at = arg;
    at->a = NULL;
    if (!at->finished) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "commit_report_association_ended")) {
            log_str(&lb, "transaction_uid", at->t.uid);
            log_str(&lb, "why", why);
            log_end(&lb);
        }
    }
    finish(at, err ? err : ERR_IO, 0);
    unref(at);
}

static int open_new(struct attempt *at)
{
    struct core_ctx *ctx = at->ctx;
    const struct core_peer *peer = core_config_peer(ctx->cfg, at->t.calling);
    if (!peer)
        return ERR_NOTFOUND;
    if (peer->tls && !ctx->client_tls)
        return ERR_TLS;
    struct assoc_propose prop = {
        .abstract = SOP_STORAGE_COMMITMENT,
        .ts = {TS_EXPLICIT_LE, TS_IMPLICIT_LE, NULL},
        .we_scp = true,
    };
    struct assoc_connect_opts o = {
        .host = peer->host,
        .port = peer->port,
        .tls = peer->tls ? ctx->client_tls : NULL,
        .tls_host = peer->server_name[0] ? peer->server_name : NULL,
        .calling = at->t.called[0] ? at->t.called : ctx->cfg->ae_title,
        .called = at->t.calling,
        .contexts = &prop,
        .n_contexts = 1,
        .connect_ms = ctx->cfg->commit.report_timeout_ms,
    };
    struct assoc_connect_cbs cbs = {.ready = out_ready, .ended = out_ended, .arg = at};
    TRY(assoc_connect(ctx, &o, &cbs));
    at->refs++;
    return 0;
}

int commit_report_send(struct core_ctx *ctx, const struct commit_txn *t, uint64_t assoc_id,
                       commit_report_cb cb, void *arg)
{
    struct attempt *at = calloc(1, sizeof *at);
    if (!at)
        return ERR_NOMEM;
    if (commit_txn_copy(&at->t, t) < 0) {
        free(at);
        return ERR_NOMEM;
    }
    at->ctx = ctx;
    at->cb = cb;
    at->arg = arg;
    at->started = uv_now(ctx->loop);
    at->refs = 2; /* ours until started, and the timer's */
    uv_timer_init(ctx->loop, &at->timer);
    at->timer.data = at;
    uv_timer_start(&at->timer, on_timeout, ctx->cfg->commit.report_timeout_ms, 0);
    at->starting = true;
    struct pctx_info pc;
    struct assoc *a = NULL;
    if (assoc_id)
        a = assoc_find_for_request(ctx, assoc_id, NULL, SOP_STORAGE_COMMITMENT, &pc);
    if (!a)
        a = assoc_find_for_request(ctx, 0, t->calling, SOP_STORAGE_COMMITMENT, &pc);
    int rc;
    if (a) {
        at->path = COMMIT_PATH_SAME;
        rc = send_on(at, a, &pc);
    } else {
        at->path = COMMIT_PATH_NEW;
        rc = open_new(at);
    }
    at->starting = false;
    if (rc == 0 && at->finished)
        rc = at->start_err; /* it failed at once (the callback is not called) */
    if (rc < 0 && !at->finished) {
        at->finished = true;
        uv_timer_stop(&at->timer);
        uv_close((uv_handle_t *)&at->timer, on_timer_closed);
    }
    unref(at); /* the timer and the association hold it now */
    return rc;
}
