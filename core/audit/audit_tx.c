#include "audit_tx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"
#include "net/tls_conn.h"
#include "net/tls_ctx.h"
#include "audit_qrec.h"
#include "syslog_frame.h"

#define FIFO_CAP 1024u               /* messages in flight on one connection */
#define INFLIGHT_BYTES (512u * 1024u) /* ciphertext written but not yet completed */
#define UDP_INFLIGHT 32u
#define UDP_MAX 65507u               /* an IPv4 UDP payload */
#define READ_BUF 16384u

enum tx_state { TX_IDLE, TX_RESOLVING, TX_CONNECTING, TX_HANDSHAKE, TX_READY, TX_BACKOFF };

struct tx_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct tls_conn *tls;
    struct audit_tx *t;
    uint64_t queued;  /* ciphertext bytes handed to uv_write */
    uint64_t written; /* ciphertext bytes whose write completed */
    bool dead;
    uint8_t rbuf[READ_BUF];
};

struct inflight {
    uint64_t seq;
    uint64_t end;      /* TLS: ciphertext offset just past this message */
    uint64_t acked_ms; /* when TCP was first seen to have acknowledged it (0: not yet) */
};

struct write_req {
    uv_write_t req;
    uv_buf_t buf;
    struct tx_conn *conn;
};

struct udp_req {
    uv_udp_send_t req;
    struct audit_tx *t;
    unsigned gen;
    uint8_t data[];
};

struct audit_tx {
    struct audit_tx_env env;
    struct audit_repo_config repo;
    SSL_CTX *ctx;
    uv_timer_t timer;
    uv_udp_t udp;
    bool udp_init;
    uv_getaddrinfo_t gai;
    struct sockaddr_storage addr;
    struct tx_conn *conn;
    enum tx_state st;
    unsigned gen; /* UDP: a failure starts a new generation; older callbacks are ignored */
    uint64_t send_seq;
    struct inflight fifo[FIFO_CAP];
    size_t f_head, f_n;
    uint32_t backoff_ms;
    size_t udp_inflight;
    int live; /* handles and requests that must call back before t is freed */
    bool closing, was_up, warned;
    void (*done)(void *);
    void *done_arg;
    struct wbuf rec, frame;
    struct metric_gauge *m_up;
    struct metric_counter *m_sent, *m_skipped;
};

static void start_connect(struct audit_tx *t);
static void pump(struct audit_tx *t);

/* ------------------------------------------------------------------ bookkeeping */

static void maybe_free(struct audit_tx *t)
{
    if (!t->closing || t->live > 0)
        return;
    SSL_CTX_free(t->ctx);
    wbuf_cleanup(&t->rec);
    wbuf_cleanup(&t->frame);
    void (*done)(void *) = t->done;
    void *arg = t->done_arg;
    free(t);
    if (done)
        done(arg);
}

static struct inflight *fifo_front(struct audit_tx *t)
{
    return t->f_n ? &t->fifo[t->f_head] : NULL;
}

static void fifo_pop(struct audit_tx *t)
{
    t->f_head = (t->f_head + 1) % FIFO_CAP;
    t->f_n--;
}

static void fifo_push(struct audit_tx *t, uint64_t seq, uint64_t end)
{
    t->fifo[(t->f_head + t->f_n) % FIFO_CAP] = (struct inflight){seq, end, 0};
    t->f_n++;
}

static void set_up(struct audit_tx *t, bool up)
{
    if (t->m_up)
        metric_gauge_set(t->m_up, up ? 1 : 0);
    struct logb b;
    if (up && log_begin(&b, LOG_INFO, "audit_repository_up")) {
        log_str(&b, "repository", t->repo.name);
        log_end(&b);
    }
    t->was_up = up;
    if (up)
        t->warned = false;
}

/* Log a failure once per outage (the first after being up, or the first ever). */
static void report_failure(struct audit_tx *t, const char *what, const char *detail)
{
    struct logb b;
    if (!t->warned && log_begin(&b, LOG_WARN, t->was_up ? "audit_repository_down"
                                                         : "audit_repository_unreachable")) {
        log_str(&b, "repository", t->repo.name);
        log_str(&b, "reason", what);
        if (detail && detail[0])
            log_str(&b, "detail", detail);
        struct aq_stats st;
        aq_get_stats(t->env.q, &st);
        log_u64(&b, "backlog", st.tail - st.commit[t->env.reader]);
        log_end(&b);
    }
    t->warned = true;
}

static void commit_to(struct audit_tx *t, uint64_t seq, uint64_t delivered)
{
    if (seq > aq_committed(t->env.q, t->env.reader))
        aq_commit(t->env.q, t->env.reader, seq);
    if (delivered && t->m_sent)
        metric_add(t->m_sent, delivered);
}

/* Back to the last commit: what was in flight goes again on the next connection. */
static void rewind_to_commit(struct audit_tx *t)
{
    t->f_n = 0;
    t->f_head = 0;
    t->send_seq = aq_committed(t->env.q, t->env.reader);
}

static void on_timer(uv_timer_t *h);

static void schedule_retry(struct audit_tx *t)
{
    uint32_t d = t->backoff_ms;
    d = d - d / 5 + (uint32_t)rand() % (d / 5 * 2 + 1); /* +-20 % jitter */
    t->backoff_ms = t->backoff_ms >= t->env.retry_max_ms / 2 ? t->env.retry_max_ms
                                                             : t->backoff_ms * 2;
    t->st = TX_BACKOFF;
    uv_timer_start(&t->timer, on_timer, d, 0);
}

/* ------------------------------------------------------------------ TLS connection */

static void on_conn_closed(uv_handle_t *h)
{
    struct tx_conn *c = h->data;
    struct audit_tx *t = c->t;
    tls_conn_free(c->tls);
    free(c);
    t->live--;
    maybe_free(t);
}

static void conn_fail(struct tx_conn *c, const char *what, const char *detail)
{
    struct audit_tx *t = c->t;
    if (c->dead)
        return;
    c->dead = true;
    if (t->conn == c) {
        t->conn = NULL;
        if (!t->closing) {
            report_failure(t, what, detail); /* before set_up: "down" or "unreachable" */
            rewind_to_commit(t);
        }
        if (t->was_up)
            set_up(t, false);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (!t->closing)
        schedule_retry(t);
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
        conn_fail(c, "write_failed", uv_strerror(status));
        return;
    }
    c->written += n;
    pump(c->t);
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
    rewind_to_commit(t);
    set_up(t, true);
    pump(t);
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
        conn_fail(c, nread == UV_EOF ? "closed_by_repository" : "read_failed",
                  uv_strerror((int)nread));
        return;
    }
    int rc = tls_conn_feed(c->tls, c->rbuf, (size_t)nread);
    if (rc == TLS_CONN_EOF)
        conn_fail(c, "closed_by_repository", "close_notify");
    else if (rc < 0)
        conn_fail(c, c->t->st == TX_HANDSHAKE ? "tls_handshake_failed" : "tls_failed",
                  c->t->st == TX_HANDSHAKE ? tls_conn_reason(c->tls) : err_str(rc));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tx_conn *c = req->data;
    struct audit_tx *t = c->t;
    if (c->dead)
        return;
    if (status < 0) {
        conn_fail(c, "connect_failed", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    struct tls_conn_cbs cbs = {.out = tls_out, .plain = tls_plain, .ready = tls_ready, .arg = c};
    c->tls = tls_conn_new(t->ctx, true, t->repo.server_name, &cbs);
    if (!c->tls) {
        conn_fail(c, "tls_failed", "out of memory");
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0)
        rc = tls_conn_start(c->tls);
    if (rc < 0) {
        conn_fail(c, "tls_failed", err_str(rc));
        return;
    }
    t->st = TX_HANDSHAKE;
}

static void connect_addr(struct audit_tx *t)
{
    struct tx_conn *c = calloc(1, sizeof *c);
    if (!c) {
        schedule_retry(t);
        return;
    }
    c->t = t;
    int rc = uv_tcp_init(t->env.loop, &c->tcp);
    if (rc < 0) {
        free(c);
        report_failure(t, "connect_failed", uv_strerror(rc));
        schedule_retry(t);
        return;
    }
    t->live++;
    c->tcp.data = c;
    c->creq.data = c;
    t->conn = c;
    t->st = TX_CONNECTING;
    uv_timer_start(&t->timer, on_timer, t->env.connect_timeout_ms, 0); /* connect + handshake */
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&t->addr, on_connect);
    if (rc < 0)
        conn_fail(c, "connect_failed", uv_strerror(rc));
}

/* ------------------------------------------------------------------ resolving */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct audit_tx *t = req->data;
    t->live--;
    if (t->closing) {
        uv_freeaddrinfo(res);
        maybe_free(t);
        return;
    }
    if (status < 0 || !res || res->ai_addrlen > sizeof t->addr) {
        uv_freeaddrinfo(res);
        report_failure(t, "unresolved", status < 0 ? uv_strerror(status) : "no address");
        schedule_retry(t);
        return;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    if (t->repo.transport == AUDIT_TRANSPORT_TLS) {
        connect_addr(t);
        return;
    }
    t->st = TX_READY; /* UDP: nothing to set up */
    t->backoff_ms = t->env.retry_min_ms;
    rewind_to_commit(t);
    set_up(t, true);
    pump(t);
}

/* Resolve the host (again on every attempt: a repository may move) and go on from there. */
static void start_connect(struct audit_tx *t)
{
    char port[8];
    snprintf(port, sizeof port, "%u", t->repo.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = t->repo.transport == AUDIT_TRANSPORT_TLS ? SOCK_STREAM
                                                                                     : SOCK_DGRAM};
    t->st = TX_RESOLVING;
    t->gai.data = t;
    int rc = uv_getaddrinfo(t->env.loop, &t->gai, on_resolved, t->repo.host, port, &hints);
    if (rc < 0) {
        report_failure(t, "unresolved", uv_strerror(rc));
        schedule_retry(t);
        return;
    }
    t->live++;
}

static void on_timer(uv_timer_t *h)
{
    struct audit_tx *t = h->data;
    if (t->closing)
        return;
    if (t->st == TX_BACKOFF) {
        start_connect(t);
    } else if ((t->st == TX_CONNECTING || t->st == TX_HANDSHAKE) && t->conn) {
        conn_fail(t->conn, t->st == TX_CONNECTING ? "connect_timeout" : "tls_handshake_timeout",
                  NULL);
    } else if (t->st == TX_READY && t->repo.transport == AUDIT_TRANSPORT_UDP) {
        pump(t);
    }
}

/* ------------------------------------------------------------------ UDP */

static void udp_fail(struct audit_tx *t, const char *what, int status)
{
    t->gen++;
    report_failure(t, what, uv_strerror(status));
    if (t->was_up)
        set_up(t, false);
    rewind_to_commit(t);
    schedule_retry(t);
}

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    struct udp_req *u = (struct udp_req *)req;
    struct audit_tx *t = u->t;
    unsigned gen = u->gen;
    free(u);
    t->udp_inflight--;
    if (t->closing || gen != t->gen) {
        maybe_free(t);
        return;
    }
    struct inflight *f = fifo_front(t);
    if (status < 0 && status != UV_EMSGSIZE) {
        udp_fail(t, "send_failed", status);
        return;
    }
    if (f) {
        uint64_t seq = f->seq;
        fifo_pop(t);
        commit_to(t, seq + 1, status == 0 ? 1 : 0);
        if (status < 0 && t->m_skipped)
            metric_inc(t->m_skipped);
    }
    pump(t);
}

static bool send_udp(struct audit_tx *t, uint64_t seq)
{
    if (t->rec.len > UDP_MAX) {
        struct logb b;
        if (log_begin(&b, LOG_WARN, "audit_message_too_large_for_udp")) {
            log_str(&b, "repository", t->repo.name);
            log_u64(&b, "bytes", t->rec.len);
            log_end(&b);
        }
        if (t->m_skipped)
            metric_inc(t->m_skipped);
        if (t->f_n == 0)
            commit_to(t, seq + 1, 0);
        return true;
    }
    struct udp_req *u = malloc(sizeof *u + t->rec.len);
    if (!u)
        return false;
    u->t = t;
    u->gen = t->gen;
    memcpy(u->data, t->rec.p, t->rec.len);
    uv_buf_t buf = uv_buf_init((char *)u->data, (unsigned)t->rec.len);
    int rc = uv_udp_send(&u->req, &t->udp, &buf, 1, (const struct sockaddr *)&t->addr,
                         on_udp_sent);
    if (rc < 0) {
        free(u);
        udp_fail(t, "send_failed", rc);
        return false;
    }
    t->udp_inflight++;
    fifo_push(t, seq, 0);
    return true;
}

/* ------------------------------------------------------------------ sending, committing */

static bool send_tls(struct audit_tx *t, uint64_t seq)
{
    struct tx_conn *c = t->conn;
    wbuf_reset(&t->frame);
    if (syslog_frame_octet(&t->frame, t->rec.p, t->rec.len) < 0)
        return false;
    int rc = tls_conn_write(c->tls, t->frame.p, t->frame.len);
    if (rc < 0) {
        conn_fail(c, "write_failed", err_str(rc));
        return false;
    }
    fifo_push(t, seq, c->queued);
    return true;
}

static bool has_room(const struct audit_tx *t)
{
    if (t->f_n >= FIFO_CAP)
        return false;
    if (t->repo.transport == AUDIT_TRANSPORT_UDP)
        return t->udp_inflight < UDP_INFLIGHT;
    return t->conn && t->conn->queued - t->conn->written < INFLIGHT_BYTES;
}

static void pump(struct audit_tx *t)
{
    while (!t->closing && t->st == TX_READY && has_room(t)) {
        uint64_t next = t->send_seq;
        int rc = aq_read(t->env.q, t->send_seq, &t->rec, &next);
        if (rc == 0)
            break; /* nothing more queued */
        if (rc == ERR_NOTFOUND) {
            t->send_seq = next; /* dropped or lost: nothing to send */
            if (t->f_n == 0)
                commit_to(t, next, 0);
            continue;
        }
        if (rc < 0) {
            struct logb b;
            if (log_begin(&b, LOG_ERROR, "audit_queue_read_failed")) {
                log_str(&b, "error", err_str(rc));
                log_end(&b);
            }
            break;
        }
        bool ok = t->repo.transport == AUDIT_TRANSPORT_TLS ? send_tls(t, t->send_seq)
                                                            : send_udp(t, t->send_seq);
        if (!ok)
            break;
        t->send_seq++;
    }
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

static void commit_tls(struct audit_tx *t)
{
    struct tx_conn *c = t->conn;
    if (!c || c->dead || t->st != TX_READY)
        return;
    uint64_t acked = tcp_acked(c);
    uint64_t now = uv_now(t->env.loop) + 1; /* never 0: 0 means "not acknowledged yet" */
    for (size_t i = 0; i < t->f_n; i++) { /* note when each message was first seen acked */
        struct inflight *f = &t->fifo[(t->f_head + i) % FIFO_CAP];
        if (f->end > acked)
            break;
        if (!f->acked_ms)
            f->acked_ms = now;
    }
    uint64_t upto = 0, n = 0;
    struct inflight *f;
    while ((f = fifo_front(t)) != NULL && f->acked_ms && now - f->acked_ms >= t->env.ack_grace_ms) {
        upto = f->seq + 1;
        n++;
        fifo_pop(t);
    }
    if (t->f_n == 0 && t->send_seq > upto)
        upto = t->send_seq; /* nothing in flight: skipped (lost) ones are done with too */
    if (upto)
        commit_to(t, upto, n);
}

void audit_tx_kick(struct audit_tx *t)
{
    pump(t);
}

void audit_tx_tick(struct audit_tx *t)
{
    if (t->repo.transport == AUDIT_TRANSPORT_TLS)
        commit_tls(t);
    pump(t);
}

bool audit_tx_drained(struct audit_tx *t)
{
    struct aq_stats st;
    aq_get_stats(t->env.q, &st);
    return st.commit[t->env.reader] >= st.tail;
}

bool audit_tx_is_up(const struct audit_tx *t)
{
    return t->was_up;
}

const char *audit_tx_name(const struct audit_tx *t)
{
    return t->repo.name;
}

/* ------------------------------------------------------------------ life */

struct audit_tx *audit_tx_new(const struct audit_tx_env *env, char *err, size_t err_len)
{
    struct audit_tx *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    t->env = *env;
    t->repo = *env->repo;
    t->env.repo = &t->repo;
    t->backoff_ms = env->retry_min_ms;
    wbuf_init(&t->rec, AQ_REC_MAX);
    wbuf_init(&t->frame, AQ_REC_MAX + 16);
    if (t->repo.transport == AUDIT_TRANSPORT_TLS) {
        struct tls_client_opts o = {.cert = t->repo.cert[0] ? t->repo.cert : NULL,
                                    .key = t->repo.key[0] ? t->repo.key : NULL,
                                    .ca = t->repo.ca};
        if (tls_profile_parse(t->repo.tls_profile, &o.profile) < 0 ||
            tls_ctx_client_new(&o, &t->ctx, err, err_len) < 0) {
            if (!err[0])
                snprintf(err, err_len, "repository %s: bad TLS settings", t->repo.name);
            goto fail;
        }
    }
    if (env->metrics) {
        char name[128], labels[AQ_NAME_MAX + 24];
        snprintf(labels, sizeof labels, "repository=\"%s\"", t->repo.name);
        snprintf(name, sizeof name, "%s_audit_repository_up", env->metric_prefix);
        t->m_up = metrics_gauge(env->metrics, name, "1 while the audit repository is connected",
                                labels);
        snprintf(name, sizeof name, "%s_audit_messages_sent_total", env->metric_prefix);
        t->m_sent = metrics_counter(env->metrics, name,
                                    "Audit messages delivered to the repository", labels);
        snprintf(name, sizeof name, "%s_audit_messages_skipped_total", env->metric_prefix);
        t->m_skipped = metrics_counter(env->metrics, name,
                                       "Audit messages the repository's transport cannot carry",
                                       labels);
    }
    if (uv_timer_init(env->loop, &t->timer) < 0) {
        snprintf(err, err_len, "cannot start a timer");
        goto fail;
    }
    t->timer.data = t;
    t->live++;
    if (t->repo.transport == AUDIT_TRANSPORT_UDP) {
        if (uv_udp_init(env->loop, &t->udp) == 0) {
            t->udp.data = t;
            t->udp_init = true;
            t->live++;
        } else {
            snprintf(err, err_len, "cannot open a UDP socket");
            audit_tx_close(t, NULL, NULL);
            return NULL;
        }
    }
    t->send_seq = aq_committed(env->q, env->reader);
    start_connect(t);
    return t;
fail:
    SSL_CTX_free(t->ctx);
    wbuf_cleanup(&t->rec);
    wbuf_cleanup(&t->frame);
    free(t);
    return NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct audit_tx *t = h->data;
    t->live--;
    maybe_free(t);
}

void audit_tx_close(struct audit_tx *t, void (*done)(void *arg), void *arg)
{
    t->closing = true;
    t->done = done;
    t->done_arg = arg;
    if (t->conn) {
        struct tx_conn *c = t->conn;
        if (!c->dead && c->tls && tls_conn_is_ready(c->tls)) {
            int rc = tls_conn_shutdown(c->tls); /* close_notify, best effort */
            (void)rc;
        }
        conn_fail(c, "closing", NULL);
    }
    if (t->was_up)
        set_up(t, false);
    if (t->st == TX_RESOLVING)
        uv_cancel((uv_req_t *)&t->gai);
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, on_handle_closed);
    if (t->udp_init)
        uv_close((uv_handle_t *)&t->udp, on_handle_closed);
}
