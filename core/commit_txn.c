/* commit_txn: the transactions this process holds (commit_txn.h): the list, the timer, the
 * sweeps of the store, the status snapshot, the API. Their steps are commit_eval.c's. */
#include "commit_txn_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commit_store.h"
#include "common/fileio.h"
#include "common/log.h"

int64_t commit_txn_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t commit_txn_now(const struct commit_mgr *m)
{
    return uv_now(m->ctx->loop);
}

const struct core_commit_config *commit_txn_cfg(const struct commit_mgr *m)
{
    return &m->ctx->cfg->commit;
}


void commit_txn_log(enum log_level lvl, const char *ev, const struct ctxn *x, const char *why)
{
    struct logb lb;
    if (!log_begin(&lb, lvl, ev))
        return;
    log_str(&lb, "transaction_uid", x->t.uid);
    log_str(&lb, "calling_ae", x->t.calling);
    log_str(&lb, "state", commit_state_name(x->t.state));
    log_u64(&lb, "refs", x->t.n_refs);
    if (x->t.event)
        log_u64(&lb, "event_type", x->t.event);
    if (why)
        log_str(&lb, "why", why);
    log_end(&lb);
}

/* ---- the list ------------------------------------------------------------------------------ */

static void maybe_free_mgr(struct commit_mgr *m)
{
    if (m->stopping && m->closing == 0 && !m->list && !m->sweeping)
        free(m);
}

void commit_txn_free(struct ctxn *x)
{
    struct commit_mgr *m = x->m;
    if (x->pprev) {
        *x->pprev = x->next;
        if (x->next)
            x->next->pprev = x->pprev;
        m->n--;
        metric_gauge_set(m->g_open, (int64_t)m->n);
        m->status_dirty = true;
    }
    commit_txn_cleanup(&x->t);
    free(x);
    if (m->ops->requests && !m->stopping)
        metric_gauge_set(m->g_requests, (int64_t)m->ops->requests(m->impl));
    maybe_free_mgr(m);
}

void commit_txn_link(struct commit_mgr *m, struct ctxn *x)
{
    x->next = m->list;
    if (x->next)
        x->next->pprev = &x->next;
    x->pprev = &m->list;
    m->list = x;
    m->n++;
    metric_gauge_set(m->g_open, (int64_t)m->n);
    m->status_dirty = true;
}

struct ctxn *commit_txn_find(const struct commit_mgr *m, const char *uid)
{
    for (struct ctxn *x = m->list; x; x = x->next) {
        if (strcmp(x->t.uid, uid) == 0)
            return x;
    }
    return NULL;
}

/* An async step ended: false when x is gone (stopping) and the caller must not touch it. */
bool commit_txn_back(struct ctxn *x)
{
    x->busy = false;
    if (x->m->stopping) {
        commit_txn_free(x);
        return false;
    }
    return true;
}

void commit_txn_later(struct ctxn *x, uint64_t delay)
{
    x->due = commit_txn_now(x->m) + delay;
    commit_txn_reschedule(x->m);
}

uint64_t commit_txn_backoff(uint32_t first, uint32_t max, unsigned n)
{
    uint64_t d = first;
    for (unsigned i = 0; i < n && d < max; i++)
        d *= 2;
    return d > max ? max : d;
}

/* ---- the timer: due steps, lease renewals, sweeps ---------------------------------------------- */

static void on_claimed(void *arg, int err, const struct commit_txn *t);
static void on_listed(void *arg, int err, const char (*uids)[65], size_t n);

static void write_status(struct commit_mgr *m)
{
    m->status_dirty = false;
    struct wbuf b;
    wbuf_init(&b, 64u * 1024u);
    wbuf_printf(&b, "{\"point\":\"%s\",\"store\":\"%s\",\"open\":%zu,\"transactions\":[",
                commit_point_name(m->point), m->shared ? "shared" : "local", m->n);
    size_t k = 0;
    for (struct ctxn *x = m->list; x && k < 100; x = x->next, k++) {
        size_t pending = 0;
        for (size_t i = 0; i < x->t.n_refs; i++)
            pending += x->t.refs[i].result == COMMIT_PENDING;
        wbuf_printf(&b,
                    "%s{\"transaction_uid\":\"%s\",\"state\":\"%s\",\"calling_ae\":\"%s\","
                    "\"refs\":%zu,\"pending\":%zu,\"created_ms\":%lld,\"deadline_ms\":%lld}",
                    k ? "," : "", x->t.uid, commit_state_name(x->t.state), x->t.calling,
                    x->t.n_refs, pending, (long long)x->t.created_ms,
                    (long long)x->t.deadline_ms);
    }
    wbuf_printf(&b, "]}\n");
    if (!b.err)
        (void)!fileio_replace(m->status_path, b.p, b.len, 0); /* best effort: status only */
    wbuf_cleanup(&b);
}

static void sweep(struct commit_mgr *m)
{
    m->sweeping = true;
    if (m->store->list(m->store_impl, commit_txn_wall_ms(), on_listed, m) < 0)
        m->sweeping = false;
}

static void on_tick(uv_timer_t *t)
{
    struct commit_mgr *m = t->data;
    uint64_t n = commit_txn_now(m);
    int64_t w = commit_txn_wall_ms();
    struct ctxn *x = m->list;
    while (x) {
        struct ctxn *next = x->next; /* step may free x */
        if (!x->busy) {
            if (x->due <= n)
                commit_eval_step(x);
            else if (m->shared && x->lease_until - w <= (int64_t)commit_txn_cfg(m)->lease_ms / 2)
                commit_eval_renew(x, x->t.state == COMMIT_DECIDED && !x->saved);
        }
        x = next;
    }
    if (m->shared && !m->sweeping && n >= m->next_sweep) {
        m->next_sweep = n + commit_txn_cfg(m)->sweep_ms;
        sweep(m);
    }
    if (m->status_dirty)
        write_status(m);
    if (m->ops->requests)
        metric_gauge_set(m->g_requests, (int64_t)m->ops->requests(m->impl));
    commit_txn_reschedule(m);
}

void commit_txn_reschedule(struct commit_mgr *m)
{
    if (m->stopping)
        return;
    uint64_t n = commit_txn_now(m), next = UINT64_MAX;
    int64_t w = commit_txn_wall_ms();
    for (struct ctxn *x = m->list; x; x = x->next) {
        if (x->busy)
            continue;
        if (x->due < next)
            next = x->due;
        if (m->shared) {
            int64_t r = x->lease_until - (int64_t)commit_txn_cfg(m)->lease_ms / 2 - w;
            uint64_t at = n + (uint64_t)(r > 0 ? r : 0);
            if (at < next)
                next = at;
        }
    }
    /* a sweep in flight is not due again: on_listed reschedules when it ends (a due time in
     * the past would re-arm the timer at 0, and libuv < 1.45 runs such a timer again before
     * polling, so the answer the sweep waits for would never be read) */
    if (m->shared && !m->sweeping && m->next_sweep < next)
        next = m->next_sweep;
    if (m->status_dirty && n + 1000 < next)
        next = n + 1000;
    if (next == UINT64_MAX) {
        uv_timer_stop(&m->timer);
        return;
    }
    uv_timer_start(&m->timer, on_tick, next > n ? next - n : 0, 0);
}

static void on_listed(void *arg, int err, const char (*uids)[65], size_t count)
{
    struct commit_mgr *m = arg;
    m->sweeping = false;
    if (m->stopping) {
        maybe_free_mgr(m);
        return;
    }
    if (err < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "commit_sweep_failed")) {
            log_str(&lb, "err", err_str(err));
            log_end(&lb);
        }
    }
    int64_t w = commit_txn_wall_ms();
    for (size_t i = 0; i < count && m->n < commit_txn_cfg(m)->max_open; i++) {
        if (commit_txn_find(m, uids[i]))
            continue;
        if (m->store->claim(m->store_impl, uids[i], m->owner, w, commit_eval_lease_end(m), on_claimed, m) ==
            0)
            m->closing++; /* a claim in flight keeps m */
    }
    commit_txn_reschedule(m);
}

static void on_claimed(void *arg, int err, const struct commit_txn *t)
{
    struct commit_mgr *m = arg;
    m->closing--;
    if (m->stopping || err < 0 || !t || commit_txn_find(m, t->uid) || t->state == COMMIT_REPORTED) {
        maybe_free_mgr(m);
        return;
    }
    struct ctxn *x = calloc(1, sizeof *x);
    if (!x || commit_txn_copy(&x->t, t) < 0) {
        free(x);
        return;
    }
    x->m = m;
    x->saved = t->state == COMMIT_DECIDED;
    x->lease_until = commit_eval_lease_end(m) - 1000;
    x->due = commit_txn_now(m);
    commit_txn_link(m, x);
    commit_txn_log(LOG_INFO, "commit_resumed", x, m->shared ? "taken over or restarted" : "restarted");
    commit_txn_reschedule(m);
}

/* ---- the API ---------------------------------------------------------------------------------- */

struct open_req {
    struct ctxn *x;
    commit_open_cb cb;
    void *arg;
};

static void on_created(void *arg, int err)
{
    struct open_req *o = arg;
    struct ctxn *x = o->x;
    struct commit_mgr *m = x->m;
    commit_open_cb cb = o->cb;
    void *cb_arg = o->arg;
    free(o);
    if (err == 0 && !m->stopping) {
        commit_txn_link(m, x);
        commit_txn_log(LOG_INFO, "commit_requested", x, NULL);
        x->due = commit_txn_now(m);
        commit_txn_reschedule(m);
        cb(cb_arg, 0x0000, NULL);
        return;
    }
    if (err == -EEXIST)
        cb(cb_arg, 0x0115, "Transaction UID already in use");
    else
        cb(cb_arg, 0x0110, "the transaction cannot be kept durably now");
    if (err != -EEXIST)
        commit_txn_log(LOG_ERROR, "commit_store_failed", x, err_str(err));
    commit_txn_free(x);
}

/* A repeated N-ACTION: same modality, same references in the same order. */
static bool same_request(const struct commit_txn *a, const struct commit_txn *b)
{
    if (strcmp(a->calling, b->calling) != 0 || a->n_refs != b->n_refs)
        return false;
    for (size_t i = 0; i < a->n_refs; i++) {
        if (strcmp(a->refs[i].sop_instance, b->refs[i].sop_instance) != 0 ||
            strcmp(a->refs[i].sop_class, b->refs[i].sop_class) != 0)
            return false;
    }
    return true;
}

void commit_open(struct core_ctx *ctx, struct commit_txn *t, uint64_t assoc_id,
                 commit_open_cb cb, void *arg)
{
    struct commit_mgr *m = ctx->commit;
    if (!m || m->stopping) {
        commit_txn_cleanup(t);
        cb(arg, 0x0110, m ? "shutting down" : "Storage Commitment is not available here");
        return;
    }
    struct ctxn *held = commit_txn_find(m, t->uid);
    if (held && same_request(&held->t, t)) {
        /* the SCU sending its N-ACTION again (it never saw our answer): the same transaction,
         * reported on the newer association if it is still open then */
        held->assoc_id = assoc_id;
        commit_txn_cleanup(t);
        cb(arg, 0x0000, NULL);
        return;
    }
    if (held) {
        commit_txn_cleanup(t);
        cb(arg, 0x0115, "Transaction UID already in use");
        return;
    }
    if (m->n >= commit_txn_cfg(m)->max_open) {
        commit_txn_cleanup(t);
        cb(arg, 0x0213, "too many open transactions");
        return;
    }
    struct ctxn *x = calloc(1, sizeof *x);
    struct open_req *o = calloc(1, sizeof *o);
    if (!x || !o) {
        free(x);
        free(o);
        commit_txn_cleanup(t);
        cb(arg, 0x0110, "out of memory");
        return;
    }
    x->m = m;
    x->t = *t;
    memset(t, 0, sizeof *t); /* taken */
    x->t.created_ms = commit_txn_wall_ms();
    x->t.deadline_ms = x->t.created_ms + commit_txn_cfg(m)->deadline_ms;
    x->t.point = m->point;
    x->t.state = COMMIT_OPEN;
    x->assoc_id = assoc_id;
    x->lease_until = commit_eval_lease_end(m) - 1000;
    o->x = x;
    o->cb = cb;
    o->arg = arg;
    int rc = m->store->create(m->store_impl, &x->t, m->owner, commit_eval_lease_end(m), on_created, o);
    if (rc < 0)
        on_created(o, rc);
}

void commit_kick(struct core_ctx *ctx, const char *calling)
{
    struct commit_mgr *m = ctx->commit;
    if (!m || m->stopping)
        return;
    for (struct ctxn *x = m->list; x; x = x->next) {
        if (!x->busy && x->t.state == COMMIT_DECIDED && strcmp(x->t.calling, calling) == 0)
            x->due = commit_txn_now(m);
    }
    commit_txn_reschedule(m);
}

size_t commit_open_count(const struct core_ctx *ctx)
{
    return ctx->commit ? ctx->commit->n : 0;
}

enum backend_copy_state commit_point(const struct core_ctx *ctx)
{
    return ctx->commit ? ctx->commit->point : COPY_UNKNOWN;
}

static int register_metrics(struct commit_mgr *m)
{
    struct metrics *r = m->ctx->metrics;
    const char *h_tx = "Storage Commitment transactions decided, by outcome";
    const char *h_rep = "Storage Commitment reports answered, by delivery path";
    m->g_open = metrics_gauge(r, "dicom_core_commit_transactions_open",
                              "Storage Commitment transactions held (not yet reported)", NULL);
    m->c_committed = metrics_counter(r, "dicom_core_commit_transactions_total", h_tx,
                                     "outcome=\"committed\"");
    m->c_failed = metrics_counter(r, "dicom_core_commit_transactions_total", h_tx,
                                  "outcome=\"failures\"");
    m->c_same = metrics_counter(r, "dicom_core_commit_reports_total", h_rep, "path=\"same\"");
    m->c_new = metrics_counter(r, "dicom_core_commit_reports_total", h_rep, "path=\"new\"");
    m->c_attempt_failed = metrics_counter(r, "dicom_core_commit_report_attempts_failed_total",
                                          "Report attempts that got no N-EVENT-REPORT-RSP", NULL);
    m->c_undelivered = metrics_counter(r, "dicom_core_commit_reports_undelivered_total",
                                       "Reports given up after commit.report_deadline_ms", NULL);
    m->c_lat_sum = metrics_counter(r, "dicom_core_commit_report_latency_ms_total",
                                   "Sum of N-ACTION to answered N-EVENT-REPORT times (ms); "
                                   "divide by dicom_core_commit_reports_total",
                                   NULL);
    m->g_last_ms = metrics_gauge(r, "dicom_core_commit_report_last_latency_ms",
                                 "N-ACTION to answered N-EVENT-REPORT, the last one (ms)", NULL);
    m->g_requests = metrics_gauge(r, "dicom_core_commit_backend_requests",
                                  "Requests commitment made to the backend's services (DynamoDB)",
                                  NULL);
    bool ok = m->g_requests && m->g_open && m->c_committed && m->c_failed && m->c_same && m->c_new &&
              m->c_attempt_failed && m->c_undelivered && m->c_lat_sum && m->g_last_ms;
    return ok ? 0 : ERR_NOMEM;
}

int commit_start(struct core_ctx *ctx)
{
    const struct backend_commit_ops *ops = ctx->backend ? backend_commit(ctx->backend) : NULL;
    if (!ops || !ops->locate)
        return 0;
    struct commit_mgr *m = calloc(1, sizeof *m);
    if (!m)
        return ERR_NOMEM;
    m->ctx = ctx;
    m->ops = ops;
    m->impl = backend_impl(ctx->backend);
    m->point = ctx->cfg->commit.point ? (enum backend_copy_state)ctx->cfg->commit.point
                                      : ops->strongest;
    char host[64] = "";
    (void)gethostname(host, sizeof host - 1);
    snprintf(m->owner, sizeof m->owner, "%.63s-%d-%lld", host, (int)getpid(),
             (long long)commit_txn_wall_ms());
    int rc = register_metrics(m);
    if (rc == 0)
        rc = spool_path(&ctx->spool, "commit", "status", ".json", m->status_path,
                        sizeof m->status_path);
    if (rc == 0 && ops->txn) {
        m->store = ops->txn;
        m->store_impl = m->impl;
        m->shared = true;
    } else if (rc == 0) {
        struct commit_store *s = NULL;
        rc = commit_store_open(ctx->loop, &ctx->spool, ctx->cfg->fsync,
                               ctx->cfg->commit.remember_s, &s);
        m->store = &commit_store_ops;
        m->store_impl = s;
    }
    if (rc < 0) {
        free(m);
        return rc;
    }
    uv_timer_init(ctx->loop, &m->timer);
    m->timer.data = m;
    ctx->commit = m;
    m->status_dirty = true;
    sweep(m); /* resume what a previous run (or a dead task) left */
    m->next_sweep = commit_txn_now(m) + ctx->cfg->commit.sweep_ms;
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "commit_started")) {
        log_str(&lb, "point", commit_point_name(m->point));
        log_str(&lb, "store", m->shared ? "shared" : "local");
        log_str(&lb, "owner", m->owner);
        log_end(&lb);
    }
    commit_txn_reschedule(m);
    return 0;
}

static void on_closed_part(void *arg)
{
    struct commit_mgr *m = arg;
    m->closing--;
    maybe_free_mgr(m);
}

static void on_timer_closed(uv_handle_t *h)
{
    on_closed_part(h->data);
}

void commit_stop(struct core_ctx *ctx)
{
    struct commit_mgr *m = ctx->commit;
    if (!m || m->stopping)
        return;
    ctx->commit = NULL;
    m->stopping = true;
    m->closing += 2;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
    struct ctxn *x = m->list;
    while (x) {
        struct ctxn *next = x->next;
        if (!x->busy)
            commit_txn_free(x); /* busy ones go when their step calls back */
        x = next;
    }
    if (!m->shared) {
        m->closing++;
        commit_store_close(m->store_impl, on_closed_part, m);
    }
    if (m->ops->close)
        m->ops->close(m->impl, on_closed_part, m);
    else
        on_closed_part(m);
}
