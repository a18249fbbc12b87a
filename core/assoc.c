#include "assoc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common/log.h"
#include "common/ul.h"
#include "dimse.h"
#include "net/proxy2.h"
#include "net/tls_conn.h"
#include "net/tls_ctx.h"
#include "sop_registry.h"
#include "store.h"

#define STORE_BUF (1024u * 1024u)
#define GLITCH_MAX 256 /* odd-but-legal items tolerated on one connection */

/* PS3.8 Table 9-10 states an acceptor can be in. */
enum sta {
    STA2 = 2,   /* transport open, awaiting A-ASSOCIATE-RQ (ARTIM running) */
    STA6 = 6,   /* association established */
    STA7 = 7,   /* we sent A-RELEASE-RQ, awaiting A-RELEASE-RP */
    STA8 = 8,   /* peer sent A-RELEASE-RQ, our response pending */
    STA10 = 10, /* release collision, acceptor side, awaiting A-RELEASE-RP */
    STA13 = 13, /* awaiting transport close (ARTIM running) */
};

struct pctx_entry {
    bool accepted;
    const struct ts_info *ts;
    char abstract[65];
};

struct assoc {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int live_handles;
    bool closing;
    struct assoc *next, **pprev;
    struct core_ctx *ctx;
    const struct core_config *cfg;
    uint64_t id;
    enum sta st;
    uint64_t t_start;

    uint8_t *rbuf;
    size_t rlen, rcap;
    bool reading, paused;
    bool in_process; /* process() is on the stack: callbacks must not re-enter it */
    bool awaiting_proxy;
    unsigned glitches;
    struct tls_conn *tls; /* NULL on a plain TCP listener */

    char peer[64];
    char cert_cn[257], cert_fp[65], client_id[129];
    char calling[17], called[17];
    uint32_t peer_max; /* 0: unlimited */
    uint32_t our_max;
    struct pctx_entry pctx[256];

    /* DIMSE */
    struct wbuf cmd;
    uint8_t cmd_pctx;
    bool in_dataset;       /* a command announced a dataset that is still arriving */
    struct dimse_cmd req;
    struct store_obj *obj; /* the object being received, or NULL (dataset discarded) */
    uint16_t pending_status;
    const char *pending_comment;
    bool awaiting_store;   /* C-STORE committed, response not yet sent */
    bool release_wanted;   /* drain: release when idle */

    uint64_t bytes_in, bytes_out, objects, failures;
    const char *end_reason;
};

static void assoc_close(struct assoc *a, const char *reason);
static void process(struct assoc *a);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

/* ---- output ------------------------------------------------------------------------------ */

struct out_req {
    uv_write_t req;
    size_t len;
    uint8_t data[];
};

static void on_written(uv_write_t *w, int status)
{
    struct out_req *o = (struct out_req *)w;
    struct assoc *a = w->data;
    free(o);
    if (status < 0 && a && !a->closing)
        assoc_close(a, "write failed");
}

/* TLS: ciphertext from tls_conn (takes buf). */
struct tls_out_req {
    uv_write_t req;
    uint8_t *buf;
};

static void on_tls_written(uv_write_t *w, int status)
{
    struct tls_out_req *o = (struct tls_out_req *)w;
    struct assoc *a = w->data;
    free(o->buf);
    free(o);
    if (status < 0 && a && !a->closing)
        assoc_close(a, "write failed");
}

static int tls_out(void *arg, uint8_t *buf, size_t n)
{
    struct assoc *a = arg;
    struct tls_out_req *o = malloc(sizeof *o);
    if (!o) {
        free(buf);
        return ERR_NOMEM;
    }
    o->buf = buf;
    o->req.data = a;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)n);
    int rc = uv_write(&o->req, (uv_stream_t *)&a->tcp, &b, 1, on_tls_written);
    if (rc < 0) {
        free(buf);
        free(o);
    }
    return rc;
}

static int send_bytes(struct assoc *a, const uint8_t *p, size_t n)
{
    if (a->closing)
        return ERR_WRONG_STATE;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&a->tcp) > (1u << 20)) {
        assoc_close(a, "peer does not read");
        return ERR_LIMIT;
    }
    if (a->tls) {
        int rc = tls_conn_write(a->tls, p, n);
        if (rc < 0) {
            assoc_close(a, "TLS write failed");
            return rc;
        }
        a->bytes_out += n;
        return 0;
    }
    struct out_req *o = malloc(sizeof *o + n);
    if (!o) {
        assoc_close(a, "out of memory");
        return ERR_NOMEM;
    }
    memcpy(o->data, p, n);
    o->len = n;
    o->req.data = a;
    uv_buf_t b = uv_buf_init((char *)o->data, (unsigned)n);
    int rc = uv_write(&o->req, (uv_stream_t *)&a->tcp, &b, 1, on_written);
    if (rc < 0) {
        free(o);
        assoc_close(a, "write failed");
        return rc;
    }
    a->bytes_out += n;
    return 0;
}

static int send_wbuf(struct assoc *a, struct wbuf *b)
{
    int rc = b->err ? b->err : send_bytes(a, b->p, b->len);
    wbuf_cleanup(b);
    return rc;
}

static void on_timer(uv_timer_t *t);

static void arm(struct assoc *a, uint32_t ms)
{
    uv_timer_start(&a->timer, on_timer, ms, 0);
}

/* AA-1 / AA-7 / AA-8: send A-ABORT, then wait (ARTIM) for the peer to close: Sta13. */
static void send_abort(struct assoc *a, uint8_t source, uint8_t reason, const char *why)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_abort(&b, source, reason) == 0)
        (void)send_wbuf(a, &b);
    else
        wbuf_cleanup(&b);
    metric_inc(a->ctx->m.pdu_aborts_sent);
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "assoc_abort_sent")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_u64(&lb, "source", source);
        log_u64(&lb, "reason", reason);
        log_str(&lb, "why", why);
        log_u64(&lb, "state", (uint64_t)a->st);
        log_end(&lb);
    }
    if (a->obj) {
        store_abort(a->obj);
        a->obj = NULL;
    }
    a->end_reason = "aborted";
    a->paused = false;
    if (a->st != STA13) /* AA-7 in Sta13 only sends the PDU: ARTIM keeps running */
        arm(a, a->cfg->artim_ms);
    a->st = STA13;
}

/* A protocol violation in state a->st, by the table: AA-1 in Sta2, AA-8 elsewhere. */
static void violation(struct assoc *a, uint8_t reason, const char *why)
{
    if (a->st == STA2)
        send_abort(a, UL_ABORT_SRC_USER, UL_ABORT_NOT_SPECIFIED, why);
    else
        send_abort(a, UL_ABORT_SRC_PROVIDER, reason, why);
}

/* P-DATA out: one message (command or dataset), fragmented to the peer's maximum length. */
static int send_message(struct assoc *a, uint8_t pctx, bool is_command, const uint8_t *p,
                        size_t n)
{
    size_t chunk = n;
    if (a->peer_max)
        chunk = a->peer_max > 7 ? a->peer_max - 6 : 1;
    size_t off = 0;
    do {
        size_t k = n - off < chunk ? n - off : chunk;
        struct wbuf b;
        wbuf_init(&b, k + 64);
        if (ul_encode_pdata(&b, pctx, is_command, off + k == n, p + off, k) < 0) {
            wbuf_cleanup(&b);
            return ERR_NOMEM;
        }
        TRY(send_wbuf(a, &b));
        off += k;
    } while (off < n);
    return 0;
}

static void send_rsp(struct assoc *a, uint16_t status, const char *comment)
{
    struct wbuf b;
    wbuf_init(&b, 1024);
    int rc = dimse_encode_rsp(&b, a->req.command_field, a->req.message_id,
                              a->req.affected_sop_class, a->req.affected_sop_instance, status,
                              comment);
    if (rc == 0)
        rc = send_message(a, a->cmd_pctx, true, b.p, b.len);
    wbuf_cleanup(&b);
    if (rc < 0 && !a->closing)
        assoc_close(a, "cannot send response");
}

static void send_release_rq(struct assoc *a)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_release_rq(&b) == 0 && send_wbuf(a, &b) == 0) {
        a->st = STA7;
        arm(a, a->cfg->artim_ms);
    }
}

/* AR-4: send A-RELEASE-RP and wait for the peer to close. */
static void send_release_rp(struct assoc *a)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_release_rp(&b) == 0 && send_wbuf(a, &b) == 0) {
        a->end_reason = "released";
        a->st = STA13;
        arm(a, a->cfg->artim_ms);
    }
}

/* ---- negotiation (AE-6) -------------------------------------------------------------------- */

static bool ts_offered(const struct ul_pctx_rq *pc, const char *uid)
{
    for (uint8_t i = 0; i < pc->n_ts; i++) {
        if (slice_eq_str(pc->ts[i], uid))
            return true;
    }
    return false;
}

static bool abstract_supported(const struct core_config *cfg, const char *uid, bool *verification)
{
    *verification = strcmp(uid, SOP_VERIFICATION) == 0;
    if (*verification)
        return true;
    const struct sop_class *s = sop_registry_find(uid);
    if (s)
        return !s->retired || cfg->accept_retired_sops;
    for (size_t i = 0; i < cfg->n_private_sops; i++) {
        if (strcmp(cfg->private_sops[i], uid) == 0)
            return true;
    }
    return false;
}

static void reject(struct assoc *a, uint8_t result, uint8_t source, uint8_t reason,
                   const char *why)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_assoc_rj(&b, result, source, reason) == 0)
        (void)send_wbuf(a, &b);
    else
        wbuf_cleanup(&b);
    metric_inc(a->ctx->m.assoc_rejected);
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "assoc_reject")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_str(&lb, "calling_ae", a->calling);
        log_str(&lb, "called_ae", a->called);
        log_u64(&lb, "result", result);
        log_u64(&lb, "source", source);
        log_u64(&lb, "reason", reason);
        log_str(&lb, "why", why);
        log_end(&lb);
    }
    a->end_reason = "rejected";
    a->st = STA13;
    arm(a, a->cfg->artim_ms);
}

static void handle_assoc_rq(struct assoc *a, struct rd *body)
{
    const struct core_config *cfg = a->cfg;
    struct ul_assoc_rq *rq = malloc(sizeof *rq);
    struct ul_assoc_ac *ac = malloc(sizeof *ac);
    if (!rq || !ac) {
        free(rq);
        free(ac);
        reject(a, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT, "out of memory");
        return;
    }
    uint8_t reason = 0;
    int rc = ul_parse_assoc_rq(body, rq, &reason);
    if (rc < 0) {
        violation(a, reason, "malformed A-ASSOCIATE-RQ");
        goto out;
    }
    a->glitches += rq->glitches;
    if (a->glitches > GLITCH_MAX) { /* STYLE §6: legal but hostile-looking input, in bulk */
        violation(a, UL_ABORT_NOT_SPECIFIED, "too many odd items in A-ASSOCIATE-RQ");
        goto out;
    }
    snprintf(a->calling, sizeof a->calling, "%s", rq->calling);
    snprintf(a->called, sizeof a->called, "%s", rq->called);
    if (!(rq->protocol_version & 1)) {
        reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_ACSE, UL_RJ_ACSE_PROTOCOL_VERSION,
               "protocol version not supported");
        goto out;
    }
    if (!slice_eq_str(rq->app_context, UL_APP_CONTEXT)) {
        reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_APP_CONTEXT,
               "application context not supported");
        goto out;
    }
    if (rq->called_bad || (cfg->check_called_ae && strcmp(rq->called, cfg->ae_title) != 0)) {
        reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLED_AE,
               "called AE title not recognized");
        goto out;
    }
    bool calling_ok = !rq->calling_bad;
    if (calling_ok && cfg->n_calling_allow > 0) {
        calling_ok = false;
        for (size_t i = 0; i < cfg->n_calling_allow; i++)
            calling_ok = calling_ok || strcmp(cfg->calling_allow[i], rq->calling) == 0;
    }
    if (!calling_ok) {
        reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLING_AE,
               "calling AE title not recognized");
        goto out;
    }
    if (a->ctx->draining) {
        reject(a, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_CONGESTION, "shutting down");
        goto out;
    }
    if (a->ctx->active > cfg->max_associations) {
        reject(a, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT,
               "association limit reached");
        goto out;
    }

    memset(ac, 0, sizeof *ac);
    ac->protocol_version = 1;
    snprintf(ac->called, sizeof ac->called, "%s", rq->called);
    snprintf(ac->calling, sizeof ac->calling, "%s", rq->calling);
    ac->app_context = (struct slice){(const uint8_t *)UL_APP_CONTEXT, sizeof UL_APP_CONTEXT - 1};
    unsigned accepted = 0;
    for (uint16_t i = 0; i < rq->n_pctx; i++) {
        const struct ul_pctx_rq *pc = &rq->pctx[i];
        struct ul_pctx_ac *out = &ac->pctx[ac->n_pctx++];
        struct pctx_entry *e = &a->pctx[pc->id];
        out->id = pc->id;
        memcpy(e->abstract, pc->abstract.p, pc->abstract.len);
        e->abstract[pc->abstract.len] = '\0';
        bool verification = false;
        if (!abstract_supported(cfg, e->abstract, &verification)) {
            out->result = UL_PCTX_ABSTRACT_NOT_SUPPORTED;
            out->ts = pc->ts[0];
            continue;
        }
        const struct ts_info *chosen = NULL;
        for (size_t t = 0; t < cfg->n_ts && !chosen; t++) {
            if (verification && cfg->ts[t]->enc == DS_EXPLICIT_LE &&
                strcmp(cfg->ts[t]->uid, TS_EXPLICIT_LE) != 0)
                continue; /* C-ECHO carries no dataset: uncompressed syntaxes only */
            if (ts_offered(pc, cfg->ts[t]->uid))
                chosen = cfg->ts[t];
        }
        if (!chosen && verification && ts_offered(pc, TS_IMPLICIT_LE))
            chosen = ts_find(TS_IMPLICIT_LE); /* always: the default transfer syntax */
        if (!chosen) {
            out->result = UL_PCTX_TS_NOT_SUPPORTED;
            out->ts = pc->ts[0];
            continue;
        }
        out->result = UL_PCTX_ACCEPT;
        out->ts = (struct slice){(const uint8_t *)chosen->uid, strlen(chosen->uid)};
        e->accepted = true;
        e->ts = chosen;
        accepted++;
    }
    a->peer_max = rq->ui.has_max_len ? rq->ui.max_len : 0;
    ac->ui.max_len = a->our_max;
    ac->ui.impl_uid = (struct slice){(const uint8_t *)GW_IMPL_CLASS_UID,
                                     sizeof GW_IMPL_CLASS_UID - 1};
    ac->ui.impl_version = (struct slice){(const uint8_t *)GW_IMPL_VERSION,
                                         sizeof GW_IMPL_VERSION - 1};
    if (rq->ui.has_async) {
        ac->ui.has_async = true; /* PS3.7 D.3.3.3: we perform operations one at a time */
        ac->ui.ops_invoked = 1;
        ac->ui.ops_performed = 1;
    }
    for (uint16_t i = 0; i < rq->ui.n_roles; i++) {
        ac->ui.roles[ac->ui.n_roles] = rq->ui.roles[i];
        ac->ui.roles[ac->ui.n_roles].scp = 0; /* we are never the SCU of their SCP */
        ac->ui.n_roles++;
    }
    struct wbuf b;
    wbuf_init(&b, 64u * 1024u);
    if (ul_encode_assoc_ac(&b, ac) < 0 || send_wbuf(a, &b) < 0) {
        wbuf_cleanup(&b);
        if (!a->closing)
            assoc_close(a, "cannot send A-ASSOCIATE-AC");
        goto out;
    }
    a->st = STA6;
    arm(a, a->cfg->idle_ms);
    metric_inc(a->ctx->m.assoc_accepted);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "assoc_accept")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_str(&lb, "calling_ae", a->calling);
        log_str(&lb, "called_ae", a->called);
        if (a->cert_cn[0])
            log_str(&lb, "cert_cn", a->cert_cn);
        if (a->client_id[0])
            log_str(&lb, "client_id", a->client_id);
        log_u64(&lb, "contexts", rq->n_pctx);
        log_u64(&lb, "accepted", accepted);
        log_u64(&lb, "peer_max_pdu", a->peer_max);
        if (rq->ui.impl_version.len)
            log_strn(&lb, "peer_impl_version", (const char *)rq->ui.impl_version.p,
                     rq->ui.impl_version.len);
        if (rq->ui.has_user_identity)
            log_u64(&lb, "user_identity_type", rq->ui.user_identity_type);
        if (rq->ui.n_ext_neg)
            log_u64(&lb, "ext_neg_items", rq->ui.n_ext_neg);
        log_end(&lb);
    }
    /* after acceptance, PDUs are bounded by the maximum we announced */
    if (a->rcap < (size_t)a->our_max + UL_HDR_LEN) {
        uint8_t *nb = realloc(a->rbuf, (size_t)a->our_max + UL_HDR_LEN);
        if (!nb) {
            send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "out of memory");
            goto out;
        }
        a->rbuf = nb;
        a->rcap = (size_t)a->our_max + UL_HDR_LEN;
    }
out:
    free(rq);
    free(ac);
}

/* ---- DIMSE ----------------------------------------------------------------------------------- */

static void after_response(struct assoc *a)
{
    a->awaiting_store = false;
    if (a->release_wanted && a->st == STA6)
        send_release_rq(a);
}

static void on_store_done(void *arg, uint16_t status, const char *comment,
                          const struct store_obj *o)
{
    struct assoc *a = arg;
    a->obj = NULL;
    if (status == DIMSE_SUCCESS) {
        a->objects++;
        metric_inc(a->ctx->m.objects);
        if (a->ctx->backend)
            backend_notify(a->ctx->backend);
        metric_add(a->ctx->m.bytes, store_bytes(o));
    } else {
        a->failures++;
        core_count_failure(a->ctx, status);
    }
    struct logb lb;
    if (log_begin(&lb, status == DIMSE_SUCCESS ? LOG_INFO : LOG_WARN, "c_store")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "calling_ae", a->calling);
        log_str(&lb, "sop_instance_uid", a->req.affected_sop_instance);
        log_str(&lb, "sop_class_uid", a->req.affected_sop_class);
        log_hex16(&lb, "status", status);
        if (comment)
            log_str(&lb, "why", comment);
        if (status == DIMSE_SUCCESS) {
            log_str(&lb, "spool_id", store_id(o));
            log_u64(&lb, "bytes", store_bytes(o));
            log_str(&lb, "sha256", store_sha256_hex(o));
        }
        log_end(&lb);
    }
    if (a->closing)
        return;
    send_rsp(a, status, comment);
    after_response(a);
    if (!a->closing) {
        a->paused = false;
        if (!a->in_process)
            process(a);
    }
}

/* A command set is complete: act on it. */
static void handle_command(struct assoc *a)
{
    if (a->closing)
        return;
    struct rd r = rd_make(a->cmd.p, a->cmd.len);
    int rc = dimse_parse_cmd(&r, &a->req);
    wbuf_reset(&a->cmd);
    if (rc < 0 || !a->req.has_command_field || !a->req.has_message_id ||
        !a->req.has_data_set_type) {
        violation(a, UL_ABORT_INVALID_PARAM, "malformed DIMSE command set");
        return;
    }
    bool has_ds = a->req.data_set_type != DIMSE_NO_DATASET;
    a->obj = NULL;
    a->pending_status = DIMSE_SUCCESS;
    a->pending_comment = NULL;
    switch (a->req.command_field) {
    case DIMSE_C_ECHO_RQ:
        metric_inc(a->ctx->m.echoes);
        if (has_ds) {
            a->pending_status = DIMSE_MISTYPED_ARGUMENT;
            a->pending_comment = "C-ECHO carries no dataset";
            break;
        }
        if (strcmp(a->pctx[a->cmd_pctx].abstract, SOP_VERIFICATION) != 0 ||
            strcmp(a->req.affected_sop_class, SOP_VERIFICATION) != 0) {
            a->pending_status = DIMSE_SOP_CLASS_NOT_SUPPORTED;
            a->pending_comment = "C-ECHO outside the Verification SOP class";
            break;
        }
        send_rsp(a, DIMSE_SUCCESS, NULL);
        after_response(a);
        return;
    case DIMSE_C_CANCEL_RQ:
        return; /* nothing to cancel: operations are synchronous */
    case DIMSE_C_STORE_RQ: {
        const struct pctx_entry *e = &a->pctx[a->cmd_pctx];
        if (!has_ds) {
            a->pending_status = DIMSE_MISTYPED_ARGUMENT;
            a->pending_comment = "C-STORE without a dataset";
            break;
        }
        if (strcmp(a->req.affected_sop_class, e->abstract) != 0) {
            a->pending_status = DIMSE_SOP_CLASS_NOT_SUPPORTED;
            a->pending_comment = "SOP class differs from the presentation context";
            break;
        }
        if (strcmp(e->abstract, SOP_VERIFICATION) == 0) {
            a->pending_status = DIMSE_SOP_CLASS_NOT_SUPPORTED;
            a->pending_comment = "Verification is not a storage SOP class";
            break;
        }
        if (!ds_uid_valid(a->req.affected_sop_instance)) {
            a->pending_status = DIMSE_CANNOT_UNDERSTAND;
            a->pending_comment = "invalid Affected SOP Instance UID";
            break;
        }
        if (!spool_has_room(&a->ctx->spool)) {
            a->pending_status = DIMSE_OUT_OF_RESOURCES;
            a->pending_comment = "spool free space below the configured floor";
            break;
        }
        char fp[65] = "";
        struct store_params p = {
            .sop_class = a->req.affected_sop_class,
            .sop_instance = a->req.affected_sop_instance,
            .ts = e->ts,
            .calling_ae = a->calling,
            .called_ae = a->called,
            .peer = a->peer,
            .cert_cn = a->cert_cn,
            .cert_fingerprint = a->cert_fp[0] ? a->cert_fp : fp,
            .client_id = a->client_id,
            .assoc_id = a->id,
            /* two buffers of 1 MiB (or two PDUs): large writes, few hand-offs to the disk */
            .buf_cap = (size_t)a->our_max * 2 > STORE_BUF ? (size_t)a->our_max * 2 : STORE_BUF,
            .early_sync = a->cfg->fsync,
            .ack_via = a->cfg->ack != ACK_SPOOL ? a->ctx->backend : NULL,
        };
        rc = store_begin(a->ctx->loop, &a->ctx->spool, a->ctx->committer, &p, &a->obj);
        if (rc < 0) {
            a->obj = NULL;
            a->pending_status = DIMSE_OUT_OF_RESOURCES;
            a->pending_comment = "cannot create spool file";
            struct logb lb;
            if (log_begin(&lb, LOG_ERROR, "spool_open_failed")) {
                log_u64(&lb, "assoc", a->id);
                log_str(&lb, "err", err_str(rc));
                log_end(&lb);
            }
        }
        break;
    }
    default:
        a->pending_status = DIMSE_UNRECOGNIZED_OPERATION;
        a->pending_comment = "only C-ECHO and C-STORE are supported";
        break;
    }
    if (has_ds) {
        a->in_dataset = true; /* the response follows the dataset */
        return;
    }
    a->failures++;
    core_count_failure(a->ctx, a->pending_status);
    send_rsp(a, a->pending_status, a->pending_comment);
    after_response(a);
}

static void on_room(void *arg)
{
    struct assoc *a = arg;
    if (a->closing)
        return;
    a->paused = false;
    process(a);
}

/* DT-2 / AR-6: a P-DATA-TF PDU. Returns false when processing must pause. */
static bool handle_pdata(struct assoc *a, struct rd *body)
{
    /* backpressure: the whole PDU must fit the object's buffers before any of it is taken */
    if (a->obj && a->in_dataset && !store_can_accept(a->obj, rd_left(body))) {
        a->paused = true;
        store_on_room(a->obj, on_room, a);
        return false;
    }
    if (rd_left(body) == 0) { /* PS3.8 9.3.5: one or more PDV items */
        violation(a, UL_ABORT_INVALID_PARAM, "P-DATA-TF without PDV items");
        return false;
    }
    struct ul_pdv pdv;
    int rc;
    while ((rc = ul_next_pdv(body, &pdv)) == 1) {
        const struct pctx_entry *e = &a->pctx[pdv.pctx_id];
        if (!e->accepted || pdv.pctx_id % 2 == 0) {
            violation(a, UL_ABORT_INVALID_PARAM, "PDV on a context that was not accepted");
            return false;
        }
        if (pdv.is_command) {
            if (a->in_dataset || a->awaiting_store) {
                violation(a, UL_ABORT_UNEXPECTED_PARAM, "command PDV while a dataset was due");
                return false;
            }
            if (a->cmd.len > 0 && pdv.pctx_id != a->cmd_pctx) {
                violation(a, UL_ABORT_INVALID_PARAM, "command fragments on different contexts");
                return false;
            }
            a->cmd_pctx = pdv.pctx_id;
            wbuf_put(&a->cmd, pdv.data.p, pdv.data.len);
            if (a->cmd.err) {
                violation(a, UL_ABORT_INVALID_PARAM, "command set too large");
                return false;
            }
            if (pdv.is_last) {
                handle_command(a);
                if (a->closing || a->st == STA13)
                    return false;
            }
            continue;
        }
        if (!a->in_dataset || pdv.pctx_id != a->cmd_pctx) {
            violation(a, UL_ABORT_UNEXPECTED_PARAM, "dataset PDV without a command");
            return false;
        }
        if (a->obj)
            store_write(a->obj, pdv.data.p, pdv.data.len);
        if (pdv.is_last) {
            a->in_dataset = false;
            if (a->obj) {
                a->awaiting_store = true;
                a->paused = true; /* synchronous: the next request waits for this response */
                store_end(a->obj, on_store_done, a);
                /* on_store_done may already have run (failure path) and unpaused */
            } else {
                a->failures++;
                core_count_failure(a->ctx, a->pending_status);
                send_rsp(a, a->pending_status, a->pending_comment);
                after_response(a);
            }
            /* a response may have closed the association (a peer that does not read): then
             * nothing more of this PDU is taken, or a new object would have no owner */
            if (a->closing || a->st == STA13)
                return false;
        }
    }
    if (rc < 0) {
        violation(a, UL_ABORT_INVALID_PARAM, "malformed PDV item");
        return false;
    }
    return !a->paused;
}

/* ---- the state machine ----------------------------------------------------------------------- */

static bool known_type(uint8_t t)
{
    return t >= UL_ASSOC_RQ && t <= UL_ABORT;
}

static void peer_aborted(struct assoc *a, struct rd *body)
{
    uint8_t src = 0, reason = 0;
    if (ul_parse_abort(body, &src, &reason) < 0)
        a->glitches++;
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "assoc_abort_received")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_u64(&lb, "source", src);
        log_u64(&lb, "reason", reason);
        log_end(&lb);
    }
    a->end_reason = "aborted by peer";
    assoc_close(a, "aborted by peer"); /* AA-2 / AA-3 */
}

/* One whole PDU. Returns false to stop processing the buffer (pause, abort or close). */
static bool handle_pdu(struct assoc *a, uint8_t type, struct rd *body)
{
    if (type == UL_ABORT) {
        peer_aborted(a, body);
        return false;
    }
    switch (a->st) {
    case STA2:
        if (type == UL_ASSOC_RQ) {
            handle_assoc_rq(a, body);
            return !a->closing;
        }
        violation(a, 0, known_type(type) ? "unexpected PDU before association"
                                         : "unrecognized PDU type");
        return false;
    case STA6:
    case STA7:
        if (type == UL_P_DATA_TF) {
            if (a->st == STA6)
                arm(a, a->cfg->idle_ms);
            return handle_pdata(a, body);
        }
        if (type == UL_RELEASE_RQ) {
            if (ul_parse_release(body) < 0) {
                violation(a, UL_ABORT_INVALID_PARAM, "malformed A-RELEASE-RQ");
                return false;
            }
            if (a->st == STA7) { /* AR-8: release collision; we are the acceptor: Sta10 */
                a->st = STA10;
                return true;
            }
            if (a->in_dataset || a->awaiting_store) {
                violation(a, UL_ABORT_UNEXPECTED_PDU, "A-RELEASE-RQ during an operation");
                return false;
            }
            a->st = STA8; /* AR-2, then our response at once: AR-4 */
            send_release_rp(a);
            return false;
        }
        if (type == UL_RELEASE_RP && a->st == STA7) {
            a->end_reason = "released";
            assoc_close(a, "released"); /* AR-3 */
            return false;
        }
        violation(a, known_type(type) ? UL_ABORT_UNEXPECTED_PDU : UL_ABORT_UNRECOGNIZED_PDU,
                  known_type(type) ? "unexpected PDU" : "unrecognized PDU type");
        return false;
    case STA10:
        if (type == UL_RELEASE_RP) { /* AR-10 -> Sta12, and our response at once: AR-4 */
            send_release_rp(a);
            return false;
        }
        violation(a, known_type(type) ? UL_ABORT_UNEXPECTED_PDU : UL_ABORT_UNRECOGNIZED_PDU,
                  "unexpected PDU during release collision");
        return false;
    case STA8:
        violation(a, UL_ABORT_UNEXPECTED_PDU, "PDU after A-RELEASE-RQ");
        return false;
    case STA13:
        if (type == UL_ASSOC_RQ) /* AA-7 */
            send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_UNEXPECTED_PDU,
                       "A-ASSOCIATE-RQ while closing");
        else if (!known_type(type)) /* AA-7 */
            send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_UNRECOGNIZED_PDU,
                       "unrecognized PDU type while closing");
        return true; /* AA-6: ignore */
    }
    return false;
}

static bool handle_proxy(struct assoc *a)
{
    struct proxy2_info info;
    int rc = proxy2_parse(a->rbuf, a->rlen, &info);
    if (rc == 0)
        return false;
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "proxy_header_invalid")) {
            log_u64(&lb, "assoc", a->id);
            log_str(&lb, "peer", a->peer);
            log_str(&lb, "err", err_str(rc));
            log_end(&lb);
        }
        assoc_close(a, "invalid PROXY v2 header");
        return false;
    }
    a->awaiting_proxy = false;
    if (!info.local) {
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (info.src.ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&info.src;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
            port = ntohs(s4->sin_port);
            snprintf(a->peer, sizeof a->peer, "%s:%u", host, port);
        } else if (info.src.ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&info.src;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
            port = ntohs(s6->sin6_port);
            snprintf(a->peer, sizeof a->peer, "[%s]:%u", host, port);
        }
    }
    snprintf(a->cert_cn, sizeof a->cert_cn, "%s", info.ssl_cn);
    snprintf(a->client_id, sizeof a->client_id, "%s", info.client_id);
    if (info.has_fingerprint) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) {
            a->cert_fp[2 * i] = hex[info.fingerprint[i] >> 4];
            a->cert_fp[2 * i + 1] = hex[info.fingerprint[i] & 15];
        }
        a->cert_fp[64] = '\0';
    }
    memmove(a->rbuf, a->rbuf + rc, a->rlen - (size_t)rc);
    a->rlen -= (size_t)rc;
    return true;
}

static void process_buffer(struct assoc *a);

/* TLS: take plaintext that waited inside OpenSSL for room in rbuf. Bytes added, or < 0. */
static int tls_pull(struct assoc *a)
{
    if (!tls_conn_has_pending(a->tls) || a->rlen >= a->rcap)
        return 0;
    size_t before = a->rlen;
    int rc = tls_conn_resume(a->tls);
    if (rc != 0) {
        assoc_close(a, rc == TLS_CONN_EOF ? "closed by peer" : "TLS error");
        return rc < 0 ? rc : ERR_IO;
    }
    return a->rlen > before ? 1 : 0;
}

static void process(struct assoc *a)
{
    a->in_process = true;
    process_buffer(a);
    while (a->tls && !a->closing && !a->paused && tls_pull(a) > 0)
        process_buffer(a);
    if (!a->closing)
        a->in_process = false;
}

static void process_buffer(struct assoc *a)
{
    size_t off = 0;
    if (a->awaiting_proxy && !handle_proxy(a))
        goto done;
    while (!a->closing && !a->paused) {
        uint8_t type;
        uint32_t blen;
        uint32_t limit = a->st == STA2 ? UL_PRE_ASSOC_MAX : a->our_max;
        int64_t n = ul_frame(a->rbuf + off, a->rlen - off, limit, &type, &blen);
        if (n == 0)
            break;
        if (n < 0) {
            violation(a, UL_ABORT_INVALID_PARAM, "PDU longer than allowed");
            off = a->rlen;
            break;
        }
        struct rd body = rd_make(a->rbuf + off + UL_HDR_LEN, blen);
        enum sta before = a->st;
        bool go_on = handle_pdu(a, type, &body);
        if (a->paused && a->st == before && type == UL_P_DATA_TF && a->obj &&
            a->in_dataset && rd_left(&body) == blen)
            break; /* backpressure before the PDU was taken: keep it for later */
        off += (size_t)n;
        if (!go_on && !a->paused)
            break;
        if (a->st == STA13)
            break;
    }
    if (a->closing)
        return;
    if (a->st == STA13)
        off = a->rlen; /* Sta13: everything else is ignored (AA-6) */
    if (off > 0) {
        memmove(a->rbuf, a->rbuf + off, a->rlen - off);
        a->rlen -= off;
    }
done:
    if (a->closing)
        return;
    if (a->paused && a->reading) {
        uv_read_stop((uv_stream_t *)&a->tcp);
        a->reading = false;
    } else if (!a->paused && !a->reading) {
        if (uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read) == 0)
            a->reading = true;
    }
}

/* ---- transport ------------------------------------------------------------------------------- */

static uint8_t g_cipher_buf[64 * 1024]; /* one loop: consumed before the next read */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct assoc *a = h->data;
    (void)hint;
    if (a->tls && !a->awaiting_proxy) {
        *buf = uv_buf_init((char *)g_cipher_buf, sizeof g_cipher_buf);
        return;
    }
    if (a->rlen >= a->rcap) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)a->rbuf + a->rlen, (unsigned)(a->rcap - a->rlen));
}

/* TLS: plaintext goes where a plain read would have put it (rbuf), within its room. */
static size_t tls_room(void *arg)
{
    struct assoc *a = arg;
    return a->closing ? 0 : a->rcap - a->rlen;
}

static int tls_plain(void *arg, const uint8_t *p, size_t n)
{
    struct assoc *a = arg;
    memcpy(a->rbuf + a->rlen, p, n); /* n <= tls_room() */
    a->rlen += n;
    a->bytes_in += n;
    return 0;
}

/* The client's certificate names the association unless a PROXY v2 header already did. */
static int tls_ready(void *arg)
{
    struct assoc *a = arg;
    struct tls_peer_id *id = calloc(1, sizeof *id);
    if (id && tls_peer_id_get(tls_conn_ssl(a->tls), id) == 0 && !a->cert_cn[0]) {
        snprintf(a->cert_cn, sizeof a->cert_cn, "%s", id->cn);
        memcpy(a->cert_fp, id->fp_hex, sizeof a->cert_fp);
    }
    free(id);
    return 0;
}

static void on_tls_read(struct assoc *a, const uint8_t *p, size_t n)
{
    uint8_t *rest = NULL;
    if (a->awaiting_proxy) { /* PROXY v2 comes in clear before the TLS records (read into rbuf) */
        a->rlen += n;
        if (!handle_proxy(a))
            return; /* need more, or closed */
        rest = malloc(a->rlen ? a->rlen : 1);
        if (!rest) {
            assoc_close(a, "out of memory");
            return;
        }
        memcpy(rest, a->rbuf, a->rlen);
        n = a->rlen;
        p = rest;
        a->rlen = 0;
    }
    bool was_ready = tls_conn_is_ready(a->tls);
    int rc = tls_conn_feed(a->tls, p, n);
    free(rest);
    if (rc < 0 && !was_ready && !tls_conn_is_ready(a->tls)) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "tls_refused")) {
            log_u64(&lb, "assoc", a->id);
            log_str(&lb, "peer", a->peer);
            log_str(&lb, "reason", tls_conn_reason(a->tls));
            log_str(&lb, "detail", tls_conn_detail(a->tls));
            log_end(&lb);
        }
        assoc_close(a, "TLS handshake refused");
        return;
    }
    if (rc != 0) {
        if (a->st != STA13 && !a->end_reason)
            a->end_reason = "connection lost";
        assoc_close(a, rc == TLS_CONN_EOF ? "closed by peer" : "TLS error");
        return;
    }
    if (!a->in_process)
        process(a);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct assoc *a = s->data;
    (void)buf;
    if (nread == 0 || a->closing)
        return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            violation(a, UL_ABORT_INVALID_PARAM, "PDU exceeds buffer");
            return;
        }
        /* Evt17: AA-4 in an association, AR-5 in Sta13, AA-5 in Sta2 */
        if (a->st != STA13 && !a->end_reason)
            a->end_reason = "connection lost";
        assoc_close(a, a->st == STA13 ? "closed by peer" : "connection lost");
        return;
    }
    if (a->tls) {
        on_tls_read(a, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    a->rlen += (size_t)nread;
    a->bytes_in += (uint64_t)nread;
    process(a);
}

static void on_timer(uv_timer_t *t)
{
    struct assoc *a = t->data;
    if (a->closing)
        return;
    switch (a->st) {
    case STA2:
        a->end_reason = "ARTIM expired before A-ASSOCIATE-RQ";
        assoc_close(a, a->end_reason); /* Evt18: AA-2 */
        break;
    case STA13:
        assoc_close(a, a->end_reason ? a->end_reason : "ARTIM expired"); /* Evt18: AA-2 */
        break;
    case STA6:
        if (a->awaiting_store) {
            arm(a, a->cfg->idle_ms); /* our own disk is slow, not the peer */
            break;
        }
        send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "idle timeout");
        break;
    default:
        send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "release timeout");
        break;
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct assoc *a = h->data;
    if (--a->live_handles > 0)
        return;
    wbuf_cleanup(&a->cmd);
    tls_conn_free(a->tls);
    free(a->rbuf);
    free(a);
}

static void assoc_close(struct assoc *a, const char *reason)
{
    if (a->closing)
        return;
    a->closing = true;
    if (a->obj) {
        store_abort(a->obj); /* never acknowledged: its partial file is removed */
        a->obj = NULL;
    }
    struct core_ctx *ctx = a->ctx;
    *a->pprev = a->next;
    if (a->next)
        a->next->pprev = a->pprev;
    ctx->active--;
    metric_gauge_set(ctx->m.assoc_active, ctx->active);
    const char *end = a->end_reason ? a->end_reason : reason;
    if (strcmp(end, "released") == 0)
        metric_inc(ctx->m.assoc_released);
    else if (a->st != STA2 || a->calling[0])
        metric_inc(ctx->m.assoc_aborted);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "assoc_end")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_str(&lb, "calling_ae", a->calling);
        log_str(&lb, "end", end);
        log_u64(&lb, "objects", a->objects);
        log_u64(&lb, "failures", a->failures);
        log_u64(&lb, "bytes_in", a->bytes_in);
        log_u64(&lb, "bytes_out", a->bytes_out);
        log_u64(&lb, "ms", uv_now(ctx->loop) - a->t_start);
        if (a->glitches)
            log_u64(&lb, "glitches", a->glitches);
        log_end(&lb);
    }
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, on_handle_closed);
    uv_close((uv_handle_t *)&a->tcp, on_handle_closed);
    if (ctx->active == 0 && ctx->on_last_assoc)
        ctx->on_last_assoc(ctx);
}

int assoc_accept(struct core_ctx *ctx, uv_stream_t *server)
{
    struct assoc *a = calloc(1, sizeof *a);
    if (!a)
        return ERR_NOMEM;
    int rc = uv_tcp_init(ctx->loop, &a->tcp);
    if (rc < 0) {
        free(a);
        return rc;
    }
    a->tcp.data = a;
    a->live_handles = 1;
    rc = uv_accept(server, (uv_stream_t *)&a->tcp);
    if (rc < 0) {
        a->closing = true;
        uv_close((uv_handle_t *)&a->tcp, on_handle_closed);
        return rc;
    }
    uv_timer_init(ctx->loop, &a->timer);
    a->timer.data = a;
    a->live_handles = 2;
    a->ctx = ctx;
    a->cfg = ctx->cfg;
    a->id = ++ctx->next_id;
    a->st = STA2;
    a->t_start = uv_now(ctx->loop);
    a->our_max = a->cfg->max_pdu;
    wbuf_init(&a->cmd, DIMSE_CMD_MAX);
    a->next = ctx->assocs;
    if (a->next)
        a->next->pprev = &a->next;
    a->pprev = &ctx->assocs;
    ctx->assocs = a;
    ctx->active++;
    metric_gauge_set(ctx->m.assoc_active, ctx->active);

    uv_tcp_nodelay(&a->tcp, 1);
    uv_tcp_keepalive(&a->tcp, 1, 60);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(a->peer, sizeof a->peer, "?");
    if (uv_tcp_getpeername(&a->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
            snprintf(a->peer, sizeof a->peer, "%s:%u", host, ntohs(s4->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
            snprintf(a->peer, sizeof a->peer, "[%s]:%u", host, ntohs(s6->sin6_port));
        }
        a->awaiting_proxy = a->cfg->proxy_protocol &&
                            cidr_list_match(a->cfg->proxy_trusted, a->cfg->n_proxy_trusted,
                                            (const struct sockaddr *)&ss);
    }
    a->rcap = UL_PRE_ASSOC_MAX + UL_HDR_LEN + 1024; /* room for a PROXY v2 header too */
    a->rbuf = malloc(a->rcap);
    if (!a->rbuf) {
        assoc_close(a, "out of memory");
        return 0;
    }
    if (ctx->tls) {
        struct tls_conn_cbs cbs = {.out = tls_out, .plain = tls_plain, .ready = tls_ready,
                                   .room = tls_room, .arg = a};
        a->tls = tls_conn_new(ctx->tls, false, NULL, &cbs);
        if (!a->tls) {
            assoc_close(a, "out of memory");
            return 0;
        }
    }
    arm(a, a->cfg->artim_ms); /* AE-5: ARTIM (the TLS handshake included) until the RQ */
    rc = uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
    if (rc < 0) {
        assoc_close(a, "read failed");
        return 0;
    }
    a->reading = true;
    return 0;
}

void assoc_drain_all(struct core_ctx *ctx)
{
    for (struct assoc *a = ctx->assocs; a; a = a->next) {
        if (a->st != STA6)
            continue;
        a->release_wanted = true;
        if (!a->in_dataset && !a->awaiting_store && a->cmd.len == 0)
            send_release_rq(a);
    }
}

void assoc_abort_all(struct core_ctx *ctx)
{
    struct assoc *a = ctx->assocs;
    while (a) {
        struct assoc *next = a->next;
        if (a->st != STA13)
            send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "shutting down");
        assoc_close(a, "shutting down");
        a = next;
    }
}
