/* audit_tx: a repository's queue cursor, address resolution, backoff, the UDP transport and
 * the handles' lifecycle; the TLS connection is in audit_tx_tls.c. */
#include "audit_tx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_qrec.h"
#include "audit_tx_int.h"
#include "common/log.h"
#include "net/tls_conn.h"
#include "net/tls_ctx.h"

static void start_connect(struct audit_tx *t);

/* ------------------------------------------------------------------ bookkeeping */

void audit_tx_maybe_free(struct audit_tx *t)
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

struct inflight *audit_tx_fifo_front(struct audit_tx *t)
{
    return t->f_n ? &t->fifo[t->f_head] : NULL;
}

void audit_tx_fifo_pop(struct audit_tx *t)
{
    t->f_head = (t->f_head + 1) % FIFO_CAP;
    t->f_n--;
}

void audit_tx_fifo_push(struct audit_tx *t, uint64_t seq, uint64_t end)
{
    t->fifo[(t->f_head + t->f_n) % FIFO_CAP] = (struct inflight){seq, end, 0};
    t->f_n++;
}

void audit_tx_set_up(struct audit_tx *t, bool up)
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
void audit_tx_report_failure(struct audit_tx *t, const char *what, const char *detail)
{
    struct logb b;
    if (!t->warned &&
        log_begin(&b, LOG_WARN,
                  t->was_up ? "audit_repository_down" : "audit_repository_unreachable")) {
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

void audit_tx_commit_to(struct audit_tx *t, uint64_t seq, uint64_t delivered)
{
    if (seq > aq_committed(t->env.q, t->env.reader))
        aq_commit(t->env.q, t->env.reader, seq);
    if (delivered && t->m_sent)
        metric_add(t->m_sent, delivered);
}

/* Back to the last commit: what was in flight goes again on the next connection. */
void audit_tx_rewind_to_commit(struct audit_tx *t)
{
    t->f_n = 0;
    t->f_head = 0;
    t->send_seq = aq_committed(t->env.q, t->env.reader);
}

void audit_tx_schedule_retry(struct audit_tx *t)
{
    uint32_t d = t->backoff_ms;
    d = d - d / 5 + (uint32_t)rand() % (d / 5 * 2 + 1); /* +-20 % jitter */
    t->backoff_ms =
        t->backoff_ms >= t->env.retry_max_ms / 2 ? t->env.retry_max_ms : t->backoff_ms * 2;
    t->st = TX_BACKOFF;
    uv_timer_start(&t->timer, audit_tx_on_timer, d, 0);
}

/* ------------------------------------------------------------------ resolving */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct audit_tx *t = req->data;
    t->live--;
    if (t->closing) {
        uv_freeaddrinfo(res);
        audit_tx_maybe_free(t);
        return;
    }
    if (status < 0 || !res || res->ai_addrlen > sizeof t->addr) {
        uv_freeaddrinfo(res);
        audit_tx_report_failure(t, "unresolved", status < 0 ? uv_strerror(status) : "no address");
        audit_tx_schedule_retry(t);
        return;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    if (t->repo.transport == AUDIT_TRANSPORT_TLS) {
        audit_tx_connect_addr(t);
        return;
    }
    t->st = TX_READY; /* UDP: nothing to set up */
    t->backoff_ms = t->env.retry_min_ms;
    audit_tx_rewind_to_commit(t);
    audit_tx_set_up(t, true);
    audit_tx_pump(t);
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
        audit_tx_report_failure(t, "unresolved", uv_strerror(rc));
        audit_tx_schedule_retry(t);
        return;
    }
    t->live++;
}

void audit_tx_on_timer(uv_timer_t *h)
{
    struct audit_tx *t = h->data;
    if (t->closing)
        return;
    if (t->st == TX_BACKOFF) {
        start_connect(t);
    } else if ((t->st == TX_CONNECTING || t->st == TX_HANDSHAKE) && t->conn) {
        audit_tx_conn_fail(
            t->conn, t->st == TX_CONNECTING ? "connect_timeout" : "tls_handshake_timeout", NULL);
    } else if (t->st == TX_READY && t->repo.transport == AUDIT_TRANSPORT_UDP) {
        audit_tx_pump(t);
    }
}

/* ------------------------------------------------------------------ UDP */

static void udp_fail(struct audit_tx *t, const char *what, int status)
{
    t->gen++;
    audit_tx_report_failure(t, what, uv_strerror(status));
    if (t->was_up)
        audit_tx_set_up(t, false);
    audit_tx_rewind_to_commit(t);
    audit_tx_schedule_retry(t);
}

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    struct udp_req *u = (struct udp_req *)req;
    struct audit_tx *t = u->t;
    unsigned gen = u->gen;
    free(u);
    t->udp_inflight--;
    if (t->closing || gen != t->gen) {
        audit_tx_maybe_free(t);
        return;
    }
    struct inflight *f = audit_tx_fifo_front(t);
    if (status < 0 && status != UV_EMSGSIZE) {
        udp_fail(t, "send_failed", status);
        return;
    }
    if (f) {
        uint64_t seq = f->seq;
        audit_tx_fifo_pop(t);
        audit_tx_commit_to(t, seq + 1, status == 0 ? 1 : 0);
        if (status < 0 && t->m_skipped)
            metric_inc(t->m_skipped);
    }
    audit_tx_pump(t);
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
            audit_tx_commit_to(t, seq + 1, 0);
        return true;
    }
    struct udp_req *u = malloc(sizeof *u + t->rec.len);
    if (!u)
        return false;
    u->t = t;
    u->gen = t->gen;
    memcpy(u->data, t->rec.p, t->rec.len);
    uv_buf_t buf = uv_buf_init((char *)u->data, (unsigned)t->rec.len);
    int rc = uv_udp_send(&u->req, &t->udp, &buf, 1, (const struct sockaddr *)&t->addr, on_udp_sent);
    if (rc < 0) {
        free(u);
        udp_fail(t, "send_failed", rc);
        return false;
    }
    t->udp_inflight++;
    audit_tx_fifo_push(t, seq, 0);
    return true;
}

/* ------------------------------------------------------------------ sending, committing */

static bool has_room(const struct audit_tx *t)
{
    if (t->f_n >= FIFO_CAP)
        return false;
    if (t->repo.transport == AUDIT_TRANSPORT_UDP)
        return t->udp_inflight < UDP_INFLIGHT;
    return t->conn && t->conn->queued - t->conn->written < INFLIGHT_BYTES;
}

void audit_tx_pump(struct audit_tx *t)
{
    while (!t->closing && t->st == TX_READY && has_room(t)) {
        uint64_t next = t->send_seq;
        int rc = aq_read(t->env.q, t->send_seq, &t->rec, &next);
        if (rc == 0)
            break; /* nothing more queued */
        if (rc == ERR_NOTFOUND) {
            t->send_seq = next; /* dropped or lost: nothing to send */
            if (t->f_n == 0)
                audit_tx_commit_to(t, next, 0);
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
        bool ok = t->repo.transport == AUDIT_TRANSPORT_TLS ? audit_tx_send_tls(t, t->send_seq)
                                                           : send_udp(t, t->send_seq);
        if (!ok)
            break;
        t->send_seq++;
    }
}

void audit_tx_kick(struct audit_tx *t)
{
    audit_tx_pump(t);
}

void audit_tx_tick(struct audit_tx *t)
{
    if (t->repo.transport == AUDIT_TRANSPORT_TLS)
        audit_tx_commit_tls(t);
    audit_tx_pump(t);
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
        t->m_up =
            metrics_gauge(env->metrics, name, "1 while the audit repository is connected", labels);
        snprintf(name, sizeof name, "%s_audit_messages_sent_total", env->metric_prefix);
        t->m_sent = metrics_counter(env->metrics, name,
                                    "Audit messages delivered to the repository", labels);
        snprintf(name, sizeof name, "%s_audit_messages_skipped_total", env->metric_prefix);
        t->m_skipped = metrics_counter(
            env->metrics, name, "Audit messages the repository's transport cannot carry", labels);
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
    audit_tx_maybe_free(t);
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
        audit_tx_conn_fail(c, "closing", NULL);
    }
    if (t->was_up)
        audit_tx_set_up(t, false);
    if (t->st == TX_RESOLVING)
        uv_cancel((uv_req_t *)&t->gai);
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, on_handle_closed);
    if (t->udp_init)
        uv_close((uv_handle_t *)&t->udp, on_handle_closed);
}
