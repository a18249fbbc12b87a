/* dicom-core: the DICOM Store SCP. See README.md and docs/configuration.md. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "assoc.h"
#include "common/cli.h"
#include "commit_txn.h"
#include "common/log.h"
#include "core_audit.h"
#include "core_config.h"
#include "core_ctx.h"
#include "main_backends.h"
#include "main_status.h"
#include "server.h"
#include "sop_registry.h"
#include "spool/spool_backend.h"
#include "store.h"

static const char g_usage[] =
    "usage: dicom-core [--config FILE] [--check-config] [--print-default-config]\n"
    "                  [--version] [--help]\n"
    "       dicom-core status [--config FILE] [--json]\n"
    "       dicom-core failed [--config FILE] [--json]\n"
    "       dicom-core redrive [--config FILE] (--all | SOP_INSTANCE_UID...)\n"
    "       dicom-core share [--config FILE] (--study UID --to CLIENT --hours N | --revoke\n"
    "                  --study UID --to CLIENT | --list [--to CLIENT] [--json] |\n"
    "                  --credentials --study UID --hours N [--format json|env])\n"
    "\n"
    "A DICOM Store SCP (C-ECHO, C-STORE) that streams every object to a durable spool and\n"
    "hands it to its backend (the local `file` store by default, or AWS).\n"
    "\n"
    "  --config FILE           JSON configuration (default: the embedded default, see\n"
    "                          --print-default-config); DICOM_CORE_* environment variables\n"
    "                          override scalar keys\n"
    "  --check-config          validate the configuration, print every problem, exit 1 if any\n"
    "  --print-default-config  print the embedded default configuration\n"
    "  --version               print the version\n"
    "  --help                  this text\n"
    "\n"
    "  status                  the spool and open Storage Commitment transactions, then\n"
    "                          the backend's state (aws backend)\n"
    "  failed, redrive         the aws backend's commands: FAILED objects, importing them\n"
    "                          again\n"
    "  share                   the aws backend's study shares (read scope `shared`)\n"
    "\n"
    "Signals: SIGHUP reloads the configuration for new associations; SIGTERM or SIGINT stops\n"
    "accepting, lets live associations finish (drain_ms), then exits.\n";

struct app {
    uv_loop_t loop;
    struct core_ctx ctx;
    struct server srv;
    const char *config_path;
    struct core_config *cfgs[64]; /* every config ever loaded; live associations may hold one */
    size_t n_cfgs;
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t drain_timer;
    uv_timer_t stats_timer; /* the periodic "stats" line CloudWatch turns into metrics */
    bool stopping;
};

static void finish_shutdown(struct app *app)
{
    if (app->stopping)
        return;
    app->stopping = true;
    uv_timer_stop(&app->drain_timer);
    uv_timer_stop(&app->stats_timer);
    server_close(&app->srv);
    uv_close((uv_handle_t *)&app->drain_timer, NULL);
    uv_close((uv_handle_t *)&app->stats_timer, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    commit_stop(&app->ctx);
    spool_commit_stop(app->ctx.committer); /* waits for queued commits, then closes its handle */
    app->ctx.committer = NULL;
    log_msg(LOG_INFO, "stopped", "drained");
}

/* Once a minute: spool depth and live associations, for log-based metrics and alarms
 * (cloudformation/: SpoolDepthAlarm). */
static void on_stats(uv_timer_t *t)
{
    struct app *app = t->data;
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "stats")) {
        log_i64(&lb, "spool_depth", atomic_load(&app->ctx.spool.depth));
        log_i64(&lb, "spool_bytes", atomic_load(&app->ctx.spool.depth_bytes));
        log_u64(&lb, "associations", app->ctx.active);
        log_end(&lb);
    }
}

static void on_last_assoc(struct core_ctx *ctx)
{
    struct app *app = (struct app *)((char *)ctx - offsetof(struct app, ctx));
    if (ctx->draining)
        finish_shutdown(app);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct app *app = t->data;
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "drain_timeout")) {
        log_u64(&lb, "associations", app->ctx.active);
        log_end(&lb);
    }
    assoc_abort_all(&app->ctx);
    if (app->ctx.active == 0)
        finish_shutdown(app);
}

static void on_term(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    if (app->ctx.draining) {
        if (signum == SIGINT) /* a second ^C: do not wait */
            on_drain_timeout(&app->drain_timer);
        return;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "draining")) {
        log_u64(&lb, "signal", (uint64_t)signum);
        log_u64(&lb, "associations", app->ctx.active);
        log_u64(&lb, "drain_ms", app->ctx.cfg->drain_ms);
        log_end(&lb);
    }
    app->ctx.draining = true;
    server_stop_accepting(&app->srv);
    assoc_drain_all(&app->ctx);
    if (app->ctx.active == 0) {
        finish_shutdown(app);
        return;
    }
    uv_timer_start(&app->drain_timer, on_drain_timeout, app->ctx.cfg->drain_ms, 0);
}

/* The configuration file plus the backend's own check of its "backend" object. */
static int config_load_checked(const char *path, struct core_config *cfg, struct wbuf *errs)
{
    int rc = core_config_load(path, cfg, errs);
    const struct backend_ops *ops = backend_find(g_core_backends, cfg->backend_type);
    if (!ops) {
        wbuf_printf(errs, "backend.type: must be \"file\" or \"aws\"\n");
        return ERR_CONFIG;
    }
    if (ops->check_config(cfg->backend_json, cfg->ack, errs) < 0)
        rc = ERR_CONFIG;
    if (ops->needs_sha256 && cfg->spool_checksum != SPOOL_CHECKSUM_SHA256) {
        wbuf_printf(errs, "spool_checksum: the %s backend keys its records on SHA-256: use "
                          "\"sha256\"\n",
                    ops->name);
        rc = ERR_CONFIG;
    }
    struct audit_config *ac = malloc(sizeof *ac); /* the "audit" object (core_audit.h) */
    if (!ac || core_audit_config(cfg, ac, errs) < 0)
        rc = ERR_CONFIG;
    free(ac);
    return rc;
}

static int load_config(const char *path, struct core_config **out)
{
    struct core_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return ERR_NOMEM;
    struct wbuf errs;
    wbuf_init(&errs, 64u * 1024u);
    int rc = config_load_checked(path, cfg, &errs);
    if (rc < 0) {
        wbuf_u8(&errs, 0);
        const char *text = errs.p ? (const char *)errs.p : "";
        if (log_enabled(LOG_ERROR)) {
            /* one log line per problem, so that each is greppable */
            const char *line = text;
            while (*line) {
                const char *nl = strchr(line, '\n');
                size_t n = nl ? (size_t)(nl - line) : strlen(line);
                struct logb lb;
                if (log_begin(&lb, LOG_ERROR, "config_invalid")) {
                    log_str(&lb, "file", path ? path : "(default)");
                    log_strn(&lb, "problem", line, n);
                    log_end(&lb);
                }
                line += n + (nl ? 1 : 0);
            }
        }
        core_config_cleanup(cfg);
        free(cfg);
    } else {
        *out = cfg;
    }
    wbuf_cleanup(&errs);
    return rc;
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    (void)signum;
    struct core_config *cfg = NULL;
    if (app->n_cfgs >= ARRAY_LEN(app->cfgs)) {
        log_msg(LOG_ERROR, "reload_refused", "too many reloads; restart the process");
        core_audit_reloaded(&app->ctx, app->config_path, false, "too many reloads");
        return;
    }
    if (load_config(app->config_path, &cfg) < 0) {
        log_msg(LOG_ERROR, "reload_refused", "new configuration invalid; keeping the old one");
        core_audit_reloaded(&app->ctx, app->config_path, false, "configuration invalid");
        return;
    }
    const struct core_config *old = app->ctx.cfg;
    /* the backend runs on its own thread with the settings it started with */
    bool backend_changed = strcmp(old->backend_type, cfg->backend_type) != 0 ||
                           (old->backend_json == NULL) != (cfg->backend_json == NULL) ||
                           (old->backend_json && cfg->backend_json &&
                            strcmp(old->backend_json, cfg->backend_json) != 0);
    if (strcmp(old->listen, cfg->listen) != 0 || strcmp(old->spool_dir, cfg->spool_dir) != 0 ||
        backend_changed || strcmp(old->http_listen, cfg->http_listen) != 0 ||
        old->preassoc_max != cfg->preassoc_max ||
        old->preassoc_per_source != cfg->preassoc_per_source || core_audit_changed(old, cfg)) {
        log_msg(LOG_WARN, "reload_partial",
                "listen, http_listen, spool_dir, preassoc_*, backend and audit settings need a "
                "restart; other keys applied");
        snprintf(cfg->listen, sizeof cfg->listen, "%s", old->listen);
        snprintf(cfg->http_listen, sizeof cfg->http_listen, "%s", old->http_listen);
        snprintf(cfg->spool_dir, sizeof cfg->spool_dir, "%s", old->spool_dir);
        snprintf(cfg->backend_type, sizeof cfg->backend_type, "%s", old->backend_type);
    }
    if (server_tls_load(&app->ctx, cfg) < 0) { /* certificates, CA bundle and CRL anew */
        log_msg(LOG_ERROR, "reload_refused", "TLS material invalid; keeping the old set");
        core_audit_reloaded(&app->ctx, app->config_path, false, "TLS material invalid");
        core_config_cleanup(cfg);
        free(cfg);
        return;
    }
    app->cfgs[app->n_cfgs++] = cfg;
    app->ctx.cfg = cfg; /* new associations only; live ones keep theirs */
    log_set_level((enum log_level)log_level_parse(cfg->log_level));
    log_msg(LOG_INFO, "reloaded", app->config_path ? app->config_path : "(default)");
    core_audit_reloaded(&app->ctx, app->config_path, true, NULL);
}

/* Load and check the configuration for a command-line use; a problem is printed. 0 or < 0 (the
 * caller still cleans cfg up). */
static int config_load_reported(const char *path, struct core_config *cfg)
{
    struct wbuf errs;
    wbuf_init(&errs, 64u * 1024u);
    int rc = config_load_checked(path, cfg, &errs);
    if (rc < 0)
        fprintf(stderr, "%s: configuration invalid:\n%.*s", path ? path : "(default)",
                (int)errs.len, errs.p ? (const char *)errs.p : "");
    wbuf_cleanup(&errs);
    return rc;
}

static void print_config_problems(const char *path)
{
    struct core_config cfg;
    int rc = config_load_reported(path, &cfg);
    if (rc == 0) { /* the audit trail's files: its key, certificates and queue directory */
        struct wbuf errs;
        wbuf_init(&errs, 64u * 1024u);
        rc = core_audit_check(&cfg, &errs);
        if (rc < 0)
            fprintf(stderr, "%s: configuration invalid:\n%.*s", path ? path : "(default)",
                    (int)errs.len, errs.p ? (const char *)errs.p : "");
        wbuf_cleanup(&errs);
    }
    if (rc == 0) {
        printf("%s: configuration OK (ae_title %s, listen %s, spool %s, backend %s, %zu storage "
               "SOP classes, %zu transfer syntaxes)\n",
               path ? path : "(default)", cfg.ae_title, cfg.listen, cfg.spool_dir,
               cfg.backend_type, sop_registry_count(), cfg.n_ts);
    }
    core_config_cleanup(&cfg);
    exit(rc < 0 ? 1 : 0);
}

/* The operator's subcommands (status, failed, redrive ...): the configured backend's own
 * (they read the spool, not the network). */
static int subcommand(int argc, char **argv)
{
    const char *config = NULL;
    char *rest[64];
    int n_rest = 0;
    rest[n_rest++] = argv[1];
    bool own_args = strcmp(argv[1], "share") == 0; /* the backend parses its options */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
        else if ((own_args || argv[i][0] != '-' || strcmp(argv[i], "--json") == 0 ||
                  strcmp(argv[i], "--all") == 0) &&
                 n_rest < (int)ARRAY_LEN(rest))
            rest[n_rest++] = argv[i];
        else {
            fprintf(stderr, "dicom-core %s: unknown argument '%s'\n\n%s", argv[1], argv[i],
                    g_usage);
            return 2;
        }
    }
    struct core_config cfg;
    int rc = config_load_reported(config, &cfg);
    if (rc < 0) {
        core_config_cleanup(&cfg);
        return 1;
    }
    const struct backend_ops *ops = backend_find(g_core_backends, cfg.backend_type);
    bool status = strcmp(argv[1], "status") == 0; /* the core's part, then the backend's */
    bool json = false;
    for (int i = 1; i < n_rest; i++)
        json = json || strcmp(rest[i], "--json") == 0;
    int core_rc = status ? main_status(cfg.spool_dir, json) : 0;
    rc = ops->cli ? ops->cli(argv[1], n_rest, rest, cfg.spool_dir, cfg.backend_json) : -1;
    if (status && rc < 0)
        rc = core_rc;
    if (rc < 0) {
        fprintf(stderr, "dicom-core %s: not a command of the %s backend\n", argv[1],
                cfg.backend_type);
        rc = 1;
    }
    core_config_cleanup(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && argv[1][0] != '-') /* status, failed, redrive ...: the backend's */
        return subcommand(argc, argv);
    struct cli_args args;
    const struct cli_prog prog = {.name = "dicom-core", .usage = g_usage, .version = GW_VERSION,
                                  .default_config = core_config_default_json()};
    int exit_rc = cli_parse(argc, argv, &prog, &args);
    if (exit_rc >= 0)
        return exit_rc;
    const char *config = args.config;
    if (args.check)
        print_config_problems(config);

    log_setup("core", LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    static struct app app;
    app.config_path = config;
    struct core_config *cfg = NULL;
    if (load_config(config, &cfg) < 0)
        return 1;
    app.cfgs[app.n_cfgs++] = cfg;
    log_set_level((enum log_level)log_level_parse(cfg->log_level));

    struct core_ctx *ctx = &app.ctx;
    int rc = uv_loop_init(&app.loop);
    if (rc < 0)
        return 1;
    ctx->loop = &app.loop;
    ctx->cfg = cfg;
    ctx->on_last_assoc = on_last_assoc;
    ctx->metrics = metrics_new();
    if (!ctx->metrics || core_metrics_init(ctx) < 0) {
        log_msg(LOG_ERROR, "startup_failed", "out of memory");
        return 1;
    }
    if (preassoc_init(&ctx->preassoc, cfg->preassoc_max, cfg->preassoc_per_source) < 0) {
        log_msg(LOG_ERROR, "startup_failed", "out of memory");
        return 1;
    }
    rc = spool_open(&ctx->spool, cfg->spool_dir, cfg->min_free_bytes);
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, "spool_open_failed")) {
            log_str(&lb, "dir", cfg->spool_dir);
            log_str(&lb, "err", err_str(rc));
            log_end(&lb);
        }
        return 1;
    }
    struct backend_env env = {.loop = ctx->loop,
                              .spool = &ctx->spool,
                              .ack = cfg->ack,
                              .fsync = cfg->fsync,
                              .metrics = ctx->metrics,
                              .config_json = cfg->backend_json};
    rc = backend_open(backend_find(g_core_backends, cfg->backend_type), &env, &ctx->backend);
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, "backend_start_failed")) {
            log_str(&lb, "err", err_str(rc));
            log_end(&lb);
        }
        return 1;
    }
    char aerr[512];
    if (core_audit_start(ctx, aerr, sizeof aerr) < 0) { /* Application Start is queued */
        log_msg(LOG_ERROR, "audit_start_failed", aerr);
        return 1;
    }
    rc = spool_commit_start(ctx->loop, &ctx->spool, cfg->fsync, &ctx->committer);
    if (rc < 0 || commit_start(ctx) < 0 || server_start(&app.srv, ctx) < 0)
        return 1;
    uv_timer_init(ctx->loop, &app.drain_timer);
    app.drain_timer.data = &app;
    uv_timer_init(ctx->loop, &app.stats_timer);
    app.stats_timer.data = &app;
    uv_signal_init(ctx->loop, &app.sig_hup);
    uv_signal_init(ctx->loop, &app.sig_term);
    uv_signal_init(ctx->loop, &app.sig_int);
    app.sig_hup.data = app.sig_term.data = app.sig_int.data = &app;
    uv_signal_start(&app.sig_hup, on_hup, SIGHUP);
    uv_signal_start(&app.sig_term, on_term, SIGTERM);
    uv_signal_start(&app.sig_int, on_term, SIGINT);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "started")) {
        log_str(&lb, "version", GW_VERSION);
        log_str(&lb, "spool", cfg->spool_dir);
        log_str(&lb, "ack", spool_ack_name(cfg->ack));
        log_str(&lb, "backend", cfg->backend_type);
        log_bool(&lb, "fsync", cfg->fsync);
        log_i64(&lb, "spool_depth", atomic_load(&ctx->spool.depth));
        log_end(&lb);
    }
    uv_timer_start(&app.stats_timer, on_stats, 60000, 60000);
    uv_unref((uv_handle_t *)&app.stats_timer); /* never what keeps the loop alive */
    uv_run(ctx->loop, UV_RUN_DEFAULT);

    core_audit_stop(ctx, 0); /* Application Stop, then what the repositories take in 2 s */
    backend_stop(ctx->backend);
    spool_close(&ctx->spool);
    preassoc_cleanup(&ctx->preassoc);
    metrics_free(ctx->metrics);
    store_release_buffers();
    rc = uv_loop_close(ctx->loop);
    for (size_t i = 0; i < app.n_cfgs; i++) {
        core_config_cleanup(app.cfgs[i]);
        free(app.cfgs[i]);
    }
    return rc == 0 ? 0 : 1;
}
