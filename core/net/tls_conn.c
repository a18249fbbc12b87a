#include "tls_conn.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls_ctx.h"

/* A memory BIO keeps its largest buffer; past this many bytes through it, an emptied BIO is
 * swapped for a fresh one so that an idle connection does not pin a 64 KiB buffer. */
#define TLS_BIO_RECYCLE (16u * 1024u)

struct tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    struct tls_conn_cbs cbs;
    bool ready, shut, failed;
    size_t rbio_through, wbio_through;
    const char *reason;
    char detail[160];
};

static BIO *new_mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_set_mem_eof_return(b, -1); /* empty means "retry", never EOF */
    return b;
}

struct tls_conn *tls_conn_new(SSL_CTX *ctx, bool is_client, const char *host,
                              const struct tls_conn_cbs *cbs)
{
    ERR_clear_error();
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cbs = *cbs;
    t->ssl = SSL_new(ctx);
    t->rbio = new_mem_bio();
    t->wbio = new_mem_bio();
    if (!t->ssl || !t->rbio || !t->wbio)
        goto fail;
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* ssl owns both from here */
    if (is_client) {
        SSL_set_connect_state(t->ssl);
        if (host && host[0]) {
            unsigned char ip[16];
            bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
            X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
            if (is_ip) {
                if (!X509_VERIFY_PARAM_set1_ip_asc(vp, host))
                    goto fail_ssl;
            } else {
                char sni[256]; /* the SNI macro casts away const: hand it a copy */
                int n = snprintf(sni, sizeof sni, "%s", host);
                if (n < 0 || (size_t)n >= sizeof sni || !SSL_set_tlsext_host_name(t->ssl, sni) ||
                    !SSL_set1_host(t->ssl, host))
                    goto fail_ssl;
            }
        }
    } else {
        SSL_set_accept_state(t->ssl);
    }
    return t;
fail:
    BIO_free(t->rbio);
    BIO_free(t->wbio);
fail_ssl:
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

bool tls_conn_is_ready(const struct tls_conn *t)
{
    return t->ready;
}

bool tls_conn_has_pending(const struct tls_conn *t)
{
    return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0;
}

SSL *tls_conn_ssl(struct tls_conn *t)
{
    return t->ssl;
}

const char *tls_conn_reason(const struct tls_conn *t)
{
    return t->reason ? t->reason : "none";
}

const char *tls_conn_detail(const struct tls_conn *t)
{
    return t->detail;
}

/* Hand everything OpenSSL wrote to the out callback. Always called, even after errors:
 * alerts are output too. */
static int flush(struct tls_conn *t)
{
    for (;;) {
        size_t pending = BIO_ctrl_pending(t->wbio);
        if (pending == 0)
            break;
        if (pending > TLS_FEED_MAX)
            pending = TLS_FEED_MAX;
        uint8_t *buf = malloc(pending);
        if (!buf)
            return ERR_NOMEM;
        int n = BIO_read(t->wbio, buf, (int)pending);
        if (n <= 0) {
            free(buf);
            return ERR_TLS;
        }
        t->wbio_through += (size_t)n;
        int rc = t->cbs.out(t->cbs.arg, buf, (size_t)n); /* takes buf */
        if (rc < 0)
            return rc;
    }
    if (t->wbio_through > TLS_BIO_RECYCLE) {
        BIO *nb = new_mem_bio();
        if (nb) {
            SSL_set0_wbio(t->ssl, nb); /* frees the old, empty one */
            t->wbio = nb;
            t->wbio_through = 0;
        }
    }
    return 0;
}

static int failed(struct tls_conn *t, int ssl_err)
{
    unsigned long e = ERR_peek_error();
    long vr = SSL_get_verify_result(t->ssl);
    t->failed = true;
    if (ssl_err == SSL_ERROR_SYSCALL && e == 0) {
        t->reason = "eof";
        t->detail[0] = '\0';
    } else {
        t->reason = tls_fail_reason(vr, e);
        if (vr != X509_V_OK)
            snprintf(t->detail, sizeof t->detail, "%s", X509_verify_cert_error_string(vr));
        else if (e)
            ERR_error_string_n(e, t->detail, sizeof t->detail);
    }
    ERR_clear_error();
    return ERR_TLS;
}

static int pump(struct tls_conn *t)
{
    if (t->failed)
        return ERR_TLS;
    if (!t->ready) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return failed(t, e);
        }
        t->ready = true;
        if (t->cbs.ready) {
            int rc = flush(t); /* our last handshake flight goes out before anything else */
            if (rc == 0)
                rc = t->cbs.ready(t->cbs.arg);
            if (rc < 0)
                return rc;
        }
    }
    uint8_t buf[16384]; /* one TLS record; on the stack, so idle connections hold none */
    for (;;) {
        size_t want = sizeof buf;
        if (t->cbs.room) {
            size_t room = t->cbs.room(t->cbs.arg);
            if (room == 0)
                return 0; /* the rest waits inside OpenSSL for tls_conn_resume */
            if (room < want)
                want = room;
        }
        ERR_clear_error();
        int r = SSL_read(t->ssl, buf, (int)want);
        if (r > 0) {
            int rc = t->cbs.plain(t->cbs.arg, buf, (size_t)r);
            if (rc < 0)
                return rc;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN)
            return TLS_CONN_EOF;
        return failed(t, e);
    }
}

static int after_pump(struct tls_conn *t, int rc)
{
    int frc = flush(t);
    if (t->rbio_through > TLS_BIO_RECYCLE && BIO_ctrl_pending(t->rbio) == 0) {
        BIO *nb = new_mem_bio();
        if (nb) {
            SSL_set0_rbio(t->ssl, nb);
            t->rbio = nb;
            t->rbio_through = 0;
        }
    }
    return rc != 0 ? rc : frc;
}

int tls_conn_start(struct tls_conn *t)
{
    return after_pump(t, pump(t));
}

int tls_conn_feed(struct tls_conn *t, const uint8_t *in, size_t n)
{
    if (n > TLS_FEED_MAX || n > (size_t)INT32_MAX)
        return ERR_LIMIT;
    if (n > 0) {
        if (BIO_write(t->rbio, in, (int)n) != (int)n)
            return ERR_NOMEM;
        t->rbio_through += n;
    }
    return after_pump(t, pump(t));
}

int tls_conn_resume(struct tls_conn *t)
{
    return after_pump(t, pump(t));
}

int tls_conn_write(struct tls_conn *t, const uint8_t *p, size_t n)
{
    if (!t->ready || t->failed || t->shut)
        return ERR_WRONG_STATE;
    while (n > 0) {
        int chunk = n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
        ERR_clear_error();
        int r = SSL_write(t->ssl, p, chunk);
        if (r <= 0) {
            int rc = failed(t, SSL_get_error(t->ssl, r));
            int frc = flush(t);
            return rc < 0 ? rc : frc;
        }
        p += r;
        n -= (size_t)r;
        /* hand each chunk out at once so at most one chunk of ciphertext sits in the BIO */
        TRY(flush(t));
    }
    return 0;
}

int tls_conn_shutdown(struct tls_conn *t)
{
    if (t->shut || !t->ready || t->failed)
        return 0;
    t->shut = true;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* 0: ours sent, theirs not awaited; < 0 is harmless here */
    ERR_clear_error();
    return flush(t);
}
