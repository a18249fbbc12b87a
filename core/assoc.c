/* assoc: one DICOM association as the acceptor: the PS3.8 9.2 state machine (Sta2 to Sta13 with
 * the ARTIM timer), release and abort, and the association's life from accept to close. The
 * transport is in assoc_io.c, negotiation in assoc_negotiate.c, P-DATA and the services in
 * assoc_dimse.c. */
#include "assoc_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core_audit.h"
#include "core_ctx.h"
#include "net/tls_conn.h"

static void on_timer(uv_timer_t *t);

void assoc_arm(struct assoc *a, uint32_t ms)
{
    uv_timer_start(&a->timer, on_timer, ms, 0);
}

void assoc_send_abort(struct assoc *a, uint8_t source, uint8_t reason, const char *why)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_abort(&b, source, reason) == 0)
        (void)assoc_send_wbuf(a, &b);
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
    assoc_dimse_end(a); /* no operation outlives the association */
    a->end_reason = "aborted";
    a->paused = false;
    if (a->st != STA13) /* AA-7 in Sta13 only sends the PDU: ARTIM keeps running */
        assoc_arm(a, a->cfg->artim_ms);
    a->st = STA13;
}

void assoc_violation(struct assoc *a, uint8_t reason, const char *why)
{
    if (a->st == STA2)
        assoc_send_abort(a, UL_ABORT_SRC_USER, UL_ABORT_NOT_SPECIFIED, why);
    else
        assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, reason, why);
}

static void send_release_rq(struct assoc *a)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_release_rq(&b) == 0 && assoc_send_wbuf(a, &b) == 0) {
        a->st = STA7;
        assoc_arm(a, a->cfg->artim_ms);
    }
}

/* AR-4: send A-RELEASE-RP and wait for the peer to close. */
static void send_release_rp(struct assoc *a)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_release_rp(&b) == 0 && assoc_send_wbuf(a, &b) == 0) {
        a->end_reason = "released";
        a->st = STA13;
        assoc_arm(a, a->cfg->artim_ms);
    }
}

void assoc_idle(struct assoc *a)
{
    if (a->release_wanted && a->st == STA6 && !a->closing && assoc_dimse_idle(a) && !a->waits)
        send_release_rq(a);
}

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

static bool release_rq(struct assoc *a, struct rd *body)
{
    if (ul_parse_release(body) < 0) {
        assoc_violation(a, UL_ABORT_INVALID_PARAM, "malformed A-RELEASE-RQ");
        return false;
    }
    if (a->st == STA7 && !a->out) { /* AR-8: release collision; the acceptor waits: Sta10 */
        a->st = STA10;
        return true;
    }
    if (a->st == STA7) { /* AR-8, then AR-9 at once: the requestor answers first (Sta11) */
        struct wbuf b;
        wbuf_init(&b, 16);
        if (ul_encode_release_rp(&b) == 0 && assoc_send_wbuf(a, &b) == 0)
            a->st = STA11;
        return false;
    }
    if (!assoc_dimse_idle(a)) {
        assoc_violation(a, UL_ABORT_UNEXPECTED_PDU, "A-RELEASE-RQ during an operation");
        return false;
    }
    a->st = STA8; /* AR-2, then our response at once: AR-4 */
    send_release_rp(a);
    return false;
}

bool assoc_handle_pdu(struct assoc *a, uint8_t type, struct rd *body)
{
    if (type == UL_ABORT) {
        peer_aborted(a, body);
        return false;
    }
    switch (a->st) {
    case STA4:
        return false; /* not connected: nothing can arrive */
    case STA5:
        if (type == UL_ASSOC_AC)
            assoc_handle_ac(a, body);
        else if (type == UL_ASSOC_RJ)
            assoc_handle_rj(a, body);
        else
            assoc_violation(a, known_type(type) ? UL_ABORT_UNEXPECTED_PDU
                                                : UL_ABORT_UNRECOGNIZED_PDU,
                            "unexpected PDU before A-ASSOCIATE-AC");
        return !a->closing && a->st == STA6;
    case STA2:
        if (type == UL_ASSOC_RQ) {
            assoc_handle_rq(a, body);
            return !a->closing;
        }
        assoc_violation(a, 0, known_type(type) ? "unexpected PDU before association"
                                               : "unrecognized PDU type");
        return false;
    case STA6:
    case STA7:
        if (type == UL_P_DATA_TF) {
            if (a->st == STA6)
                assoc_arm(a, a->cfg->idle_ms);
            return assoc_handle_pdata(a, body);
        }
        if (type == UL_RELEASE_RQ)
            return release_rq(a, body);
        if (type == UL_RELEASE_RP && a->st == STA7) {
            a->end_reason = "released";
            assoc_close(a, "released"); /* AR-3 */
            return false;
        }
        assoc_violation(a, known_type(type) ? UL_ABORT_UNEXPECTED_PDU : UL_ABORT_UNRECOGNIZED_PDU,
                        known_type(type) ? "unexpected PDU" : "unrecognized PDU type");
        return false;
    case STA11:
        if (type == UL_RELEASE_RP) { /* AR-3 */
            a->end_reason = "released";
            assoc_close(a, "released");
            return false;
        }
        assoc_violation(a, known_type(type) ? UL_ABORT_UNEXPECTED_PDU : UL_ABORT_UNRECOGNIZED_PDU,
                        "unexpected PDU during release collision");
        return false;
    case STA10:
        if (type == UL_RELEASE_RP) { /* AR-10 -> Sta12, and our response at once: AR-4 */
            send_release_rp(a);
            return false;
        }
        assoc_violation(a, known_type(type) ? UL_ABORT_UNEXPECTED_PDU : UL_ABORT_UNRECOGNIZED_PDU,
                        "unexpected PDU during release collision");
        return false;
    case STA8:
        assoc_violation(a, UL_ABORT_UNEXPECTED_PDU, "PDU after A-RELEASE-RQ");
        return false;
    case STA13:
        if (type == UL_ASSOC_RQ) /* AA-7 */
            assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_UNEXPECTED_PDU,
                             "A-ASSOCIATE-RQ while closing");
        else if (!known_type(type)) /* AA-7 */
            assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_UNRECOGNIZED_PDU,
                             "unrecognized PDU type while closing");
        return true; /* AA-6: ignore */
    }
    return false;
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
    case STA4:
        a->out->err = ERR_IO;
        a->end_reason = "connection timed out";
        assoc_close(a, a->end_reason);
        break;
    case STA5:
        a->out->err = ERR_IO;
        assoc_send_abort(a, UL_ABORT_SRC_USER, UL_ABORT_NOT_SPECIFIED,
                         "no A-ASSOCIATE-AC in time");
        break;
    case STA13:
        assoc_close(a, a->end_reason ? a->end_reason : "ARTIM expired"); /* Evt18: AA-2 */
        break;
    case STA6:
        if ((a->op && !a->in_dataset && !a->waits && assoc_out_queued(a) <= ASSOC_OUT_HIGH) ||
            (a->out && !a->waits)) {
            /* our own work is slow (disk, cloud), not the peer; an association we opened is
             * idle while its owner fetches the next object. A peer that owes us a response
             * (a C-GET's C-STORE) or does not read what we send is the slow one: aborted */
            assoc_arm(a, a->cfg->idle_ms);
            break;
        }
        assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "idle timeout");
        break;
    default:
        assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "release timeout");
        break;
    }
}

void assoc_on_closed(uv_handle_t *h)
{
    struct assoc *a = h->data;
    if (--a->live_handles > 0)
        return;
    wbuf_cleanup(&a->cmd);
    tls_conn_free(a->tls);
    assoc_out_free(a->out);
    free(a->rbuf);
    free(a);
}

void assoc_close(struct assoc *a, const char *reason)
{
    if (a->closing)
        return;
    a->closing = true;
    assoc_dimse_end(a); /* an object never acknowledged: its partial file is removed */
    core_audit_assoc_end(a); /* each study's totals (DICOM Instances Transferred) */
    assoc_preassoc_leave(a);
    if (a->established) {
        a->established = false;
        a->ctx->established--;
    }
    struct core_ctx *ctx = a->ctx;
    *a->pprev = a->next;
    if (a->next)
        a->next->pprev = a->pprev;
    const char *end = a->end_reason ? a->end_reason : reason;
    if (a->out) {
        ctx->outbound--;
    } else {
        ctx->active--;
        metric_gauge_set(ctx->m.assoc_active, ctx->active);
        if (strcmp(end, "released") == 0)
            metric_inc(ctx->m.assoc_released);
        else if (a->st != STA2 || a->calling[0])
            metric_inc(ctx->m.assoc_aborted);
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "assoc_end")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_str(&lb, "calling_ae", a->calling);
        if (a->out) {
            log_str(&lb, "role", "requestor");
            log_str(&lb, "called_ae", a->called);
        }
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
    uv_close((uv_handle_t *)&a->timer, assoc_on_closed);
    if (!a->out || !a->out->resolving)
        uv_close((uv_handle_t *)&a->tcp, assoc_on_closed);
    else
        uv_cancel((uv_req_t *)&a->out->gai); /* the tcp handle closes when it answers */
    if (a->out && a->out->cbs.ended) {
        struct assoc_connect_cbs cbs = a->out->cbs;
        a->out->cbs.ended = NULL;
        int err = strcmp(end, "released") == 0 ? 0 : a->out->err ? a->out->err : ERR_UNEXPECTED;
        cbs.ended(cbs.arg, err, end);
    }
    if (ctx->active == 0 && ctx->outbound == 0 && ctx->on_last_assoc)
        ctx->on_last_assoc(ctx);
}

struct assoc *assoc_new(struct core_ctx *ctx)
{
    struct assoc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (uv_tcp_init(ctx->loop, &a->tcp) < 0) {
        free(a);
        return NULL;
    }
    a->tcp.data = a;
    uv_timer_init(ctx->loop, &a->timer);
    a->timer.data = a;
    a->live_handles = 2;
    a->ctx = ctx;
    a->cfg = ctx->cfg;
    a->id = ++ctx->next_id;
    a->t_start = uv_now(ctx->loop);
    a->our_max = a->cfg->max_pdu;
    wbuf_init(&a->cmd, DIMSE_CMD_MAX);
    a->next = ctx->assocs;
    if (a->next)
        a->next->pprev = &a->next;
    a->pprev = &ctx->assocs;
    ctx->assocs = a;
    return a;
}

int assoc_accept(struct core_ctx *ctx, uv_stream_t *server)
{
    struct assoc *a = assoc_new(ctx);
    if (!a)
        return ERR_NOMEM;
    a->st = STA2;
    ctx->active++;
    metric_gauge_set(ctx->m.assoc_active, ctx->active);
    int rc = uv_accept(server, (uv_stream_t *)&a->tcp);
    if (rc < 0) {
        assoc_close(a, "accept failed");
        return rc;
    }
    assoc_arm(a, a->cfg->artim_ms); /* AE-5: ARTIM (the TLS handshake included) until the RQ */
    return assoc_io_start(a);
}

void assoc_release(struct assoc *a)
{
    if (a->closing)
        return;
    a->release_wanted = true;
    assoc_idle(a);
}

void assoc_drain_all(struct core_ctx *ctx)
{
    for (struct assoc *a = ctx->assocs; a; a = a->next) {
        if (a->st != STA6)
            continue;
        a->release_wanted = true;
        assoc_idle(a);
    }
}

void assoc_abort_all(struct core_ctx *ctx)
{
    struct assoc *a = ctx->assocs;
    while (a) {
        struct assoc *next = a->next;
        if (a->st != STA13)
            assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "shutting down");
        assoc_close(a, "shutting down");
        a = next;
    }
}
