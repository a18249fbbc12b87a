#include "proxy_splice.h"

#include <string.h>

#include "common/log.h"
#include "proxy_ac.h"
#include "proxy_audit.h"
#include "proxy_conn.h"
#include "proxy_upstream.h"
#include "proxy_write.h"

void proxy_splice_upstream_lost(struct edge_conn *c, int status)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "upstream_lost")) {
        proxy_audit_conn(&lb, c);
        log_str(&lb, "route", c->route ? c->route->name : "");
        log_str(&lb, "err", proxy_audit_status(status));
        log_end(&lb);
    }
    proxy_write_abort(c, true); /* PS3.8: the modality learns of the loss as an A-ABORT */
    proxy_conn_finish(c, "upstream_lost");
}

static void protocol_violation(struct edge_conn *c, bool from_down, const struct pdu_follow *f,
                               int rc)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "pdu_refused")) {
        proxy_audit_conn(&lb, c);
        log_str(&lb, "from", from_down ? "client" : "upstream");
        log_u64(&lb, "pdu_type", f->type);
        log_str(&lb, "why", rc == ERR_LIMIT ? "over the maximum length"
                                            : "PDU type not allowed here");
        log_u64(&lb, "max_body", f->max_body);
        log_end(&lb);
    }
    /* the direction that broke the rules is mid-PDU: only the other one can get an A-ABORT */
    proxy_write_abort(c, !from_down);
    proxy_conn_finish(c, "aborted_pdu_limit");
}

/* Follow n bytes from the modality (from_down) or from upstream, and count them. false when
 * they break the protocol: c is then finished. */
static bool follow(struct edge_conn *c, bool from_down, const uint8_t *p, size_t n)
{
    struct pdu_follow *f = from_down ? &c->f_up : &c->f_down;
    int frc = pdu_follow_feed(f, p, n);
    if (frc < 0) {
        protocol_violation(c, from_down, f, frc);
        return false;
    }
    if (from_down) {
        c->bytes_up += n;
        metric_add(c->e->m.bytes_to_upstream, n);
    } else {
        c->bytes_down += n;
        metric_add(c->e->m.bytes_to_client, n);
    }
    return true;
}

/* The core's A-ASSOCIATE-AC has gone by: the modality's PDUs are capped by what it says. */
static void after_ac(struct edge_conn *c)
{
    struct pdu_follow *f = &c->f_down;
    f->keep_first = false;
    if (f->saw_ac && f->first.err == 0)
        c->f_up.max_body = proxy_ac_max_body(f->first.p, f->first.len, c->e->cfg->max_pdu,
                                             c->f_up.max_body);
    wbuf_cleanup(&f->first);
}

static void pause_if_full(struct edge_conn *c, bool dst_up)
{
    if (dst_up && !c->down_paused && stream_is_full(&c->s_up)) {
        c->down_paused = true;
        uv_read_stop((uv_stream_t *)&c->down);
    } else if (!dst_up && !c->up_paused && stream_is_full(&c->s_down)) {
        c->up_paused = true;
        uv_read_stop((uv_stream_t *)&c->up);
    }
}

void proxy_splice_drained(struct edge_conn *c, bool dst_up)
{
    if (dst_up && c->down_paused) {
        c->down_paused = false;
        if (c->st == ST_SPLICE)
            uv_read_start((uv_stream_t *)&c->down, proxy_conn_alloc, proxy_on_down_read);
    } else if (!dst_up && c->up_paused) {
        c->up_paused = false;
        if (c->st == ST_SPLICE)
            uv_read_start((uv_stream_t *)&c->up, proxy_conn_alloc, proxy_upstream_on_read);
    }
}

/* Plaintext for a plain-TCP upstream is gathered over one read of the modality's socket (one
 * TLS record at a time comes out of OpenSSL) and written with one call: one loop, one owner. */
static uint8_t g_upbuf[256 * 1024];
static size_t g_up_len;
static struct edge_conn *g_up_owner;

/* Through the upstream's TLS when it has one; a failure loses the upstream. 0 or CONN_STOP. */
static int send_up(struct edge_conn *c, const uint8_t *p, size_t n)
{
    int rc = stream_send(&c->s_up, p, n);
    if (rc < 0) {
        proxy_splice_upstream_lost(c, rc);
        return CONN_STOP;
    }
    pause_if_full(c, true);
    return 0;
}

int proxy_splice_flush_up(void)
{
    struct edge_conn *c = g_up_owner;
    size_t n = g_up_len;
    g_up_len = 0;
    g_up_owner = NULL;
    if (!c || n == 0 || c->closing || c->st == ST_FINISH)
        return 0;
    return send_up(c, g_upbuf, n);
}

int proxy_splice_to_up(struct edge_conn *c, const uint8_t *p, size_t n)
{
    if (!follow(c, true, p, n))
        return CONN_STOP;
    if (!c->up_tls) {
        if ((g_up_owner && g_up_owner != c) || g_up_len + n > sizeof g_upbuf)
            TRY(proxy_splice_flush_up());
        if (n <= sizeof g_upbuf) {
            memcpy(g_upbuf + g_up_len, p, n);
            g_up_len += n;
            g_up_owner = c;
            return 0; /* proxy_splice_flush_up() sends it, and checks the queue */
        }
    }
    return send_up(c, p, n);
}

int proxy_splice_to_down(struct edge_conn *c, const uint8_t *p, size_t n)
{
    if (!follow(c, false, p, n))
        return CONN_STOP;
    if (c->f_down.keep_first && pdu_follow_first_done(&c->f_down))
        after_ac(c);
    if (stream_send(&c->s_down, p, n) < 0) {
        proxy_conn_finish(c, "client_write_failed");
        return CONN_STOP;
    }
    pause_if_full(c, false);
    return 0;
}

void proxy_splice_begin(struct edge_conn *c)
{
    struct edge *e = c->e;
    c->st = ST_SPLICE;
    c->last_io = uv_now(e->loop);
    proxy_conn_arm(c, e->cfg->idle_ms < TRIM_AFTER_MS ? e->cfg->idle_ms : TRIM_AFTER_MS);
    uint32_t down_max = c->rq_max_len == 0 || c->rq_max_len > e->cfg->max_pdu ?
                            e->cfg->max_pdu : c->rq_max_len;
    pdu_follow_init(&c->f_up, UL_PRE_ASSOC_MAX, PDU_FROM_REQUESTOR, false);
    pdu_follow_init(&c->f_down, down_max, PDU_FROM_ACCEPTOR, true);
    c->followers = true;
    if (c->route->called_rewrite[0] && c->rq.len >= UL_HDR_LEN + 4 + UL_AE_LEN) {
        uint8_t *called = c->rq.p + UL_HDR_LEN + 4; /* PS3.8 9.3.2: after version, reserved */
        size_t l = strlen(c->route->called_rewrite);
        memset(called, ' ', UL_AE_LEN);
        memcpy(called, c->route->called_rewrite, l);
    }
    struct wbuf rq = c->rq;
    wbuf_init(&c->rq, RQ_BUF_MAX);
    int rc = proxy_splice_to_up(c, rq.p, rq.len);
    wbuf_cleanup(&rq);
    if (rc == 0)
        rc = proxy_splice_flush_up();
    if (rc < 0)
        return;
    if (!c->down_paused)
        uv_read_start((uv_stream_t *)&c->down, proxy_conn_alloc, proxy_on_down_read);
}

bool proxy_splice_over(const struct edge_conn *c)
{
    return c->followers && (c->f_down.saw_release_rp || c->f_down.saw_abort ||
                            c->f_up.saw_abort || c->f_down.saw_rj);
}

const char *proxy_splice_end_name(const struct edge_conn *c)
{
    if (c->f_down.saw_release_rp)
        return "released";
    if (c->f_down.saw_rj)
        return "rejected_upstream";
    if (c->f_up.saw_abort)
        return "aborted_by_client";
    return "aborted_by_upstream";
}
