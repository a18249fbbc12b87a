/* proxy_conn: a connection's life: its read buffer, its one timer (a deadline per phase),
 * finishing (let the last bytes out, then close when the peer does) and closing (the close
 * callback of its last handle frees it, STYLE.md §7). */
#ifndef GW_PROXY_CONN_H
#define GW_PROXY_CONN_H

#include "proxy_int.h"

/* uv_alloc_cb for both sockets: one static buffer (one loop; each read is consumed at once). */
void proxy_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* Start the timer for this phase: ms from now, c's state decides what expiry means. */
void proxy_conn_arm(struct edge_conn *c, uint64_t ms);
/* Keep the certificate identity fields of c (cn, subject, serial, fingerprint) from id. */
void proxy_conn_identity(struct edge_conn *c, const struct tls_peer_id *id);
/* One of c's live things (a handle, a pending getaddrinfo) has ended; the last frees c. */
void proxy_conn_release(struct edge_conn *c);
/* Close every handle now; c is freed when the last has closed. Idempotent. */
void proxy_conn_close(struct edge_conn *c);
/* Let what is queued go out (close_notify included), shut both legs down, and close when the
 * client closes, LINGER_MS at most. end names how the association ended (the first one set
 * stays). Idempotent. */
void proxy_conn_finish(struct edge_conn *c, const char *end);
/* c is no longer a pending connection (admitted, refused or ending): its slot of the
 * pre-association budget, if it holds one, is given back. Idempotent. */
void proxy_conn_preassoc_done(struct edge_conn *c);

#endif
