#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "common/log.h"
#include "net/addr.h"
#include "proxy_admit.h"
#include "proxy_audit.h"
#include "proxy_conn.h"
#include "proxy_int.h"
#include "proxy_splice.h"
#include "proxy_write.h"

/* ---------------------------------------------------------------- the modality's socket */

static void handshake_failed(struct edge_conn *c, int status)
{
    bool tls = status == ERR_TLS;
    const char *reason = tls ? tls_conn_reason(c->tls) : "closed_in_handshake";
    int64_t held = limits_log_allow(&c->e->limits, (const struct sockaddr *)&c->peer,
                                    uv_now(c->e->loop));
    struct logb lb;
    if (held >= 0 && log_begin(&lb, tls ? LOG_WARN : LOG_INFO, "tls_refused")) {
        proxy_audit_conn(&lb, c);
        log_str(&lb, "reason", reason);
        log_str(&lb, "detail", tls ? tls_conn_detail(c->tls) : proxy_audit_status(status));
        if (held > 0)
            log_u64(&lb, "suppressed", (uint64_t)held); /* lines held back for this source */
        log_end(&lb);
    }
    if (c->reverse)
        proxy_audit_count(c->e, "dicom_edge_reverse_handshakes_total",
                          "Reverse-path TLS handshakes (the core's) by outcome and reason",
                          "result", "failed", reason);
    else
        proxy_audit_count(c->e, "dicom_edge_handshakes_total",
                          "TLS handshakes by outcome and reason", "result", "failed", reason);
    proxy_audit_refusal(c->e, c->reverse, reason);
    if (tls) /* a TLS failure; a connection closed before it spoke TLS (a load balancer's or
              * a port probe's) authenticated nobody */
        proxy_audit_tls(c, false, reason);
    proxy_conn_finish(c, "tls_refused");
}

/* The modality closed, or reading or talking TLS with it failed. */
static void down_end(struct edge_conn *c, int status)
{
    switch (c->st) {
    case ST_HANDSHAKE: handshake_failed(c, status); return;
    case ST_SPLICE:
        if (!proxy_splice_over(c)) {
            struct logb lb;
            if (log_begin(&lb, LOG_WARN, "client_lost")) {
                proxy_audit_conn(&lb, c);
                log_str(&lb, "err", proxy_audit_status(status));
                log_end(&lb);
            }
            proxy_write_abort(c, false);
            proxy_conn_finish(c, "client_lost");
        } else {
            proxy_conn_finish(c, proxy_splice_end_name(c));
        }
        return;
    case ST_FINISH: return;
    default: proxy_conn_close(c); return; /* before or during admission: nothing to tell anyone */
    }
}

void proxy_on_down_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct edge_conn *c = s->data;
    if (c->closing || nread == 0)
        return;
    if (c->st == ST_FINISH) {
        if (nread < 0)
            proxy_conn_close(c);
        return;
    }
    if (nread < 0) {
        down_end(c, (int)nread);
        return;
    }
    c->last_io = uv_now(c->e->loop);
    int rc = tls_conn_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
    int frc = proxy_splice_flush_up(); /* before any end: a last PDU (release, abort) goes out */
    if (rc == CONN_STOP || frc == CONN_STOP)
        return;
    if (rc == 0) {
        /* What goes to the client is bounded by pausing upstream reads at high_water, except
         * what OpenSSL answers by itself (KeyUpdate, alerts): a client that provokes those and
         * never reads would grow this queue without end. */
        if (c->closing || c->st == ST_FINISH ||
            stream_queued(&c->s_down) <= (size_t)c->e->cfg->high_water * 2u + PROXY_READ_BUF)
            return;
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "client_not_reading")) {
            proxy_audit_conn(&lb, c);
            log_u64(&lb, "queued", stream_queued(&c->s_down));
            log_end(&lb);
        }
        rc = UV_ENOBUFS;
    }
    down_end(c, rc == TLS_CONN_EOF ? UV_EOF : rc);
}

/* ---------------------------------------------------------------- accept */

/* A connection closed before it was set up: only its first handle lives. */
static void on_bare_closed(uv_handle_t *h)
{
    free(h->data);
}

static void refuse_conn(struct edge *e, uv_tcp_t *t, bool reverse, const char *why)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int len = sizeof ss;
    char peer[64] = "?";
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) == 0)
        addr_format((const struct sockaddr *)&ss, peer, sizeof peer);
    int64_t held = limits_log_allow(&e->limits, (const struct sockaddr *)&ss, uv_now(e->loop));
    struct logb lb;
    if (held >= 0 && log_begin(&lb, LOG_WARN, "conn_refused")) {
        log_str(&lb, "peer", peer);
        if (reverse)
            log_str(&lb, "path", "reverse");
        log_str(&lb, "reason", why);
        if (held > 0)
            log_u64(&lb, "suppressed", (uint64_t)held);
        log_end(&lb);
    }
    proxy_audit_refusal(e, reverse, why);
    metric_inc(reverse                               ? e->m.rconns_refused_limit :
               strcmp(why, "per_source_rate") == 0 ? e->m.conns_refused_rate :
               strncmp(why, "preassoc", 8) == 0    ? e->m.conns_refused_preassoc :
                                                     e->m.conns_refused_limit);
    uv_close((uv_handle_t *)t, on_bare_closed);
}

/* Why a new connection from peer is closed at once, or NULL. The reverse path (the core, a few
 * addresses behind NAT) has its own bound and no per-source rate. */
static const char *refusal(struct edge *e, const struct sockaddr_storage *peer, bool reverse)
{
    if (e->draining)
        return "draining";
    if (reverse)
        return e->n_rconns >= e->cfg->reverse.max_associations ? "max_associations" :
               !e->gen->reverse                                 ? "reverse_not_configured" :
                                                                  NULL;
    if (e->n_conns - e->n_rconns >= e->cfg->max_connections)
        return "max_connections";
    if (!limits_source_allow(&e->limits, (const struct sockaddr *)peer, uv_now(e->loop),
                             e->cfg->per_source_per_minute))
        return "per_source_rate";
    return NULL;
}

/* The verified-or-not leaf certificate of a handshake that fails verification: its identity
 * goes into the audit message of the failure (OpenSSL keeps no peer certificate then). */
static int on_verify(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct edge_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    if (ok || !c || !leaf || c->fp_hex[0])
        return ok;
    struct tls_peer_id *id = calloc(1, sizeof *id);
    if (id && tls_cert_id(leaf, id) == 0)
        proxy_conn_identity(c, id);
    free(id);
    return ok;
}

static void ip_only(const struct sockaddr_storage *ss, char *out, size_t n)
{
    int rc = ss->ss_family == AF_INET6 ?
                 uv_ip6_name((const struct sockaddr_in6 *)ss, out, n) :
                 uv_ip4_name((const struct sockaddr_in *)ss, out, n);
    if (rc < 0)
        snprintf(out, n, "?");
}

/* Set up an accepted, allowed connection: timer, generation, list, TLS, first read. */
static void conn_setup(struct edge *e, struct edge_conn *c, const struct sockaddr_storage *peer,
                       bool reverse)
{
    c->e = e;
    c->id = ++e->next_id;
    c->peer = *peer;
    c->reverse = reverse;
    addr_format((const struct sockaddr *)peer, c->peer_s, sizeof c->peer_s);
    ip_only(peer, c->peer_ip, sizeof c->peer_ip);
    int len = sizeof c->local;
    if (uv_tcp_getsockname(&c->down, (struct sockaddr *)&c->local, &len) < 0)
        c->local = e->listen_addr;
    c->down.data = c;
    c->live = 1;
    uv_timer_init(e->loop, &c->timer);
    c->timer.data = c;
    c->live++;
    c->gen = e->gen;
    edge_gen_ref(c->gen);
    wbuf_init(&c->rq, RQ_BUF_MAX);
    c->next = e->conns;
    if (e->conns)
        e->conns->prev = c;
    e->conns = c;
    e->n_conns++;
    metric_gauge_add(e->m.conns_active, 1);
    if (reverse) {
        e->n_rconns++;
        metric_gauge_add(e->m.rconns_active, 1);
    }
    c->t_accept = c->last_io = uv_now(e->loop);
    uv_tcp_nodelay(&c->down, 1);
    if (e->cfg->keepalive_s)
        uv_tcp_keepalive(&c->down, 1, e->cfg->keepalive_s);
    proxy_write_init_down(c);
    struct tls_conn_cbs cbs = {.out = proxy_write_down_out, .plain = proxy_admit_plain,
                               .ready = proxy_admit_ready, .arg = c};
    c->tls = tls_conn_new(reverse ? c->gen->reverse : c->gen->server, false, NULL, &cbs);
    if (c->tls) {
        SSL *ssl = tls_conn_ssl(c->tls);
        SSL_set_app_data(ssl, c);
        SSL_set_verify(ssl, SSL_get_verify_mode(ssl), on_verify);
    }
    if (!c->tls ||
        uv_read_start((uv_stream_t *)&c->down, proxy_conn_alloc, proxy_on_down_read) < 0) {
        log_msg(LOG_ERROR, "accept_failed", "cannot start TLS");
        proxy_conn_close(c);
        return;
    }
    stream_set_tls(&c->s_down, c->tls);
    c->st = ST_HANDSHAKE;
    proxy_conn_arm(c, e->cfg->handshake_ms);
}

static void on_connection(uv_stream_t *srv, int status)
{
    struct edge *e = srv->data;
    bool reverse = srv == (uv_stream_t *)&e->rlistener;
    if (status < 0) {
        log_msg(LOG_WARN, "accept_failed", uv_strerror(status));
        return;
    }
    struct edge_conn *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(e->loop, &c->down) < 0) {
        free(c);
        log_msg(LOG_ERROR, "accept_failed", "out of memory");
        return;
    }
    c->down.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->down) < 0) {
        uv_close((uv_handle_t *)&c->down, on_bare_closed);
        return;
    }
    struct sockaddr_storage peer;
    int len = sizeof peer;
    if (uv_tcp_getpeername(&c->down, (struct sockaddr *)&peer, &len) < 0)
        memset(&peer, 0, sizeof peer);
    const char *why = refusal(e, &peer, reverse);
    if (!why && !reverse) {
        /* not admitted yet (TLS, A-ASSOCIATE-RQ to come): the bounded pre-association budget,
         * each source at most its share, so idle connections cannot starve other clients */
        const char *detail;
        preassoc_key((const struct sockaddr *)&peer, c->pre_key);
        if (preassoc_enter(&e->preassoc, c->pre_key, &detail) < 0)
            why = strstr(detail, "source") ? "preassoc_per_source" : "preassoc_max";
        else
            c->pre_held = true;
    }
    if (why)
        refuse_conn(e, &c->down, reverse, why);
    else
        conn_setup(e, c, &peer, reverse);
}

static int register_metrics(struct edge *e)
{
    struct metrics *m = e->metrics;
    struct edge_metrics *em = &e->m;
    em->conns_active = metrics_gauge(m, "dicom_edge_connections_active",
                                     "Client connections open (any phase)", NULL);
    em->assocs_active = metrics_gauge(m, "dicom_edge_associations_active",
                                      "Admitted associations being proxied", NULL);
    em->handshakes_ok = metrics_counter(m, "dicom_edge_handshakes_total",
                                        "TLS handshakes by outcome and reason",
                                        "result=\"ok\",reason=\"none\"");
    em->bytes_to_upstream = metrics_counter(m, "dicom_edge_bytes_total",
                                            "Plaintext bytes proxied", "dir=\"to_upstream\"");
    em->bytes_to_client = metrics_counter(m, "dicom_edge_bytes_total",
                                          "Plaintext bytes proxied", "dir=\"to_client\"");
    em->conns_refused_limit = metrics_counter(m, "dicom_edge_connections_refused_total",
                                              "Connections closed at accept",
                                              "reason=\"max_connections\"");
    em->conns_refused_rate = metrics_counter(m, "dicom_edge_connections_refused_total",
                                             "Connections closed at accept",
                                             "reason=\"per_source_rate\"");
    em->conns_refused_preassoc = metrics_counter(m, "dicom_edge_connections_refused_total",
                                                 "Connections closed at accept",
                                                 "reason=\"preassoc\"");
    em->rconns_active = metrics_gauge(m, "dicom_edge_reverse_connections_active",
                                      "Reverse-path connections open (the core's, any phase)",
                                      NULL);
    em->rassocs_active = metrics_gauge(m, "dicom_edge_reverse_associations_active",
                                       "Reverse-path associations being proxied to devices",
                                       NULL);
    em->rhandshakes_ok = metrics_counter(
        m, "dicom_edge_reverse_handshakes_total",
        "Reverse-path TLS handshakes (the core's) by outcome and reason",
        "result=\"ok\",reason=\"none\"");
    em->rconns_refused_limit = metrics_counter(
        m, "dicom_edge_reverse_connections_refused_total",
        "Reverse-path connections closed at accept", "reason=\"max_associations\"");
    if (!em->conns_active || !em->assocs_active || !em->handshakes_ok ||
        !em->bytes_to_upstream || !em->bytes_to_client || !em->conns_refused_limit ||
        !em->conns_refused_rate || !em->conns_refused_preassoc || !em->rconns_active || !em->rassocs_active ||
        !em->rhandshakes_ok || !em->rconns_refused_limit)
        return ERR_NOMEM;
    return 0;
}

/* Bind addr on t (a listener of e) and listen. 0 or a negative code (logged). */
static int listen_on(struct edge *e, uv_tcp_t *t, const char *addr, struct sockaddr_storage *ss,
                     bool *listening)
{
    int rc = addr_parse(addr, ss);
    if (rc < 0)
        return rc;
    TRY(uv_tcp_init(e->loop, t));
    t->data = e;
    *listening = true;
    rc = uv_tcp_bind(t, (const struct sockaddr *)ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)t, 511, on_connection);
    if (rc < 0)
        proxy_audit_listen_failed("listen_failed", addr, uv_strerror(rc));
    return rc;
}

int proxy_start(struct edge *e)
{
    TRY(register_metrics(e));
    refusals_init(&e->refusals);
    TRY(preassoc_init(&e->preassoc, e->cfg->preassoc_max, e->cfg->preassoc_per_source));
    TRY(listen_on(e, &e->listener, e->cfg->listen, &e->listen_addr, &e->listening));
    if (!e->cfg->reverse.enabled)
        return 0;
    return listen_on(e, &e->rlistener, e->cfg->reverse.listen, &e->rlisten_addr,
                     &e->rlistening);
}

void proxy_drain(struct edge *e)
{
    e->draining = true;
    if (e->listening) {
        e->listening = false;
        uv_close((uv_handle_t *)&e->listener, NULL);
    }
    if (e->rlistening) {
        e->rlistening = false;
        uv_close((uv_handle_t *)&e->rlistener, NULL);
    }
    for (struct edge_conn *c = e->conns; c; c = c->next) {
        if (c->st < ST_CONNECT)
            proxy_conn_close(c);
    }
    if (e->n_conns == 0 && e->on_empty)
        e->on_empty(e);
}

void proxy_abort_all(struct edge *e)
{
    for (struct edge_conn *c = e->conns; c; c = c->next) {
        if (c->st == ST_SPLICE) {
            proxy_write_abort(c, true);
            proxy_write_abort(c, false);
            proxy_conn_finish(c, "aborted_shutdown");
        } else {
            proxy_conn_close(c);
        }
    }
}
