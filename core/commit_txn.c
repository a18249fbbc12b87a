#include "commit_txn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commit_report.h"
#include "commit_store.h"
#include "common/fileio.h"
#include "common/log.h"
#include "spool/backend_commit.h"
#include "spool/spool_backend.h"

struct ctxn {
    struct ctxn *next, **pprev;
    struct commit_mgr *m;
    struct commit_txn t;
    uint64_t assoc_id; /* the N-ACTION's association, 0 after a restart or takeover */
    uint64_t due;      /* uv_now() when its next step is due */
    unsigned polls, retries;
    size_t cursor;
    bool busy;      /* a locate, store write or report attempt is under way */
    bool saved;     /* DECIDED: the decision is durable */
    bool delivered; /* the report was answered: only the REPORTED write is left */
    bool final_pass, progress, stop, in_locate, located_sync;
    bool warned_no_route;
    bool undelivered;
    int64_t lease_until; /* shared store: our hold (unix ms) */
};

struct commit_mgr {
    struct core_ctx *ctx;
    const struct backend_commit_ops *ops;
    void *impl; /* the backend's, for ops */
    const struct backend_txn_ops *store;
    void *store_impl;
    bool shared;
    enum backend_copy_state point;
    char owner[96];
    struct ctxn *list;
    size_t n;
    uv_timer_t timer;
    uint64_t next_sweep;
    bool sweeping, stopping, status_dirty;
    int closing; /* handles and stores still closing */
    char status_path[SPOOL_PATH_MAX];
    struct metric_gauge *g_open, *g_last_ms;
    struct metric_counter *c_committed, *c_failed, *c_same, *c_new, *c_attempt_failed,
        *c_undelivered, *c_lat_sum;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t now(const struct commit_mgr *m)
{
    return uv_now(m->ctx->loop);
}

static const struct core_commit_config *ccfg(const struct commit_mgr *m)
{
    return &m->ctx->cfg->commit;
}

static void reschedule(struct commit_mgr *m);
static void step(struct ctxn *x);

static void log_txn(enum log_level lvl, const char *ev, const struct ctxn *x, const char *why)
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

static void txn_free(struct ctxn *x)
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
    maybe_free_mgr(m);
}

static void txn_link(struct commit_mgr *m, struct ctxn *x)
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

static struct ctxn *txn_find(const struct commit_mgr *m, const char *uid)
{
    for (struct ctxn *x = m->list; x; x = x->next) {
        if (strcmp(x->t.uid, uid) == 0)
            return x;
    }
    return NULL;
}

/* An async step ended: false when x is gone (stopping) and the caller must not touch it. */
static bool back(struct ctxn *x)
{
    x->busy = false;
    if (x->m->stopping) {
        txn_free(x);
        return false;
    }
    return true;
}

static void later(struct ctxn *x, uint64_t delay)
{
    x->due = now(x->m) + delay;
    reschedule(x->m);
}

static uint64_t backoff(uint32_t first, uint32_t max, unsigned n)
{
    uint64_t d = first;
    for (unsigned i = 0; i < n && d < max; i++)
        d *= 2;
    return d > max ? max : d;
}

/* ---- OPEN: checking the references ----------------------------------------------------------- */

static void eval_continue(struct ctxn *x);

static void apply(struct ctxn *x, int err, const struct backend_copy *c, size_t n)
{
    struct commit_ref *r = &x->t.refs[x->cursor];
    uint16_t res;
    if (err < 0)
        res = x->final_pass ? COMMIT_PROCESSING_FAILURE : COMMIT_PENDING;
    else if (n == 0)
        res = x->final_pass ? COMMIT_NO_SUCH_INSTANCE : COMMIT_PENDING;
    else if (c[0].sop_class[0] && strcmp(c[0].sop_class, r->sop_class) != 0)
        res = COMMIT_CLASS_CONFLICT; /* the newest copy says another class */
    else if (c[0].state == COPY_FAILED)
        res = COMMIT_PROCESSING_FAILURE;
    else if (c[0].state >= x->m->point)
        res = COMMIT_OK;
    else
        res = x->final_pass ? COMMIT_PROCESSING_FAILURE : COMMIT_PENDING;
    if (res == COMMIT_PENDING) {
        x->stop = true; /* the report waits for this one anyway: the rest later */
        return;
    }
    r->result = res;
    x->progress = true;
    x->cursor++;
    if (res != COMMIT_OK) {
        struct logb lb;
        if (log_begin(&lb, LOG_INFO, "commit_ref_failed")) {
            log_str(&lb, "transaction_uid", x->t.uid);
            log_str(&lb, "sop_instance_uid", r->sop_instance);
            log_hex16(&lb, "reason", res);
            if (err < 0)
                log_str(&lb, "err", err_str(err));
            else if (n > 0 && c[0].failure[0])
                log_str(&lb, "failure", c[0].failure);
            log_end(&lb);
        }
    }
}

static void on_located(void *arg, int err, const struct backend_copy *c, size_t n)
{
    struct ctxn *x = arg;
    apply(x, err, c, n);
    if (x->in_locate) {
        x->located_sync = true;
        return;
    }
    if (x->m->stopping) {
        back(x);
        return;
    }
    eval_continue(x);
}

static void on_saved(void *arg, int err);

static void eval_done(struct ctxn *x)
{
    x->busy = false;
    size_t pending = 0, ok = 0;
    for (size_t i = 0; i < x->t.n_refs; i++) {
        pending += x->t.refs[i].result == COMMIT_PENDING;
        ok += x->t.refs[i].result == COMMIT_OK;
    }
    if (pending > 0) {
        const struct core_commit_config *c = ccfg(x->m);
        x->polls = x->progress ? 0 : x->polls + 1;
        uint64_t d = backoff(c->poll_initial_ms, c->poll_max_ms, x->polls);
        int64_t left = x->t.deadline_ms - wall_ms();
        if (left < 0)
            left = 0;
        later(x, d < (uint64_t)left ? d : (uint64_t)left + 1);
        return;
    }
    x->t.state = COMMIT_DECIDED; /* in memory; durable once saved */
    x->t.event = ok == x->t.n_refs ? 1 : 2;
    x->saved = false;
    x->m->status_dirty = true;
    log_txn(LOG_INFO, "commit_decided", x, NULL);
    step(x);
}

static void eval_continue(struct ctxn *x)
{
    struct commit_mgr *m = x->m;
    while (x->cursor < x->t.n_refs) {
        if (x->t.refs[x->cursor].result != COMMIT_PENDING) {
            x->cursor++;
            continue;
        }
        x->in_locate = true;
        x->located_sync = false;
        int rc = m->ops->locate(m->impl, x->t.refs[x->cursor].sop_instance, on_located, x);
        x->in_locate = false;
        if (rc < 0)
            apply(x, rc, NULL, 0);
        else if (!x->located_sync)
            return; /* on_located goes on */
        if (x->stop)
            break;
    }
    eval_done(x);
}

static void evaluate(struct ctxn *x)
{
    x->busy = true;
    x->final_pass = wall_ms() >= x->t.deadline_ms;
    x->progress = false;
    x->stop = false;
    x->cursor = 0;
    eval_continue(x);
}

/* ---- DECIDED: saving, delivering -------------------------------------------------------------- */

static int64_t lease_end(const struct commit_mgr *m)
{
    return wall_ms() + ccfg(m)->lease_ms;
}

static void retry_later(struct ctxn *x)
{
    const struct core_commit_config *c = ccfg(x->m);
    later(x, backoff(c->retry_initial_ms, c->retry_max_ms, x->retries++));
}

static void on_reported(void *arg, int err)
{
    struct ctxn *x = arg;
    if (!back(x))
        return;
    if (err < 0 && err != ERR_WRONG_STATE && err != -ENOENT) {
        retry_later(x); /* the report went; only the record is missing: never sent again */
        return;
    }
    x->t.state = COMMIT_REPORTED;
    log_txn(x->undelivered ? LOG_ERROR : LOG_INFO,
            x->undelivered ? "commit_report_undelivered" : "commit_reported", x,
            x->undelivered ? "report deadline passed" : NULL);
    txn_free(x);
}

static void write_reported(struct ctxn *x)
{
    struct commit_mgr *m = x->m;
    x->busy = true;
    int64_t keep = wall_ms() + (int64_t)ccfg(m)->remember_s * 1000;
    int rc = m->store->reported(m->store_impl, x->t.uid, m->owner, keep, on_reported, x);
    if (rc < 0) {
        x->busy = false;
        retry_later(x);
    }
}

static void on_report(void *arg, int err, enum commit_report_path path, uint16_t status)
{
    struct ctxn *x = arg;
    struct commit_mgr *m = x->m;
    (void)status;
    if (!back(x))
        return;
    if (err < 0) {
        metric_inc(m->c_attempt_failed);
        retry_later(x);
        return;
    }
    x->delivered = true;
    metric_inc(path == COMMIT_PATH_SAME ? m->c_same : m->c_new);
    int64_t ms = wall_ms() - x->t.created_ms;
    if (ms >= 0) {
        metric_add(m->c_lat_sum, (uint64_t)ms);
        metric_gauge_set(m->g_last_ms, ms);
    }
    write_reported(x);
}

static void send_report(struct ctxn *x)
{
    struct commit_mgr *m = x->m;
    x->busy = true;
    int rc = commit_report_send(m->ctx, &x->t, x->assoc_id, on_report, x);
    if (rc == 0)
        return;
    x->busy = false;
    if (rc == ERR_NOTFOUND && !x->warned_no_route) {
        x->warned_no_route = true; /* it waits for an association from the modality */
        log_txn(LOG_WARN, "commit_report_no_route", x,
                "no open association from the modality and no ae_peers entry for it");
    }
    retry_later(x);
}

static void on_renewed(void *arg, int err)
{
    struct ctxn *x = arg;
    if (!back(x))
        return;
    if (err == ERR_WRONG_STATE) {
        log_txn(LOG_WARN, "commit_lease_lost", x, "another core task holds it now");
        txn_free(x);
        return;
    }
    if (err < 0) {
        retry_later(x);
        return;
    }
    x->lease_until = lease_end(x->m) - 1000; /* what we asked for, less a margin */
    if (x->t.state == COMMIT_DECIDED && x->saved && !x->delivered)
        send_report(x); /* the lease covers the attempt (lease_ms >= 2 x report_timeout_ms) */
    else
        reschedule(x->m);
}

static void renew(struct ctxn *x, bool body)
{
    struct commit_mgr *m = x->m;
    x->busy = true;
    int rc = m->store->save(m->store_impl, &x->t, body, m->owner, lease_end(m),
                            body ? on_saved : on_renewed, x);
    if (rc < 0) {
        x->busy = false;
        retry_later(x);
    }
}

static void on_saved(void *arg, int err)
{
    struct ctxn *x = arg;
    struct commit_mgr *m = x->m;
    if (!back(x))
        return;
    if (err == ERR_WRONG_STATE) {
        log_txn(LOG_WARN, "commit_lease_lost", x, "another core task holds it now");
        txn_free(x);
        return;
    }
    if (err < 0) {
        log_txn(LOG_WARN, "commit_save_failed", x, err_str(err));
        retry_later(x);
        return;
    }
    x->saved = true;
    x->lease_until = lease_end(m) - 1000;
    x->retries = 0;
    metric_inc(x->t.event == 1 ? m->c_committed : m->c_failed);
    send_report(x);
}

/* The next thing x needs, now. */
static void step(struct ctxn *x)
{
    struct commit_mgr *m = x->m;
    const struct core_commit_config *c = ccfg(m);
    if (x->t.state == COMMIT_OPEN) {
        evaluate(x);
    } else if (x->delivered) {
        write_reported(x);
    } else if (!x->saved) {
        renew(x, true); /* the decision, durably, before any report */
    } else if (wall_ms() > x->t.deadline_ms + (int64_t)c->report_deadline_ms) {
        x->undelivered = true;
        metric_inc(m->c_undelivered);
        write_reported(x);
    } else if (m->shared) {
        renew(x, false); /* then send_report */
    } else {
        send_report(x);
    }
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
    if (m->store->list(m->store_impl, wall_ms(), on_listed, m) < 0)
        m->sweeping = false;
}

static void on_tick(uv_timer_t *t)
{
    struct commit_mgr *m = t->data;
    uint64_t n = now(m);
    int64_t w = wall_ms();
    struct ctxn *x = m->list;
    while (x) {
        struct ctxn *next = x->next; /* step may free x */
        if (!x->busy) {
            if (x->due <= n)
                step(x);
            else if (m->shared && x->lease_until - w < (int64_t)ccfg(m)->lease_ms / 2)
                renew(x, x->t.state == COMMIT_DECIDED && !x->saved);
        }
        x = next;
    }
    if (m->shared && !m->sweeping && n >= m->next_sweep) {
        m->next_sweep = n + ccfg(m)->sweep_ms;
        sweep(m);
    }
    if (m->status_dirty)
        write_status(m);
    reschedule(m);
}

static void reschedule(struct commit_mgr *m)
{
    if (m->stopping)
        return;
    uint64_t n = now(m), next = UINT64_MAX;
    int64_t w = wall_ms();
    for (struct ctxn *x = m->list; x; x = x->next) {
        if (x->busy)
            continue;
        if (x->due < next)
            next = x->due;
        if (m->shared) {
            int64_t r = x->lease_until - (int64_t)ccfg(m)->lease_ms / 2 - w;
            uint64_t at = n + (uint64_t)(r > 0 ? r : 0);
            if (at < next)
                next = at;
        }
    }
    if (m->shared && m->next_sweep < next)
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
    int64_t w = wall_ms();
    for (size_t i = 0; i < count && m->n < ccfg(m)->max_open; i++) {
        if (txn_find(m, uids[i]))
            continue;
        if (m->store->claim(m->store_impl, uids[i], m->owner, w, lease_end(m), on_claimed, m) ==
            0)
            m->closing++; /* a claim in flight keeps m */
    }
    reschedule(m);
}

static void on_claimed(void *arg, int err, const struct commit_txn *t)
{
    struct commit_mgr *m = arg;
    m->closing--;
    if (m->stopping || err < 0 || !t || txn_find(m, t->uid) || t->state == COMMIT_REPORTED) {
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
    x->lease_until = lease_end(m) - 1000;
    x->due = now(m);
    txn_link(m, x);
    log_txn(LOG_INFO, "commit_resumed", x, m->shared ? "taken over or restarted" : "restarted");
    reschedule(m);
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
        txn_link(m, x);
        log_txn(LOG_INFO, "commit_requested", x, NULL);
        x->due = now(m);
        reschedule(m);
        cb(cb_arg, 0x0000, NULL);
        return;
    }
    if (err == -EEXIST)
        cb(cb_arg, 0x0115, "Transaction UID already in use");
    else
        cb(cb_arg, 0x0110, "the transaction cannot be kept durably now");
    if (err != -EEXIST)
        log_txn(LOG_ERROR, "commit_store_failed", x, err_str(err));
    txn_free(x);
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
    if (txn_find(m, t->uid)) {
        commit_txn_cleanup(t);
        cb(arg, 0x0115, "Transaction UID already in use");
        return;
    }
    if (m->n >= ccfg(m)->max_open) {
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
    x->t.created_ms = wall_ms();
    x->t.deadline_ms = x->t.created_ms + ccfg(m)->deadline_ms;
    x->t.point = m->point;
    x->t.state = COMMIT_OPEN;
    x->assoc_id = assoc_id;
    x->lease_until = lease_end(m) - 1000;
    o->x = x;
    o->cb = cb;
    o->arg = arg;
    int rc = m->store->create(m->store_impl, &x->t, m->owner, lease_end(m), on_created, o);
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
            x->due = now(m);
    }
    reschedule(m);
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
    bool ok = m->g_open && m->c_committed && m->c_failed && m->c_same && m->c_new &&
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
             (long long)wall_ms());
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
    m->next_sweep = now(m) + ctx->cfg->commit.sweep_ms;
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "commit_started")) {
        log_str(&lb, "point", commit_point_name(m->point));
        log_str(&lb, "store", m->shared ? "shared" : "local");
        log_str(&lb, "owner", m->owner);
        log_end(&lb);
    }
    reschedule(m);
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
            txn_free(x); /* busy ones go when their step calls back */
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
