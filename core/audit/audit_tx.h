/* audit_tx: one audit repository, fed from the audit queue on the audit thread's libuv loop.
 * TLS (RFC 5425: mutual TLS, octet-counted frames) with reconnection and exponential backoff,
 * or UDP (RFC 5426: one datagram per message). Each repository reads the queue at its own
 * cursor; a message is committed for it once delivered:
 *   TLS: written to the socket, acknowledged by the peer's TCP (the kernel's unacknowledged send
 *        queue has drained past it) and the connection still up ack_grace_ms later. Messages not
 *        yet committed when the connection fails are sent again on the next one: delivery is
 *        at least once (docs/audit.md, "Delivery").
 *   UDP: handed to the kernel without error (fire and forget, as RFC 5426 is).
 * Not thread-safe: every call on the loop's thread. */
#ifndef GW_AUDIT_TX_H
#define GW_AUDIT_TX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "audit_config.h"
#include "audit_queue.h"
#include "net/metrics.h"

struct audit_tx_env {
    uv_loop_t *loop;
    struct aq *q;
    size_t reader;                        /* this repository's cursor in q */
    const struct audit_repo_config *repo; /* copied */
    uint32_t retry_min_ms, retry_max_ms, connect_timeout_ms, ack_grace_ms;
    struct metrics *metrics;   /* may be NULL */
    const char *metric_prefix; /* "dicom_edge": <prefix>_audit_... */
};

struct audit_tx;

/* Build the repository's TLS context and start connecting (or resolving, for UDP). Returns NULL
 * with err set (bad TLS files, out of memory). */
struct audit_tx *audit_tx_new(const struct audit_tx_env *env, char *err, size_t err_len);

/* Something new may be in the queue: send what the connection can take. */
void audit_tx_kick(struct audit_tx *t);
/* Periodic work (the audit thread calls it every 100 ms): commits, timeouts. */
void audit_tx_tick(struct audit_tx *t);
/* Everything the queue holds has been committed by this repository. */
bool audit_tx_drained(struct audit_tx *t);
bool audit_tx_is_up(const struct audit_tx *t);
const char *audit_tx_name(const struct audit_tx *t);

/* Close the connection and every handle; t is freed once the last handle has closed, then
 * done(arg) is called (from the loop). */
void audit_tx_close(struct audit_tx *t, void (*done)(void *arg), void *arg);

#endif
