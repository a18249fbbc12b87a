#include "proxy_admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "common/log.h"
#include "proxy_audit.h"
#include "proxy_conn.h"
#include "proxy_splice.h"
#include "proxy_upstream.h"
#include "proxy_write.h"

static void admit(struct edge_conn *c, const struct adm_decision *d)
{
    struct edge *e = c->e;
    c->client = d->client;
    c->route = c->reverse ? d->route : &c->gen->policy->routes[d->client->route];
    snprintf(c->client_id, sizeof c->client_id, "%s", d->client->id);
    if (audit_is_blocking(e->audit)) {
        /* fail_closed: nothing happens that cannot be audited (docs/audit.md, "Full queue") */
        proxy_write_refuse(c, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT,
                           "audit_queue_full", d);
        return;
    }
    /* the reverse path: a slot per device, apart from the device's own associations to us */
    snprintf(c->limit_key, sizeof c->limit_key, "%s%s", c->reverse ? "reverse:" : "",
             c->client_id);
    uint32_t max_active = c->reverse ? e->cfg->reverse.max_per_device :
                                       d->client->max_associations;
    uint32_t per_minute = c->reverse ? 0 : d->client->max_per_minute;
    const char *why = NULL;
    int rc = limits_client_take(&e->limits, c->limit_key, uv_now(e->loop), max_active,
                                per_minute, &why);
    if (rc < 0) {
        /* PS3.8 9.3.4: transient, service-provider (presentation), local limit exceeded */
        proxy_write_refuse(c, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT,
                           rc == ERR_LIMIT ? why : "out_of_memory", d);
        return;
    }
    c->slot_taken = true;
    c->in_assoc_count = true;
    c->t_admit = uv_now(e->loop);
    c->rq_max_len = d->max_len;
    e->n_assocs++;
    metric_gauge_add(e->m.assocs_active, 1);
    if (c->reverse) {
        e->n_rassocs++;
        metric_gauge_add(e->m.rassocs_active, 1);
    }
    proxy_audit_decision(c, "admit", "policy_match", d);
    uv_read_stop((uv_stream_t *)&c->down); /* nothing should come before the A-ASSOCIATE-AC */
    proxy_upstream_start(c);
}

/* Reloaded since c was accepted: c is admitted by the new set (its policy, CA bundle and
 * CRLs), not the one it shook hands under. 0 or CONN_STOP (refused by the new set). */
static int move_to_current_gen(struct edge_conn *c)
{
    long vr = 0;
    SSL_CTX *ctx = c->reverse ? c->e->gen->reverse : c->e->gen->server;
    if (!ctx || tls_peer_reverify(tls_conn_ssl(c->tls), ctx, &vr) < 0) {
        const char *why = ctx ? tls_fail_reason(vr, 0) : "reverse_not_configured";
        proxy_audit_cert_rejected(c, why);
        proxy_write_abort_down(c, UL_ABORT_NOT_SPECIFIED, why, NULL);
        return CONN_STOP;
    }
    edge_gen_ref(c->e->gen);
    edge_gen_unref(c->gen);
    c->gen = c->e->gen;
    return 0;
}

static int decide(struct edge_conn *c)
{
    struct adm_decision d;
    if (ul_frame(c->rq.p, c->rq.len, UL_PRE_ASSOC_MAX, &(uint8_t){0}, &(uint32_t){0}) == 0 &&
        c->rq.len > 0 && c->rq.p[0] == UL_ASSOC_RQ)
        return 0; /* not whole yet (admission_decide says the same, with more work) */
    /* the identity is read again from the certificate OpenSSL keeps: an idle connection
     * holds no copy of it (~9 KiB) while it waits for its request */
    struct tls_peer_id *pid = calloc(1, sizeof *pid);
    if (!pid || tls_peer_id_get(tls_conn_ssl(c->tls), pid) < 0) {
        free(pid);
        proxy_write_abort_down(c, UL_ABORT_NOT_SPECIFIED, "out_of_memory", NULL);
        return CONN_STOP;
    }
    if (c->gen != c->e->gen && move_to_current_gen(c) < 0) {
        free(pid);
        return CONN_STOP;
    }
    enum adm_verdict v;
    if (c->reverse) {
        const struct edge_config *cfg = c->e->cfg;
        struct adm_reverse_rules rules = {.allow_cn = cfg->reverse.allow_cn,
                                          .n_allow_cn = cfg->reverse.n_allow_cn};
        v = admission_reverse(c->gen->policy, &rules, pid, c->rq.p, c->rq.len, &d);
    } else {
        v = admission_decide(c->gen->policy, pid, c->rq.p, c->rq.len, &d);
    }
    free(pid);
    if (v == ADM_NEED_MORE)
        return 0;
    uv_timer_stop(&c->timer);
    memcpy(c->calling, d.calling, sizeof c->calling);
    memcpy(c->called, d.called, sizeof c->called);
    if (d.client) {
        snprintf(c->client_id, sizeof c->client_id, "%s", d.client->id);
        c->route = c->reverse ? d.route : &c->gen->policy->routes[d.client->route];
    }
    switch (v) {
    case ADM_ABORT: proxy_write_abort_down(c, d.reason, d.why, &d); return CONN_STOP;
    case ADM_REJECT:
        proxy_write_refuse(c, d.result, d.source, d.reason, d.why, &d);
        return CONN_STOP;
    case ADM_ADMIT: admit(c, &d); return c->st == ST_FINISH ? CONN_STOP : 0;
    default: return CONN_STOP;
    }
}

int proxy_admit_plain(void *arg, const uint8_t *p, size_t n)
{
    struct edge_conn *c = arg;
    switch (c->st) {
    case ST_RQ:
    case ST_CONNECT:
    case ST_UP_TLS:
        wbuf_put(&c->rq, p, n);
        if (c->rq.err) {
            proxy_write_abort_down(c, UL_ABORT_UNEXPECTED_PDU, "too_much_before_accept", NULL);
            return CONN_STOP;
        }
        return c->st == ST_RQ ? decide(c) : 0;
    case ST_SPLICE: return proxy_splice_to_up(c, p, n);
    default: return CONN_STOP;
    }
}

int proxy_admit_ready(void *arg)
{
    struct edge_conn *c = arg;
    struct edge *e = c->e;
    metric_inc(c->reverse ? e->m.rhandshakes_ok : e->m.handshakes_ok);
    struct tls_peer_id *pid = calloc(1, sizeof *pid);
    if (!pid || tls_peer_id_get(tls_conn_ssl(c->tls), pid) < 0) {
        free(pid);
        proxy_conn_close(c);
        return CONN_STOP;
    }
    proxy_conn_identity(c, pid);
    free(pid);
    proxy_audit_tls(c, true, NULL);
    struct logb lb;
    if (log_begin(&lb, LOG_DEBUG, "tls_ok")) {
        proxy_audit_conn(&lb, c);
        proxy_audit_identity(&lb, c);
        log_str(&lb, "version", SSL_get_version(tls_conn_ssl(c->tls)));
        log_str(&lb, "cipher", SSL_get_cipher_name(tls_conn_ssl(c->tls)));
        log_end(&lb);
    }
    c->st = ST_RQ;
    proxy_conn_arm(c, e->cfg->assoc_rq_ms);
    return 0;
}
