/* The sub-operations of a retrieve (retrieve.h), shared by C-GET and C-MOVE: for each planned
 * instance, fetch it from the backend and stream it into a C-STORE-RQ on the target
 * association (PS3.4 C.4.2.3 / C.4.3.3), then await the C-STORE-RSP and count it. One
 * sub-operation at a time; the backend pauses while the association's output queue is full, so
 * no object is ever held in memory. */
#include "retrieve.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core_audit.h"
#include "core_ctx.h"

#define MAX_CTX 16      /* contexts one SOP class may have (one per transfer syntax) */
#define HOLD 16         /* bytes kept back so that the last fragment can be flagged as last */
#define FAILED_MAX 65000 /* (0008,0058) is UI: a 16-bit length in Explicit VR (PS3.5 7.1.2) */

struct retrieve_run {
    struct retrieve_params p;
    struct retrieve_cbs cbs;
    struct qr_counts c;
    size_t next; /* the next item of the list */
    struct wbuf failed;
    uv_timer_t kick;
    /* the sub-operation in progress */
    const struct retrieve_item *item;
    struct backend_read_op *fetch;
    struct pctx_info ctx[MAX_CTX];
    size_t n_ctx;
    uint8_t pctx;
    uint16_t rsp_status;
    uint8_t held[HOLD];
    size_t held_len;
    bool sent_cmd, awaiting, have_rsp, data_done, room_wait;
    bool cancelled, stopped, ended, closing;
    int busy;
};

static void on_closed(uv_handle_t *h)
{
    struct retrieve_run *r = h->data;
    wbuf_cleanup(&r->failed);
    free(r);
}

/* Free once nothing can call back: no C-STORE-RSP awaited, no callback of ours on the stack. */
static void release(struct retrieve_run *r)
{
    if (r->awaiting || r->busy || r->closing || !(r->stopped || r->ended))
        return;
    r->closing = true;
    uv_close((uv_handle_t *)&r->kick, on_closed);
}

/* Leave a callback of ours: a stop that came meanwhile may free now. */
static void unbusy(struct retrieve_run *r)
{
    r->busy--;
    release(r);
}

const char *retrieve_run_failed(const struct retrieve_run *r)
{
    return r->failed.len ? (const char *)r->failed.p : "";
}

uint16_t retrieve_final_status(const struct qr_counts *c, enum retrieve_end how)
{
    if (how == RETRIEVE_CANCELLED)
        return DIMSE_CANCEL;
    if (c->failed == 0 && c->warning == 0)
        return DIMSE_SUCCESS;
    if (c->completed == 0 && c->warning == 0)
        return DIMSE_RETRIEVE_OUT_OF_RESOURCES; /* A702: none could be performed */
    return DIMSE_WARNING_SUBOPS;
}

static void remaining(struct retrieve_run *r)
{
    size_t done = (size_t)r->c.completed + r->c.failed + r->c.warning;
    r->c.remaining = (uint16_t)(r->p.list->n > done ? r->p.list->n - done : 0);
}

static void add_failed(struct retrieve_run *r, const char *sop)
{
    size_t n = strlen(sop);
    if (r->failed.len + n + 2 > FAILED_MAX)
        return; /* the count stays exact; the list names the first ones */
    if (r->failed.len)
        r->failed.p[r->failed.len - 1] = '\\'; /* over the previous NUL */
    wbuf_put(&r->failed, sop, n + 1);
}

/* The end: done() once, then free. */
static void end(struct retrieve_run *r, enum retrieve_end how)
{
    if (r->ended || r->stopped)
        return;
    r->ended = true;
    if (how == RETRIEVE_LOST) { /* what was not performed counts as failed (C.4.3.1.4) */
        for (; r->next < r->p.list->n; r->next++) {
            r->c.failed++;
            add_failed(r, r->p.list->v[r->next].sop);
        }
    }
    remaining(r);
    r->busy++;
    r->cbs.done(r->cbs.arg, &r->c, how);
    unbusy(r);
}

static void progress(struct retrieve_run *r)
{
    remaining(r);
    r->busy++;
    r->cbs.progress(r->cbs.arg, &r->c);
    unbusy(r);
}

/* The audit trail's transfer accounting (core_audit_sent) of the sub-operation in progress. */
static void audit_sub(const struct retrieve_run *r, uint16_t status)
{
    core_audit_sent(r->p.target, r->p.requestor, r->item->sop_class, r->item->study,
                    r->item->patient, status);
}

static void sub_failed(struct retrieve_run *r, const char *why)
{
    audit_sub(r, r->have_rsp ? r->rsp_status : DIMSE_RETRIEVE_OUT_OF_RESOURCES);
    r->c.failed++;
    add_failed(r, r->item->sop);
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "retrieve_subop_failed")) {
        log_str(&lb, "sop_instance_uid", r->item->sop);
        log_str(&lb, "why", why);
        log_end(&lb);
    }
    progress(r);
}

static int on_begin(void *arg, const struct backend_instance *inst);
static int on_data(void *arg, const uint8_t *p, size_t n);
static void on_fetch_done(void *arg, int err, const char *why);

/* Start sub-operations until one is under way, or end. */
static void advance(struct retrieve_run *r)
{
    while (!r->stopped && !r->ended) {
        if (r->cancelled) {
            end(r, RETRIEVE_CANCELLED);
            return;
        }
        if (r->next >= r->p.list->n) {
            end(r, RETRIEVE_DONE);
            return;
        }
        r->item = &r->p.list->v[r->next++];
        r->sent_cmd = r->have_rsp = r->data_done = false;
        r->held_len = 0;
        r->n_ctx = assoc_find_pctxs(r->p.target, r->item->sop_class, true, r->ctx, MAX_CTX);
        if (r->n_ctx == 0) { /* PS3.4 C.4.3.3.1: no context for it: the sub-operation fails */
            sub_failed(r, "the receiver accepted no context for this SOP class");
            continue;
        }
        const char *ts[MAX_CTX];
        size_t n_ts = 0;
        for (size_t i = 0; i < r->n_ctx; i++)
            ts[n_ts++] = r->ctx[i].ts->uid;
        struct backend_fetch_cbs cbs = {.begin = on_begin, .data = on_data,
                                        .done = on_fetch_done, .arg = r};
        int rc = r->p.ops->fetch(r->p.impl, r->item->study, r->item->series, r->item->sop, ts,
                                 n_ts, r->p.scope, &cbs, &r->fetch);
        if (rc == 0)
            return;
        r->fetch = NULL;
        sub_failed(r, rc == ERR_UNSUPPORTED
                          ? "stored transfer syntax not accepted by the receiver"
                          : "the instance could not be read from the archive");
    }
}

static void on_kick(uv_timer_t *t)
{
    advance(t->data);
}

static void on_rsp(void *arg, const struct dimse_cmd *rsp)
{
    struct retrieve_run *r = arg;
    r->awaiting = false;
    if (r->stopped || r->ended) {
        release(r);
        return;
    }
    if (!rsp) { /* the target ended */
        if (r->fetch) {
            r->p.ops->cancel(r->fetch);
            r->fetch = NULL;
        }
        r->next--; /* the current one is among those not performed */
        end(r, RETRIEVE_LOST);
        return;
    }
    r->have_rsp = true;
    r->rsp_status = rsp->status;
    if (r->data_done) {
        uint16_t st = r->rsp_status;
        if (st == DIMSE_SUCCESS) {
            audit_sub(r, st);
            r->c.completed++;
        } else if ((st & 0xF000) == 0xB000 || st == 0x0001) { /* PS3.4 B.2.3 warnings */
            audit_sub(r, st);
            r->c.warning++;
        } else {
            sub_failed(r, "the receiver refused the C-STORE");
            if (!r->stopped)
                advance(r);
            return;
        }
        progress(r);
        advance(r);
    }
    /* else: the receiver answered before the dataset's end; the rest is sent, then counted */
}

static int on_begin(void *arg, const struct backend_instance *inst)
{
    struct retrieve_run *r = arg;
    const struct pctx_info *pc = NULL;
    for (size_t i = 0; i < r->n_ctx && !pc; i++) {
        if (strcmp(r->ctx[i].ts->uid, inst->ts) == 0)
            pc = &r->ctx[i];
    }
    if (!pc || strcmp(inst->sop, r->item->sop) != 0)
        return -1;
    r->pctx = pc->id;
    struct assoc *a = r->p.target;
    struct dimse_cmd cmd = {0};
    cmd.command_field = DIMSE_C_STORE_RQ;
    cmd.message_id = assoc_next_msg_id(a);
    cmd.priority = 0; /* medium */
    cmd.data_set_type = 0x0000;
    cmd.has_command_field = cmd.has_message_id = cmd.has_priority = cmd.has_data_set_type = true;
    snprintf(cmd.affected_sop_class, sizeof cmd.affected_sop_class, "%s", r->item->sop_class);
    snprintf(cmd.affected_sop_instance, sizeof cmd.affected_sop_instance, "%s", r->item->sop);
    if (r->p.move_originator) { /* PS3.7 9.1.1.1.9: the C-MOVE that caused it */
        snprintf(cmd.move_originator_ae, sizeof cmd.move_originator_ae, "%s",
                 r->p.move_originator);
        cmd.move_originator_id = r->p.move_originator_id;
        cmd.has_move_originator_id = true;
    }
    if (assoc_expect_rsp(a, cmd.message_id, on_rsp, r) < 0)
        return -1;
    r->awaiting = true;
    r->busy++;
    int rc = assoc_send_cmd(a, r->pctx, &cmd);
    unbusy(r);
    if (rc < 0 || r->stopped)
        return -1; /* the target is closing: its end comes through on_rsp */
    r->sent_cmd = true;
    return 0;
}

static void on_room(void *arg)
{
    struct retrieve_run *r = arg;
    r->room_wait = false;
    if (r->fetch)
        r->p.ops->resume(r->fetch);
}

static int on_data(void *arg, const uint8_t *p, size_t n)
{
    struct retrieve_run *r = arg;
    struct assoc *a = r->p.target;
    size_t keep = n < HOLD ? n : HOLD;
    r->busy++;
    int rc = 0;
    if (n > 0 && r->held_len)
        rc = assoc_send_data(a, r->pctx, r->held, r->held_len, false);
    if (rc == 0 && n > 0)
        rc = assoc_send_data(a, r->pctx, p, n - keep, false);
    unbusy(r);
    if (rc < 0 || r->stopped)
        return -1;
    if (n > 0) {
        memcpy(r->held, p + n - keep, keep);
        r->held_len = keep;
    }
    if (assoc_out_queued(a) > ASSOC_OUT_HIGH) { /* a slow receiver slows the fetch */
        r->room_wait = true;
        assoc_on_out_room(a, on_room, r);
        return 1;
    }
    return 0;
}

static void on_fetch_done(void *arg, int err, const char *why)
{
    struct retrieve_run *r = arg;
    r->fetch = NULL;
    if (r->stopped || r->ended)
        return;
    if (r->room_wait) {
        assoc_on_out_room(r->p.target, NULL, NULL);
        r->room_wait = false;
    }
    if (!r->sent_cmd) {
        if (r->awaiting)
            return; /* the command could not be sent: the target is closing (on_rsp ends) */
        sub_failed(r, why ? why : "the instance could not be read from the archive");
        if (!r->stopped)
            advance(r);
        return;
    }
    if (err < 0) { /* a C-STORE cut short cannot be completed on this association */
        assoc_abort(r->p.target, "retrieve: the instance could not be read to its end");
        return; /* on_rsp(NULL) ends the run */
    }
    r->busy++;
    int rc = assoc_send_data(r->p.target, r->pctx, r->held, r->held_len, true);
    unbusy(r);
    if (rc < 0 || r->stopped)
        return;
    r->data_done = true;
    if (r->have_rsp) { /* it answered early: count it now */
        r->awaiting = true;
        struct dimse_cmd rsp = {.status = r->rsp_status};
        on_rsp(r, &rsp);
    }
}

int retrieve_run_start(const struct retrieve_params *p, const struct retrieve_cbs *cbs,
                       struct retrieve_run **out)
{
    struct retrieve_run *r = calloc(1, sizeof *r);
    if (!r)
        return ERR_NOMEM;
    r->p = *p;
    r->cbs = *cbs;
    wbuf_init(&r->failed, FAILED_MAX);
    uv_timer_init(assoc_ctx(p->target)->loop, &r->kick);
    r->kick.data = r;
    remaining(r);
    uv_timer_start(&r->kick, on_kick, 0, 0); /* the first sub-operation, from the loop */
    *out = r;
    return 0;
}

void retrieve_run_cancel(struct retrieve_run *r)
{
    if (r->cancelled || r->ended || r->stopped)
        return;
    r->cancelled = true;
    if (r->fetch && !r->sent_cmd) { /* nothing on the wire yet: stop it now */
        r->p.ops->cancel(r->fetch);
        r->fetch = NULL;
        uv_timer_start(&r->kick, on_kick, 0, 0);
    }
    /* else the sub-operation in progress ends first (a C-STORE cannot be cut short) */
}

void retrieve_run_lost(struct retrieve_run *r)
{
    if (!r || r->stopped || r->ended)
        return;
    if (r->fetch) {
        r->p.ops->cancel(r->fetch);
        r->fetch = NULL;
        if (r->item)
            r->next--; /* begun but not performed */
    }
    if (r->room_wait)
        assoc_on_out_room(r->p.target, NULL, NULL);
    r->room_wait = false;
    r->awaiting = false; /* the association's end told its waiters already */
    uv_timer_stop(&r->kick);
    end(r, RETRIEVE_LOST);
}

void retrieve_run_stop(struct retrieve_run *r)
{
    if (!r || r->stopped)
        return;
    r->stopped = true;
    uv_timer_stop(&r->kick);
    if (r->fetch)
        r->p.ops->cancel(r->fetch);
    r->fetch = NULL;
    if (r->room_wait)
        assoc_on_out_room(r->p.target, NULL, NULL);
    r->room_wait = false;
    release(r);
}
