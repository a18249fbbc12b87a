/* core/net stream: the one write path, over a real loopback TCP pair. Our side is a uv_tcp_t on
 * a loop; the peer is a plain socket the test reads (or does not read) by hand. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/stream.h"

struct pair {
    uv_loop_t loop;
    uv_tcp_t tcp;
    int peer;
    struct stream s;
    int fails, drains, last_status;
    size_t queued_at_drain;
    uint8_t *got; /* what the peer has read */
    size_t got_len, got_cap;
};

static void on_fail(struct stream *s, int status)
{
    struct pair *p = s->data;
    p->fails++;
    p->last_status = status;
}

static void on_drain(struct stream *s)
{
    struct pair *p = s->data;
    p->drains++;
    p->queued_at_drain = stream_queued(s);
}

/* small: shrink both socket buffers so that the queue in libuv fills quickly. */
static void pair_open(struct pair *p, bool small)
{
    memset(p, 0, sizeof *p);
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int sz = 4096;
    if (small)
        cr_assert_eq(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 1), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(cfd, 0);
    if (small)
        cr_assert_eq(setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
    cr_assert_eq(connect(cfd, (struct sockaddr *)&a, sizeof a), 0);
    p->peer = accept(lfd, NULL, NULL);
    cr_assert_geq(p->peer, 0);
    close(lfd);
    cr_assert_eq(fcntl(p->peer, F_SETFL, O_NONBLOCK), 0);
    cr_assert_eq(uv_loop_init(&p->loop), 0);
    cr_assert_eq(uv_tcp_init(&p->loop, &p->tcp), 0);
    cr_assert_eq(uv_tcp_open(&p->tcp, cfd), 0);
    stream_init(&p->s, (uv_stream_t *)&p->tcp, on_fail, on_drain, p);
}

/* Read what the peer has now (at most max bytes); returns how many. */
static size_t peer_read(struct pair *p, size_t max)
{
    size_t total = 0;
    while (total < max) {
        if (p->got_len == p->got_cap) {
            p->got_cap = p->got_cap ? 2 * p->got_cap : 65536;
            p->got = realloc(p->got, p->got_cap);
            cr_assert_not_null(p->got);
        }
        size_t room = p->got_cap - p->got_len;
        ssize_t n = read(p->peer, p->got + p->got_len, room < max - total ? room : max - total);
        if (n <= 0)
            break;
        p->got_len += (size_t)n;
        total += (size_t)n;
    }
    return total;
}

/* Run the loop and read the peer until it has want bytes (bounded: a stuck test fails). */
static void pump_until(struct pair *p, size_t want)
{
    for (int i = 0; i < 200000 && p->got_len < want; i++) {
        uv_run(&p->loop, UV_RUN_NOWAIT);
        if (peer_read(p, SIZE_MAX) == 0)
            usleep(100);
    }
    cr_assert_eq(p->got_len, want);
}

static void pair_close(struct pair *p)
{
    uv_close((uv_handle_t *)&p->tcp, NULL);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&p->loop), 0);
    if (p->peer >= 0)
        close(p->peer);
    free(p->got);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *b = malloc(n);
    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((i * 131u + seed) >> 3);
    return b;
}

Test(stream, sends_in_order_what_it_copies_and_what_it_takes)
{
    struct pair p;
    pair_open(&p, true);
    size_t n = 256 * 1024;
    uint8_t *want = pattern(3 * n + 5, 7);
    /* copied: the caller's buffer is scribbled on right after the call */
    uint8_t *mine = malloc(n);
    memcpy(mine, want, n);
    cr_assert_eq(stream_send(&p.s, mine, n), 0);
    memset(mine, 0xee, n);
    cr_assert_gt(stream_queued(&p.s), 0, "a small socket buffer leaves most of it queued");
    /* taken: the stream frees it (ASan reports a leak or a double free) */
    uint8_t *given = malloc(n);
    memcpy(given, want + n, n);
    cr_assert_eq(stream_send_owned(&p.s, given, n), 0);
    memcpy(mine, want + 2 * n, n);
    cr_assert_eq(stream_send_clear(&p.s, mine, n), 0);
    memset(mine, 0xee, n);
    cr_assert_eq(stream_send(&p.s, want + 3 * n, 5), 0);
    cr_assert_eq(stream_send(&p.s, want, 0), 0, "nothing to send is no error");
    pump_until(&p, 3 * n + 5);
    cr_assert_eq(memcmp(p.got, want, 3 * n + 5), 0);
    cr_assert_eq(stream_queued(&p.s), 0);
    cr_assert_eq(p.fails, 0);
    cr_assert_eq(stream_error(&p.s), 0);
    free(mine);
    free(want);
    pair_close(&p);
}

Test(stream, full_above_the_high_mark_and_drained_once_at_the_low_mark)
{
    struct pair p;
    pair_open(&p, true);
    stream_set_marks(&p.s, 64 * 1024, 16 * 1024);
    cr_assert_not(stream_is_full(&p.s));
    size_t chunk = 32 * 1024, sent = 0;
    uint8_t *b = pattern(chunk, 3);
    while (!stream_is_full(&p.s)) {
        cr_assert_eq(stream_send(&p.s, b, chunk), 0);
        sent += chunk;
        cr_assert_lt(sent, 64u << 20, "the queue never passed the high mark");
    }
    cr_assert_gt(stream_queued(&p.s), 64 * 1024);
    for (int i = 0; i < 20; i++)
        uv_run(&p.loop, UV_RUN_NOWAIT);
    cr_assert_eq(p.drains, 0, "no drain while the peer does not read");
    pump_until(&p, sent);
    cr_assert_eq(p.drains, 1);
    cr_assert_leq(p.queued_at_drain, 16 * 1024);
    /* not full again: no second drain */
    cr_assert_eq(stream_send(&p.s, b, chunk), 0);
    pump_until(&p, sent + chunk);
    cr_assert_eq(p.drains, 1);
    free(b);
    pair_close(&p);
}

Test(stream, a_failed_queued_write_is_reported_once_and_sticks)
{
    struct pair p;
    pair_open(&p, true);
    size_t n = 1 << 20;
    uint8_t *b = pattern(n, 1);
    cr_assert_eq(stream_send(&p.s, b, n), 0);
    cr_assert_eq(stream_send(&p.s, b, n), 0);
    cr_assert_gt(stream_queued(&p.s), 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* close with a reset */
    cr_assert_eq(setsockopt(p.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(p.peer);
    p.peer = -1;
    for (int i = 0; i < 100000 && p.fails == 0; i++) {
        uv_run(&p.loop, UV_RUN_NOWAIT);
        usleep(50);
    }
    cr_assert_eq(p.fails, 1, "both queued writes fail; the owner hears it once");
    cr_assert_lt(p.last_status, 0);
    cr_assert_eq(stream_error(&p.s), p.last_status);
    cr_assert_eq(stream_send(&p.s, b, 10), p.last_status, "no more bytes after a hole");
    uint8_t *given = malloc(10);
    cr_assert_eq(stream_send_owned(&p.s, given, 10), p.last_status); /* and it is freed */
    for (int i = 0; i < 100; i++)
        uv_run(&p.loop, UV_RUN_NOWAIT);
    cr_assert_eq(p.fails, 1);
    free(b);
    pair_close(&p);
}

Test(stream, the_owner_closing_hears_nothing_of_cancelled_writes)
{
    struct pair p;
    pair_open(&p, true);
    stream_set_marks(&p.s, 1, 0);
    size_t n = 1 << 20;
    uint8_t *b = pattern(n, 2);
    cr_assert_eq(stream_send(&p.s, b, n), 0);
    cr_assert(stream_is_full(&p.s));
    pair_close(&p); /* the queued write is cancelled: no on_fail, no on_drain */
    cr_assert_eq(p.fails, 0);
    cr_assert_eq(p.drains, 0);
    free(b);
}

/* ---- through TLS: our side is the client, the peer a tls_conn the test drives by hand ---- */

struct tls_peer {
    struct tls_conn *t;
    int fd;
    uint8_t plain[1 << 16];
    size_t plain_len;
};

static int peer_out(void *arg, uint8_t *buf, size_t n)
{
    struct tls_peer *tp = arg;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(tp->fd, buf + off, n - off);
        if (w < 0 && errno == EAGAIN)
            continue; /* handshake records only: small */
        cr_assert_gt(w, 0);
        off += (size_t)w;
    }
    free(buf);
    return 0;
}

static int peer_plain(void *arg, const uint8_t *p, size_t n)
{
    struct tls_peer *tp = arg;
    cr_assert_leq(tp->plain_len + n, sizeof tp->plain);
    memcpy(tp->plain + tp->plain_len, p, n);
    tp->plain_len += n;
    return 0;
}

static int our_out(void *arg, uint8_t *buf, size_t n)
{
    return stream_send_owned(arg, buf, n);
}

static int our_plain(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    (void)p;
    (void)n;
    return 0;
}

static uint8_t g_rbuf[65536];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init((char *)g_rbuf, sizeof g_rbuf);
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    struct stream *s = h->data;
    if (n > 0)
        cr_assert_geq(tls_conn_feed(s->tls, (const uint8_t *)buf->base, (size_t)n), 0);
}

static SSL_CTX *server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    cr_assert(key && crt);
    ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
    X509_gmtime_adj(X509_getm_notBefore(crt), -60);
    X509_gmtime_adj(X509_getm_notAfter(crt), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(crt), "CN", MBSTRING_ASC,
                               (const unsigned char *)"stream-test", -1, -1, 0);
    X509_set_issuer_name(crt, X509_get_subject_name(crt));
    X509_set_pubkey(crt, key);
    cr_assert(X509_sign(crt, key, EVP_sha256()));
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    cr_assert_not_null(ctx);
    cr_assert_eq(SSL_CTX_use_certificate(ctx, crt), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(crt);
    EVP_PKEY_free(key);
    return ctx;
}

Test(stream, sends_through_an_attached_tls_conn)
{
    struct pair p;
    pair_open(&p, false);
    SSL_CTX *sctx = server_ctx();
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL); /* what is tested is the write path */
    struct tls_peer *tp = calloc(1, sizeof *tp);
    tp->fd = p.peer;
    struct tls_conn_cbs scb = {.out = peer_out, .plain = peer_plain, .arg = tp};
    tp->t = tls_conn_new(sctx, false, NULL, &scb);
    struct tls_conn_cbs ccb = {.out = our_out, .plain = our_plain, .arg = &p.s};
    struct tls_conn *ours = tls_conn_new(cctx, true, NULL, &ccb);
    cr_assert(tp->t && ours);
    stream_set_tls(&p.s, ours);
    p.tcp.data = &p.s;
    cr_assert_eq(uv_read_start((uv_stream_t *)&p.tcp, on_alloc, on_read), 0);
    cr_assert_eq(tls_conn_start(ours), 0);
    uint8_t buf[16384];
    for (int i = 0; i < 100000 && !tls_conn_is_ready(ours); i++) {
        uv_run(&p.loop, UV_RUN_NOWAIT);
        ssize_t n = read(p.peer, buf, sizeof buf);
        if (n > 0)
            cr_assert_geq(tls_conn_feed(tp->t, buf, (size_t)n), 0);
        else
            usleep(50);
    }
    cr_assert(tls_conn_is_ready(ours));
    uint8_t *want = pattern(40000, 9);
    cr_assert_eq(stream_send(&p.s, want, 40000), 0);
    for (int i = 0; i < 100000 && tp->plain_len < 40000; i++) {
        uv_run(&p.loop, UV_RUN_NOWAIT);
        ssize_t n = read(p.peer, buf, sizeof buf);
        if (n > 0)
            cr_assert_geq(tls_conn_feed(tp->t, buf, (size_t)n), 0);
        else
            usleep(50);
    }
    cr_assert_eq(tp->plain_len, 40000);
    cr_assert_eq(memcmp(tp->plain, want, 40000), 0);
    cr_assert_eq(p.fails, 0);
    uv_read_stop((uv_stream_t *)&p.tcp);
    pair_close(&p);
    tls_conn_free(ours);
    tls_conn_free(tp->t);
    free(tp);
    free(want);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}
