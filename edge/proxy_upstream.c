#include "proxy_upstream.h"

#include <stdio.h>

#include "common/log.h"
#include "net/addr.h"
#include "net/proxy2.h"
#include "proxy_audit.h"
#include "proxy_conn.h"
#include "proxy_splice.h"
#include "proxy_write.h"

void proxy_upstream_failed(struct edge_conn *c, const char *why, const char *detail)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "upstream_failed")) {
        proxy_audit_conn(&lb, c);
        log_str(&lb, "route", c->route->name);
        log_str(&lb, "upstream", c->route->upstream);
        log_str(&lb, "reason", why);
        log_str(&lb, "detail", detail);
        log_end(&lb);
    }
    /* not yet associated: the modality gets a transient rejection (PS3.8 9.3.4) */
    if (c->in_assoc_count) {
        c->in_assoc_count = false;
        c->e->n_assocs--;
        metric_gauge_add(c->e->m.assocs_active, -1);
        if (c->reverse) {
            c->e->n_rassocs--;
            metric_gauge_add(c->e->m.rassocs_active, -1);
        }
    }
    c->up_connected = false; /* no shutdown on a half-made upstream: it is just closed */
    proxy_write_refuse(c, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_CONGESTION, why, NULL);
}

static int up_plain(void *arg, const uint8_t *p, size_t n)
{
    struct edge_conn *c = arg;
    if (c->st != ST_SPLICE)
        return c->st == ST_FINISH ? CONN_STOP : ERR_UNEXPECTED;
    return proxy_splice_to_down(c, p, n);
}

static int up_ready(void *arg)
{
    struct edge_conn *c = arg;
    proxy_splice_begin(c);
    return c->st == ST_SPLICE ? 0 : CONN_STOP;
}

/* The upstream closed, or reading it failed. */
static void up_end(struct edge_conn *c, int status)
{
    if (c->st == ST_CONNECT || c->st == ST_UP_TLS) {
        proxy_upstream_failed(c, "upstream_closed", proxy_audit_status(status));
        return;
    }
    if (proxy_splice_over(c)) {
        proxy_conn_finish(c, proxy_splice_end_name(c));
        return;
    }
    proxy_splice_upstream_lost(c, status);
}

void proxy_upstream_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct edge_conn *c = s->data;
    if (c->closing || c->st == ST_FINISH || nread == 0)
        return;
    if (nread < 0) {
        up_end(c, (int)nread);
        return;
    }
    c->last_io = uv_now(c->e->loop);
    const uint8_t *p = (const uint8_t *)buf->base;
    int rc;
    if (c->up_tls) {
        rc = tls_conn_feed(c->up_tls, p, (size_t)nread);
        if (rc == ERR_TLS && c->st == ST_UP_TLS) {
            proxy_upstream_failed(c, "upstream_tls_failed", tls_conn_detail(c->up_tls));
            return;
        }
    } else {
        rc = c->st == ST_SPLICE ? proxy_splice_to_down(c, p, (size_t)nread) : ERR_UNEXPECTED;
    }
    if (rc == CONN_STOP || rc == 0)
        return;
    up_end(c, rc == TLS_CONN_EOF ? UV_EOF : rc);
}

/* PROXY v2 (DESIGN.md): the modality's address, its certificate identity and its grants (the
 * services and read scope of its policy entry, common/grants.h), before TLS. */
static int send_proxy_header(struct edge_conn *c)
{
    char grants[GRANTS_TEXT_MAX];
    int rc = grants_format(&c->client->grants, grants, sizeof grants);
    if (rc < 0)
        return rc;
    struct wbuf b;
    wbuf_init(&b, PROXY2_MAX_LEN);
    rc = proxy2_encode_grants(&b, (const struct sockaddr *)&c->peer,
                              (const struct sockaddr *)&c->local, c->cn[0] ? c->cn : NULL, c->fp,
                              c->client_id, grants);
    if (rc == 0)
        rc = stream_send_clear(&c->s_up, b.p, b.len);
    wbuf_cleanup(&b);
    return rc;
}

static void start_up_stream(struct edge_conn *c)
{
    struct edge *e = c->e;
    const struct policy_route *rt = c->route;
    c->up_connected = true;
    uv_tcp_nodelay(&c->up, 1);
    if (e->cfg->keepalive_s)
        uv_tcp_keepalive(&c->up, 1, e->cfg->keepalive_s);
    int rc = uv_read_start((uv_stream_t *)&c->up, proxy_conn_alloc, proxy_upstream_on_read);
    if (rc == 0 && rt->proxy_protocol && !c->reverse) /* a device reads no PROXY header */
        rc = send_proxy_header(c);
    if (rc < 0) {
        proxy_upstream_failed(c, "upstream_write_failed", err_str(rc));
        return;
    }
    if (rt->tls) {
        struct tls_conn_cbs cbs = {
            .out = proxy_write_up_out, .plain = up_plain, .ready = up_ready, .arg = c};
        c->up_tls = tls_conn_new(rt->ctx, true, rt->tls_opts.server_name, &cbs);
        if (!c->up_tls || tls_conn_start(c->up_tls) < 0) {
            proxy_upstream_failed(c, "upstream_tls_failed", "cannot start TLS");
            return;
        }
        stream_set_tls(&c->s_up, c->up_tls);
        c->st = ST_UP_TLS;
        return;
    }
    proxy_splice_begin(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct edge_conn *c = req->data;
    if (c->closing || c->st != ST_CONNECT)
        return;
    if (status < 0) {
        proxy_upstream_failed(c, "upstream_unreachable", uv_strerror(status));
        return;
    }
    start_up_stream(c);
}

static void connect_to(struct edge_conn *c, const struct sockaddr *sa)
{
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->up, sa, on_connect);
    if (rc < 0)
        proxy_upstream_failed(c, "upstream_unreachable", uv_strerror(rc));
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct edge_conn *c = req->data;
    if (c->closing || c->st != ST_CONNECT) {
        uv_freeaddrinfo(res);
        proxy_conn_release(c);
        return;
    }
    c->live--;
    if (status < 0 || !res)
        proxy_upstream_failed(c, "upstream_unresolved", uv_strerror(status));
    else
        connect_to(c, res->ai_addr);
    uv_freeaddrinfo(res);
}

void proxy_upstream_start(struct edge_conn *c)
{
    struct edge *e = c->e;
    c->st = ST_CONNECT;
    proxy_conn_preassoc_done(c); /* admitted: an association now, no longer pending */
    proxy_conn_arm(c, e->cfg->connect_ms);
    int rc = uv_tcp_init(e->loop, &c->up);
    if (rc < 0) {
        proxy_upstream_failed(c, "upstream_unreachable", uv_strerror(rc));
        return;
    }
    c->up.data = c;
    c->up_init = true;
    c->live++;
    proxy_write_init_up(c);
    struct sockaddr_storage ss;
    if (addr_parse(c->route->upstream, &ss) == 0) {
        connect_to(c, (const struct sockaddr *)&ss);
        return;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", c->route->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    rc = uv_getaddrinfo(e->loop, &c->gai, on_gai, c->route->host, port, &hints);
    if (rc < 0)
        proxy_upstream_failed(c, "upstream_unresolved", uv_strerror(rc));
    else
        c->live++;
}
