/* dicom-edge: the mTLS-terminating DICOM proxy with AE-title policy. See docs/edge.md. */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "audit/audit.h"

#include "cert_metrics.h"
#include "common/cli.h"
#include "common/log.h"
#include "edge_config.h"
#include "net/http_listener.h"
#include "net/tls_ctx.h"
#include "policy.h"
#include "proxy.h"
#include "proxy_audit.h"
#include "proxy_status.h"
#include "status_cmd.h"

static const char g_usage[] =
    "usage: dicom-edge [--config FILE] [--check-config] [--version] [--help]\n"
    "       dicom-edge status [--config FILE] [--json]\n"
    "\n"
    "Terminates DICOM TLS with mutual authentication, binds each client certificate to the AE\n"
    "titles and services it may use (policy.json, default deny), and proxies admitted\n"
    "associations to a dicom-core (TCP or TLS, optionally with a PROXY protocol v2 header that\n"
    "carries the client's identity and grants). With a \"reverse\" object it also relays the\n"
    "core's associations to devices on the hospital network (reverse.listen, default port 2763,\n"
    "mutual TLS with the infrastructure CA only).\n"
    "\n"
    "  --config FILE    edge.json (default /etc/dicom-edge/edge.json); DICOM_EDGE_LISTEN,\n"
    "                   DICOM_EDGE_HTTP_LISTEN, DICOM_EDGE_POLICY, DICOM_EDGE_LOG_LEVEL override\n"
    "  --check-config   validate the configuration, the certificates (key matches, chain and\n"
    "                   dates valid), the CRL and the policy (routes exist); print every\n"
    "                   problem; exit 1 if any\n"
    "  --version        print the version\n"
    "  --help           this text\n"
    "  status           ask the running edge (its http_listen) for live associations by\n"
    "                   client, the last hour's refusals, certificate and CRL dates, the\n"
    "                   policy generation and the audit queue; --json for the document\n"
    "\n"
    "Signals: SIGHUP reloads certificates, key, CA bundle, CRL and policy (new connections use\n"
    "the new set; a broken set is refused and the old one kept); SIGTERM or SIGINT stops\n"
    "accepting and lets live associations finish (drain_ms), then exits.\n";

struct app {
    uv_loop_t loop;
    struct edge e;
    struct edge_config *cfg;
    const char *config_path;
    struct http_listener *http;
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t drain_timer;
    bool stopping;
};

static struct app g_app;

static void log_problems(const char *ev, const struct wbuf *errs)
{
    const char *text = errs->p ? (const char *)errs->p : "";
    size_t at = 0;
    while (at < errs->len) {
        const char *nl = memchr(text + at, '\n', errs->len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : errs->len - at;
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, ev)) {
            log_strn(&lb, "problem", text + at, n);
            log_end(&lb);
        }
        at += n + 1;
    }
}

static void finish_shutdown(struct app *app)
{
    if (app->stopping)
        return;
    app->stopping = true;
    uv_timer_stop(&app->drain_timer);
    uv_close((uv_handle_t *)&app->drain_timer, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    if (app->http) {
        http_listener_close(app->http, NULL, NULL);
        app->http = NULL;
    }
    (void)audit_app_stop(app->e.audit);
    log_msg(LOG_INFO, "stopped", "drained");
}

static void on_empty(struct edge *e)
{
    (void)e;
    finish_shutdown(&g_app);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct app *app = t->data;
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "drain_timeout")) {
        log_u64(&lb, "connections", app->e.n_conns);
        log_end(&lb);
    }
    proxy_abort_all(&app->e);
}

static void on_term(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    if (app->e.draining) {
        if (signum == SIGINT)
            on_drain_timeout(&app->drain_timer);
        return;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "draining")) {
        log_u64(&lb, "signal", (uint64_t)signum);
        log_u64(&lb, "associations", app->e.n_assocs);
        log_u64(&lb, "drain_ms", app->cfg->drain_ms);
        log_end(&lb);
    }
    uv_timer_start(&app->drain_timer, on_drain_timeout, app->cfg->drain_ms, 0);
    proxy_drain(&app->e); /* may call on_empty at once */
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    (void)signum;
    struct edge_config *cfg = calloc(1, sizeof *cfg);
    struct wbuf errs;
    wbuf_init(&errs, 64u * 1024u);
    struct edge_gen *g = NULL;
    int rc = cfg ? edge_config_load(app->config_path, cfg, &errs) : ERR_NOMEM;
    if (rc == 0)
        rc = edge_gen_new(cfg, &g, &errs);
    if (rc < 0) {
        log_problems("reload_refused", &errs);
        log_msg(LOG_ERROR, "reload_refused", "new set invalid; keeping the old one");
        /* the first problem as the alert's description (file paths and keys, no PHI) */
        char first[200] = "new configuration invalid";
        if (errs.len > 0)
            snprintf(first, sizeof first, "%.*s", (int)strcspn((const char *)errs.p, "\n"),
                     (const char *)errs.p);
        (void)audit_config_reloaded(app->e.audit, app->config_path ? app->config_path :
                                                  "/etc/dicom-edge/edge.json",
                                    false, first);
        free(cfg);
        wbuf_cleanup(&errs);
        return;
    }
    wbuf_cleanup(&errs);
    g->number = app->e.gen->number + 1;
    /* tls and policy swap now; listen addresses, user and limits need a restart except the
     * ones read per connection, which follow the new file */
    if (strcmp(cfg->listen, app->cfg->listen) != 0 ||
        strcmp(cfg->http_listen, app->cfg->http_listen) != 0 ||
        cfg->reverse.enabled != app->cfg->reverse.enabled ||
        strcmp(cfg->reverse.listen, app->cfg->reverse.listen) != 0 ||
        cfg->preassoc_max != app->cfg->preassoc_max ||
        cfg->preassoc_per_source != app->cfg->preassoc_per_source)
        log_msg(LOG_WARN, "reload_partial",
                "listen, http_listen, reverse.listen and limits.preassoc_* need a restart");
    if (cfg->audit_digest != app->cfg->audit_digest)
        log_msg(LOG_WARN, "reload_partial", "the audit object needs a restart");
    snprintf(cfg->listen, sizeof cfg->listen, "%s", app->cfg->listen);
    snprintf(cfg->http_listen, sizeof cfg->http_listen, "%s", app->cfg->http_listen);
    snprintf(cfg->reverse.listen, sizeof cfg->reverse.listen, "%s", app->cfg->reverse.listen);
    /* nothing keeps a pointer to the old config: connections read e->cfg at event time */
    free(app->cfg);
    app->e.cfg = cfg;
    app->cfg = cfg;
    log_set_level((enum log_level)log_level_parse(cfg->log_level));
    edge_gen_unref(app->e.gen);
    app->e.gen = g;
    cert_metrics_update(app->e.metrics, cfg, g->policy);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "reloaded")) {
        log_str(&lb, "policy", cfg->policy);
        log_u64(&lb, "generation", g->number);
        log_u64(&lb, "clients", g->policy->n_clients);
        log_u64(&lb, "routes", g->policy->n_routes);
        log_u64(&lb, "devices", g->policy->n_returns);
        log_end(&lb);
    }
    char detail[160];
    snprintf(detail, sizeof detail, "certificates, CRLs and policy reloaded (generation %llu)",
             (unsigned long long)g->number);
    (void)audit_config_reloaded(app->e.audit, cfg->policy, true, detail);
}

static int check_config(const char *path)
{
    struct edge_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return 1;
    struct wbuf errs;
    wbuf_init(&errs, 256u * 1024u);
    int rc = edge_config_load(path, cfg, &errs);
    if (rc == 0) {
        char err[512];
        if (tls_check_cert_file(cfg->tls.cert, NULL, err, sizeof err) < 0)
            wbuf_printf(&errs, "tls.cert: %s\n", err);
        if (cfg->reverse.enabled &&
            tls_check_cert_file(cfg->reverse.tls.cert, NULL, err, sizeof err) < 0)
            wbuf_printf(&errs, "reverse.tls.cert: %s\n", err);
        if (cfg->audit.enabled && audit_config_check(&cfg->audit, &errs) < 0 && errs.len == 0)
            wbuf_printf(&errs, "audit: invalid\n");
        struct edge_gen *g = NULL;
        if (edge_gen_new(cfg, &g, &errs) == 0) {
            for (size_t i = 0; i < g->policy->n_routes; i++) {
                const struct policy_route *rt = &g->policy->routes[i];
                if (rt->tls && rt->tls_opts.cert[0] &&
                    tls_check_cert_file(rt->tls_opts.cert, NULL, err, sizeof err) < 0)
                    wbuf_printf(&errs, "routes.%s.tls.cert: %s\n", rt->name, err);
            }
            if (errs.len == 0)
                printf("%s: configuration OK (listen %s, profile %s, %zu clients, %zu routes, "
                       "%zu devices; reverse path %s; audit %s)\n",
                       path ? path : "(default)", cfg->listen,
                       tls_profile_name(cfg->tls.profile), g->policy->n_clients,
                       g->policy->n_routes, g->policy->n_returns,
                       cfg->reverse.enabled ? cfg->reverse.listen : "off",
                       cfg->audit.enabled ? "on" : "off");
            edge_gen_unref(g);
        }
    }
    int bad = errs.len > 0 || rc < 0;
    if (bad)
        fprintf(stderr, "%s: configuration invalid:\n%.*s", path ? path : "(default)",
                (int)errs.len, errs.p ? (const char *)errs.p : "");
    wbuf_cleanup(&errs);
    free(cfg);
    return bad;
}

static int drop_privileges(const struct edge_config *cfg)
{
    if (!cfg->user[0])
        return 0;
    const struct passwd *pw = getpwnam(cfg->user);
    if (!pw) {
        log_msg(LOG_ERROR, "drop_privileges_failed", "no such user");
        return ERR_CONFIG;
    }
    gid_t gid = pw->pw_gid;
    if (cfg->group[0]) {
        const struct group *gr = getgrnam(cfg->group);
        if (!gr) {
            log_msg(LOG_ERROR, "drop_privileges_failed", "no such group");
            return ERR_CONFIG;
        }
        gid = gr->gr_gid;
    }
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0 ||
        (pw->pw_uid != 0 && setuid(0) == 0)) {
        log_msg(LOG_ERROR, "drop_privileges_failed", "setgid/setuid failed");
        return ERR_CONFIG;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "privileges_dropped")) {
        log_str(&lb, "user", cfg->user);
        log_u64(&lb, "uid", pw->pw_uid);
        log_u64(&lb, "gid", gid);
        log_end(&lb);
    }
    return 0;
}

static void http_healthz(void *arg, struct wbuf *body, int *status, const char **ctype)
{
    struct edge *e = arg;
    *ctype = "application/json";
    *status = e->draining ? 503 : 200;
    wbuf_printf(body, "{\"status\":\"%s\",\"connections\":%u,\"associations\":%u}\n",
                e->draining ? "draining" : "ok", e->n_conns, e->n_assocs);
}

static void http_status(void *arg, struct wbuf *body, int *status, const char **ctype)
{
    *ctype = "application/json";
    *status = proxy_status_render(arg, body) == 0 ? 200 : 500;
}

static void http_metrics(void *arg, struct wbuf *body, int *status, const char **ctype)
{
    struct edge *e = arg;
    *ctype = "text/plain; version=0.0.4";
    *status = metrics_render(e->metrics, body) == 0 ? 200 : 500;
}

/* The audit trail, when configured: started before the edge serves. 0 or 1 (logged). */
static int start_audit(struct app *app)
{
    if (!app->cfg->audit.enabled)
        return 0;
    char err[512];
    struct audit_opts o = {.app_name = "dicom-edge", .ae_title = NULL, .metrics = app->e.metrics};
    if (audit_start(&app->cfg->audit, &o, &app->e.audit, err, sizeof err) < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, "audit_failed")) {
            log_str(&lb, "err", err);
            log_end(&lb);
        }
        return 1;
    }
    (void)audit_app_start(app->e.audit);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return status_cmd_main(argc - 1, argv + 1);
    struct cli_args args;
    char version[160];
    snprintf(version, sizeof version, "%s (%s)", GW_VERSION, OpenSSL_version(OPENSSL_VERSION));
    const struct cli_prog prog = {.name = "dicom-edge", .usage = g_usage, .version = version};
    int exit_rc = cli_parse(argc, argv, &prog, &args);
    if (exit_rc >= 0)
        return exit_rc;
    const char *config = args.config;
    if (args.check)
        return check_config(config);

    log_setup("edge", LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    struct app *app = &g_app;
    app->config_path = config;
    app->cfg = calloc(1, sizeof *app->cfg);
    struct wbuf errs;
    wbuf_init(&errs, 64u * 1024u);
    struct edge_gen *gen = NULL;
    int rc = app->cfg ? edge_config_load(config, app->cfg, &errs) : ERR_NOMEM;
    if (rc == 0)
        rc = edge_gen_new(app->cfg, &gen, &errs);
    if (rc < 0) {
        log_problems("config_invalid", &errs);
        wbuf_cleanup(&errs);
        return 1;
    }
    wbuf_cleanup(&errs);
    log_set_level((enum log_level)log_level_parse(app->cfg->log_level));

    if (uv_loop_init(&app->loop) < 0)
        return 1;
    struct edge *e = &app->e;
    e->loop = &app->loop;
    e->cfg = app->cfg;
    e->gen = gen;
    gen->number = 1;
    e->started_at = (int64_t)time(NULL);
    e->on_empty = on_empty;
    e->metrics = metrics_new();
    limits_init(&e->limits);
    if (!e->metrics || proxy_start(e) < 0 || start_audit(app) != 0)
        return 1;
    cert_metrics_update(e->metrics, app->cfg, gen->policy);
    if (app->cfg->http_listen[0]) {
        rc = http_listener_start(e->loop, app->cfg->http_listen, &app->http);
        if (rc == 0)
            rc = http_listener_route(app->http, "/healthz", http_healthz, e);
        if (rc == 0)
            rc = http_listener_route(app->http, "/metrics", http_metrics, e);
        if (rc == 0)
            rc = http_listener_route(app->http, "/status", http_status, e);
        if (rc < 0) {
            proxy_audit_listen_failed("http_listen_failed", app->cfg->http_listen, err_str(rc));
            return 1;
        }
    }
    if (drop_privileges(app->cfg) < 0)
        return 1;
    uv_timer_init(e->loop, &app->drain_timer);
    app->drain_timer.data = app;
    uv_signal_init(e->loop, &app->sig_hup);
    uv_signal_init(e->loop, &app->sig_term);
    uv_signal_init(e->loop, &app->sig_int);
    app->sig_hup.data = app->sig_term.data = app->sig_int.data = app;
    uv_signal_start(&app->sig_hup, on_hup, SIGHUP);
    uv_signal_start(&app->sig_term, on_term, SIGTERM);
    uv_signal_start(&app->sig_int, on_term, SIGINT);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "started")) {
        log_str(&lb, "version", GW_VERSION);
        log_str(&lb, "listen", app->cfg->listen);
        log_str(&lb, "http", app->cfg->http_listen);
        log_str(&lb, "profile", tls_profile_name(app->cfg->tls.profile));
        log_u64(&lb, "clients", gen->policy->n_clients);
        log_str(&lb, "reverse", app->cfg->reverse.enabled ? app->cfg->reverse.listen : "");
        log_str(&lb, "audit", app->cfg->audit.enabled ? "on" : "off");
        log_end(&lb);
    }
    uv_run(e->loop, UV_RUN_DEFAULT);

    audit_stop(e->audit, 2000); /* what is not delivered in 2 s stays queued for the next run */
    e->audit = NULL;
    edge_gen_unref(e->gen);
    free(app->cfg);
    limits_cleanup(&e->limits);
    preassoc_cleanup(&e->preassoc);
    metrics_free(e->metrics);
    rc = uv_loop_close(e->loop);
    return rc == 0 ? 0 : 1;
}
