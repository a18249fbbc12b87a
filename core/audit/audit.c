#include "audit_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "audit_hash.h"
#include "audit_msg.h"
#include "audit_qrec.h"
#include "audit_queue.h"
#include "audit_tx.h"
#include "common/log.h"
#include "syslog_frame.h"

uint64_t audit_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

int64_t audit_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void update_metrics(struct audit *a, const struct aq_stats *st)
{
    if (a->m_depth)
        metric_gauge_set(a->m_depth, (int64_t)st->count);
    if (a->m_bytes)
        metric_gauge_set(a->m_bytes, (int64_t)st->bytes);
    if (a->m_blocking)
        metric_gauge_set(a->m_blocking, audit_is_blocking(a) ? 1 : 0);
    if (a->m_dropped && st->dropped > a->last.dropped)
        metric_add(a->m_dropped, st->dropped - a->last.dropped);
    if (a->m_refused && st->refused > a->last.refused)
        metric_add(a->m_refused, st->refused - a->last.refused);
    a->last = *st;
}

/* Once there is room again, tell the repositories how many messages were lost. */
static void report_lost(struct audit *a, const struct aq_stats *st)
{
    if (st->pending_lost == 0 || st->full)
        return;
    char desc[200], subject[AUDIT_PATH_MAX + 8];
    snprintf(desc, sizeof desc,
             "%llu audit messages lost (queue full with on_full %s, or damaged on disk)",
             (unsigned long long)st->pending_lost,
             a->cfg.on_full == AQ_FAIL_CLOSED ? "fail_closed" : "drop_oldest");
    snprintf(subject, sizeof subject, "file://%s", a->cfg.queue_dir);
    XML(x);
    int rc = audit_ev_alert(&a->src, AUDIT_ALERT_MESSAGES_LOST, NULL, subject, desc,
                            st->pending_lost, &x);
    struct wbuf m;
    wbuf_init(&m, AQ_REC_MAX);
    if (rc == 0)
        rc = audit_frame(a, 3, &x, &m);
    if (rc == 0)
        rc = aq_append_report(a->q, m.p, m.len, st->pending_lost);
    if (rc == 0) {
        struct logb b;
        if (log_begin(&b, LOG_WARN, "audit_messages_lost")) {
            log_u64(&b, "count", st->pending_lost);
            log_end(&b);
        }
        atomic_fetch_add(&a->appended, 1);
    }
    wbuf_cleanup(&x);
    wbuf_cleanup(&m);
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_tx_closed(void *arg)
{
    struct audit *a = arg;
    a->tx_open--;
}

static void shutdown_loop(struct audit *a)
{
    if (a->shutting_down)
        return;
    a->shutting_down = true;
    for (size_t i = 0; i < a->n_tx; i++) {
        atomic_store(&a->up[i], false);
        audit_tx_close(a->tx[i], on_tx_closed, a);
        a->tx[i] = NULL;
    }
    uv_close((uv_handle_t *)&a->wake, on_closed);
    uv_close((uv_handle_t *)&a->tick, on_closed);
}

static void work(struct audit *a, bool tick)
{
    if (a->shutting_down)
        return;
    uint64_t gen = atomic_load(&a->appended);
    if (gen != a->synced) {
        int rc = aq_sync(a->q);
        if (rc < 0)
            audit_log_limited(a, "audit_queue_sync_failed", "sync", rc);
        else
            a->synced = gen;
    }
    struct aq_stats st;
    aq_get_stats(a->q, &st);
    report_lost(a, &st);
    bool any_up = false, drained = true;
    for (size_t i = 0; i < a->n_tx; i++) {
        if (tick)
            audit_tx_tick(a->tx[i]);
        else
            audit_tx_kick(a->tx[i]);
        bool up = audit_tx_is_up(a->tx[i]);
        atomic_store(&a->up[i], up);
        any_up = any_up || up;
        drained = drained && audit_tx_drained(a->tx[i]);
    }
    if (tick) {
        int rc = aq_save(a->q);
        if (rc < 0)
            audit_log_limited(a, "audit_cursor_save_failed", "save", rc);
        aq_get_stats(a->q, &st);
        update_metrics(a, &st);
    }
    drained = drained && st.pending_lost == 0;
    if (atomic_load(&a->stopping) && (drained || !any_up || audit_now_ms() >= a->stop_deadline_ms))
        shutdown_loop(a);
}

static void on_wake(uv_async_t *h)
{
    work(h->data, false);
}

static void on_tick(uv_timer_t *h)
{
    work(h->data, true);
}

static void thread_main(void *arg)
{
    struct audit *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------------ start, stop */

static void metrics_setup(struct audit *a, struct metrics *m)
{
    if (!m)
        return;
    char n[128];
    snprintf(n, sizeof n, "%s_audit_queue_messages", a->prefix);
    a->m_depth = metrics_gauge(m, n, "Audit messages held in the queue", NULL);
    snprintf(n, sizeof n, "%s_audit_queue_bytes", a->prefix);
    a->m_bytes = metrics_gauge(m, n, "Bytes of the audit messages held in the queue", NULL);
    snprintf(n, sizeof n, "%s_audit_blocking", a->prefix);
    a->m_blocking = metrics_gauge(m, n, "1 while a full audit queue refuses new work", NULL);
    snprintf(n, sizeof n, "%s_audit_messages_dropped_total", a->prefix);
    a->m_dropped = metrics_counter(m, n, "Audit messages dropped by on_full drop_oldest", NULL);
    snprintf(n, sizeof n, "%s_audit_messages_refused_total", a->prefix);
    a->m_refused = metrics_counter(m, n, "Audit messages refused by on_full fail_closed", NULL);
}

static void free_audit(struct audit *a)
{
    aq_close(a->q);
    OPENSSL_cleanse(a->key, sizeof a->key);
    free(a);
}

int audit_start(const struct audit_config *cfg, const struct audit_opts *o, struct audit **out,
                char *err, size_t err_len)
{
    *out = NULL;
    if (!cfg->enabled || cfg->n_repos == 0) {
        snprintf(err, err_len, "audit: not enabled or no repository");
        return ERR_CONFIG;
    }
    struct audit *a = calloc(1, sizeof *a);
    if (!a)
        return ERR_NOMEM;
    a->cfg = *cfg;
    snprintf(a->app, sizeof a->app, "%s", o->app_name ? o->app_name : "dicom-gw");
    snprintf(a->ae, sizeof a->ae, "%s", o->ae_title ? o->ae_title : "");
    snprintf(a->prefix, sizeof a->prefix, "%s", a->app);
    for (char *p = a->prefix; *p; p++)
        *p = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ? *p
                                                                                              : '_';
    if (cfg->hostname[0])
        snprintf(a->host, sizeof a->host, "%s", cfg->hostname);
    else if (gethostname(a->host, sizeof a->host - 1) < 0 || !a->host[0])
        snprintf(a->host, sizeof a->host, "localhost");
    snprintf(a->source, sizeof a->source, "%s", cfg->source_id[0] ? cfg->source_id : a->host);
    a->pid = (uint32_t)getpid();
    int rc;
    if (!cfg->patient_include &&
        (rc = audit_key_load(cfg->hash_key_file, a->key, &a->key_len, err, err_len)) < 0) {
        free_audit(a);
        return rc;
    }
    a->src =
        (struct audit_src){.app_name = a->app,
                           .host = a->host,
                           .source_id = a->source,
                           .site_id = cfg->enterprise_site_id[0] ? cfg->enterprise_site_id : NULL,
                           .ae_title = a->ae[0] ? a->ae : NULL,
                           .patient_include = cfg->patient_include,
                           .key = a->key_len ? a->key : NULL,
                           .key_len = a->key_len};
    struct aq_opts qo = {.dir = cfg->queue_dir,
                         .max_bytes = cfg->queue_max_bytes,
                         .max_msgs = cfg->queue_max_messages,
                         .on_full = cfg->on_full,
                         .n_readers = cfg->n_repos};
    for (size_t i = 0; i < cfg->n_repos; i++)
        qo.readers[i] = a->cfg.repos[i].name;
    struct aq_report rep;
    if ((rc = aq_open(&qo, &a->q, &rep, err, err_len)) < 0) {
        free_audit(a);
        return rc;
    }
    struct logb b;
    if ((rep.lost || rep.garbage_bytes) && log_begin(&b, LOG_WARN, "audit_queue_recovered")) {
        log_u64(&b, "lost", rep.lost);
        log_u64(&b, "garbage_bytes", rep.garbage_bytes);
        log_end(&b);
    }
    metrics_setup(a, o->metrics);
    if ((rc = uv_loop_init(&a->loop)) < 0) {
        snprintf(err, err_len, "audit: %s", uv_strerror(rc));
        free_audit(a);
        return rc;
    }
    uv_async_init(&a->loop, &a->wake, on_wake);
    a->wake.data = a;
    uv_timer_init(&a->loop, &a->tick);
    a->tick.data = a;
    for (size_t i = 0; i < cfg->n_repos; i++) {
        struct audit_tx_env env = {.loop = &a->loop,
                                   .q = a->q,
                                   .reader = i,
                                   .repo = &a->cfg.repos[i],
                                   .retry_min_ms = cfg->retry_min_ms,
                                   .retry_max_ms = cfg->retry_max_ms,
                                   .connect_timeout_ms = cfg->connect_timeout_ms,
                                   .ack_grace_ms = cfg->ack_grace_ms,
                                   .metrics = o->metrics,
                                   .metric_prefix = a->prefix};
        a->tx[i] = audit_tx_new(&env, err, err_len);
        if (!a->tx[i])
            break;
        a->n_tx++;
        a->tx_open++;
    }
    if (a->n_tx == cfg->n_repos)
        rc = uv_timer_start(&a->tick, on_tick, TICK_MS, TICK_MS);
    if (a->n_tx == cfg->n_repos && rc == 0)
        rc = uv_thread_create(&a->thread, thread_main, a);
    else if (rc == 0)
        rc = ERR_CONFIG;
    if (rc < 0) {
        shutdown_loop(a);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        int lc = uv_loop_close(&a->loop);
        (void)lc;
        free_audit(a);
        return rc;
    }
    a->thread_started = true;
    if (log_begin(&b, LOG_INFO, "audit_started")) {
        log_u64(&b, "repositories", cfg->n_repos);
        log_u64(&b, "queued", rep.records);
        log_str(&b, "on_full", cfg->on_full == AQ_FAIL_CLOSED ? "fail_closed" : "drop_oldest");
        log_str(&b, "patient_id", cfg->patient_include ? "include" : "hash");
        log_end(&b);
    }
    *out = a;
    return 0;
}

void audit_stop(struct audit *a, unsigned drain_ms)
{
    if (!a)
        return;
    a->stop_deadline_ms = audit_now_ms() + drain_ms;
    atomic_store(&a->stopping, true);
    uv_async_send(&a->wake);
    uv_thread_join(&a->thread);
    int rc = uv_loop_close(&a->loop);
    if (rc < 0) {
        struct logb b;
        if (log_begin(&b, LOG_ERROR, "audit_loop_not_closed")) {
            log_str(&b, "error", uv_strerror(rc));
            log_end(&b);
        }
    }
    free_audit(a);
}

int audit_wait_drained(struct audit *a, unsigned timeout_ms)
{
    if (!a)
        return 0;
    uint64_t end = audit_now_ms() + timeout_ms;
    for (;;) {
        struct aq_stats st;
        aq_get_stats(a->q, &st);
        bool drained = st.pending_lost == 0; /* the report of losses is delivered too */
        for (size_t r = 0; r < a->n_tx; r++)
            drained = drained && st.commit[r] >= st.tail;
        if (drained)
            return 0;
        if (audit_now_ms() >= end)
            return ERR_WRONG_STATE;
        uv_sleep(20);
    }
}

void audit_get_status(struct audit *a, struct audit_status *s)
{
    memset(s, 0, sizeof *s);
    if (!a)
        return;
    struct aq_stats st;
    aq_get_stats(a->q, &st);
    s->queued = st.count;
    s->bytes = st.bytes;
    s->dropped = st.dropped;
    s->refused = st.refused;
    s->pending_lost = st.pending_lost;
    s->blocking = audit_is_blocking(a);
    s->n_repos = a->cfg.n_repos;
    for (size_t i = 0; i < a->cfg.n_repos; i++) {
        snprintf(s->repos[i].name, sizeof s->repos[i].name, "%s", a->cfg.repos[i].name);
        s->repos[i].up = atomic_load(&a->up[i]);
        s->repos[i].backlog = st.tail - st.commit[i];
    }
}
