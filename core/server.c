#include "server.h"

#include <stdio.h>
#include <string.h>

#include "assoc.h"
#include "core_audit.h"
#include "spool/spool_backend.h"
#include "common/log.h"
#include "net/addr.h"
#include "net/tls_ctx.h"

static void on_connection(uv_stream_t *srv, int status)
{
    struct server *s = srv->data;
    if (status < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "accept_failed")) {
            log_str(&lb, "err", uv_strerror(status));
            log_end(&lb);
        }
        return;
    }
    int rc = assoc_accept(s->ctx, srv);
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "accept_failed")) {
            log_str(&lb, "err", err_str(rc));
            log_end(&lb);
        }
    }
}

static void http_healthz(void *arg, struct wbuf *body, int *status, const char **ctype)
{
    struct core_ctx *ctx = arg;
    *ctype = "application/json";
    bool room = spool_has_room(&ctx->spool);
    *status = ctx->draining || !room ? 503 : 200;
    wbuf_printf(body, "{\"status\":\"%s\",\"associations\":%u,\"spool_depth\":%lld}\n",
                ctx->draining ? "draining" : room ? "ok" : "spool_full", ctx->active,
                (long long)atomic_load(&ctx->spool.depth));
}

static void http_metrics(void *arg, struct wbuf *body, int *status, const char **ctype)
{
    struct core_ctx *ctx = arg;
    metric_gauge_set(ctx->m.spool_depth, atomic_load(&ctx->spool.depth));
    metric_gauge_set(ctx->m.spool_bytes, atomic_load(&ctx->spool.depth_bytes));
    *ctype = "text/plain; version=0.0.4";
    *status = metrics_render(ctx->metrics, body) == 0 ? 200 : 500;
}

int server_tls_load(struct core_ctx *ctx, const struct core_config *cfg)
{
    SSL_CTX *tls = NULL;
    if (cfg->tls.enabled) {
        struct tls_server_opts o = {
            .cert = cfg->tls.cert,
            .key = cfg->tls.key,
            .client_ca = cfg->tls.client_ca,
            .crl = cfg->tls.crl,
            .crl_mode = TLS_CRL_LEAF,
            .profile = TLS_PROFILE_BCP195_ND,
            .partial_chain = true, /* client_ca names the edges' issuing CA itself */
        };
        char err[512];
        int rc = tls_ctx_server_new(&o, &tls, err, sizeof err);
        if (rc < 0) {
            log_msg(LOG_ERROR, "tls_config_invalid", err);
            return rc;
        }
        core_audit_tls_ctx(tls); /* a refused client's certificate is audited too */
    }
    SSL_CTX *client = NULL;
    if (cfg->client_tls.enabled) {
        enum tls_profile profile = TLS_PROFILE_BCP195_ND;
        if (tls_profile_parse(cfg->client_tls.profile, &profile) < 0)
            profile = TLS_PROFILE_BCP195_ND;
        struct tls_client_opts o = {
            .cert = cfg->client_tls.cert[0] ? cfg->client_tls.cert : NULL,
            .key = cfg->client_tls.key[0] ? cfg->client_tls.key : NULL,
            .ca = cfg->client_tls.ca,
            .profile = profile,
        };
        char err[512];
        int rc = tls_ctx_client_new(&o, &client, err, sizeof err);
        if (rc < 0) {
            log_msg(LOG_ERROR, "tls_config_invalid", err);
            SSL_CTX_free(tls);
            return rc;
        }
    }
    SSL_CTX_free(ctx->tls); /* live associations hold their own reference */
    ctx->tls = tls;
    SSL_CTX_free(ctx->client_tls);
    ctx->client_tls = client;
    return 0;
}

int server_start(struct server *s, struct core_ctx *ctx)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    TRY(server_tls_load(ctx, ctx->cfg));
    struct sockaddr_storage ss;
    int rc = addr_parse(ctx->cfg->listen, &ss);
    if (rc < 0) {
        log_msg(LOG_ERROR, "listen_invalid", ctx->cfg->listen);
        return rc;
    }
    TRY(uv_tcp_init(ctx->loop, &s->listener));
    s->listener.data = s;
    s->listening = true;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, "listen_failed")) {
            log_str(&lb, "addr", ctx->cfg->listen);
            log_str(&lb, "err", uv_strerror(rc));
            log_end(&lb);
        }
        return rc;
    }
    if (ctx->cfg->http_listen[0]) {
        rc = http_listener_start(ctx->loop, ctx->cfg->http_listen, &s->http);
        if (rc == 0)
            rc = http_listener_route(s->http, "/healthz", http_healthz, ctx);
        if (rc == 0)
            rc = http_listener_route(s->http, "/metrics", http_metrics, ctx);
        if (rc < 0) {
            struct logb lb;
            if (log_begin(&lb, LOG_ERROR, "http_listen_failed")) {
                log_str(&lb, "addr", ctx->cfg->http_listen);
                log_str(&lb, "err", err_str(rc));
                log_end(&lb);
            }
            return rc;
        }
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "listening")) {
        log_str(&lb, "addr", ctx->cfg->listen);
        log_str(&lb, "http", ctx->cfg->http_listen);
        log_str(&lb, "ae_title", ctx->cfg->ae_title);
        log_bool(&lb, "tls", ctx->tls != NULL);
        log_end(&lb);
    }
    return 0;
}

void server_stop_accepting(struct server *s)
{
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, NULL);
    }
}

void server_close(struct server *s)
{
    server_stop_accepting(s);
    SSL_CTX_free(s->ctx->tls);
    s->ctx->tls = NULL;
    SSL_CTX_free(s->ctx->client_tls); /* open associations hold their own reference */
    s->ctx->client_tls = NULL;
    if (s->http) {
        http_listener_close(s->http, NULL, NULL);
        s->http = NULL;
    }
}
