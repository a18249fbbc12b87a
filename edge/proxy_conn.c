#include "proxy_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proxy_audit.h"
#include "proxy_upstream.h"
#include "proxy_write.h"

static uint8_t g_readbuf[PROXY_READ_BUF]; /* one loop: every read is consumed before the next */

void proxy_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)g_readbuf, sizeof g_readbuf);
}

void proxy_conn_preassoc_done(struct edge_conn *c)
{
    if (!c->pre_held)
        return;
    c->pre_held = false;
    preassoc_leave(&c->e->preassoc, c->pre_key);
}

static void conn_free(struct edge_conn *c)
{
    struct edge *e = c->e;
    proxy_conn_preassoc_done(c);
    if (c->in_assoc_count) {
        proxy_audit_assoc_end(c);
        e->n_assocs--;
        metric_gauge_add(e->m.assocs_active, -1);
        if (c->reverse) {
            e->n_rassocs--;
            metric_gauge_add(e->m.rassocs_active, -1);
        }
    }
    if (c->slot_taken)
        limits_client_put(&e->limits, c->limit_key);
    if (c->reverse) {
        e->n_rconns--;
        metric_gauge_add(e->m.rconns_active, -1);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        e->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    e->n_conns--;
    metric_gauge_add(e->m.conns_active, -1);
    tls_conn_free(c->tls);
    tls_conn_free(c->up_tls);
    wbuf_cleanup(&c->rq);
    if (c->followers) {
        pdu_follow_cleanup(&c->f_up);
        pdu_follow_cleanup(&c->f_down);
    }
    edge_gen_unref(c->gen);
    free(c);
    if (e->draining && e->n_conns == 0 && e->on_empty)
        e->on_empty(e);
}

void proxy_conn_identity(struct edge_conn *c, const struct tls_peer_id *id)
{
    snprintf(c->cn, sizeof c->cn, "%s", id->cn);
    snprintf(c->subject, sizeof c->subject, "%s", id->subject);
    snprintf(c->serial, sizeof c->serial, "%s", id->serial);
    memcpy(c->fp, id->fp, sizeof c->fp);
    memcpy(c->fp_hex, id->fp_hex, sizeof c->fp_hex);
}

void proxy_conn_release(struct edge_conn *c)
{
    if (--c->live == 0)
        conn_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    proxy_conn_release(h->data);
}

void proxy_conn_close(struct edge_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->st != ST_FINISH)
        c->st = ST_FINISH;
    uv_close((uv_handle_t *)&c->down, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->up_init)
        uv_close((uv_handle_t *)&c->up, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct edge_conn *c = req->data;
    (void)status;
    c->shutdowns--; /* the close waits for the client's EOF (or the linger timer) */
}

void proxy_conn_finish(struct edge_conn *c, const char *end)
{
    if (c->closing || c->st == ST_FINISH)
        return;
    if (!c->end)
        c->end = end;
    c->st = ST_FINISH;
    proxy_conn_preassoc_done(c);
    /* Keep reading (and dropping) what the client still sends until it closes: closing a
     * socket with unread data makes the kernel send a reset, which can destroy our last PDU
     * (A-ABORT, A-ASSOCIATE-RJ) before the client has read it. */
    uv_read_stop((uv_stream_t *)&c->down);
    if (uv_read_start((uv_stream_t *)&c->down, proxy_conn_alloc, proxy_on_down_read) < 0) {
        proxy_conn_close(c);
        return;
    }
    if (c->tls && tls_conn_is_ready(c->tls) && tls_conn_shutdown(c->tls) < 0) {
        proxy_conn_close(c);
        return;
    }
    if (c->up_connected) {
        /* upstream bytes are still read (and dropped) for the same reason */
        if (c->up_tls && tls_conn_is_ready(c->up_tls) && tls_conn_shutdown(c->up_tls) < 0)
            log_msg(LOG_DEBUG, "upstream_close_notify_failed", c->peer_s);
        c->sd_up.data = c;
        if (uv_shutdown(&c->sd_up, (uv_stream_t *)&c->up, on_shutdown) == 0)
            c->shutdowns++;
    }
    c->sd_down.data = c;
    if (uv_shutdown(&c->sd_down, (uv_stream_t *)&c->down, on_shutdown) < 0) {
        proxy_conn_close(c); /* the client side cannot even be shut down: nothing to wait for */
        return;
    }
    c->shutdowns++;
    proxy_conn_arm(c, LINGER_MS);
}

/* A quiet splice gives its TLS buffers back every TRIM_AFTER_MS and ends after idle_ms. */
static bool splice_tick(struct edge_conn *c)
{
    struct edge *e = c->e;
    uint64_t idle = uv_now(e->loop) - c->last_io;
    if (idle >= TRIM_AFTER_MS) { /* quiet: drop the TLS buffers bulk traffic left */
        tls_conn_trim(c->tls);
        if (c->up_tls)
            tls_conn_trim(c->up_tls);
    }
    if (idle < e->cfg->idle_ms) {
        uint64_t left = e->cfg->idle_ms - idle;
        proxy_conn_arm(c, left < TRIM_AFTER_MS ? left : TRIM_AFTER_MS);
        return true;
    }
    return false;
}

static void on_timer(uv_timer_t *t)
{
    struct edge_conn *c = t->data;
    const char *ev = NULL;
    switch (c->st) {
    case ST_HANDSHAKE: ev = "handshake_timeout"; break;
    case ST_RQ: ev = "assoc_rq_timeout"; break;
    case ST_CONNECT:
    case ST_UP_TLS:
        proxy_upstream_failed(c, "upstream_timeout", "connect_ms passed");
        return;
    case ST_SPLICE:
        if (splice_tick(c))
            return;
        ev = "idle_timeout";
        break;
    case ST_FINISH: proxy_conn_close(c); return;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, ev)) {
        proxy_audit_conn(&lb, c);
        log_end(&lb);
    }
    if (c->st == ST_SPLICE) {
        proxy_write_abort(c, true);
        proxy_write_abort(c, false);
        proxy_conn_finish(c, "idle_timeout");
    } else {
        proxy_conn_close(c); /* PS3.8 ARTIM expiry before association: close the transport */
    }
}

void proxy_conn_arm(struct edge_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}
