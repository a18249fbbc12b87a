/* assoc_io: the association's transport: the TCP stream (in clear or through TLS), an optional
 * PROXY v2 header from a trusted source, the receive buffer framed into whole PDUs, and the one
 * write path with its queue cap. */
#include "assoc_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "core_audit.h"
#include "core_ctx.h"
#include "net/proxy2.h"
#include "net/stream.h"
#include "net/tls_conn.h"
#include "net/tls_ctx.h"

#define OUT_CAP (1u << 20) /* a peer that lets this much pile up does not read: close */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

/* ---- output: the one write path (net/stream) ----------------------------------------------- */

/* TLS: ciphertext from tls_conn (takes buf). */
static int tls_out(void *arg, uint8_t *buf, size_t n)
{
    struct assoc *a = arg;
    return stream_send_owned(&a->out_stream, buf, n);
}

static void on_out_failed(struct stream *s, int status)
{
    struct assoc *a = s->data;
    (void)status;
    if (!a->closing)
        assoc_close(a, "write failed");
}

static void on_out_drained(struct stream *s)
{
    assoc_io_written(s->data);
}

int assoc_send_bytes(struct assoc *a, const uint8_t *p, size_t n)
{
    if (a->closing)
        return ERR_WRONG_STATE;
    if (stream_queued(&a->out_stream) > OUT_CAP) {
        assoc_close(a, "peer does not read");
        return ERR_LIMIT;
    }
    int rc = stream_send(&a->out_stream, p, n); /* through TLS when set, else clear */
    if (rc < 0) {
        assoc_close(a, a->tls ? "TLS write failed" : rc == ERR_NOMEM ? "out of memory"
                                                                     : "write failed");
        return rc;
    }
    a->bytes_out += n;
    return 0;
}

int assoc_send_wbuf(struct assoc *a, struct wbuf *b)
{
    int rc = b->err ? b->err : assoc_send_bytes(a, b->p, b->len);
    wbuf_cleanup(b);
    return rc;
}

size_t assoc_out_queued(const struct assoc *a)
{
    return stream_queued(&a->out_stream);
}

void assoc_on_out_room(struct assoc *a, void (*cb)(void *), void *arg)
{
    a->out_room_cb = cb;
    a->out_room_arg = arg;
    if (!stream_is_full(&a->out_stream)) /* else on_out_drained calls back at the low mark */
        assoc_io_written(a);
}

void assoc_io_written(struct assoc *a)
{
    if (!a->closing && a->st == STA6 && (a->op || a->out))
        assoc_arm(a, a->cfg->idle_ms); /* the peer reads what we send: it is alive */
    if (!a->out_room_cb || a->closing)
        return;
    void (*cb)(void *) = a->out_room_cb;
    a->out_room_cb = NULL;
    cb(a->out_room_arg);
}

/* ---- input ------------------------------------------------------------------------------- */

static void set_peer(char *out, size_t cap, const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, ntohs(s4->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(out, cap, "[%s]:%u", host, ntohs(s6->sin6_port));
    }
}

bool assoc_preassoc_enter(struct assoc *a, const struct sockaddr *sa)
{
    const char *why = NULL;
    preassoc_key(sa, a->pre_key);
    if (preassoc_enter(&a->ctx->preassoc, a->pre_key, &why) < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "preassoc_refused")) {
            log_u64(&lb, "assoc", a->id);
            log_str(&lb, "peer", a->peer);
            log_str(&lb, "why", why);
            log_end(&lb);
        }
        a->end_reason = "refused: too many pending connections";
        assoc_close(a, a->end_reason);
        return false;
    }
    a->pre_counted = true;
    return true;
}

void assoc_preassoc_leave(struct assoc *a)
{
    if (!a->pre_counted)
        return;
    a->pre_counted = false;
    preassoc_leave(&a->ctx->preassoc, a->pre_key);
}

/* The TCP peer's "addr:port" (the edge itself, when a PROXY v2 header named the modality). */
static void tcp_peer(struct assoc *a, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&a->tcp, (struct sockaddr *)&ss, &len) < 0)
        memset(&ss, 0, sizeof ss);
    snprintf(out, cap, "?");
    set_peer(out, cap, &ss);
}

static bool handle_proxy(struct assoc *a)
{
    struct proxy2_info info;
    int rc = proxy2_parse(a->rbuf, a->rlen, &info);
    if (rc == 0)
        return false;
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "proxy_header_invalid")) {
            log_u64(&lb, "assoc", a->id);
            log_str(&lb, "peer", a->peer);
            log_str(&lb, "err", err_str(rc));
            log_end(&lb);
        }
        core_audit_refused(a, "PROXY v2 header refused: invalid");
        assoc_close(a, "invalid PROXY v2 header");
        return false;
    }
    a->awaiting_proxy = false;
    if (!info.local)
        set_peer(a->peer, sizeof a->peer, &info.src);
    /* the budget is the modality's, not the proxy's: counted by the address it reports */
    struct sockaddr_storage tcp_src;
    int tlen = sizeof tcp_src;
    const struct sockaddr *src = (const struct sockaddr *)&info.src;
    if (info.local || (info.src.ss_family != AF_INET && info.src.ss_family != AF_INET6)) {
        if (uv_tcp_getpeername(&a->tcp, (struct sockaddr *)&tcp_src, &tlen) < 0)
            memset(&tcp_src, 0, sizeof tcp_src);
        src = (const struct sockaddr *)&tcp_src;
    }
    if (!assoc_preassoc_enter(a, src))
        return false;
    snprintf(a->cert_cn, sizeof a->cert_cn, "%s", info.ssl_cn);
    snprintf(a->client_id, sizeof a->client_id, "%s", info.client_id);
    if (info.grants[0]) {
        if (grants_parse(info.grants, strlen(info.grants), &a->grants) < 0) {
            struct logb lb;
            if (log_begin(&lb, LOG_WARN, "proxy_header_invalid")) {
                log_u64(&lb, "assoc", a->id);
                log_str(&lb, "peer", a->peer);
                log_str(&lb, "err", "grants TLV not understood");
                log_end(&lb);
            }
            core_audit_refused(a, "PROXY v2 header refused: grants not understood");
            assoc_close(a, "invalid PROXY v2 header");
            return false;
        }
        a->proxy_grants = true;
    }
    if (info.has_fingerprint)
        hex_lower(info.fingerprint, 32, a->cert_fp);
    a->proxy_ssl = info.ssl;
    memmove(a->rbuf, a->rbuf + rc, a->rlen - (size_t)rc);
    a->rlen -= (size_t)rc;
    return true;
}

static void process_buffer(struct assoc *a);

/* TLS: take plaintext that waited inside OpenSSL for room in rbuf. Bytes added, or < 0. */
static int tls_pull(struct assoc *a)
{
    if (!tls_conn_has_pending(a->tls) || a->rlen >= a->rcap)
        return 0;
    size_t before = a->rlen;
    int rc = tls_conn_resume(a->tls);
    if (rc != 0) {
        assoc_close(a, rc == TLS_CONN_EOF ? "closed by peer" : "TLS error");
        return rc < 0 ? rc : ERR_IO;
    }
    return a->rlen > before ? 1 : 0;
}

void assoc_process(struct assoc *a)
{
    a->in_process = true;
    process_buffer(a);
    while (a->tls && !a->closing && !a->paused && tls_pull(a) > 0)
        process_buffer(a);
    if (!a->closing)
        a->in_process = false;
}

static void process_buffer(struct assoc *a)
{
    size_t off = 0;
    if (a->awaiting_proxy && !handle_proxy(a))
        goto done;
    while (!a->closing && !a->paused) {
        uint8_t type;
        uint32_t blen;
        uint32_t limit = a->st == STA2 ? UL_PRE_ASSOC_MAX : a->our_max;
        int64_t n = ul_frame(a->rbuf + off, a->rlen - off, limit, &type, &blen);
        if (n == 0)
            break;
        if (n < 0) {
            assoc_violation(a, UL_ABORT_INVALID_PARAM, "PDU longer than allowed");
            off = a->rlen;
            break;
        }
        struct rd body = rd_make(a->rbuf + off + UL_HDR_LEN, blen);
        enum sta before = a->st;
        bool go_on = assoc_handle_pdu(a, type, &body);
        if (a->paused && a->st == before && type == UL_P_DATA_TF && rd_left(&body) == blen)
            break; /* backpressure before the PDU was taken: keep it for later */
        off += (size_t)n;
        if (!go_on && !a->paused)
            break;
        if (a->st == STA13)
            break;
    }
    if (a->closing)
        return;
    if (a->st == STA13)
        off = a->rlen; /* Sta13: everything else is ignored (AA-6) */
    if (off > 0) {
        memmove(a->rbuf, a->rbuf + off, a->rlen - off);
        a->rlen -= off;
    }
done:
    if (a->closing)
        return;
    if (a->paused && a->reading) {
        uv_read_stop((uv_stream_t *)&a->tcp);
        a->reading = false;
    } else if (!a->paused && !a->reading) {
        if (uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read) == 0)
            a->reading = true;
    }
}

/* ---- transport ------------------------------------------------------------------------------- */

static uint8_t g_cipher_buf[64 * 1024]; /* one loop: consumed before the next read */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct assoc *a = h->data;
    (void)hint;
    if (a->tls && !a->awaiting_proxy) {
        *buf = uv_buf_init((char *)g_cipher_buf, sizeof g_cipher_buf);
        return;
    }
    if (a->rlen >= a->rcap) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)a->rbuf + a->rlen, (unsigned)(a->rcap - a->rlen));
}

/* TLS: plaintext goes where a plain read would have put it (rbuf), within its room. */
static size_t tls_room(void *arg)
{
    struct assoc *a = arg;
    return a->closing ? 0 : a->rcap - a->rlen;
}

static int tls_plain(void *arg, const uint8_t *p, size_t n)
{
    struct assoc *a = arg;
    memcpy(a->rbuf + a->rlen, p, n); /* n <= tls_room() */
    a->rlen += n;
    a->bytes_in += n;
    return 0;
}

/* The client's certificate names the association unless a PROXY v2 header already did. */
static int tls_ready(void *arg)
{
    struct assoc *a = arg;
    struct tls_peer_id *id = calloc(1, sizeof *id);
    if (id && tls_peer_id_get(tls_conn_ssl(a->tls), id) == 0 && !a->cert_cn[0]) {
        snprintf(a->cert_cn, sizeof a->cert_cn, "%s", id->cn);
        memcpy(a->cert_fp, id->fp_hex, sizeof a->cert_fp);
    }
    free(id);
    if (!a->out) { /* a client authenticated on our listener */
        char tp[64];
        tcp_peer(a, tp, sizeof tp);
        core_audit_tls_auth(a, tp, tls_conn_ssl(a->tls), true, NULL);
    }
    if (a->out && a->st == STA4)
        assoc_send_rq(a); /* AE-2 once the secure transport is open */
    return 0;
}

static void on_tls_read(struct assoc *a, const uint8_t *p, size_t n)
{
    uint8_t *rest = NULL;
    if (a->awaiting_proxy) { /* PROXY v2 comes in clear before the TLS records (read into rbuf) */
        a->rlen += n;
        if (!handle_proxy(a))
            return; /* need more, or closed */
        rest = malloc(a->rlen ? a->rlen : 1);
        if (!rest) {
            assoc_close(a, "out of memory");
            return;
        }
        memcpy(rest, a->rbuf, a->rlen);
        n = a->rlen;
        p = rest;
        a->rlen = 0;
    }
    bool was_ready = tls_conn_is_ready(a->tls);
    int rc = tls_conn_feed(a->tls, p, n);
    free(rest);
    if (rc < 0 && !was_ready && !tls_conn_is_ready(a->tls)) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "tls_refused")) {
            log_u64(&lb, "assoc", a->id);
            log_str(&lb, "peer", a->peer);
            log_str(&lb, "reason", tls_conn_reason(a->tls));
            log_str(&lb, "detail", tls_conn_detail(a->tls));
            log_end(&lb);
        }
        if (!a->out) {
            char tp[64];
            tcp_peer(a, tp, sizeof tp);
            core_audit_tls_auth(a, tp, tls_conn_ssl(a->tls), false, tls_conn_reason(a->tls));
        }
        if (a->out)
            a->out->err = ERR_TLS;
        assoc_close(a, "TLS handshake refused");
        return;
    }
    if (rc != 0) {
        if (a->st != STA13 && !a->end_reason)
            a->end_reason = "connection lost";
        assoc_close(a, rc == TLS_CONN_EOF ? "closed by peer" : "TLS error");
        return;
    }
    if (!a->in_process)
        assoc_process(a);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct assoc *a = s->data;
    (void)buf;
    if (nread == 0 || a->closing)
        return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            assoc_violation(a, UL_ABORT_INVALID_PARAM, "PDU exceeds buffer");
            return;
        }
        /* Evt17: AA-4 in an association, AR-5 in Sta13, AA-5 in Sta2 */
        if (a->st != STA13 && !a->end_reason)
            a->end_reason = "connection lost";
        assoc_close(a, a->st == STA13 ? "closed by peer" : "connection lost");
        return;
    }
    if (a->tls) {
        on_tls_read(a, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    a->rlen += (size_t)nread;
    a->bytes_in += (uint64_t)nread;
    assoc_process(a);
}

int assoc_io_start(struct assoc *a)
{
    stream_init(&a->out_stream, (uv_stream_t *)&a->tcp, on_out_failed, on_out_drained, a);
    stream_set_marks(&a->out_stream, ASSOC_OUT_HIGH, ASSOC_OUT_HIGH / 2);
    uv_tcp_nodelay(&a->tcp, 1);
    uv_tcp_keepalive(&a->tcp, 1, 60);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!a->out)
        snprintf(a->peer, sizeof a->peer, "?");
    if (!a->out) {
        if (uv_tcp_getpeername(&a->tcp, (struct sockaddr *)&ss, &len) < 0)
            memset(&ss, 0, sizeof ss);
        set_peer(a->peer, sizeof a->peer, &ss);
        a->awaiting_proxy = a->cfg->proxy_protocol &&
                            cidr_list_match(a->cfg->proxy_trusted, a->cfg->n_proxy_trusted,
                                            (const struct sockaddr *)&ss);
        if (!a->awaiting_proxy && !assoc_preassoc_enter(a, (const struct sockaddr *)&ss))
            return 0;
    }
    a->rcap = UL_PRE_ASSOC_MAX + UL_HDR_LEN + 1024; /* room for a PROXY v2 header too */
    a->rbuf = malloc(a->rcap);
    if (!a->rbuf) {
        assoc_close(a, "out of memory");
        return 0;
    }
    SSL_CTX *ctx = a->out ? a->out->tls : a->ctx->tls;
    if (ctx) {
        struct tls_conn_cbs cbs = {.out = tls_out, .plain = tls_plain, .ready = tls_ready,
                                   .room = tls_room, .arg = a};
        const char *host = a->out && a->out->tls_host[0] ? a->out->tls_host : NULL;
        a->tls = tls_conn_new(ctx, a->out != NULL, host, &cbs);
        if (!a->tls) {
            assoc_close(a, "out of memory");
            return 0;
        }
        stream_set_tls(&a->out_stream, a->tls);
        if (a->out && tls_conn_start(a->tls) < 0) {
            a->out->err = ERR_TLS;
            assoc_close(a, "TLS start failed");
            return 0;
        }
    }
    int rc = uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
    if (rc < 0) {
        assoc_close(a, "read failed");
        return 0;
    }
    a->reading = true;
    return 0;
}
