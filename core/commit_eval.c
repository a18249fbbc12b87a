/* commit_eval: a transaction's steps (commit_txn.h): OPEN, its references checked against the
 * commit point until each is decided; DECIDED, the outcome written durably, then delivered
 * (commit_report.h) and, once answered, REPORTED. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "commit_report.h"
#include "commit_txn_int.h"

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
        commit_txn_back(x);
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
        const struct core_commit_config *c = commit_txn_cfg(x->m);
        x->polls = x->progress ? 0 : x->polls + 1;
        uint64_t d = commit_txn_backoff(c->poll_initial_ms, c->poll_max_ms, x->polls);
        int64_t left = x->t.deadline_ms - commit_txn_wall_ms();
        if (left < 0)
            left = 0;
        commit_txn_later(x, d < (uint64_t)left ? d : (uint64_t)left + 1);
        return;
    }
    x->t.state = COMMIT_DECIDED; /* in memory; durable once saved */
    x->t.event = ok == x->t.n_refs ? 1 : 2;
    x->saved = false;
    x->m->status_dirty = true;
    commit_txn_log(LOG_INFO, "commit_decided", x, NULL);
    commit_eval_step(x);
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
    x->final_pass = commit_txn_wall_ms() >= x->t.deadline_ms;
    x->progress = false;
    x->stop = false;
    x->cursor = 0;
    eval_continue(x);
}

/* ---- DECIDED: saving, delivering -------------------------------------------------------------- */

int64_t commit_eval_lease_end(const struct commit_mgr *m)
{
    return commit_txn_wall_ms() + commit_txn_cfg(m)->lease_ms;
}

static void retry_later(struct ctxn *x)
{
    const struct core_commit_config *c = commit_txn_cfg(x->m);
    commit_txn_later(x, commit_txn_backoff(c->retry_initial_ms, c->retry_max_ms, x->retries++));
}

static void on_reported(void *arg, int err)
{
    struct ctxn *x = arg;
    if (!commit_txn_back(x))
        return;
    if (err < 0 && err != ERR_WRONG_STATE && err != -ENOENT) {
        retry_later(x); /* the report went; only the record is missing: never sent again */
        return;
    }
    x->t.state = COMMIT_REPORTED;
    commit_txn_log(x->undelivered ? LOG_ERROR : LOG_INFO,
            x->undelivered ? "commit_report_undelivered" : "commit_reported", x,
            x->undelivered ? "report deadline passed" : NULL);
    commit_txn_free(x);
}

static void write_reported(struct ctxn *x)
{
    struct commit_mgr *m = x->m;
    x->busy = true;
    int64_t keep = commit_txn_wall_ms() + (int64_t)commit_txn_cfg(m)->remember_s * 1000;
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
    if (!commit_txn_back(x))
        return;
    if (err < 0) {
        metric_inc(m->c_attempt_failed);
        retry_later(x);
        return;
    }
    x->delivered = true;
    metric_inc(path == COMMIT_PATH_SAME ? m->c_same : m->c_new);
    int64_t ms = commit_txn_wall_ms() - x->t.created_ms;
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
        commit_txn_log(LOG_WARN, "commit_report_no_route", x,
                "no open association from the modality and no ae_peers entry for it");
    }
    retry_later(x);
}

/* ERR_WRONG_STATE from the store: another core task took the transaction over; it is
 * logged and let go here (true). */
static bool lease_lost(struct ctxn *x, int err)
{
    if (err != ERR_WRONG_STATE)
        return false;
    commit_txn_log(LOG_WARN, "commit_lease_lost", x, "another core task holds it now");
    commit_txn_free(x);
    return true;
}

static void on_renewed(void *arg, int err)
{
    struct ctxn *x = arg;
    if (!commit_txn_back(x))
        return;
    if (lease_lost(x, err))
        return;
    if (err < 0) {
        retry_later(x);
        return;
    }
    x->lease_until = commit_eval_lease_end(x->m) - 1000; /* what we asked for, less a margin */
    if (x->t.state == COMMIT_DECIDED && x->saved && !x->delivered)
        send_report(x); /* the lease covers the attempt (lease_ms >= 2 x report_timeout_ms) */
    else
        commit_txn_reschedule(x->m);
}

void commit_eval_renew(struct ctxn *x, bool body)
{
    struct commit_mgr *m = x->m;
    x->busy = true;
    int rc = m->store->save(m->store_impl, &x->t, body, m->owner, commit_eval_lease_end(m),
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
    if (!commit_txn_back(x))
        return;
    if (lease_lost(x, err))
        return;
    if (err < 0) {
        commit_txn_log(LOG_WARN, "commit_save_failed", x, err_str(err));
        retry_later(x);
        return;
    }
    x->saved = true;
    x->lease_until = commit_eval_lease_end(m) - 1000;
    x->retries = 0;
    metric_inc(x->t.event == 1 ? m->c_committed : m->c_failed);
    send_report(x);
}

/* The next thing x needs, now. */
void commit_eval_step(struct ctxn *x)
{
    struct commit_mgr *m = x->m;
    const struct core_commit_config *c = commit_txn_cfg(m);
    if (x->t.state == COMMIT_OPEN) {
        evaluate(x);
    } else if (x->delivered) {
        write_reported(x);
    } else if (!x->saved) {
        commit_eval_renew(x, true); /* the decision, durably, before any report */
    } else if (commit_txn_wall_ms() > x->t.deadline_ms + (int64_t)c->report_deadline_ms) {
        x->undelivered = true;
        metric_inc(m->c_undelivered);
        write_reported(x);
    } else if (m->shared) {
        commit_eval_renew(x, false); /* then send_report */
    } else {
        send_report(x);
    }
}
