/* pipeline: life cycle (start with the journal's replay, the tick, the flush check, await,
 * stop) and the calls every step makes. The steps are in pipeline_*.c (see pipeline_int.h). */
#include "pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "pipeline_int.h"

/* Copy with truncation (fixed-size record fields; the sources are bounded but may be longer). */
void pl_scpy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

uint64_t pl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t pl_rnd32(struct pipeline *p)
{
    /* xorshift32: jitter only; batch ids take their random bits from RAND_bytes */
    uint32_t x = p->rnd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p->rnd = x ? x : 0x9e3779b9u;
    return p->rnd;
}

struct op *pl_op_new(struct pipeline *p, struct ent *e, struct pbatch *b, size_t idx, int kind)
{
    struct op *o = calloc(1, sizeof *o);
    if (o) {
        o->p = p;
        o->e = e;
        o->b = b;
        o->idx = idx;
        o->kind = kind;
    }
    return o;
}

bool pl_op_end(struct op *o, const struct http_result *res, enum pl_budget budget,
               struct op *out)
{
    struct pipeline *p = o->p;
    if (budget == PL_BUDGET_DDB)
        p->ddb--;
    else if (budget == PL_BUDGET_UPLOADS)
        p->uploads--;
    *out = *o;
    free(o);
    if (p->stopping || (res && res->err == HTTP_ERR_CANCELED))
        return false;
    if (out->e)
        out->e->busy = false;
    return true;
}

int pl_ddb_send(struct pipeline *p, const char *op_name, cJSON *req, ddb_cb cb, struct op *o)
{
    int rc = req && o ? ddb_call(p->env.ddb, op_name, req, cb, o) : ERR_NOMEM;
    cJSON_Delete(req);
    if (rc < 0) {
        free(o);
        return rc;
    }
    p->ddb++;
    p->st.ddb_requests++;
    return 0;
}

void pl_pump(struct pipeline *p)
{
    if (p->stopping)
        return;
    uint64_t now = pl_now_ms();
    for (struct ent *e = p->ents; e; e = e->next) {
        if (!e->busy && e->journaled && e->step != E_RELEASE && now >= e->next_ms)
            pl_run_entry(p, e);
    }
    for (struct pbatch *b = p->batches, *next; b; b = next) {
        next = b->next;
        pl_run_batch(p, b);
        if (b->st == B_DONE) {
            if (b->job_id[0] && p->jobs_inflight > 0)
                p->jobs_inflight--;
            pl_batch_free(p, b);
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    struct pipeline *p = t->data;
    uint64_t now = pl_now_ms();
    /* awaiters that ran out of time: the core answers 0xA700 */
    for (struct awaiter **pp = &p->awaiters; *pp;) {
        struct awaiter *a = *pp;
        if (now >= a->deadline_ms) {
            *pp = a->next;
            pl_note_error(p, "ack_timeout", a->id, NULL, ERR_LIMIT);
            if (p->env.acked)
                p->env.acked(p->env.acked_arg, a->token, UV_ETIMEDOUT, NULL);
            free(a);
        } else {
            pp = &a->next;
        }
    }
    if (p->scan_wanted || now - p->last_scan_ms >= PL_SCAN_MS) {
        if (now - p->last_scan_ms >= PL_SCAN_MS)
            pl_take_redrives(p);
        pl_scan(p);
    } else {
        pl_flush(p);
    }
    pl_pump(p);
    if (now - p->last_status_ms >= 1000) {
        p->last_status_ms = now;
        pl_write_status(p);
    }
}

/* After each loop pass: flush when enough releases gathered or a little time went by (the
 * tick flushes too), so that one fdatasync covers many objects. */
static void on_check(uv_check_t *c)
{
    struct pipeline *p = c->data;
    if (p->stopping)
        return;
    if (p->releases >= 32 || (p->releases > 0 && pl_now_ms() - p->last_flush_ms >= 20)) {
        pl_flush(p);
        pl_pump(p);
    }
}

int pipeline_start(const struct pipeline_env *env, struct pipeline **out)
{
    struct pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->env = *env;
    p->cfg = env->cfg;
    p->ents_tail = &p->ents;
    p->started = time(NULL);
    p->rnd = (uint32_t)pl_now_ms() ^ (uint32_t)getpid() * 2654435761u;
    if (p->rnd == 0)
        p->rnd = 1;
    char jpath[1200];
    int rc = pl_layout(p, jpath, sizeof jpath);
    if (rc == 0)
        rc = spool_journal_open(jpath, env->fsync, pl_replay, p, &p->journal);
    if (rc == 0)
        rc = pl_compact(p);
    if (rc < 0) {
        spool_journal_close(p->journal);
        while (p->batches)
            pl_batch_free(p, p->batches);
        free(p);
        return rc;
    }
    batch_pacer_init(&p->pacer, p->cfg->hi.start_tps, pl_now_ms());
    pl_metrics_init(p);
    uv_timer_init(env->loop, &p->tick);
    uv_check_init(env->loop, &p->flush);
    p->tick.data = p->flush.data = p;
    p->live_handles = 2;
    uv_timer_start(&p->tick, on_tick, 0, PL_TICK_MS);
    uv_check_start(&p->flush, on_check);
    size_t nb = 0, nm = 0;
    for (struct pbatch *b = p->batches; b; b = b->next) {
        nb++;
        nm += b->pending;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "forwarder_started")) {
        log_str(&lb, "mode", p->cfg->hi.mode == PIPELINE_MODE_STOW ? "stow" : "import");
        log_str(&lb, "bucket", p->cfg->s3.bucket);
        log_str(&lb, "table", p->cfg->ddb.table);
        log_u64(&lb, "batches_resumed", nb);
        log_u64(&lb, "objects_resumed", nm);
        log_end(&lb);
    }
    p->scan_wanted = true;
    *out = p;
    return 0;
}

void pipeline_kick(struct pipeline *p)
{
    /* coalesced: the next tick scans ready/ once for every kick since the last one */
    p->scan_wanted = true;
}

void pipeline_await(struct pipeline *p, const char *id, uint64_t token)
{
    if (p->stopping) {
        if (p->env.acked)
            p->env.acked(p->env.acked_arg, token, ERR_WRONG_STATE, NULL);
        return;
    }
    struct ent *e = pl_ent_find(p, id);
    int result;
    const char *refusal;
    if (e && e->ack_reached) {
        p->env.acked(p->env.acked_arg, token, e->ack_result,
                     e->ack_result < 0 && e->refusal[0] ? e->refusal : NULL);
        return;
    }
    if (!e && pl_done_lookup(p, id, &result, &refusal)) {
        p->env.acked(p->env.acked_arg, token, result,
                     result < 0 && refusal[0] ? refusal : NULL);
        return;
    }
    struct awaiter *a = calloc(1, sizeof *a);
    if (!a) {
        p->env.acked(p->env.acked_arg, token, ERR_NOMEM, NULL);
        return;
    }
    pl_scpy(a->id, sizeof a->id, id);
    a->token = token;
    a->deadline_ms = pl_now_ms() + p->cfg->ack_timeout_ms;
    a->next = p->awaiters;
    p->awaiters = a;
    if (!e) {
        /* straight in, without a scan of the whole spool: a modality is waiting */
        if (pl_admit(p, id) != 0)
            p->scan_wanted = true;
        pl_flush(p);
        pl_pump(p);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct pipeline *p = h->data;
    if (--p->live_handles == 0 && p->stop_done)
        p->stop_done(p->stop_arg);
}

void pipeline_stop(struct pipeline *p, void (*done)(void *arg), void *arg)
{
    p->stopping = true;
    p->stop_done = done;
    p->stop_arg = arg;
    pl_flush(p); /* what finished gets journaled and released */
    pl_write_status(p);
    while (p->awaiters) {
        struct awaiter *a = p->awaiters;
        p->awaiters = a->next;
        if (p->env.acked)
            p->env.acked(p->env.acked_arg, a->token, ERR_WRONG_STATE, NULL);
        free(a);
    }
    uv_close((uv_handle_t *)&p->tick, on_handle_closed);
    uv_close((uv_handle_t *)&p->flush, on_handle_closed);
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    while (p->ents) {
        struct ent *e = p->ents;
        p->ents = e->next;
        free(e->got);
        free(e);
    }
    while (p->batches)
        pl_batch_free(p, p->batches);
    spool_journal_close(p->journal);
    free(p);
}
