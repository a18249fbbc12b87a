/* assoc_connect: the requestor's side of association establishment (PS3.8 9.2, AE-1 to AE-4):
 * resolve and connect (TCP, then TLS as a client), send the A-ASSOCIATE-RQ with the proposed
 * contexts and role selection items, and take the A-ASSOCIATE-AC or -RJ. */
#include "assoc_int.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core_ctx.h"
#include "net/addr.h"
#include "store.h"

void assoc_out_free(struct assoc_out *o)
{
    if (!o)
        return;
    if (o->tls)
        SSL_CTX_free(o->tls);
    free(o);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct assoc *a = req->data;
    a->out->connecting = false;
    if (a->closing)
        return;
    if (status < 0) {
        a->out->err = ERR_IO;
        a->end_reason = "connection failed";
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "assoc_connect_failed")) {
            log_u64(&lb, "assoc", a->id);
            log_str(&lb, "peer", a->peer);
            log_str(&lb, "called_ae", a->called);
            log_str(&lb, "err", uv_strerror(status));
            log_end(&lb);
        }
        assoc_close(a, a->end_reason);
        return;
    }
    if (assoc_io_start(a) < 0 || a->closing)
        return;
    if (!a->tls)
        assoc_send_rq(a); /* with TLS: once the handshake is done (assoc_io.c) */
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct assoc *a = req->data;
    a->out->resolving = false;
    if (a->closing) { /* closed while resolving: the tcp handle is ours to close now */
        uv_freeaddrinfo(res);
        uv_close((uv_handle_t *)&a->tcp, assoc_on_closed);
        return;
    }
    if (status < 0 || !res) {
        a->out->err = ERR_IO;
        a->end_reason = "cannot resolve the peer's host";
        uv_freeaddrinfo(res);
        assoc_close(a, a->end_reason);
        return;
    }
    addr_format(res->ai_addr, a->peer, sizeof a->peer);
    a->out->conn.data = a;
    int rc = uv_tcp_connect(&a->out->conn, &a->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc < 0) {
        a->out->err = ERR_IO;
        a->end_reason = "connection failed";
        assoc_close(a, a->end_reason);
        return;
    }
    a->out->connecting = true;
}

int assoc_connect(struct core_ctx *ctx, const struct assoc_connect_opts *o,
                  const struct assoc_connect_cbs *cbs)
{
    if (o->n_contexts == 0 || o->n_contexts > UL_MAX_PCTX || strlen(o->host) >= 256 ||
        (o->tls_host && strlen(o->tls_host) >= 256))
        return ERR_LIMIT;
    struct assoc_out *out = calloc(1, sizeof *out);
    if (!out)
        return ERR_NOMEM;
    struct assoc *a = assoc_new(ctx);
    if (!a) {
        free(out);
        return ERR_NOMEM;
    }
    a->out = out;
    out->cbs = *cbs;
    snprintf(out->host, sizeof out->host, "%s", o->host);
    out->port = o->port;
    if (o->tls && SSL_CTX_up_ref(o->tls) == 1)
        out->tls = o->tls;
    snprintf(out->tls_host, sizeof out->tls_host, "%s", o->tls_host ? o->tls_host : "");
    memcpy(out->contexts, o->contexts, o->n_contexts * sizeof *o->contexts);
    out->n_contexts = o->n_contexts;
    snprintf(a->calling, sizeof a->calling, "%s", o->calling);
    snprintf(a->called, sizeof a->called, "%s", o->called);
    snprintf(a->peer, sizeof a->peer, "%s:%u", o->host, o->port);
    a->st = STA4;
    ctx->outbound++;
    assoc_arm(a, o->connect_ms ? o->connect_ms : a->cfg->artim_ms);
    if (o->tls && !out->tls) {
        out->err = ERR_TLS;
        assoc_close(a, "TLS context unusable");
        return 0;
    }
    char port[16];
    snprintf(port, sizeof port, "%u", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    out->gai.data = a;
    out->resolving = true;
    int rc = uv_getaddrinfo(ctx->loop, &out->gai, on_resolved, out->host, port, &hints);
    if (rc < 0) {
        out->resolving = false;
        out->err = ERR_IO;
        assoc_close(a, "cannot resolve the peer's host");
    }
    return 0;
}

/* AE-2: the A-ASSOCIATE-RQ, then Sta5 (ARTIM until the answer). */
void assoc_send_rq(struct assoc *a)
{
    struct assoc_out *o = a->out;
    struct ul_assoc_rq *rq = calloc(1, sizeof *rq);
    if (!rq) {
        o->err = ERR_NOMEM;
        assoc_close(a, "out of memory");
        return;
    }
    rq->protocol_version = 1;
    snprintf(rq->called, sizeof rq->called, "%s", a->called);
    snprintf(rq->calling, sizeof rq->calling, "%s", a->calling);
    rq->app_context = (struct slice){(const uint8_t *)UL_APP_CONTEXT, sizeof UL_APP_CONTEXT - 1};
    for (size_t i = 0; i < o->n_contexts; i++) {
        const struct assoc_propose *p = &o->contexts[i];
        struct ul_pctx_rq *pc = &rq->pctx[rq->n_pctx++];
        pc->id = (uint8_t)(2 * i + 1);
        pc->abstract = (struct slice){(const uint8_t *)p->abstract, strlen(p->abstract)};
        for (size_t t = 0; t < ARRAY_LEN(p->ts) && p->ts[t]; t++)
            pc->ts[pc->n_ts++] = (struct slice){(const uint8_t *)p->ts[t], strlen(p->ts[t])};
        struct pctx_entry *e = &a->pctx[pc->id];
        snprintf(e->abstract, sizeof e->abstract, "%s", p->abstract);
        if (p->we_scp || p->peer_scp) {
            struct ul_role *r = &rq->ui.roles[rq->ui.n_roles++];
            r->sop = pc->abstract;
            r->scu = p->we_scp ? 0 : 1; /* the requestor's roles (PS3.8 D.3.3.4) */
            r->scp = p->we_scp ? 1 : 0;
        }
    }
    rq->ui.present = true;
    rq->ui.has_max_len = true;
    rq->ui.max_len = a->our_max;
    rq->ui.impl_uid = (struct slice){(const uint8_t *)GW_IMPL_CLASS_UID,
                                     sizeof GW_IMPL_CLASS_UID - 1};
    rq->ui.impl_version = (struct slice){(const uint8_t *)GW_IMPL_VERSION,
                                         sizeof GW_IMPL_VERSION - 1};
    struct wbuf b;
    wbuf_init(&b, UL_PRE_ASSOC_MAX);
    int rc = ul_encode_assoc_rq(&b, rq);
    free(rq);
    if (rc < 0) {
        wbuf_cleanup(&b);
        o->err = rc;
        assoc_close(a, "cannot encode A-ASSOCIATE-RQ");
        return;
    }
    if (assoc_send_wbuf(a, &b) < 0)
        return;
    a->st = STA5;
    assoc_arm(a, a->cfg->artim_ms);
}

/* The proposal for context id, or NULL. */
static const struct assoc_propose *proposed(const struct assoc *a, uint8_t id)
{
    if (id % 2 == 0 || (size_t)(id / 2) >= a->out->n_contexts)
        return NULL;
    return &a->out->contexts[id / 2];
}

/* PS3.8 D.3.3.4: did the acceptor let us take the SCP role we proposed for abstract? */
static bool we_scp_granted(const struct ul_assoc_ac *ac, const char *abstract)
{
    for (uint16_t r = 0; r < ac->ui.n_roles; r++) {
        if (slice_eq_str(ul_uid_trim(ac->ui.roles[r].sop), abstract))
            return ac->ui.roles[r].scp == 1;
    }
    return false; /* no answer: the default roles, where we are only the SCU */
}

void assoc_handle_ac(struct assoc *a, struct rd *body)
{
    struct ul_assoc_ac *ac = calloc(1, sizeof *ac);
    if (!ac) {
        assoc_send_abort(a, UL_ABORT_SRC_USER, UL_ABORT_NOT_SPECIFIED, "out of memory");
        return;
    }
    if (ul_parse_assoc_ac(body, ac) < 0 || !slice_eq_str(ac->app_context, UL_APP_CONTEXT)) {
        free(ac);
        a->out->err = ERR_UNEXPECTED;
        assoc_send_abort(a, UL_ABORT_SRC_USER, UL_ABORT_NOT_SPECIFIED,
                         "malformed A-ASSOCIATE-AC");
        return;
    }
    unsigned accepted = 0;
    for (uint16_t i = 0; i < ac->n_pctx; i++) {
        const struct ul_pctx_ac *pc = &ac->pctx[i];
        const struct assoc_propose *p = proposed(a, pc->id);
        if (!p || pc->result != UL_PCTX_ACCEPT)
            continue;
        const struct ts_info *ts = NULL;
        for (size_t t = 0; t < ARRAY_LEN(p->ts) && p->ts[t] && !ts; t++) {
            if (slice_eq_str(pc->ts, p->ts[t]))
                ts = ts_find(p->ts[t]);
        }
        if (!ts)
            continue; /* a transfer syntax we never proposed (or cannot read): not used */
        if (p->we_scp && !we_scp_granted(ac, p->abstract))
            continue; /* the report could not be sent on it */
        struct pctx_entry *e = &a->pctx[pc->id];
        e->accepted = true;
        e->peer_scp = !p->we_scp; /* by default the acceptor is the SCP */
        e->ts = ts;
        accepted++;
    }
    a->peer_max = ac->ui.has_max_len ? ac->ui.max_len : 0;
    free(ac);
    if (a->peer_max && a->peer_max < UL_MIN_PDV_PDU) {
        a->out->err = ERR_UNEXPECTED;
        assoc_send_abort(a, UL_ABORT_SRC_USER, UL_ABORT_NOT_SPECIFIED,
                         "peer's maximum PDU length too small to carry a PDV");
        return;
    }
    a->st = STA6;
    assoc_arm(a, a->cfg->idle_ms);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "assoc_established")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_str(&lb, "called_ae", a->called);
        log_u64(&lb, "accepted", accepted);
        log_u64(&lb, "peer_max_pdu", a->peer_max);
        log_end(&lb);
    }
    if (a->rcap < (size_t)a->our_max + UL_HDR_LEN) {
        uint8_t *nb = realloc(a->rbuf, (size_t)a->our_max + UL_HDR_LEN);
        if (!nb) {
            assoc_send_abort(a, UL_ABORT_SRC_USER, UL_ABORT_NOT_SPECIFIED, "out of memory");
            return;
        }
        a->rbuf = nb;
        a->rcap = (size_t)a->our_max + UL_HDR_LEN;
    }
    if (a->out->cbs.ready)
        a->out->cbs.ready(a->out->cbs.arg, a);
}

void assoc_handle_rj(struct assoc *a, struct rd *body)
{
    struct ul_rj rj = {0};
    if (ul_parse_assoc_rj(body, &rj) < 0)
        a->glitches++;
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "assoc_rejected_by_peer")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_str(&lb, "called_ae", a->called);
        log_u64(&lb, "result", rj.result);
        log_u64(&lb, "source", rj.source);
        log_u64(&lb, "reason", rj.reason);
        log_end(&lb);
    }
    a->out->err = ERR_UNEXPECTED;
    a->end_reason = "rejected by the peer";
    assoc_close(a, a->end_reason); /* AE-4 */
}
