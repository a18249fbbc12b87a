#include "proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "common/log.h"
#include "common/ul.h"
#include "net/addr.h"
#include "net/proxy2.h"
#include "net/tls_conn.h"
#include "pdu_follow.h"

#define LINGER_MS 2000u
#define TRIM_AFTER_MS 5000u /* a splice this quiet gives its TLS buffers back */ /* after our last bytes (RJ, ABORT, close_notify): wait for the peer */
#define CONN_STOP (ERR_BASE - 100) /* a callback handled the event; stop delivering */
#define RQ_BUF_MAX (2u * (UL_PRE_ASSOC_MAX + UL_HDR_LEN))

enum conn_state {
    ST_HANDSHAKE, /* TLS handshake with the modality */
    ST_RQ,        /* waiting for the whole A-ASSOCIATE-RQ */
    ST_CONNECT,   /* admitted: resolving / connecting upstream */
    ST_UP_TLS,    /* upstream TLS handshake */
    ST_SPLICE,    /* both ways */
    ST_FINISH,    /* last bytes going out, then close */
};

struct edge_conn {
    struct edge *e;
    struct edge_gen *gen;
    struct edge_conn *next, *prev;
    uint64_t id;
    uv_tcp_t down, up;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_shutdown_t sd_down, sd_up;
    int live;            /* initialised handles + pending getaddrinfo */
    int shutdowns;       /* pending uv_shutdown requests */
    bool closing, up_init, up_connected, slot_taken, in_assoc_count;
    bool down_paused, up_paused;
    enum conn_state st;
    struct tls_conn *tls, *up_tls;
    struct wbuf rq;          /* the first PDU (and anything after it) until the splice */
    struct pdu_follow f_up, f_down; /* modality -> upstream, upstream -> modality */
    bool followers;
    uint64_t t_accept, t_admit, last_io;
    uint64_t bytes_up, bytes_down;
    uint32_t rq_max_len;
    const struct policy_client *client;
    const struct policy_route *route;
    const char *end;
    char peer_s[64];
    struct sockaddr_storage peer, local;
    char calling[UL_AE_LEN + 1], called[UL_AE_LEN + 1];
    char client_id[129], cn[257], serial[96], fp_hex[65];
    uint8_t fp[32];
    char subject[512];
};

struct wreq {
    uv_write_t req;
    struct edge_conn *c;
    uint8_t *buf; /* freed in the callback (the bytes sent may start further in) */
};

static uint8_t g_readbuf[64 * 1024]; /* one loop: every read is consumed before the next */

/* ---------------------------------------------------------------- generations */

int edge_gen_new(const struct edge_config *cfg, struct edge_gen **out, struct wbuf *errs)
{
    struct edge_gen *g = calloc(1, sizeof *g);
    if (!g)
        return ERR_NOMEM;
    g->refs = 1;
    struct tls_server_opts o = {
        .cert = cfg->tls.cert,
        .key = cfg->tls.key,
        .client_ca = cfg->tls.client_ca,
        .crl = cfg->tls.crl,
        .crl_mode = cfg->tls.crl_mode,
        .profile = cfg->tls.profile,
    };
    char err[512];
    int rc = tls_ctx_server_new(&o, &g->server, err, sizeof err);
    if (rc < 0)
        wbuf_printf(errs, "tls: %s\n", err);
    int prc = policy_load(cfg->policy, &g->policy, errs);
    if (prc == 0)
        prc = policy_build_tls(g->policy, errs);
    if (rc < 0 || prc < 0) {
        edge_gen_unref(g);
        return rc < 0 ? rc : prc;
    }
    *out = g;
    return 0;
}

void edge_gen_unref(struct edge_gen *g)
{
    if (!g || --g->refs > 0)
        return;
    SSL_CTX_free(g->server);
    policy_free(g->policy);
    free(g);
}

/* ---------------------------------------------------------------- logging */

static const char *status_str(int status)
{
    return status == UV_EOF ? "closed" : status < 0 && status > -4096 ? uv_strerror(status) :
                                                                        err_str(status);
}

static void log_conn(struct logb *lb, const struct edge_conn *c)
{
    log_u64(lb, "conn", c->id);
    log_str(lb, "peer", c->peer_s);
}

static void log_identity(struct logb *lb, const struct edge_conn *c)
{
    log_str(lb, "subject", c->subject);
    log_str(lb, "cn", c->cn);
    log_str(lb, "serial", c->serial);
    log_str(lb, "fingerprint", c->fp_hex);
}

static void count_labelled(struct edge *e, const char *name, const char *help, const char *k1,
                           const char *v1, const char *v2)
{
    char labels[160];
    snprintf(labels, sizeof labels, "%s=\"%s\",reason=\"%s\"", k1, v1, v2);
    struct metric_counter *m = metrics_counter_get(e->metrics, name, help, labels);
    if (m)
        metric_inc(m);
}

static void audit_decision(struct edge_conn *c, const char *decision, const char *why,
                           const struct adm_decision *d)
{
    struct logb lb;
    if (log_begin(&lb, strcmp(decision, "admit") == 0 ? LOG_INFO : LOG_WARN, "admission")) {
        log_conn(&lb, c);
        log_identity(&lb, c);
        log_str(&lb, "calling_ae", c->calling);
        log_str(&lb, "called_ae", c->called);
        log_str(&lb, "decision", decision);
        log_str(&lb, "reason", why);
        if (d && d->verdict == ADM_REJECT) {
            log_u64(&lb, "rj_result", d->result);
            log_u64(&lb, "rj_source", d->source);
            log_u64(&lb, "rj_reason", d->reason);
        }
        log_str(&lb, "client", c->client_id);
        log_str(&lb, "route", c->route ? c->route->name : "");
        log_end(&lb);
    }
    count_labelled(c->e, "dicom_edge_associations_total", "Associations by decision and reason",
                   "decision", decision, why);
}

/* ---------------------------------------------------------------- closing */

static void conn_free(struct edge_conn *c)
{
    struct edge *e = c->e;
    if (c->in_assoc_count) {
        struct logb lb;
        if (log_begin(&lb, LOG_INFO, "assoc_end")) {
            log_conn(&lb, c);
            log_str(&lb, "client", c->client_id);
            log_str(&lb, "calling_ae", c->calling);
            log_str(&lb, "called_ae", c->called);
            log_str(&lb, "route", c->route ? c->route->name : "");
            log_u64(&lb, "duration_ms", uv_now(e->loop) - c->t_admit);
            log_u64(&lb, "bytes_up", c->bytes_up);
            log_u64(&lb, "bytes_down", c->bytes_down);
            log_u64(&lb, "pdus_up", c->f_up.pdus);
            log_u64(&lb, "pdus_down", c->f_down.pdus);
            log_str(&lb, "end", c->end ? c->end : "closed");
            log_end(&lb);
        }
        e->n_assocs--;
        metric_gauge_add(e->m.assocs_active, -1);
    }
    if (c->slot_taken)
        limits_client_put(&e->limits, c->client_id);
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

static void on_handle_closed(uv_handle_t *h)
{
    struct edge_conn *c = h->data;
    if (--c->live == 0)
        conn_free(c);
}

static void conn_close(struct edge_conn *c)
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

static void on_linger(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_down_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Let what is queued go out (close_notify included), then close when the client closes;
 * bounded by LINGER_MS. */
static void conn_finish(struct edge_conn *c, const char *end)
{
    if (c->closing || c->st == ST_FINISH)
        return;
    if (!c->end)
        c->end = end;
    c->st = ST_FINISH;
    /* Keep reading (and dropping) what the client still sends until it closes: closing a
     * socket with unread data makes the kernel send a reset, which can destroy our last PDU
     * (A-ABORT, A-ASSOCIATE-RJ) before the client has read it. */
    uv_read_stop((uv_stream_t *)&c->down);
    if (uv_read_start((uv_stream_t *)&c->down, on_alloc, on_down_read) < 0) {
        conn_close(c);
        return;
    }
    if (c->tls && tls_conn_is_ready(c->tls) && tls_conn_shutdown(c->tls) < 0) {
        conn_close(c);
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
        conn_close(c); /* the client side cannot even be shut down: nothing to wait for */
        return;
    }
    c->shutdowns++;
    uv_timer_start(&c->timer, on_linger, LINGER_MS, 0);
}

/* ---------------------------------------------------------------- writing */

static void on_write(uv_write_t *req, int status);
static void upstream_lost(struct edge_conn *c, int status);

/* Send buf[0..n) on s; takes buf when owned (else copies what cannot go out at once). */
static int send_raw(struct edge_conn *c, uv_tcp_t *s, uint8_t *buf, size_t n, bool owned)
{
    uv_stream_t *st = (uv_stream_t *)s;
    size_t off = 0;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)n);
    int w = uv_try_write(st, &b, 1);
    if (w > 0)
        off = (size_t)w;
    else if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS) {
        if (owned)
            free(buf);
        return w;
    }
    if (off == n) {
        if (owned)
            free(buf);
        return 0;
    }
    size_t rest = n - off;
    struct wreq *wr = malloc(sizeof *wr);
    uint8_t *data = owned ? buf : malloc(rest);
    if (!wr || !data) {
        free(wr);
        free(data); /* buf itself when owned */
        return ERR_NOMEM;
    }
    uint8_t *from = data;
    if (owned)
        from = buf + off;
    else
        memcpy(data, buf + off, rest);
    wr->c = c;
    wr->buf = data;
    b = uv_buf_init((char *)from, (unsigned)rest);
    int rc = uv_write(&wr->req, st, &b, 1, on_write);
    if (rc < 0) {
        free(data);
        free(wr);
        return rc;
    }
    return 0;
}

static int down_out(void *arg, uint8_t *buf, size_t n)
{
    struct edge_conn *c = arg;
    return send_raw(c, &c->down, buf, n, true);
}

static int up_out(void *arg, uint8_t *buf, size_t n)
{
    struct edge_conn *c = arg;
    return send_raw(c, &c->up, buf, n, true);
}

static size_t queued(uv_tcp_t *s)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)s);
}

static void on_down_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)g_readbuf, sizeof g_readbuf);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct edge_conn *c = wr->c;
    uv_stream_t *h = req->handle;
    free(wr->buf);
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        if (c->st == ST_SPLICE && h == (uv_stream_t *)&c->up)
            upstream_lost(c, status);
        else if (c->st != ST_FINISH)
            conn_finish(c, "write_failed");
        return;
    }
    uint32_t low = c->e->cfg->low_water;
    if (h == (uv_stream_t *)&c->up && c->down_paused && queued(&c->up) <= low) {
        c->down_paused = false;
        if (c->st == ST_SPLICE)
            uv_read_start((uv_stream_t *)&c->down, on_alloc, on_down_read);
    } else if (h == (uv_stream_t *)&c->down && c->up_paused && queued(&c->down) <= low) {
        c->up_paused = false;
        if (c->st == ST_SPLICE)
            uv_read_start((uv_stream_t *)&c->up, on_alloc, on_up_read);
    }
}

/* Encode an A-ABORT (service provider, reason 0) and send it to the modality or upstream, but
 * only between two PDUs of that direction. */
static void inject_abort(struct edge_conn *c, bool to_down)
{
    struct pdu_follow *f = to_down ? &c->f_down : &c->f_up;
    if (!c->followers || !pdu_follow_at_boundary(f)) {
        /* a PDU of that direction is half relayed: an A-ABORT now would be read as its rest,
         * so the peer learns of the loss from the transport closing instead */
        struct logb lb;
        if (log_begin(&lb, LOG_INFO, "abort_not_injected")) {
            log_conn(&lb, c);
            log_str(&lb, "to", to_down ? "client" : "upstream");
            log_str(&lb, "why", "mid_pdu");
            log_end(&lb);
        }
        return;
    }
    struct wbuf b;
    wbuf_init(&b, 16);
    int rc = ul_encode_abort(&b, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED);
    if (rc == 0) {
        if (to_down)
            rc = tls_conn_write(c->tls, b.p, b.len);
        else if (c->up_tls)
            rc = tls_conn_write(c->up_tls, b.p, b.len);
        else
            rc = send_raw(c, &c->up, b.p, b.len, false);
    }
    if (rc < 0) /* we close next anyway: the peer then sees the transport go */
        log_msg(LOG_DEBUG, "abort_not_sent", err_str(rc));
    wbuf_cleanup(&b);
}

static void send_pdu_down(struct edge_conn *c, struct wbuf *b)
{
    int rc = b->err ? b->err : tls_conn_write(c->tls, b->p, b->len);
    if (rc < 0) /* we close after it anyway */
        log_msg(LOG_DEBUG, "answer_not_sent", err_str(rc));
    wbuf_cleanup(b);
}

static void refuse(struct edge_conn *c, uint8_t result, uint8_t source, uint8_t reason,
                   const char *why, const struct adm_decision *d)
{
    audit_decision(c, "reject", why, d);
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_assoc_rj(&b, result, source, reason) < 0)
        b.err = ERR_NOMEM;
    send_pdu_down(c, &b);
    conn_finish(c, "rejected");
}

static void abort_down(struct edge_conn *c, uint8_t reason, const char *why,
                       const struct adm_decision *d)
{
    audit_decision(c, "abort", why, d);
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_abort(&b, UL_ABORT_SRC_PROVIDER, reason) < 0)
        b.err = ERR_NOMEM;
    send_pdu_down(c, &b);
    conn_finish(c, "aborted");
}

/* ---------------------------------------------------------------- splice */

/* The upstream went away (closed, reset, a write failed) in the middle of an association. */
static void upstream_lost(struct edge_conn *c, int status)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "upstream_lost")) {
        log_conn(&lb, c);
        log_str(&lb, "route", c->route ? c->route->name : "");
        log_str(&lb, "err", status_str(status));
        log_end(&lb);
    }
    inject_abort(c, true); /* PS3.8: the modality learns of the loss as an A-ABORT */
    conn_finish(c, "upstream_lost");
}

static void protocol_violation(struct edge_conn *c, bool from_down, const struct pdu_follow *f,
                               int rc)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "pdu_refused")) {
        log_conn(&lb, c);
        log_str(&lb, "from", from_down ? "client" : "upstream");
        log_u64(&lb, "pdu_type", f->type);
        log_str(&lb, "why", rc == ERR_LIMIT ? "over the maximum length"
                                            : "PDU type not allowed here");
        log_u64(&lb, "max_body", f->max_body);
        log_end(&lb);
    }
    /* the direction that broke the rules is mid-PDU: only the other one can get an A-ABORT */
    inject_abort(c, !from_down);
    conn_finish(c, "aborted_pdu_limit");
}

static void after_ac(struct edge_conn *c)
{
    struct pdu_follow *f = &c->f_down;
    f->keep_first = false;
    if (f->saw_ac && f->first.err == 0 && f->first.len >= UL_HDR_LEN) {
        struct ul_assoc_ac *ac = calloc(1, sizeof *ac);
        struct rd body = rd_make(f->first.p + UL_HDR_LEN, f->first.len - UL_HDR_LEN);
        if (ac && ul_parse_assoc_ac(&body, ac) == 0) {
            uint32_t cap = c->e->cfg->max_pdu;
            uint32_t m = ac->ui.has_max_len ? ac->ui.max_len : 0;
            c->f_up.max_body = m == 0 || m > cap ? cap : m; /* PS3.8 D.1: 0 is unlimited */
        }
        free(ac);
    }
    wbuf_cleanup(&f->first);
}

static void pause_if_full(struct edge_conn *c, bool dst_up)
{
    uint32_t high = c->e->cfg->high_water;
    if (dst_up && !c->down_paused && queued(&c->up) > high) {
        c->down_paused = true;
        uv_read_stop((uv_stream_t *)&c->down);
    } else if (!dst_up && !c->up_paused && queued(&c->down) > high) {
        c->up_paused = true;
        uv_read_stop((uv_stream_t *)&c->up);
    }
}

/* Plaintext for a plain-TCP upstream is gathered over one read of the modality's socket (one
 * TLS record at a time comes out of OpenSSL) and written with one call: one loop, one owner. */
static uint8_t g_upbuf[256 * 1024];
static size_t g_up_len;
static struct edge_conn *g_up_owner;

static int flush_up(void)
{
    struct edge_conn *c = g_up_owner;
    size_t n = g_up_len;
    g_up_len = 0;
    g_up_owner = NULL;
    if (!c || n == 0 || c->closing || c->st == ST_FINISH)
        return 0;
    int rc = send_raw(c, &c->up, g_upbuf, n, false);
    if (rc < 0) {
        upstream_lost(c, rc);
        return CONN_STOP;
    }
    pause_if_full(c, true);
    return 0;
}

/* Plaintext from the modality, during the splice. */
static int to_up(struct edge_conn *c, const uint8_t *p, size_t n)
{
    int frc = pdu_follow_feed(&c->f_up, p, n);
    if (frc < 0) {
        protocol_violation(c, true, &c->f_up, frc);
        return CONN_STOP;
    }
    c->bytes_up += n;
    metric_add(c->e->m.bytes_to_upstream, n);
    int rc;
    if (c->up_tls) {
        rc = tls_conn_write(c->up_tls, p, n);
    } else {
        if ((g_up_owner && g_up_owner != c) || g_up_len + n > sizeof g_upbuf)
            TRY(flush_up());
        if (n > sizeof g_upbuf) /* send_raw only reads a buffer it does not own */
            rc = send_raw(c, &c->up, (uint8_t *)(uintptr_t)p, n, false);
        else {
            memcpy(g_upbuf + g_up_len, p, n);
            g_up_len += n;
            g_up_owner = c;
            return 0; /* flush_up() sends it, and checks the queue */
        }
    }
    if (rc < 0) {
        upstream_lost(c, rc);
        return CONN_STOP;
    }
    pause_if_full(c, true);
    return 0;
}

/* Plaintext from upstream. */
static int to_down(struct edge_conn *c, const uint8_t *p, size_t n)
{
    int frc = pdu_follow_feed(&c->f_down, p, n);
    if (frc < 0) {
        protocol_violation(c, false, &c->f_down, frc);
        return CONN_STOP;
    }
    if (c->f_down.keep_first && pdu_follow_first_done(&c->f_down))
        after_ac(c);
    c->bytes_down += n;
    metric_add(c->e->m.bytes_to_client, n);
    if (tls_conn_write(c->tls, p, n) < 0) {
        conn_finish(c, "client_write_failed");
        return CONN_STOP;
    }
    pause_if_full(c, false);
    return 0;
}

static void on_timer(uv_timer_t *t);

static void begin_splice(struct edge_conn *c)
{
    struct edge *e = c->e;
    c->st = ST_SPLICE;
    c->last_io = uv_now(e->loop);
    uv_timer_start(&c->timer, on_timer,
                   e->cfg->idle_ms < TRIM_AFTER_MS ? e->cfg->idle_ms : TRIM_AFTER_MS, 0);
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
    int rc = to_up(c, rq.p, rq.len);
    wbuf_cleanup(&rq);
    if (rc == 0)
        rc = flush_up();
    if (rc < 0)
        return;
    if (!c->down_paused)
        uv_read_start((uv_stream_t *)&c->down, on_alloc, on_down_read);
}

/* ---------------------------------------------------------------- upstream */

static void upstream_failed(struct edge_conn *c, const char *why, const char *detail)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "upstream_failed")) {
        log_conn(&lb, c);
        log_str(&lb, "route", c->route->name);
        log_str(&lb, "upstream", c->route->upstream);
        log_str(&lb, "reason", why);
        log_str(&lb, "detail", detail);
        log_end(&lb);
    }
    /* not yet associated: the modality gets a transient rejection (PS3.8 9.3.4) */
    if (c->in_assoc_count) {
        c->in_assoc_count = false;
        c->e->n_assocs--;
        metric_gauge_add(c->e->m.assocs_active, -1);
    }
    c->up_connected = false; /* no shutdown on a half-made upstream: it is just closed */
    refuse(c, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_CONGESTION, why, NULL);
}

static int up_plain(void *arg, const uint8_t *p, size_t n)
{
    struct edge_conn *c = arg;
    if (c->st != ST_SPLICE)
        return c->st == ST_FINISH ? CONN_STOP : ERR_UNEXPECTED;
    return to_down(c, p, n);
}

static int up_ready(void *arg)
{
    struct edge_conn *c = arg;
    begin_splice(c);
    return c->st == ST_SPLICE ? 0 : CONN_STOP;
}

static void up_end(struct edge_conn *c, int status);

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct edge_conn *c = s->data;
    (void)buf;
    if (c->closing || c->st == ST_FINISH || nread == 0)
        return;
    if (nread < 0) {
        up_end(c, (int)nread);
        return;
    }
    c->last_io = uv_now(c->e->loop);
    const uint8_t *p = (const uint8_t *)buf->base;
    int rc;
    if (c->up_tls) {
        rc = tls_conn_feed(c->up_tls, p, (size_t)nread);
        if (rc == ERR_TLS && c->st == ST_UP_TLS) {
            upstream_failed(c, "upstream_tls_failed", tls_conn_detail(c->up_tls));
            return;
        }
    } else {
        rc = c->st == ST_SPLICE ? to_down(c, p, (size_t)nread) : ERR_UNEXPECTED;
    }
    if (rc == CONN_STOP || rc == 0)
        return;
    up_end(c, rc == TLS_CONN_EOF ? UV_EOF : rc);
}

static void start_up_stream(struct edge_conn *c)
{
    struct edge *e = c->e;
    const struct policy_route *rt = c->route;
    c->up_connected = true;
    uv_tcp_nodelay(&c->up, 1);
    if (e->cfg->keepalive_s)
        uv_tcp_keepalive(&c->up, 1, e->cfg->keepalive_s);
    int rc = uv_read_start((uv_stream_t *)&c->up, on_alloc, on_up_read);
    if (rc == 0 && rt->proxy_protocol) {
        struct wbuf b;
        wbuf_init(&b, PROXY2_MAX_LEN);
        rc = proxy2_encode(&b, (const struct sockaddr *)&c->peer,
                           (const struct sockaddr *)&c->local, c->cn[0] ? c->cn : NULL, c->fp,
                           c->client_id);
        if (rc == 0)
            rc = send_raw(c, &c->up, b.p, b.len, false);
        wbuf_cleanup(&b);
    }
    if (rc < 0) {
        upstream_failed(c, "upstream_write_failed", err_str(rc));
        return;
    }
    if (rt->tls) {
        struct tls_conn_cbs cbs = {.out = up_out, .plain = up_plain, .ready = up_ready, .arg = c};
        c->up_tls = tls_conn_new(rt->ctx, true, rt->tls_opts.server_name, &cbs);
        if (!c->up_tls || tls_conn_start(c->up_tls) < 0) {
            upstream_failed(c, "upstream_tls_failed", "cannot start TLS");
            return;
        }
        c->st = ST_UP_TLS;
        return;
    }
    begin_splice(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct edge_conn *c = req->data;
    if (c->closing || c->st != ST_CONNECT)
        return;
    if (status < 0) {
        upstream_failed(c, "upstream_unreachable", uv_strerror(status));
        return;
    }
    start_up_stream(c);
}

static void connect_to(struct edge_conn *c, const struct sockaddr *sa)
{
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->up, sa, on_connect);
    if (rc < 0)
        upstream_failed(c, "upstream_unreachable", uv_strerror(rc));
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct edge_conn *c = req->data;
    if (c->closing || c->st != ST_CONNECT) {
        uv_freeaddrinfo(res);
        if (--c->live == 0)
            conn_free(c);
        return;
    }
    c->live--;
    if (status < 0 || !res)
        upstream_failed(c, "upstream_unresolved", uv_strerror(status));
    else
        connect_to(c, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void start_upstream(struct edge_conn *c)
{
    struct edge *e = c->e;
    c->st = ST_CONNECT;
    uv_timer_start(&c->timer, on_timer, e->cfg->connect_ms, 0);
    int rc = uv_tcp_init(e->loop, &c->up);
    if (rc < 0) {
        upstream_failed(c, "upstream_unreachable", uv_strerror(rc));
        return;
    }
    c->up.data = c;
    c->up_init = true;
    c->live++;
    struct sockaddr_storage ss;
    if (addr_parse(c->route->upstream, &ss) == 0) {
        connect_to(c, (const struct sockaddr *)&ss);
        return;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", c->route->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    rc = uv_getaddrinfo(e->loop, &c->gai, on_gai, c->route->host, port, &hints);
    if (rc < 0)
        upstream_failed(c, "upstream_unresolved", uv_strerror(rc));
    else
        c->live++;
}

/* ---------------------------------------------------------------- admission */

static void admit(struct edge_conn *c, const struct adm_decision *d)
{
    struct edge *e = c->e;
    c->client = d->client;
    c->route = &c->gen->policy->routes[d->client->route];
    snprintf(c->client_id, sizeof c->client_id, "%s", d->client->id);
    const char *why = NULL;
    int rc = limits_client_take(&e->limits, c->client_id, uv_now(e->loop),
                                d->client->max_associations, d->client->max_per_minute, &why);
    if (rc < 0) {
        /* PS3.8 9.3.4: transient, service-provider (presentation), local limit exceeded */
        refuse(c, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT,
               rc == ERR_LIMIT ? why : "out_of_memory", d);
        return;
    }
    c->slot_taken = true;
    c->in_assoc_count = true;
    c->t_admit = uv_now(e->loop);
    c->rq_max_len = d->max_len;
    e->n_assocs++;
    metric_gauge_add(e->m.assocs_active, 1);
    audit_decision(c, "admit", "policy_match", d);
    uv_read_stop((uv_stream_t *)&c->down); /* nothing should come before the A-ASSOCIATE-AC */
    start_upstream(c);
}

static int decide(struct edge_conn *c)
{
    struct adm_decision d;
    if (ul_frame(c->rq.p, c->rq.len, UL_PRE_ASSOC_MAX, &(uint8_t){0}, &(uint32_t){0}) == 0 &&
        c->rq.len > 0 && c->rq.p[0] == UL_ASSOC_RQ)
        return 0; /* not whole yet (admission_decide says the same, with more work) */
    /* the identity is read again from the certificate OpenSSL keeps: an idle connection
     * holds no copy of it (~9 KiB) while it waits for its request */
    struct tls_peer_id *pid = calloc(1, sizeof *pid);
    if (!pid || tls_peer_id_get(tls_conn_ssl(c->tls), pid) < 0) {
        free(pid);
        abort_down(c, UL_ABORT_NOT_SPECIFIED, "out_of_memory", NULL);
        return CONN_STOP;
    }
    if (c->gen != c->e->gen) {
        /* reloaded since this connection was accepted: it is admitted by the new set (its
         * policy, CA bundle and CRLs), not the one it shook hands under */
        long vr;
        if (tls_peer_reverify(tls_conn_ssl(c->tls), c->e->gen->server, &vr) < 0) {
            free(pid);
            abort_down(c, UL_ABORT_NOT_SPECIFIED, tls_fail_reason(vr, 0), NULL);
            return CONN_STOP;
        }
        c->e->gen->refs++;
        edge_gen_unref(c->gen);
        c->gen = c->e->gen;
    }
    enum adm_verdict v = admission_decide(c->gen->policy, pid, c->rq.p, c->rq.len, &d);
    free(pid);
    if (v == ADM_NEED_MORE)
        return 0;
    uv_timer_stop(&c->timer);
    memcpy(c->calling, d.calling, sizeof c->calling);
    memcpy(c->called, d.called, sizeof c->called);
    if (d.client) {
        snprintf(c->client_id, sizeof c->client_id, "%s", d.client->id);
        c->route = &c->gen->policy->routes[d.client->route];
    }
    switch (v) {
    case ADM_ABORT: abort_down(c, d.reason, d.why, &d); return CONN_STOP;
    case ADM_REJECT: refuse(c, d.result, d.source, d.reason, d.why, &d); return CONN_STOP;
    case ADM_ADMIT: admit(c, &d); return c->st == ST_FINISH ? CONN_STOP : 0;
    default: return CONN_STOP;
    }
}

static int down_plain(void *arg, const uint8_t *p, size_t n)
{
    struct edge_conn *c = arg;
    switch (c->st) {
    case ST_RQ:
    case ST_CONNECT:
    case ST_UP_TLS:
        wbuf_put(&c->rq, p, n);
        if (c->rq.err) {
            abort_down(c, UL_ABORT_UNEXPECTED_PDU, "too_much_before_accept", NULL);
            return CONN_STOP;
        }
        return c->st == ST_RQ ? decide(c) : 0;
    case ST_SPLICE: return to_up(c, p, n);
    default: return CONN_STOP;
    }
}

static int down_ready(void *arg)
{
    struct edge_conn *c = arg;
    struct edge *e = c->e;
    metric_inc(e->m.handshakes_ok);
    struct tls_peer_id *pid = calloc(1, sizeof *pid);
    if (!pid || tls_peer_id_get(tls_conn_ssl(c->tls), pid) < 0) {
        free(pid);
        conn_close(c);
        return CONN_STOP;
    }
    snprintf(c->cn, sizeof c->cn, "%s", pid->cn);
    snprintf(c->subject, sizeof c->subject, "%s", pid->subject);
    snprintf(c->serial, sizeof c->serial, "%s", pid->serial);
    memcpy(c->fp, pid->fp, sizeof c->fp);
    memcpy(c->fp_hex, pid->fp_hex, sizeof c->fp_hex);
    free(pid);
    struct logb lb;
    if (log_begin(&lb, LOG_DEBUG, "tls_ok")) {
        log_conn(&lb, c);
        log_identity(&lb, c);
        log_str(&lb, "version", SSL_get_version(tls_conn_ssl(c->tls)));
        log_str(&lb, "cipher", SSL_get_cipher_name(tls_conn_ssl(c->tls)));
        log_end(&lb);
    }
    c->st = ST_RQ;
    uv_timer_start(&c->timer, on_timer, e->cfg->assoc_rq_ms, 0);
    return 0;
}

/* ---------------------------------------------------------------- ends */

static bool assoc_over(const struct edge_conn *c)
{
    return c->followers && (c->f_down.saw_release_rp || c->f_down.saw_abort ||
                            c->f_up.saw_abort || c->f_down.saw_rj);
}

static const char *end_name(const struct edge_conn *c)
{
    if (c->f_down.saw_release_rp)
        return "released";
    if (c->f_down.saw_rj)
        return "rejected_upstream";
    if (c->f_up.saw_abort)
        return "aborted_by_client";
    return "aborted_by_upstream";
}

static void up_end(struct edge_conn *c, int status)
{
    if (c->st == ST_CONNECT || c->st == ST_UP_TLS) {
        upstream_failed(c, "upstream_closed", status_str(status));
        return;
    }
    if (assoc_over(c)) {
        conn_finish(c, end_name(c));
        return;
    }
    upstream_lost(c, status);
}

static void handshake_failed(struct edge_conn *c, int status)
{
    bool tls = status == ERR_TLS;
    const char *reason = tls ? tls_conn_reason(c->tls) : "closed_in_handshake";
    int64_t held = limits_log_allow(&c->e->limits, (const struct sockaddr *)&c->peer,
                                    uv_now(c->e->loop));
    struct logb lb;
    if (held >= 0 && log_begin(&lb, tls ? LOG_WARN : LOG_INFO, "tls_refused")) {
        log_conn(&lb, c);
        log_str(&lb, "reason", reason);
        log_str(&lb, "detail", tls ? tls_conn_detail(c->tls) : status_str(status));
        if (held > 0)
            log_u64(&lb, "suppressed", (uint64_t)held); /* lines held back for this source */
        log_end(&lb);
    }
    count_labelled(c->e, "dicom_edge_handshakes_total", "TLS handshakes by outcome and reason",
                   "result", "failed", reason);
    conn_finish(c, "tls_refused");
}

static void down_end(struct edge_conn *c, int status)
{
    switch (c->st) {
    case ST_HANDSHAKE: handshake_failed(c, status); return;
    case ST_SPLICE:
        if (!assoc_over(c)) {
            struct logb lb;
            if (log_begin(&lb, LOG_WARN, "client_lost")) {
                log_conn(&lb, c);
                log_str(&lb, "err", status_str(status));
                log_end(&lb);
            }
            inject_abort(c, false);
            conn_finish(c, "client_lost");
        } else {
            conn_finish(c, end_name(c));
        }
        return;
    case ST_FINISH: return;
    default: conn_close(c); return; /* before or during admission: nothing to tell anyone */
    }
}

static void on_down_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct edge_conn *c = s->data;
    if (c->closing || nread == 0)
        return;
    if (c->st == ST_FINISH) {
        if (nread < 0)
            conn_close(c);
        return;
    }
    if (nread < 0) {
        down_end(c, (int)nread);
        return;
    }
    c->last_io = uv_now(c->e->loop);
    int rc = tls_conn_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
    int frc = flush_up(); /* before any end: a last PDU (release, abort) goes out first */
    if (rc == CONN_STOP || frc == CONN_STOP)
        return;
    if (rc == 0) {
        /* What goes to the client is bounded by pausing upstream reads at high_water, except
         * what OpenSSL answers by itself (KeyUpdate, alerts): a client that provokes those and
         * never reads would grow this queue without end. */
        if (c->closing || c->st == ST_FINISH ||
            queued(&c->down) <= (size_t)c->e->cfg->high_water * 2u + sizeof g_readbuf)
            return;
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "client_not_reading")) {
            log_conn(&lb, c);
            log_u64(&lb, "queued", queued(&c->down));
            log_end(&lb);
        }
        rc = UV_ENOBUFS;
    }
    down_end(c, rc == TLS_CONN_EOF ? UV_EOF : rc);
}

static void on_timer(uv_timer_t *t)
{
    struct edge_conn *c = t->data;
    struct edge *e = c->e;
    const char *ev = NULL;
    switch (c->st) {
    case ST_HANDSHAKE: ev = "handshake_timeout"; break;
    case ST_RQ: ev = "assoc_rq_timeout"; break;
    case ST_CONNECT:
    case ST_UP_TLS: upstream_failed(c, "upstream_timeout", "connect_ms passed"); return;
    case ST_SPLICE: {
        uint64_t idle = uv_now(e->loop) - c->last_io;
        if (idle >= TRIM_AFTER_MS) { /* quiet: drop the TLS buffers bulk traffic left */
            tls_conn_trim(c->tls);
            if (c->up_tls)
                tls_conn_trim(c->up_tls);
        }
        if (idle < e->cfg->idle_ms) {
            uint64_t left = e->cfg->idle_ms - idle;
            uv_timer_start(&c->timer, on_timer, left < TRIM_AFTER_MS ? left : TRIM_AFTER_MS, 0);
            return;
        }
        ev = "idle_timeout";
        break;
    }
    case ST_FINISH: conn_close(c); return;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, ev)) {
        log_conn(&lb, c);
        log_end(&lb);
    }
    if (c->st == ST_SPLICE) {
        inject_abort(c, true);
        inject_abort(c, false);
        conn_finish(c, "idle_timeout");
    } else {
        conn_close(c); /* PS3.8 ARTIM expiry before association: close the transport */
    }
}

/* ---------------------------------------------------------------- accept */

/* A connection closed before it was set up: only its first handle lives. */
static void on_bare_closed(uv_handle_t *h)
{
    free(h->data);
}

static void refuse_conn(struct edge *e, uv_tcp_t *t, const char *why)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int len = sizeof ss;
    char peer[64] = "?";
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) == 0)
        addr_format((const struct sockaddr *)&ss, peer, sizeof peer);
    int64_t held = limits_log_allow(&e->limits, (const struct sockaddr *)&ss, uv_now(e->loop));
    struct logb lb;
    if (held >= 0 && log_begin(&lb, LOG_WARN, "conn_refused")) {
        log_str(&lb, "peer", peer);
        log_str(&lb, "reason", why);
        if (held > 0)
            log_u64(&lb, "suppressed", (uint64_t)held);
        log_end(&lb);
    }
    metric_inc(strcmp(why, "per_source_rate") == 0 ? e->m.conns_refused_rate :
                                                     e->m.conns_refused_limit);
    uv_close((uv_handle_t *)t, on_bare_closed);
}

static void on_connection(uv_stream_t *srv, int status)
{
    struct edge *e = srv->data;
    if (status < 0) {
        log_msg(LOG_WARN, "accept_failed", uv_strerror(status));
        return;
    }
    struct edge_conn *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(e->loop, &c->down) < 0) {
        free(c);
        log_msg(LOG_ERROR, "accept_failed", "out of memory");
        return;
    }
    c->down.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->down) < 0) {
        uv_close((uv_handle_t *)&c->down, on_bare_closed);
        return;
    }
    struct sockaddr_storage peer;
    int len = sizeof peer;
    if (uv_tcp_getpeername(&c->down, (struct sockaddr *)&peer, &len) < 0)
        memset(&peer, 0, sizeof peer);
    const char *why = NULL;
    if (e->draining)
        why = "draining";
    else if (e->n_conns >= e->cfg->max_connections)
        why = "max_connections";
    else if (!limits_source_allow(&e->limits, (const struct sockaddr *)&peer, uv_now(e->loop),
                                  e->cfg->per_source_per_minute))
        why = "per_source_rate";
    if (why) {
        refuse_conn(e, &c->down, why);
        return;
    }
    c->e = e;
    c->id = ++e->next_id;
    c->peer = peer;
    addr_format((const struct sockaddr *)&peer, c->peer_s, sizeof c->peer_s);
    len = sizeof c->local;
    if (uv_tcp_getsockname(&c->down, (struct sockaddr *)&c->local, &len) < 0)
        c->local = e->listen_addr;
    c->down.data = c;
    c->live = 1;
    uv_timer_init(e->loop, &c->timer);
    c->timer.data = c;
    c->live++;
    c->gen = e->gen;
    c->gen->refs++;
    wbuf_init(&c->rq, RQ_BUF_MAX);
    c->next = e->conns;
    if (e->conns)
        e->conns->prev = c;
    e->conns = c;
    e->n_conns++;
    metric_gauge_add(e->m.conns_active, 1);
    c->t_accept = c->last_io = uv_now(e->loop);
    uv_tcp_nodelay(&c->down, 1);
    if (e->cfg->keepalive_s)
        uv_tcp_keepalive(&c->down, 1, e->cfg->keepalive_s);
    struct tls_conn_cbs cbs = {.out = down_out, .plain = down_plain, .ready = down_ready,
                               .arg = c};
    c->tls = tls_conn_new(c->gen->server, false, NULL, &cbs);
    if (!c->tls || uv_read_start((uv_stream_t *)&c->down, on_alloc, on_down_read) < 0) {
        log_msg(LOG_ERROR, "accept_failed", "cannot start TLS");
        conn_close(c);
        return;
    }
    c->st = ST_HANDSHAKE;
    uv_timer_start(&c->timer, on_timer, e->cfg->handshake_ms, 0);
}

int proxy_start(struct edge *e)
{
    struct metrics *m = e->metrics;
    struct edge_metrics *em = &e->m;
    em->conns_active = metrics_gauge(m, "dicom_edge_connections_active",
                                     "Client connections open (any phase)", NULL);
    em->assocs_active = metrics_gauge(m, "dicom_edge_associations_active",
                                      "Admitted associations being proxied", NULL);
    em->handshakes_ok = metrics_counter(m, "dicom_edge_handshakes_total",
                                        "TLS handshakes by outcome and reason",
                                        "result=\"ok\",reason=\"none\"");
    em->bytes_to_upstream = metrics_counter(m, "dicom_edge_bytes_total",
                                            "Plaintext bytes proxied", "dir=\"to_upstream\"");
    em->bytes_to_client = metrics_counter(m, "dicom_edge_bytes_total",
                                          "Plaintext bytes proxied", "dir=\"to_client\"");
    em->conns_refused_limit = metrics_counter(m, "dicom_edge_connections_refused_total",
                                              "Connections closed at accept",
                                              "reason=\"max_connections\"");
    em->conns_refused_rate = metrics_counter(m, "dicom_edge_connections_refused_total",
                                             "Connections closed at accept",
                                             "reason=\"per_source_rate\"");
    if (!em->conns_active || !em->assocs_active || !em->handshakes_ok ||
        !em->bytes_to_upstream || !em->bytes_to_client || !em->conns_refused_limit ||
        !em->conns_refused_rate)
        return ERR_NOMEM;
    int rc = addr_parse(e->cfg->listen, &e->listen_addr);
    if (rc < 0)
        return rc;
    TRY(uv_tcp_init(e->loop, &e->listener));
    e->listener.data = e;
    e->listening = true;
    rc = uv_tcp_bind(&e->listener, (const struct sockaddr *)&e->listen_addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&e->listener, 511, on_connection);
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, "listen_failed")) {
            log_str(&lb, "addr", e->cfg->listen);
            log_str(&lb, "err", uv_strerror(rc));
            log_end(&lb);
        }
    }
    return rc;
}

void proxy_drain(struct edge *e)
{
    e->draining = true;
    if (e->listening) {
        e->listening = false;
        uv_close((uv_handle_t *)&e->listener, NULL);
    }
    for (struct edge_conn *c = e->conns; c; c = c->next) {
        if (c->st < ST_CONNECT)
            conn_close(c);
    }
    if (e->n_conns == 0 && e->on_empty)
        e->on_empty(e);
}

void proxy_abort_all(struct edge *e)
{
    for (struct edge_conn *c = e->conns; c; c = c->next) {
        if (c->st == ST_SPLICE) {
            inject_abort(c, true);
            inject_abort(c, false);
            conn_finish(c, "aborted_shutdown");
        } else {
            conn_close(c);
        }
    }
}
