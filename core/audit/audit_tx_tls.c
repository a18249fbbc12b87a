/* audit_tx_tls: one repository's TLS connection (RFC 5425): mutual TLS over tls_conn, octet-
 * counted frames, and the commit rule for TLS (acknowledged by the peer's TCP, then still up
 * ack_grace_ms later). */
#include "audit_tx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "audit_qrec.h"
#include "audit_tx_int.h"
#include "common/log.h"
#include "net/tls_conn.h"
#include "syslog_frame.h"

/* ------------------------------------------------------------------ TLS connection */

static void on_conn_closed(uv_handle_t *h)
{
    struct tx_conn *c = h->data;
    struct audit_tx *t = c->t;
    tls_conn_free(c->tls);
    free(c);
    t->live--;
    audit_tx_maybe_free(t);
}

void audit_tx_conn_fail(struct tx_conn *c, const char *what, const char *detail)
{
    struct audit_tx *t = c->t;
    if (c->dead)
        return;
    c->dead = true;
    if (t->conn == c) {
        t->conn = NULL;
        if (!t->closing) {
            audit_tx_report_failure(t, what, detail); /* before set_up: "down" or "unreachable" */
            audit_tx_rewind_to_commit(t);
        }
        if (t->was_up)
            audit_tx_set_up(t, false);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (!t->closing)
        audit_tx_schedule_retry(t);
}

static void on_written_n(uv_write_t *req, int status);

static int tls_out(void *arg, uint8_t *buf, size_t n)
{
    struct tx_conn *c = arg;
    struct write_req *w = malloc(sizeof *w);
    if (!w) {
        free(buf);
        return ERR_NOMEM;
    }
    w->conn = c;
    w->buf = uv_buf_init((char *)buf, (unsigned)n);
    w->req.data = (void *)(uintptr_t)n;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written_n);
    if (rc < 0) {
        free(buf);
        free(w);
        return rc;
    }
    c->queued += n;
    return 0;
}

static void on_written_n(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct tx_conn *c = w->conn;
    size_t n = (size_t)(uintptr_t)req->data;
    free(w->buf.base);
    free(w);
    if (c->dead)
        return;
    if (status < 0) {
        audit_tx_conn_fail(c, "write_failed", uv_strerror(status));
        return;
    }
    c->written += n;
    audit_tx_pump(c->t);
}

static int tls_plain(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    (void)p;
    (void)n;
    return 0; /* a syslog receiver sends nothing back (RFC 5425); ignore whatever comes */
}

static int tls_ready(void *arg)
{
    struct tx_conn *c = arg;
    struct audit_tx *t = c->t;
    uv_timer_stop(&t->timer);
    t->st = TX_READY;
    t->backoff_ms = t->env.retry_min_ms;
    audit_tx_rewind_to_commit(t);
    audit_tx_set_up(t, true);
    audit_tx_pump(t);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct tx_conn *c = h->data;
    *buf = uv_buf_init((char *)c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct tx_conn *c = s->data;
    if (c->dead || nread == 0)
        return;
    if (nread < 0) {
        audit_tx_conn_fail(c, nread == UV_EOF ? "closed_by_repository" : "read_failed",
                           uv_strerror((int)nread));
        return;
    }
    int rc = tls_conn_feed(c->tls, c->rbuf, (size_t)nread);
    if (rc == TLS_CONN_EOF)
        audit_tx_conn_fail(c, "closed_by_repository", "close_notify");
    else if (rc < 0)
        audit_tx_conn_fail(c, c->t->st == TX_HANDSHAKE ? "tls_handshake_failed" : "tls_failed",
                           c->t->st == TX_HANDSHAKE ? tls_conn_reason(c->tls) : err_str(rc));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tx_conn *c = req->data;
    struct audit_tx *t = c->t;
    if (c->dead)
        return;
    if (status < 0) {
        audit_tx_conn_fail(c, "connect_failed", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    struct tls_conn_cbs cbs = {.out = tls_out, .plain = tls_plain, .ready = tls_ready, .arg = c};
    c->tls = tls_conn_new(t->ctx, true, t->repo.server_name, &cbs);
    if (!c->tls) {
        audit_tx_conn_fail(c, "tls_failed", "out of memory");
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0)
        rc = tls_conn_start(c->tls);
    if (rc < 0) {
        audit_tx_conn_fail(c, "tls_failed", err_str(rc));
        return;
    }
    t->st = TX_HANDSHAKE;
}

void audit_tx_connect_addr(struct audit_tx *t)
{
    struct tx_conn *c = calloc(1, sizeof *c);
    if (!c) {
        audit_tx_schedule_retry(t);
        return;
    }
    c->t = t;
    int rc = uv_tcp_init(t->env.loop, &c->tcp);
    if (rc < 0) {
        free(c);
        audit_tx_report_failure(t, "connect_failed", uv_strerror(rc));
        audit_tx_schedule_retry(t);
        return;
    }
    t->live++;
    c->tcp.data = c;
    c->creq.data = c;
    t->conn = c;
    t->st = TX_CONNECTING;
    uv_timer_start(&t->timer, audit_tx_on_timer, t->env.connect_timeout_ms,
                   0); /* connect + handshake */
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&t->addr, on_connect);
    if (rc < 0)
        audit_tx_conn_fail(c, "connect_failed", uv_strerror(rc));
}

bool audit_tx_send_tls(struct audit_tx *t, uint64_t seq)
{
    struct tx_conn *c = t->conn;
    wbuf_reset(&t->frame);
    if (syslog_frame_octet(&t->frame, t->rec.p, t->rec.len) < 0)
        return false;
    int rc = tls_conn_write(c->tls, t->frame.p, t->frame.len);
    if (rc < 0) {
        audit_tx_conn_fail(c, "write_failed", err_str(rc));
        return false;
    }
    audit_tx_fifo_push(t, seq, c->queued);
    return true;
}

/* Bytes the peer's TCP has acknowledged: written minus what the kernel still holds. */
static uint64_t tcp_acked(struct tx_conn *c)
{
    uv_os_fd_t fd;
    int unacked = 0;
#ifdef TIOCOUTQ
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, TIOCOUTQ, &unacked) == 0 &&
        unacked >= 0)
        return c->written > (uint64_t)unacked ? c->written - (uint64_t)unacked : 0;
#else
    (void)fd;
#endif
    (void)unacked;
    return c->written; /* no way to ask: "written" is the best we know */
}

void audit_tx_commit_tls(struct audit_tx *t)
{
    struct tx_conn *c = t->conn;
    if (!c || c->dead || t->st != TX_READY)
        return;
    uint64_t acked = tcp_acked(c);
    uint64_t now = uv_now(t->env.loop) + 1; /* never 0: 0 means "not acknowledged yet" */
    for (size_t i = 0; i < t->f_n; i++) {   /* note when each message was first seen acked */
        struct inflight *f = &t->fifo[(t->f_head + i) % FIFO_CAP];
        if (f->end > acked)
            break;
        if (!f->acked_ms)
            f->acked_ms = now;
    }
    uint64_t upto = 0, n = 0;
    struct inflight *f;
    while ((f = audit_tx_fifo_front(t)) != NULL && f->acked_ms &&
           now - f->acked_ms >= t->env.ack_grace_ms) {
        upto = f->seq + 1;
        n++;
        audit_tx_fifo_pop(t);
    }
    if (t->f_n == 0 && t->send_seq > upto)
        upto = t->send_seq; /* nothing in flight: skipped (lost) ones are done with too */
    if (upto)
        audit_tx_commit_to(t, upto, n);
}
