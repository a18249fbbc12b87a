/* tls_conn: one TLS stream over two memory BIOs (STYLE.md §8). The owner keeps the socket
 * (libuv): it feeds received ciphertext in, gets plaintext and ciphertext to send through
 * callbacks, and writes plaintext out. OpenSSL never touches a socket, so it never blocks.
 * Nothing is buffered here between calls: idle connections hold only OpenSSL's state. */
#ifndef GW_TLS_CONN_H
#define GW_TLS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common/err.h"

#define TLS_FEED_MAX (1u << 20) /* largest ciphertext chunk fed at once */

/* Ciphertext to send; takes buf (malloc'd, n > 0): the callee frees it. Returns 0 or < 0 (the
 * stream is then broken; the error comes back from the call that flushed). */
typedef int (*tls_out_cb)(void *arg, uint8_t *buf, size_t n);
/* Plaintext received (borrowed, valid during the call; at most the room the room callback
 * gave). Return 0 to go on, < 0 to stop: the feed returns that value (these n bytes count as
 * delivered; later plaintext stays inside OpenSSL until tls_conn_resume). */
typedef int (*tls_plain_cb)(void *arg, const uint8_t *p, size_t n);
/* How many plaintext bytes the owner can take now; 0 pauses delivery (the rest waits inside
 * OpenSSL for tls_conn_resume). NULL: no bound. */
typedef size_t (*tls_room_cb)(void *arg);
/* The handshake has completed (peer verified when the context asks for it). Return 0 or < 0. */
typedef int (*tls_ready_cb)(void *arg);

struct tls_conn_cbs {
    tls_out_cb out;
    tls_plain_cb plain;
    tls_ready_cb ready; /* may be NULL */
    void *arg;
    tls_room_cb room;   /* may be NULL */
};

struct tls_conn;

/* A stream on ctx (shared, read-only; the SSL holds its own reference). Client side when
 * is_client: host, when not NULL, is sent as SNI (names only) and checked against the server's
 * certificate (name or IP address). NULL when out of memory. */
struct tls_conn *tls_conn_new(SSL_CTX *ctx, bool is_client, const char *host,
                              const struct tls_conn_cbs *cbs);
void tls_conn_free(struct tls_conn *t);

/* Client side: send the ClientHello. 0 or ERR_TLS. */
MUST_CHECK int tls_conn_start(struct tls_conn *t);

/* Feed ciphertext received from the peer; runs the handshake, then delivers plaintext. Returns
 * 0; TLS_CONN_EOF (> 0) after the peer's close_notify; or < 0: ERR_TLS (see tls_conn_reason), or
 * a callback's negative value. Output (handshake records, alerts) is flushed on every path. */
#define TLS_CONN_EOF 1
MUST_CHECK int tls_conn_feed(struct tls_conn *t, const uint8_t *in, size_t n);
/* Deliver plaintext still held after a callback stopped delivery. Same returns as feed. */
MUST_CHECK int tls_conn_resume(struct tls_conn *t);
/* Encrypt and send p[0..n) (only once ready). 0 or ERR_TLS / the out callback's error. */
MUST_CHECK int tls_conn_write(struct tls_conn *t, const uint8_t *p, size_t n);
/* Send close_notify (once). 0 or < 0. */
MUST_CHECK int tls_conn_shutdown(struct tls_conn *t);

bool tls_conn_is_ready(const struct tls_conn *t);
/* Received bytes not yet delivered as plaintext (decrypted or still encrypted). */
bool tls_conn_has_pending(const struct tls_conn *t);
SSL *tls_conn_ssl(struct tls_conn *t);
/* After a failed handshake: a short reason (tls_fail_reason) and OpenSSL's error text. */
const char *tls_conn_reason(const struct tls_conn *t);
const char *tls_conn_detail(const struct tls_conn *t);

#endif
