/* audit_tx_int: what audit_tx.c (queue, resolving, UDP, life) and audit_tx_tls.c (the TLS
 * connection) share; not for other modules. */
#ifndef GW_AUDIT_TX_INT_H
#define GW_AUDIT_TX_INT_H

#include <openssl/ssl.h>

#include "audit_tx.h"
#include "common/wbuf.h"
#include "net/metrics.h"

struct tls_conn;

#define FIFO_CAP 1024u                /* messages in flight on one connection */
#define INFLIGHT_BYTES (512u * 1024u) /* ciphertext written but not yet completed */
#define UDP_INFLIGHT 32u
#define UDP_MAX 65507u /* an IPv4 UDP payload */
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

/* audit_tx.c */
void audit_tx_maybe_free(struct audit_tx *t);
struct inflight *audit_tx_fifo_front(struct audit_tx *t);
void audit_tx_fifo_pop(struct audit_tx *t);
void audit_tx_fifo_push(struct audit_tx *t, uint64_t seq, uint64_t end);
void audit_tx_set_up(struct audit_tx *t, bool up);
/* Log a failure once per outage (the first after being up, or the first ever). */
void audit_tx_report_failure(struct audit_tx *t, const char *what, const char *detail);
void audit_tx_commit_to(struct audit_tx *t, uint64_t seq, uint64_t delivered);
/* Back to the last commit: what was in flight goes again on the next connection. */
void audit_tx_rewind_to_commit(struct audit_tx *t);
void audit_tx_schedule_retry(struct audit_tx *t);
void audit_tx_pump(struct audit_tx *t);
void audit_tx_on_timer(uv_timer_t *h);

/* audit_tx_tls.c */
/* Connect to t->addr; TLS handshake; then audit_tx_pump. */
void audit_tx_connect_addr(struct audit_tx *t);
/* The connection failed (or is closing): close it, rewind, retry later unless closing. */
void audit_tx_conn_fail(struct tx_conn *c, const char *what, const char *detail);
/* Frame and encrypt t->rec as message seq; false when the connection broke. */
bool audit_tx_send_tls(struct audit_tx *t, uint64_t seq);
/* Commit what TCP has acknowledged and ack_grace_ms has passed over. */
void audit_tx_commit_tls(struct audit_tx *t);

#endif
